//! Parsing `#[db_init(key = value, ...)]` into [`Args`], with the same parser, and so the same
//! errors, as `#[balanced]`.

use proc_macro2::{Span, TokenStream};
use syn::{Expr, ExprLit, ExprPath, Lit};

use crate::common::{self, CratePath, Errors, KeyValues};

/// `broken = PATH`: the function that tells whether a worker's resource is broken.
pub(crate) const BROKEN: &str = "broken";
/// `crate = "path"`: the path of the runtime crate in generated code.
pub(crate) const CRATE: &str = "crate";

/// Every key `#[db_init]` accepts.
const KEYS: &[&str] = &[BROKEN, CRATE];

/// Keys that are not valid but that users plausibly mean as a valid one.
const ALIASES: &[(&str, &str)] = &[
    ("is_broken", BROKEN),
    ("is_closed", BROKEN),
    ("check", BROKEN),
    ("broken_check", BROKEN),
];

/// The parsed arguments: everything that parsed, whether or not other keys had errors.
#[derive(Default)]
pub(crate) struct Args {
    /// `broken = PATH`, as written.
    pub(crate) broken: Option<ExprPath>,
    /// `crate = "path"`.
    pub(crate) krate: Option<CratePath>,
}

impl Args {
    /// Parses the attribute's arguments, recording every error in `errors`.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Self {
        let syntax = KeyValues {
            attribute: "#[db_init]",
            keys: KEYS,
            aliases: ALIASES,
            example,
        };
        let mut args = Self::default();
        let seen = syntax.parse(tokens, errors, |key, expr, errors| match key {
            BROKEN => args.broken = errors.ok(parse_broken(expr)),
            _ => args.krate = errors.ok(CratePath::from_expr(expr)),
        });
        if !seen.contains(&CRATE) {
            if let (path, Some(renamed)) =
                common::default_or_renamed("#[db_init]", Span::call_site())
            {
                errors.push(renamed);
                args.krate = Some(path);
            }
        }
        args
    }
}

/// An example value for `key`, for "expected a value" messages.
fn example(key: &str) -> &'static str {
    match key {
        BROKEN => "is_broken",
        _ => "\"my_intralb\"",
    }
}

