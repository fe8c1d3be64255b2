//! The registration emitted next to a `#[db_init]` function.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, LitStr};

use super::args::Args;
use super::signature::DbInit;

/// `inventory::submit!` of an `Initializer` that calls the function for each worker, with the
/// `broken` check if the user gave one.
pub(crate) fn register(args: &Args, init: &DbInit) -> TokenStream {
    let krate = args.krate.clone().unwrap_or_default();
    let function = &init.name;
    let name = LitStr::new(&function.unraw().to_string(), function.span());
    // `mixed_site` keeps the closure's parameter from clashing with the user's names (even a
    // function called `worker`); it is located at the parameter's type, so that a parameter of
    // another type than `WorkerId` is reported there.
    let worker = Ident::new("worker", Span::mixed_site().located_at(init.param));
    let call = quote! { #function(#worker) };
    let call = if init.asyncness {
        quote! { #call.await }
    } else {
        call
    };
    // The calls that carry the bounds on the returned type (`T: Send + 'static`,
    // `E: Into<BoxError>`) are spanned at that type, paths included, so that rustc reports an
    // unmet bound there rather than under the attribute.
    let output = init.output;
    let krate_at_output = krate.at(output);
    let result = if init.fallible {
        call
    } else {
        quote_spanned! {output=> #krate_at_output::__private::ok(#call) }
    };
    let initializer = if init.asyncness {
        quote_spanned! {output=>
            #krate_at_output::__private::Initializer::asynchronous(
                ::core::concat!(::core::module_path!(), "::", #name),
                |#worker| async move { #result },
            )
        }
    } else {
        quote_spanned! {output=>
            #krate_at_output::__private::Initializer::sync(
                ::core::concat!(::core::module_path!(), "::", #name),
                |#worker| #result,
            )
        }
    };
    // Spanned at the user's path, so that a function of the wrong type is reported there.
    let broken = args.broken.as_ref().map(|path| {
        quote_spanned! {path.span()=> .broken(#path) }
    });
    quote! {
        #krate::__private::inventory::submit! {
            #krate::__private::DbInit::new(|| { #initializer #broken })
        }
    }
}
