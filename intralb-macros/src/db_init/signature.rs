//! Reading and checking the signature of a `#[db_init]` function into a [`DbInit`].

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{Ident, Item, Signature};

use crate::common::{self, Errors};

const WHAT: &str = "a `#[db_init]` function";

/// What the expansion needs to know about the function.
pub(crate) struct DbInit {
    /// The function's name.
    pub(crate) name: Ident,
    /// `async fn`.
    pub(crate) asyncness: bool,
    /// Returns a `Result` (any type whose last path segment is `Result`).
    pub(crate) fallible: bool,
    /// The span of the returned type, where "is not `Send`" errors should point.
    pub(crate) output: Span,
    /// The span of the parameter's type, where "expected `WorkerId`" errors should point.
    pub(crate) param: Span,
}

/// Checks the item, recording every error.
pub(crate) fn parse(item: &TokenStream, errors: &mut Errors) -> Option<DbInit> {
    let Ok(Item::Fn(func)) = syn::parse2::<Item>(item.clone()) else {
        errors.push(syn::Error::new_spanned(
            item,
            "`#[db_init]` can only be applied to a function that opens a worker's resource, \
             e.g. `fn open(worker: WorkerId) -> rusqlite::Result<Connection>`",
        ));
        return None;
    };
    check(&func.sig, errors)
}

fn check(sig: &Signature, errors: &mut Errors) -> Option<DbInit> {
    let mut local = Errors::default();
    common::check_plain_fn(sig, WHAT, &mut local);
    let mut params = common::typed_inputs(sig);
    let param = params.next();
    if param.is_none() && sig.receiver().is_none() {
        local.at(
            sig.paren_token.span.join(),
            format!("{WHAT} takes one parameter, the worker it opens the resource for: `(worker: WorkerId)`"),
        );
    }
    for extra in params {
        local.spanned(
            extra,
            format!("{WHAT} takes exactly one parameter, the `WorkerId`; remove this one"),
        );
    }
    let output = common::returned_type(sig);
    if output.is_none() {
        local.at(
            common::output_span(sig),
            format!(
                "{WHAT} must return the resource it opens, e.g. `-> rusqlite::Result<Connection>`"
            ),
        );
    }
    let finished = local.finish();
    let (Ok(()), Some(param), Some(output)) = (&finished, param, output) else {
        errors.ok(finished);
        return None;
    };
    Some(DbInit {
        name: sig.ident.clone(),
        asyncness: sig.asyncness.is_some(),
        fallible: common::is_result(output),
        output: output.span(),
        param: param.ty.span(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn check(item: TokenStream) -> Result<DbInit, String> {
        let mut errors = Errors::default();
        let parsed = parse(&item, &mut errors);
        errors.finish().map_err(|error| error.to_string())?;
        Ok(parsed.expect("no errors, so parsed"))
    }

    #[test]
    fn result_types_are_fallible_whatever_their_path() {
        for ty in [
            quote!(Result<C, E>),
            quote!(rusqlite::Result<C>),
            quote!(std::io::Result<C>),
        ] {
            let init = check(quote!(fn open(w: WorkerId) -> #ty { todo!() })).unwrap();
            assert!(init.fallible, "{ty}");
        }
        let init = check(quote!(
            async fn open(_: intralb::WorkerId) -> Conn {
                todo!()
            }
        ))
        .unwrap();
        assert!(!init.fallible && init.asyncness);
    }

    #[test]
    fn one_parameter_and_a_returned_value_are_required() {
        let error = check(quote!(
            fn open() -> Conn {
                todo!()
            }
        ))
        .err()
        .unwrap();
        assert!(error.contains("takes one parameter"), "{error}");
        let error = check(quote!(
            fn open(a: WorkerId, b: u8) -> Conn {
                todo!()
            }
        ))
        .err()
        .unwrap();
        assert!(error.contains("exactly one parameter"), "{error}");
        let error = check(quote!(
            fn open(w: WorkerId) {}
        ))
        .err()
        .unwrap();
        assert!(error.contains("must return"), "{error}");
        let error = check(quote!(
            fn open(w: WorkerId) -> () {}
        ))
        .err()
        .unwrap();
        assert!(error.contains("must return"), "{error}");
    }

    #[test]
    fn generics_unsafe_and_extern_are_each_reported() {
        let item = quote!(
            unsafe extern "C" fn open<T>(w: WorkerId) -> T
            where
                T: Copy,
            {
                todo!()
            }
        );
        let mut errors = Errors::default();
        parse(&item, &mut errors);
        let messages: Vec<String> = errors
            .finish()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert!(messages[0].starts_with("a `#[db_init]` function cannot be generic"));
        assert_eq!(
            messages[1],
            "a `#[db_init]` function cannot have a `where` clause"
        );
        assert_eq!(messages[2], "a `#[db_init]` function cannot be `unsafe`");
        assert_eq!(
            messages[3],
            "a `#[db_init]` function cannot be `extern`: remove the ABI"
        );
    }
}