/// The value of `broken`: the path of a function, a method or an associated function.
fn parse_broken(expr: &Expr) -> syn::Result<ExprPath> {
    const FORM: &str =
        "such as `broken = is_broken` or `broken = tokio_postgres::Client::is_closed`";
    match expr {
        Expr::Path(path) => Ok(path.clone()),
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => {
            let written = s.value();
            let message = match s.parse::<ExprPath>() {
                Ok(_) => format!(
                    "`broken` expects a path, not a string: write `broken = {}`",
                    written.trim()
                ),
                Err(_) => format!(
                    "`broken` expects the path of a `fn(&T) -> bool`, not a string: write a path, {FORM}"
                ),
            };
            Err(syn::Error::new(s.span(), message))
        }
        Expr::Closure(closure) => Err(syn::Error::new_spanned(
            closure,
            "`broken` expects the path of a function, not a closure: define \
             `fn is_broken(resource: &T) -> bool` and write `broken = is_broken`",
        )),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!("`broken` expects the path of a `fn(&T) -> bool`, {FORM}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use quote::{quote, ToTokens};

    use super::*;

    /// Parses `tokens`, returning the arguments and every error message.
    fn parse(tokens: TokenStream) -> (Args, Vec<String>) {
        let mut errors = Errors::default();
        let args = Args::parse(tokens, &mut errors);
        let messages = match errors.finish() {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        };
        (args, messages)
    }

    fn errors(tokens: TokenStream) -> Vec<String> {
        parse(tokens).1
    }

    #[test]
    fn no_arguments_is_valid() {
        let (args, errors) = parse(quote!());
        assert!(errors.is_empty(), "{errors:?}");
        assert!(args.broken.is_none() && args.krate.is_none());
    }

    #[test]
    fn both_keys_parse_to_their_values() {
        let (args, errors) = parse(quote!(
            broken = tokio_postgres::Client::is_closed,
            crate = "lb"
        ));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            args.broken.unwrap().to_token_stream().to_string(),
            "tokio_postgres :: Client :: is_closed"
        );
        assert_eq!(args.krate.unwrap().to_token_stream().to_string(), ":: lb");
    }

    #[test]
    fn an_unknown_key_lists_the_valid_keys() {
        assert_eq!(
            errors(quote!(name = "db")),
            ["unknown `#[db_init]` key `name`; valid keys are `broken` and `crate`"]
        );
    }

    #[test]
    fn a_misspelled_key_gets_a_hint() {
        for typo in [
            quote!(brokn = f),
            quote!(is_closed = f),
            quote!(crat = "lb"),
        ] {
            let errors = errors(typo.clone());
            assert!(errors[0].contains("did you mean `"), "{typo}: {errors:?}");
        }
        assert_eq!(
            errors(quote!(is_closed = f)),
            ["unknown `#[db_init]` key `is_closed`; did you mean `broken`? valid keys are `broken` and `crate`"]
        );
    }

    #[test]
    fn a_repeated_key_is_reported_once_and_the_first_value_kept() {
        let (args, errors) = parse(quote!(broken = a, crate = "x", broken = b, crate = "y"));
        assert_eq!(
            errors,
            [
                "`broken` specified more than once",
                "`crate` specified more than once"
            ]
        );
        assert_eq!(args.broken.unwrap().to_token_stream().to_string(), "a");
        assert_eq!(args.krate.unwrap().to_token_stream().to_string(), ":: x");
    }

    #[test]
    fn a_missing_value_shows_what_one_looks_like() {
        assert_eq!(
            errors(quote!(broken, crate)),
            [
                "expected a value: `broken = is_broken`",
                "expected a value: `crate = \"my_intralb\"`"
            ]
        );
    }

    #[test]
    fn broken_is_a_path_not_a_string_or_a_closure() {
        assert_eq!(
            errors(quote!(broken = "Client::is_closed")),
            ["`broken` expects a path, not a string: write `broken = Client::is_closed`"]
        );
        assert_eq!(
            errors(quote!(broken = "is it broken?")),
            ["`broken` expects the path of a `fn(&T) -> bool`, not a string: write a path, such as `broken = is_broken` or `broken = tokio_postgres::Client::is_closed`"]
        );
        assert!(errors(quote!(broken = |c: &Conn| c.is_closed()))[0]
            .starts_with("`broken` expects the path of a function, not a closure"));
        assert_eq!(
            errors(quote!(broken = is_broken())),
            ["`broken` expects the path of a `fn(&T) -> bool`, such as `broken = is_broken` or `broken = tokio_postgres::Client::is_closed`"]
        );
    }

    #[test]
    fn crate_is_a_string_holding_a_path() {
        assert!(errors(quote!(crate = "not a path"))[0]
            .starts_with("`crate` expects a path such as \"my_intralb\""));
        assert_eq!(
            errors(quote!(crate = lb)),
            ["`crate` expects a string literal, not a path: write `crate = \"lb\"`"]
        );
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let (args, errors) = parse(quote!(
            colour = 1,
            broken = "x",
            crate = 1,
            broken = y,
            crate = "lb"
        ));
        assert_eq!(
            errors,
            [
                "unknown `#[db_init]` key `colour`; valid keys are `broken` and `crate`",
                "`broken` expects a path, not a string: write `broken = x`",
                "`crate` expects a string literal holding a path, such as `crate = \"my_intralb\"`",
                "`broken` specified more than once",
                "`crate` specified more than once",
            ]
        );
        assert!(args.broken.is_none() && args.krate.is_none());
    }

    #[test]
    fn keys_from_string_tokens_parse_like_the_compiler_gives_them() {
        let tokens: TokenStream = "broken = Conn::is_closed, crate = \"x\"".parse().unwrap();
        assert!(errors(tokens).is_empty());
    }
}
