//! Helpers shared by both macros: error collection, the `key = value` argument parser (with its
//! "unknown key", "specified more than once" and "expected a value" errors, and suggestions for
//! misspelled keys), the function-shape checks, and the path of the runtime crate.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, FnArg, Generics, Lit, LitStr, Path, ReturnType, Signature, Token, Type};

/// Collects errors so that the user sees all of them at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Records `error` next to the ones already collected.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Records an error with `message` at `span`.
    pub(crate) fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Records an error with `message` spanning all of `tokens` (not only their first token).
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records the error of `result`, if any, and returns its value.
    pub(crate) fn ok<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    /// Whether nothing has been recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Every error recorded, then `last`.
    pub(crate) fn and(self, last: syn::Error) -> syn::Error {
        match self.0 {
            Some(mut all) => {
                all.combine(last);
                all
            }
            None => last,
        }
    }

    /// `Ok(())` when nothing was recorded, otherwise all errors combined.
    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// The errors followed by the user's item, unchanged, so that the rest of the crate still
/// type-checks (and the IDE keeps working) while the attribute is wrong.
pub(crate) fn with_item(error: syn::Error, item: impl ToTokens) -> TokenStream {
    let error = error.to_compile_error();
    quote! { #error #item }
}

/// The `key = value, ...` arguments an attribute takes, and how to help with a wrong one. Both
/// macros parse their arguments with it, so that they report unknown keys, repeated keys and
/// missing values alike.
pub(crate) struct KeyValues<'a> {
    /// The attribute as messages name it: `#[balanced]`.
    pub(crate) attribute: &'a str,
    /// Every key, in the order messages list them.
    pub(crate) keys: &'a [&'static str],
    /// Keys that are not valid but that users plausibly mean as a valid one.
    pub(crate) aliases: &'a [(&'a str, &'static str)],
    /// An example value for a key, shown when its value is missing: `key = example`.
    pub(crate) example: fn(&str) -> &'static str,
}

impl KeyValues<'_> {
    /// Parses `tokens`, calling `value` with each valid key given once with a value, and that
    /// value (seen through the invisible groups of `macro_rules!`). Every error is recorded,
    /// those `value` records included, and parsing goes on at the next key. Returns every valid
    /// key given, whether or not its value was usable.
    pub(crate) fn parse(
        &self,
        tokens: TokenStream,
        errors: &mut Errors,
        mut value: impl FnMut(&'static str, &Expr, &mut Errors),
    ) -> Vec<&'static str> {
        let mut seen = Vec::new();
        let parser = syn::meta::parser(|meta| {
            if let Some((key, expr)) = self.parse_one(&meta, &mut seen, errors) {
                value(key, ungroup(&expr), errors);
            }
            skip_value(&meta)
        });
        let parsed = parser.parse2(tokens);
        errors.ok(parsed);
        seen
    }

    /// Parses one `key =` and its value, or records why not.
    fn parse_one(
        &self,
        meta: &ParseNestedMeta<'_>,
        seen: &mut Vec<&'static str>,
        errors: &mut Errors,
    ) -> Option<(&'static str, Expr)> {
        let Some(ident) = meta.path.get_ident() else {
            errors.push(self.unknown(&meta.path, &path_to_string(&meta.path)));
            return None;
        };
        let name = ident.to_string();
        let Some(key) = self.keys.iter().copied().find(|key| *key == name) else {
            errors.push(self.unknown(ident, &name));
            return None;
        };
        if seen.contains(&key) {
            errors.push(duplicate(key, ident.span()));
            return None;
        }
        seen.push(key);
        if !meta.input.peek(Token![=]) {
            let example = (self.example)(key);
            errors.at(
                ident.span(),
                format!("expected a value: `{key} = {example}`"),
            );
            return None;
        }
        let expr = errors.ok(meta.value().and_then(|value| value.parse::<Expr>()))?;
        Some((key, expr))
    }

    /// "unknown key", with the valid keys and, for a likely misspelling, a hint.
    fn unknown(&self, key: impl ToTokens, name: &str) -> syn::Error {
        let attribute = self.attribute;
        let valid = list(self.keys);
        let message = match suggest(name, self.keys, self.aliases) {
            Some(meant) => format!(
                "unknown `{attribute}` key `{name}`; did you mean `{meant}`? valid keys are {valid}"
            ),
            None => format!("unknown `{attribute}` key `{name}`; valid keys are {valid}"),
        };
        syn::Error::new_spanned(key, message)
    }
}

/// The error for a key given twice, spanned at the second one.
pub(crate) fn duplicate(key: &str, span: Span) -> syn::Error {
    syn::Error::new(span, format!("`{key}` specified more than once"))
}

/// Skips what is left of the current `key = value` (after an error, or an unknown key), up to
/// the next comma, so that parsing resumes at the next key.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    while !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        meta.input.parse::<TokenTree>()?;
    }
    Ok(())
}

fn path_to_string(path: &Path) -> String {
    let segments: Vec<String> = path
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    segments.join("::")
}

/// Looks through the invisible groups `macro_rules!` wraps around `$value:expr`.
pub(crate) fn ungroup(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(group) => ungroup(&group.expr),
        _ => expr,
    }
}

/// The valid keys as a readable list: `` `a`, `b` and `c` ``.
pub(crate) fn list(keys: &[&str]) -> String {
    let quoted: Vec<String> = keys.iter().map(|key| format!("`{key}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.concat(),
    }
}

/// The valid key the user most likely meant by `unknown`: first a known alias (a renamed or
/// commonly guessed key), then the closest key within a small edit distance.
pub(crate) fn suggest(
    unknown: &str,
    keys: &[&'static str],
    aliases: &[(&str, &'static str)],
) -> Option<&'static str> {
    let unknown = unknown.to_ascii_lowercase();
    if let Some((_, key)) = aliases.iter().find(|(alias, _)| *alias == unknown) {
        return Some(key);
    }
    keys.iter()
        .map(|key| (edit_distance(&unknown, key), *key))
        .filter(|(distance, key)| *distance <= (key.len() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, key)| key)
}

/// Levenshtein distance between two ASCII-ish strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

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
    fn list_joins_keys_with_commas_and_a_final_and() {
        assert_eq!(list(&["a"]), "`a`");
        assert_eq!(list(&["a", "b", "c"]), "`a`, `b` and `c`");
    }

    #[test]
    fn suggest_finds_close_misspellings_and_aliases() {
        let keys = ["max_concurrent", "queue", "timeout"];
        let aliases = [("concurrency", "max_concurrent")];
        assert_eq!(
            suggest("max_concurency", &keys, &aliases),
            Some("max_concurrent")
        );
        assert_eq!(
            suggest("concurrency", &keys, &aliases),
            Some("max_concurrent")
        );
        assert_eq!(suggest("queu", &keys, &aliases), Some("queue"));
        assert_eq!(suggest("colour", &keys, &aliases), None);
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
