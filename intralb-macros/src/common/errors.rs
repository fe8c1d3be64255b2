//! Collecting errors so that the user sees all of them at once, and emitting them with the
//! user's item.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};

/// Collects errors so that the user sees all of them at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Records `error` next to the ones already collected.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Records an error with `message` at `span`.
    pub(crate) fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Records an error with `message` spanning all of `tokens` (not only their first token).
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records the error of `result`, if any, and returns its value.
    pub(crate) fn ok<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    /// Whether nothing has been recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Every error recorded, then `last`.
    pub(crate) fn and(self, last: syn::Error) -> syn::Error {
        match self.0 {
            Some(mut all) => {
                all.combine(last);
                all
            }
            None => last,
        }
    }

    /// `Ok(())` when nothing was recorded, otherwise all errors combined.
    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// The errors followed by the user's item, unchanged, so that the rest of the crate still
/// type-checks (and the IDE keeps working) while the attribute is wrong.
pub(crate) fn with_item(error: syn::Error, item: impl ToTokens) -> TokenStream {
    let error = error.to_compile_error();
    quote! { #error #item }
}
