//! `#[setup]`: the arguments (`crate = "..."` only) and the signature → its registration.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::{Item, ItemFn, LitStr};

use crate::common::{self, CratePath, Errors, KeyValues};

const WHAT: &str = "a `#[setup]` function";
const CRATE: &str = "crate";

/// The whole macro: the user's function unchanged, plus its registration or the errors.
pub(crate) fn setup(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut krate = None;
    let syntax = KeyValues {
        attribute: "#[setup]",
        keys: &[CRATE],
        aliases: &[],
        example: |_| "\"my_intralb\"",
    };
    let seen = syntax.parse(args, &mut errors, |_, expr, errors| {
        krate = errors.ok(CratePath::from_expr(expr));
    });
    if !seen.contains(&CRATE) {
        if let (path, Some(renamed)) =
            common::default_or_renamed("#[setup]", proc_macro2::Span::call_site())
        {
            errors.push(renamed);
            krate = Some(path);
        }
    }
    let func = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(func)) => Some(func),
        _ => {
            errors.push(syn::Error::new_spanned(
                &item,
                "`#[setup]` can only be applied to a function run once before the workers \
                 start, e.g. `async fn migrate() -> Result<(), sqlx::Error>`",
            ));
            None
        }
    };
    if let Some(func) = &func {
        check(func, &mut errors);
    }
    match (errors.finish(), func) {
        (Ok(()), Some(func)) => {
            let register = register(&krate.unwrap_or_default(), &func);
            quote! { #item #register }
        }
        (Err(error), _) => common::with_item(error, &item),
        (Ok(()), None) => item,
    }
}

fn check(func: &ItemFn, errors: &mut Errors) {
    let sig = &func.sig;
    common::check_plain_fn(sig, WHAT, errors);
    for param in common::typed_inputs(sig) {
        errors.spanned(
            param,
            format!("{WHAT} takes no parameters: it runs once, before any worker exists (for each worker's own set-up, use `#[db_init]`)"),
        );
    }
}

/// `inventory::submit!` of a `Setup` that calls the function.
fn register(krate: &CratePath, func: &ItemFn) -> TokenStream {
    let sig = &func.sig;
    let function = &sig.ident;
    let name = LitStr::new(&function.unraw().to_string(), function.span());
    let fallible = common::returned_type(sig).is_some_and(common::is_result);
    // Spanned at the returned type, so that an error type that does not convert into a boxed
    // error, or another returned type than `()`, is reported there.
    let output = common::output_span(sig);
    let krate_at_output = krate.at(output);
    let call = if sig.asyncness.is_some() {
        quote! { #function().await }
    } else {
        quote! { #function() }
    };
    let result = if fallible {
        call
    } else {
        quote_spanned! {output=> #krate_at_output::__private::ok::<()>(#call) }
    };
    let name_expr = quote! { ::core::concat!(::core::module_path!(), "::", #name) };
    let setup = if sig.asyncness.is_some() {
        quote_spanned! {output=>
            #krate_at_output::__private::Setup::new(#name_expr, || async { #result })
        }
    } else {
        quote_spanned! {output=>
            #krate_at_output::__private::Setup::blocking(#name_expr, || #result)
        }
    };
    quote! {
        #krate::__private::inventory::submit! {
            #krate::__private::RegisteredSetup::new(|| #setup)
        }
    }
}
