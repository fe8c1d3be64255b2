//! What both macros share, one concept per file: collecting errors (`errors`), the
//! `key = value` argument parser with its suggestions (`key_values`), the function-shape checks
//! (`signature`), and the path of the runtime crate (`crate_path`).

mod crate_path;
mod errors;
mod key_values;
mod signature;

pub(crate) use crate_path::{default_or_renamed, CratePath};
pub(crate) use errors::{with_item, Errors};
pub(crate) use key_values::{ungroup, KeyValues};
pub(crate) use signature::{check_plain_fn, is_result, output_span, returned_type, typed_inputs};
