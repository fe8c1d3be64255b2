//! The path generated code uses for the runtime crate.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::{Expr, ExprLit, Lit, LitStr, Path};

/// The path generated code uses for the runtime crate: `::intralb` unless the user wrote
/// `crate = "..."`.
#[derive(Clone)]
pub(crate) struct CratePath(Path);

impl Default for CratePath {
    fn default() -> Self {
        Self(syn::parse_quote!(::intralb))
    }
}

impl CratePath {
    /// Parses the value of `crate = ...`, which must be a string literal holding a path.
    pub(crate) fn from_expr(expr: &Expr) -> syn::Result<Self> {
        match expr {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => Self::parse(s),
            Expr::Path(path) if path.qself.is_none() => {
                let written = path.path.to_token_stream().to_string().replace(' ', "");
                Err(syn::Error::new_spanned(
                    expr,
                    format!(
                        "`crate` expects a string literal, not a path: write `crate = \"{written}\"`"
                    ),
                ))
            }
            _ => Err(syn::Error::new_spanned(
                expr,
                "`crate` expects a string literal holding a path, such as `crate = \"my_intralb\"`",
            )),
        }
    }

    /// Parses the value of `crate = "path"`. A bare name (`"my_intralb"`) becomes an absolute
    /// path (`::my_intralb`), like a crate name; a path starting with `crate`, `self`, `super`
    /// or `::` is used as written.
    pub(crate) fn parse(lit: &LitStr) -> syn::Result<Self> {
        let mut path: Path = lit.parse().map_err(|_| {
            syn::Error::new(
                lit.span(),
                format!(
                    "`crate` expects a path such as \"my_intralb\" or \"crate::deps::intralb\", found {:?}",
                    lit.value()
                ),
            )
        })?;
        let relative = path.segments.first().is_some_and(|first| {
            first.ident == "crate" || first.ident == "self" || first.ident == "super"
        });
        if !relative {
            path.leading_colon = Some(Default::default());
        }
        Ok(Self(path))
    }

    /// The path with every token at `span`: inside `quote_spanned!`, so that an error about a
    /// call through it points at `span` as a whole, not at the attribute.
    pub(crate) fn at(&self, span: Span) -> TokenStream {
        self.to_token_stream()
            .into_iter()
            .map(|mut token| {
                token.set_span(span);
                token
            })
            .collect()
    }
}

impl ToTokens for CratePath {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.0.to_tokens(tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_path_is_absolute_unless_relative() {
        let path = |s: &str| {
            CratePath::parse(&LitStr::new(s, Span::call_site()))
                .map(|p| p.to_token_stream().to_string())
        };
        assert_eq!(path("my_intralb").unwrap(), ":: my_intralb");
        assert_eq!(
            path("crate::deps::intralb").unwrap(),
            "crate :: deps :: intralb"
        );
        assert_eq!(path("::intralb").unwrap(), ":: intralb");
        assert!(path("not a path").is_err());
    }

    #[test]
    fn crate_path_from_an_expression_must_be_a_string() {
        let from = |expr: Expr| CratePath::from_expr(&expr).map_err(|e| e.to_string());
        assert_eq!(
            from(syn::parse_quote!("lb"))
                .unwrap()
                .to_token_stream()
                .to_string(),
            ":: lb"
        );
        assert_eq!(
            from(syn::parse_quote!(crate::deps::lb)).err().unwrap(),
            "`crate` expects a string literal, not a path: write `crate = \"crate::deps::lb\"`"
        );
        assert_eq!(
            from(syn::parse_quote!(1)).err().unwrap(),
            "`crate` expects a string literal holding a path, such as `crate = \"my_intralb\"`"
        );
    }
}
