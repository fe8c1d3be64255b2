//! The values of `#[balanced]`'s keys: each literal checked against what its key takes, with
//! messages that say what was expected.

use std::net::SocketAddr;
use std::time::Duration;

use proc_macro2::Span;
use syn::{Expr, ExprLit, Ident, Lit, UnOp};

use super::args::Key;
use crate::common::ungroup;

/// The sort of value a runtime key takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An integer literal: `100`.
    Count,
    /// A duration string parsed by `humantime`: `"250ms"`, `"5s"`, `"2m"`.
    Duration,
    /// A socket address string: `"127.0.0.1:8080"`, `"[::1]:3000"`.
    Addr,
    /// `true` or `false`.
    Bool,
    /// A URL path string: `"/metrics"`.
    Path,
}

/// A runtime value, already checked to be of the key's [`Kind`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Count(usize),
    Duration(Duration),
    /// The address as written; it is known to parse.
    Addr(String),
    Bool(bool),
    /// A path, known to start with `/`.
    Path(String),
}

/// Parses the value of a runtime key, checking that it is of the key's kind.
pub(crate) fn parse(key: Key, expr: &Expr) -> syn::Result<Value> {
    let name = key.name();
    let lit = match expr {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        _ => None,
    };
    let wrong = |expected: &str| {
        let found = match lit {
            Some(Lit::Str(_)) => ", found a string",
            Some(Lit::Int(_)) => ", found an integer",
            Some(Lit::Bool(_)) => ", found a bool",
            Some(Lit::Float(_)) => ", found a float",
            Some(_) => ", found another literal",
            None => "",
        };
        syn::Error::new_spanned(expr, format!("expected {expected} for `{name}`{found}"))
    };
    match (key.kind(), lit) {
        (Kind::Count, Some(Lit::Int(int))) => {
            if !matches!(int.suffix(), "" | "usize") {
                let message = format!("`{name}` takes a plain integer such as `100`, without the `{}` suffix", int.suffix());
                return Err(syn::Error::new(int.span(), message));
            }
            int.base10_parse::<usize>().map(Value::Count).map_err(|_| {
                syn::Error::new(int.span(), format!("`{name}` is too large: the largest value is {}", usize::MAX))
            })
        }
        (Kind::Count, None) if is_negative_int(expr) => {
            Err(syn::Error::new_spanned(expr, format!("`{name}` cannot be negative")))
        }
        (Kind::Count, _) => Err(match lit {
            Some(Lit::Str(s)) if s.value().trim().parse::<u64>().is_ok() => syn::Error::new(
                s.span(),
                format!("expected an integer literal for `{name}`, found a string: write `{name} = {}`", s.value().trim()),
            ),
            _ => wrong("an integer literal such as `100`"),
        }),
        (Kind::Duration, Some(Lit::Str(s))) => parse_duration(name, &s.value(), s.span()).map(Value::Duration),
        (Kind::Duration, _) => Err(wrong("a duration string such as \"5s\" or \"250ms\"")),
        (Kind::Addr, Some(Lit::Str(s))) => match s.value().parse::<SocketAddr>() {
            Ok(_) => Ok(Value::Addr(s.value())),
            Err(error) => Err(syn::Error::new(
                s.span(),
                format!(
                    "invalid address {:?} for `{name}`: {error}; expected an IP address and a port such as \"127.0.0.1:8080\" or \"[::1]:3000\" (host names are not resolved)",
                    s.value()
                ),
            )),
        },
        (Kind::Addr, _) => Err(wrong("an address string such as \"127.0.0.1:8080\"")),
        (Kind::Bool, Some(Lit::Bool(b))) => Ok(Value::Bool(b.value)),
        (Kind::Bool, Some(Lit::Str(s))) if matches!(s.value().as_str(), "true" | "false") => Err(syn::Error::new(
            s.span(),
            format!("expected `true` or `false` for `{name}`, found a string: write `{name} = {}`", s.value()),
        )),
        (Kind::Bool, _) => Err(wrong("`true` or `false`")),
        (Kind::Path, Some(Lit::Str(s))) => {
            let path = s.value();
            if path.starts_with('/') && !path.contains(char::is_whitespace) {
                Ok(Value::Path(path))
            } else {
                Err(syn::Error::new(
                    s.span(),
                    format!("invalid path {path:?} for `{name}`: expected a path that starts with `/` and has no spaces, such as \"/{name}\""),
                ))
            }
        }
        (Kind::Path, _) => Err(wrong("a path string such as \"/metrics\"")),
    }
}

fn parse_duration(name: &str, text: &str, span: Span) -> syn::Result<Duration> {
    let duration = humantime::parse_duration(text).map_err(|error| {
        syn::Error::new(
            span,
            format!("invalid duration {text:?} for `{name}`: {error}; expected a duration such as \"250ms\", \"5s\" or \"2m\""),
        )
    })?;
    if u64::try_from(duration.as_nanos()).is_err() {
        return Err(syn::Error::new(
            span,
            format!("`{name}` is too long: at most {} nanoseconds", u64::MAX),
        ));
    }
    Ok(duration)
}

pub(crate) fn parse_ident(expr: &Expr) -> syn::Result<Ident> {
    match expr {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => {
            path.path.get_ident().cloned().ok_or_else(|| {
                syn::Error::new_spanned(
                    path,
                    "`serve` expects a function name such as `serve_admin`, not a path",
                )
            })
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Err(syn::Error::new(
            s.span(),
            format!(
                "`serve` expects an identifier, not a string: write `serve = {}`",
                s.value()
            ),
        )),
        _ => Err(syn::Error::new_spanned(
            expr,
            "`serve` expects a function name such as `serve_admin`",
        )),
    }
}

fn is_negative_int(expr: &Expr) -> bool {
    matches!(expr, Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_))
        && matches!(ungroup(&unary.expr), Expr::Lit(ExprLit { lit: Lit::Int(_), .. })))
}

/// The value of `layer` or `priority` (`key`): the path of a function. `hint` completes "such
/// as …" in the error for anything else.
pub(crate) fn parse_fn_path(key: &str, hint: &str, expr: &Expr) -> syn::Result<syn::ExprPath> {
    match expr {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => Ok(path.clone()),
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Err(syn::Error::new(
            s.span(),
            format!(
                "`{key}` expects the path of a function, not a string: write `{key} = {}`",
                s.value().trim()
            ),
        )),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!("`{key}` expects the path of a function {hint}"),
        )),
    }
}
