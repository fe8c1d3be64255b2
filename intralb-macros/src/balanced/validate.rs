//! Checks that need more than one value at hand: ranges, combinations of keys, and the shape of
//! the router function. Single values were checked for their kind while parsing.

use syn::ItemFn;

use super::args::{Args, Key};
use super::value::Value;
use crate::common::{self, Errors};

const WHAT: &str = "a `#[balanced]` router function";

/// Checks the values of the arguments against each other.
pub(crate) fn args(args: &Args, errors: &mut Errors) {
    let max_concurrent = args.get(Key::max_concurrent);
    if let Some(setting) = max_concurrent {
        if setting.value == Value::Count(0) {
            errors.at(
                setting.span,
                "`max_concurrent` must be at least 1: with 0 no request would ever be handled",
            );
        }
    }
    if let Some(setting) = args.get(Key::timeout) {
        if matches!(setting.value, Value::Duration(duration) if duration.is_zero()) {
            errors.at(
                setting.span,
                "`timeout` must be greater than zero: every request would miss its deadline",
            );
        }
    }
    if let Some(Value::Count(min_workers)) = args.get(Key::min_workers).map(|s| &s.value) {
        let limit = match max_concurrent.map(|s| &s.value) {
            Some(Value::Count(limit)) => *limit,
            // The runtime's default, declared with the settings.
            _ => Key::max_concurrent
                .default_count()
                .expect("max_concurrent has a fixed default"),
        };
        if *min_workers > limit {
            let given = if max_concurrent.is_some() {
                format!("`max_concurrent` ({limit})")
            } else {
                format!("`max_concurrent` (the default, {limit})")
            };
            let span = args.get(Key::min_workers).map(|s| s.span);
            errors.at(
                span.unwrap_or_else(proc_macro2::Span::call_site),
                format!("`min_workers` ({min_workers}) cannot be greater than {given}"),
            );
        }
    }
}

/// Checks that `func` can build the router: a free function with no parameters and no
/// generics, that returns something. Returns whether it can be called as `func()`.
pub(crate) fn function(func: &ItemFn, args: &Args, errors: &mut Errors) -> bool {
    let mut local = Errors::default();
    let sig = &func.sig;
    common::check_plain_fn(sig, WHAT, &mut local);
    for param in common::typed_inputs(sig) {
        local.spanned(
            param,
            format!("{WHAT} takes no parameters: it is called once, by the generated `serve`, to build the router"),
        );
    }
    if common::returned_type(sig).is_none() {
        local.at(
            common::output_span(sig),
            format!("{WHAT} must return the router, e.g. `fn app() -> axum::Router`"),
        );
    }
    if let Some(serve) = &args.serve {
        if *serve == sig.ident {
            local.at(
                serve.span(),
                format!("`serve = {serve}` would have the same name as the router function; choose another name"),
            );
        }
    }
    let callable = local.is_empty();
    if let Err(error) = local.finish() {
        errors.push(error);
    }
    callable
}
