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

/// When no `crate = "..."` is given: `::intralb`, unless the crate being compiled depends on
/// intralb only under another name (`lb = { package = "intralb" }` in its `Cargo.toml`), where
/// `::intralb` cannot resolve. Then the renamed path, so that what is still generated resolves,
/// and an error that names the `crate` key (spanned at `span`, the attribute).
pub(crate) fn default_or_renamed(attribute: &str, span: Span) -> (CratePath, Option<syn::Error>) {
    let manifest = std::env::var("CARGO_MANIFEST_DIR")
        .ok()
        .and_then(|dir| std::fs::read_to_string(format!("{dir}/Cargo.toml")).ok());
    let Some(name) = manifest.as_deref().and_then(renamed_in) else {
        return (CratePath::default(), None);
    };
    let message = format!(
        "this crate depends on intralb under the name `{name}` (`package = \"intralb\"` in its \
         Cargo.toml), so the code `{attribute}` generates cannot name `::intralb`: add \
         `crate = \"{name}\"`, as in `#[{name}::{attr}(crate = \"{name}\")]`",
        attr = attribute.trim_start_matches("#[").trim_end_matches(']'),
    );
    let path = syn::Ident::new(&name, Span::call_site());
    (
        CratePath(syn::parse_quote!(::#path)),
        Some(syn::Error::new(span, message)),
    )
}

/// The name under which `manifest` depends on intralb, if it does so only under another name.
fn renamed_in(manifest: &str) -> Option<String> {
    let mut table = String::new();
    let mut renamed = None;
    let mut direct = false;
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(header) = line.strip_prefix('[') {
            table = header.trim_end_matches(']').trim().to_owned();
            // `[dependencies.intralb]`, `[dev-dependencies.lb]`: a table per dependency.
            if let Some((deps, key)) = table.rsplit_once('.') {
                if deps.ends_with("dependencies") && key.trim_matches('"') == "intralb" {
                    direct = true;
                }
            }
            continue;
        }
        let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
        let names_intralb =
            compact.contains("package=\"intralb\"") || compact.contains("package='intralb'");
        if table.ends_with("dependencies") {
            let Some((key, _)) = compact.split_once('=') else {
                continue;
            };
            let key = key.trim_matches('"');
            if key == "intralb" {
                direct = true;
            } else if names_intralb {
                renamed = Some(key.to_owned());
            }
        } else if names_intralb && compact.starts_with("package=") {
            if let Some((deps, key)) = table.rsplit_once('.') {
                if deps.ends_with("dependencies") {
                    renamed = Some(key.trim_matches('"').to_owned());
                }
            }
        }
    }
    renamed.filter(|name| !direct && syn::parse_str::<syn::Ident>(name).is_ok())
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
    fn a_renamed_dependency_is_found_unless_intralb_is_there_too() {
        let renamed = |manifest: &str| renamed_in(manifest);
        assert_eq!(
            renamed("[dependencies]\nlb = { package = \"intralb\", version = \"0.1\" }\n"),
            Some("lb".to_owned())
        );
        assert_eq!(
            renamed("[dependencies.lb]\npackage = \"intralb\"\nversion = \"0.1\"\n"),
            Some("lb".to_owned())
        );
        assert_eq!(
            renamed("[target.'cfg(unix)'.dependencies]\nlb={package='intralb',path='x'}\n"),
            Some("lb".to_owned())
        );
        assert_eq!(
            renamed("[dependencies]\nintralb = \"0.1\"\n[dev-dependencies]\nlb = { package = \"intralb\" }\n"),
            None
        );
        assert_eq!(renamed("[dependencies]\nintralb = \"0.1\"\n"), None);
        assert_eq!(renamed("[package]\nname = \"app\"\n"), None);
        // A comment is not a dependency.
        assert_eq!(
            renamed("[dependencies]\n# lb = { package = \"intralb\" }\nintralb = \"0.1\"\n"),
            None
        );
    }

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
