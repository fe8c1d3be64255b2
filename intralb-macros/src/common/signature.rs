//! Checks of the annotated function's shape that both attributes share.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, Generics, ReturnType, Signature, Type};

use super::Errors;

/// Checks that apply to the function under either attribute: no generics, no `self`, not
/// `unsafe`, not `extern`, not variadic. `what` names the function in messages, e.g.
/// "a `#[db_init]` function".
pub(crate) fn check_plain_fn(sig: &Signature, what: &str, errors: &mut Errors) {
    check_generics(&sig.generics, what, errors);
    if let Some(receiver) = sig.receiver() {
        errors.spanned(
            receiver,
            format!("{what} must be a free function, not a method: remove `self`"),
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.at(unsafety.span, format!("{what} cannot be `unsafe`"));
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(abi, format!("{what} cannot be `extern`: remove the ABI"));
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(variadic, format!("{what} cannot be variadic"));
    }
}

fn check_generics(generics: &Generics, what: &str, errors: &mut Errors) {
    if !generics.params.is_empty() {
        errors.spanned(
            generics,
            format!("{what} cannot be generic: nothing would choose its generic parameters"),
        );
    }
    if let Some(where_clause) = &generics.where_clause {
        errors.spanned(where_clause, format!("{what} cannot have a `where` clause"));
    }
}

/// The typed (non-`self`) parameters of `sig`.
pub(crate) fn typed_inputs(sig: &Signature) -> impl Iterator<Item = &syn::PatType> {
    sig.inputs.iter().filter_map(|arg| match arg {
        FnArg::Typed(typed) => Some(typed),
        FnArg::Receiver(_) => None,
    })
}

/// The type the function returns, or `None` for `()` (written or implied).
pub(crate) fn returned_type(sig: &Signature) -> Option<&Type> {
    match &sig.output {
        ReturnType::Type(_, ty) if !is_unit(ty) => Some(ty),
        _ => None,
    }
}

fn is_unit(ty: &Type) -> bool {
    match ty {
        Type::Tuple(tuple) => tuple.elems.is_empty(),
        Type::Paren(paren) => is_unit(&paren.elem),
        _ => false,
    }
}

/// Where to point an error about the whole signature: the return type if any, else the
/// parameter list.
pub(crate) fn output_span(sig: &Signature) -> Span {
    match &sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => sig.paren_token.span.join(),
    }
}

/// Whether `ty` is a `Result`: `Result<T, E>`, `io::Result<T>`, `rusqlite::Result<T>`...
pub(crate) fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|last| last.ident == "Result"),
        Type::Paren(paren) => is_result(&paren.elem),
        Type::Group(group) => is_result(&group.elem),
        _ => false,
    }
}
