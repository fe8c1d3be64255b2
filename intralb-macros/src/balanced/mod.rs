//! `#[balanced(...)]`: arguments ([`args`]) → checks ([`validate`]) → the generated `serve`
//! ([`expand`]).

mod args;
mod expand;
#[cfg(test)]
mod tests;
mod validate;
mod value;

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Ident, Item};

use crate::common::{self, Errors};
use args::Args;

/// The whole macro: the user's item unchanged, plus `serve` or the errors.
pub(crate) fn balanced(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = Args::parse(args, &mut errors);
    validate::args(&args, &mut errors);
    let Ok(Item::Fn(func)) = syn::parse2::<Item>(item.clone()) else {
        let error = errors.and(syn::Error::new_spanned(
            &item,
            "`#[balanced]` can only be applied to the function that builds the router, e.g. `fn app() -> axum::Router`",
        ));
        return failed(error, &item, &args, None, false);
    };
    let callable = validate::function(&func, &args, &mut errors);
    match errors.finish() {
        Ok(()) => {
            let serve = expand::serve(&args, &func);
            quote! { #item #serve }
        }
        Err(error) => failed(error, &item, &args, Some(&func.sig.ident), callable),
    }
}

/// The errors, the item unchanged, and a stub `serve` so that callers get no second error.
fn failed(
    error: syn::Error,
    item: &TokenStream,
    args: &Args,
    router: Option<&Ident>,
    callable: bool,
) -> TokenStream {
    let stub = expand::stub(args, router, callable);
    let output = common::with_item(error, item);
    quote! { #output #stub }
}
