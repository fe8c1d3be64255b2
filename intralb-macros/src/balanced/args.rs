//! Parsing `#[balanced(key = value, ...)]` into [`Args`], a model that keeps every value's span.
//!
//! Every runtime key is the name of an `intralb::Builder` setter and is declared once, with the
//! runtime's other settings, in the `intralb-settings` crate: its name, what sort of value it
//! takes, its default. Adding a key whose value is of a sort that exists is that one entry; a new
//! sort of value is a new `Kind` with its parser in `value.rs` and its tokens in `expand.rs`.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{Expr, Ident};

use super::value::{self, Kind, Value};
use crate::common::{self, CratePath, Errors, KeyValues};

/// Generates [`Key`] from the settings' one declaration (the `intralb-settings` crate), so the
/// keys accepted here are exactly the runtime's settings.
macro_rules! keys {
    ($(
        [$group:ident: $Group:ident] {
            $(
                #[doc = $doc:literal]
                $(#[doc = $more:literal])*
                $name:ident: $kind:ident = $default:tt, $default_doc:literal;
            )*
        }
    )*) => {
        /// A key that configures the runtime; its name is the `Builder` setter it becomes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[allow(non_camel_case_types)]
        pub(crate) enum Key {
            $($( #[doc = $doc] $name, )*)*
        }

        impl Key {
            /// Every runtime key, in the order they are declared.
            pub(crate) const ALL: &'static [Key] = &[$($(Key::$name),*),*];

            /// The key as the user writes it, which is also the `Builder` setter's name.
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $($( Key::$name => stringify!($name), )*)*
                }
            }

            /// The sort of value the key takes.
            pub(crate) fn kind(self) -> Kind {
                match self {
                    $($( Key::$name => kind!($kind), )*)*
                }
            }

            /// The runtime's default, for the keys that take a count and have a fixed one.
            pub(crate) fn default_count(self) -> Option<usize> {
                match self {
                    $($( Key::$name => default_count!($kind, $default), )*)*
                }
            }
        }
    };
}

/// The sort of value of each kind of setting.
macro_rules! kind {
    (Count) => {
        Kind::Count
    };
    (OptCount) => {
        Kind::Count
    };
    (Duration) => {
        Kind::Duration
    };
    (Addr) => {
        Kind::Addr
    };
    (Flag) => {
        Kind::Bool
    };
    (OptFlag) => {
        Kind::Bool
    };
    (OptPath) => {
        Kind::Path
    };
}

macro_rules! default_count {
    (Count, $default:literal) => {
        Some($default)
    };
    ($kind:ident, $default:tt) => {
        None
    };
}

intralb_settings::settings!(keys);

/// `serve = name`: the name of the generated function.
pub(crate) const SERVE: &str = "serve";
/// `crate = "path"`: the path of the runtime crate in generated code.
pub(crate) const CRATE: &str = "crate";
/// `layer = PATH`: a function returning a tower layer in front of admission.
pub(crate) const LAYER: &str = "layer";
/// `priority = PATH`: a `fn(&http::request::Parts) -> intralb::Priority`.
pub(crate) const PRIORITY: &str = "priority";

/// Keys that are not valid but that users plausibly mean as a valid one.
const ALIASES: &[(&str, &str)] = &[
    ("concurrency", "max_concurrent"),
    ("max_concurrency", "max_concurrent"),
    ("workers", "max_concurrent"),
    ("max_workers", "max_concurrent"),
    ("queue_size", "queue"),
    ("queue_len", "queue"),
    ("queue_length", "queue"),
    ("request_timeout", "timeout"),
    ("deadline", "timeout"),
    ("grace", "shutdown_timeout"),
    ("grace_period", "shutdown_timeout"),
    ("address", "addr"),
    ("bind", "addr"),
    ("listen", "addr"),
    ("port", "addr"),
    ("logging", "log"),
    ("name", "serve"),
    ("fn_name", "serve"),
    ("layers", "layer"),
    ("middleware", "layer"),
    ("outer", "layer"),
    ("priorities", "priority"),
    ("classify", "priority"),
];

/// One `key = value` the user gave for a runtime key.
#[derive(Clone, Debug)]
pub(crate) struct Setting {
    pub(crate) key: Key,
    pub(crate) value: Value,
    /// The value's span, where errors about the value point.
    pub(crate) span: Span,
}

/// The parsed arguments: everything that parsed, whether or not other keys had errors.
#[derive(Default)]
pub(crate) struct Args {
    /// Runtime keys in the order the user wrote them.
    pub(crate) settings: Vec<Setting>,
    pub(crate) serve: Option<Ident>,
    pub(crate) krate: Option<CratePath>,
    /// `layer = PATH`, as written.
    pub(crate) layer: Option<syn::ExprPath>,
    /// `priority = PATH`, as written.
    pub(crate) priority: Option<syn::ExprPath>,
    /// Every valid key given, with a usable value or not.
    seen: Vec<&'static str>,
}

impl Args {
    /// Parses the attribute's arguments, recording every error in `errors`.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Self {
        let keys = Self::valid_keys();
        let syntax = KeyValues {
            attribute: "#[balanced]",
            keys: &keys,
            aliases: ALIASES,
            example,
        };
        let mut args = Self::default();
        let seen = syntax.parse(tokens, errors, |key, expr, errors| {
            args.set(key, expr, errors);
        });
        if !seen.contains(&CRATE) {
            if let (path, Some(renamed)) =
                common::default_or_renamed("#[balanced]", Span::call_site())
            {
                errors.push(renamed);
                args.krate = Some(path);
            }
        }
        args.seen = seen;
        args
    }

    /// The setting for `key`, if the user gave one.
    pub(crate) fn get(&self, key: Key) -> Option<&Setting> {
        self.settings.iter().find(|setting| setting.key == key)
    }

    /// Whether `serve` or `crate` was given without a usable value: then the name of the
    /// generated function, or the path to the runtime, is unknown.
    pub(crate) fn meta_failed(&self) -> bool {
        let given = |key: &str| self.seen.contains(&key);
        given(SERVE) && self.serve.is_none() || given(CRATE) && self.krate.is_none()
    }

    /// Every key `#[balanced]` accepts.
    pub(crate) fn valid_keys() -> Vec<&'static str> {
        let mut keys: Vec<_> = Key::ALL.iter().map(|key| key.name()).collect();
        keys.extend([SERVE, CRATE, LAYER, PRIORITY]);
        keys
    }

    /// Records the value of `name`, a valid key given once, or the error in it.
    fn set(&mut self, name: &str, expr: &Expr, errors: &mut Errors) {
        match Key::ALL.iter().copied().find(|key| key.name() == name) {
            Some(key) => {
                if let Some(value) = errors.ok(value::parse(key, expr)) {
                    self.settings.push(Setting {
                        key,
                        value,
                        span: expr.span(),
                    });
                }
            }
            None if name == SERVE => self.serve = errors.ok(value::parse_ident(expr)),
            None if name == LAYER => {
                let hint = "that returns the layer, such as `layer = outer` with \
                            `fn outer() -> tower_http::cors::CorsLayer`";
                self.layer = errors.ok(value::parse_fn_path(LAYER, hint, expr));
            }
            None if name == PRIORITY => {
                let hint = "such as `priority = classify` with \
                            `fn classify(head: &http::request::Parts) -> intralb::Priority`";
                self.priority = errors.ok(value::parse_fn_path(PRIORITY, hint, expr));
            }
            None => self.krate = errors.ok(CratePath::from_expr(expr)),
        }
    }
}

/// An example value for `name`, for "expected a value" messages.
fn example(name: &str) -> &'static str {
    let kind = Key::ALL
        .iter()
        .find(|key| key.name() == name)
        .map(|key| key.kind());
    match (name, kind) {
        (SERVE, _) => "serve_admin",
        (CRATE, _) => "\"my_intralb\"",
        (LAYER, _) => "outer",
        (PRIORITY, _) => "priority",
        (_, Some(Kind::Count)) => "100",
        (_, Some(Kind::Duration)) => "\"5s\"",
        (_, Some(Kind::Addr)) => "\"127.0.0.1:8080\"",
        (_, Some(Kind::Path)) => "\"/metrics\"",
        (_, Some(Kind::Bool)) | (_, None) => "true",
    }
}
