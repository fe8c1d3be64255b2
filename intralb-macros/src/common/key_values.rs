//! The `key = value, ...` argument parser both attributes use, with its "unknown key",
//! "specified more than once" and "expected a value" errors, and suggestions for misspelled keys.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, Path, Token};

use super::Errors;

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
}
