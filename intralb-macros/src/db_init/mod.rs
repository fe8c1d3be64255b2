//! `#[db_init]`: the arguments ([`args`]) and the signature ([`signature`]) → its
//! registration ([`expand`]).

mod args;
mod expand;
mod signature;

use proc_macro2::TokenStream;
use quote::quote;

use crate::common::{self, Errors};
use args::Args;

/// The whole macro: the user's function unchanged, plus its registration or the errors.
pub(crate) fn db_init(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = Args::parse(args, &mut errors);
    let init = signature::parse(&item, &mut errors);
    match (errors.finish(), init) {
        (Ok(()), Some(init)) => {
            let register = expand::register(&args, &init);
            quote! { #item #register }
        }
        (Err(error), _) => common::with_item(error, &item),
        // Not reached: `parse` records why it found no function.
        (Ok(()), None) => item,
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    use super::args::Args;
    use super::signature;
    use crate::common::Errors;

    /// The whole expansion of `#[db_init(args)] fn open(w: WorkerId) -> io::Result<File>`.
    fn expand_open(args: TokenStream) -> String {
        super::db_init(
            args,
            quote!(
                fn open(w: WorkerId) -> io::Result<File> {
                    todo!()
                }
            ),
        )
        .to_string()
    }

    #[test]
    fn a_fallible_sync_function_is_registered_as_written() {
        let out = super::db_init(
            quote!(),
            quote!(
                fn open(w: WorkerId) -> io::Result<File> {
                    todo!()
                }
            ),
        )
        .to_string();
        assert!(
            out.starts_with("fn open (w : WorkerId) -> io :: Result < File > { todo ! () }"),
            "{out}"
        );
        assert!(
            out.contains(":: intralb :: __private :: inventory :: submit !"),
            "{out}"
        );
        assert!(out.contains(":: intralb :: __private :: Initializer :: sync (:: core :: concat ! (:: core :: module_path ! () , \"::\" , \"open\") , | worker | open (worker) ,)"), "{out}");
    }

    #[test]
    fn an_infallible_async_function_is_wrapped_in_ok() {
        let out = super::db_init(
            quote!(),
            quote!(
                async fn cache(_: WorkerId) -> Cache {
                    todo!()
                }
            ),
        )
        .to_string();
        assert!(
            out.contains(":: intralb :: __private :: Initializer :: asynchronous ("),
            "{out}"
        );
        assert!(out.contains("| worker | async move { :: intralb :: __private :: ok (cache (worker) . await) } ,"), "{out}");
    }

    #[test]
    fn on_error_only_the_item_and_the_error_are_emitted() {
        let out = super::db_init(
            quote!(x),
            quote!(
                fn open(w: WorkerId) -> u8 {
                    0
                }
            ),
        )
        .to_string();
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("fn open (w : WorkerId) -> u8 { 0 }"), "{out}");
        assert!(!out.contains("submit"), "{out}");
    }

    #[test]
    fn without_broken_nothing_is_appended_to_the_initializer() {
        let out = expand_open(quote!());
        assert!(!out.contains("broken"), "{out}");
        assert!(out.contains("| worker | open (worker) ,) }) }"), "{out}");
    }

    #[test]
    fn broken_is_appended_to_the_initializer() {
        let out = expand_open(quote!(broken = is_broken));
        assert!(
            out.contains(":: intralb :: __private :: DbInit :: new (|| { :: intralb :: __private :: Initializer :: sync (:: core :: concat ! (:: core :: module_path ! () , \"::\" , \"open\") , | worker | open (worker) ,) . broken (is_broken) })"),
            "{out}"
        );
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn broken_takes_any_path_and_follows_an_async_initializer() {
        let out = super::db_init(
            quote!(broken = tokio_postgres::Client::is_closed),
            quote!(
                async fn connect(_: WorkerId) -> Result<Client, Error> {
                    todo!()
                }
            ),
        )
        .to_string();
        assert!(
            out.contains("| worker | async move { connect (worker) . await } ,) . broken (tokio_postgres :: Client :: is_closed) })"),
            "{out}"
        );
    }

    #[test]
    fn the_crate_path_replaces_intralb_everywhere() {
        for (krate, path) in [
            (quote!(crate = "lb"), ":: lb"),
            (quote!(crate = "::lb"), ":: lb"),
            (quote!(crate = "crate::deps::lb"), "crate :: deps :: lb"),
        ] {
            let out = expand_open(krate);
            assert!(!out.contains("intralb"), "{out}");
            for used in [
                "__private :: inventory :: submit !",
                "__private :: DbInit :: new",
                "__private :: Initializer :: sync",
            ] {
                assert!(out.contains(&format!("{path} :: {used}")), "{out}");
            }
        }
        let out = super::db_init(
            quote!(crate = "lb"),
            quote!(
                fn cache(_: WorkerId) -> Cache {
                    todo!()
                }
            ),
        )
        .to_string();
        assert!(
            out.contains(":: lb :: __private :: ok (cache (worker))"),
            "{out}"
        );
    }

    #[test]
    fn errors_in_the_arguments_and_the_item_are_reported_together() {
        let mut errors = Errors::default();
        Args::parse(quote!(x), &mut errors);
        signature::parse(
            &quote!(
                struct S;
            ),
            &mut errors,
        );
        let messages: Vec<String> = errors
            .finish()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert_eq!(
            messages[0],
            "unknown `#[db_init]` key `x`; valid keys are `broken` and `crate`"
        );
        assert!(messages[1].contains("can only be applied to a function"));
    }
}
