//! `#[db_init]`: the signature ([`signature`]) → its registration ([`expand`]).

mod expand;
mod signature;

use proc_macro2::TokenStream;
use quote::quote;

use crate::common::{self, Errors};

/// The whole macro: the user's function unchanged, plus its registration or the errors.
pub(crate) fn db_init(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let init = signature::parse(&args, &item, &mut errors);
    match (errors.finish(), init) {
        (Ok(()), Some(init)) => {
            let register = expand::register(&init);
            quote! { #item #register }
        }
        (Err(error), _) => common::with_item(error, &item),
        // Not reached: `parse` records why it found no function.
        (Ok(()), None) => item,
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

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
}
