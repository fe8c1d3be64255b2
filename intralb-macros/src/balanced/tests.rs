//! The argument parser and the checks, on token streams: one behaviour per test.

use std::time::Duration;

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};

use super::args::{Args, Key};
use super::validate;
use super::value::Value;
use crate::common::Errors;

/// Parses and validates `tokens`, returning the arguments and every error message.
fn parse(tokens: TokenStream) -> (Args, Vec<String>) {
    let mut errors = Errors::default();
    let args = Args::parse(tokens, &mut errors);
    validate::args(&args, &mut errors);
    let messages = match errors.finish() {
        Ok(()) => Vec::new(),
        Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
    };
    (args, messages)
}

fn errors(tokens: TokenStream) -> Vec<String> {
    parse(tokens).1
}

fn value(args: &Args, key: Key) -> Option<Value> {
    args.get(key).map(|setting| setting.value.clone())
}

#[test]
fn no_arguments_is_valid() {
    let (args, errors) = parse(quote!());
    assert!(errors.is_empty());
    assert!(args.settings.is_empty() && args.serve.is_none() && args.krate.is_none());
}

#[test]
fn every_key_parses_to_its_value() {
    let (args, errors) = parse(quote!(
        max_concurrent = 8,
        queue = 0,
        min_workers = 2,
        timeout = "250ms",
        shutdown_timeout = "5s",
        idle_timeout = "2m",
        addr = "[::1]:3000",
        log = true,
        serve = serve_admin,
        crate = "my_intralb",
    ));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(value(&args, Key::max_concurrent), Some(Value::Count(8)));
    assert_eq!(value(&args, Key::queue), Some(Value::Count(0)));
    assert_eq!(value(&args, Key::min_workers), Some(Value::Count(2)));
    assert_eq!(
        value(&args, Key::timeout),
        Some(Value::Duration(Duration::from_millis(250)))
    );
    assert_eq!(
        value(&args, Key::shutdown_timeout),
        Some(Value::Duration(Duration::from_secs(5)))
    );
    assert_eq!(
        value(&args, Key::idle_timeout),
        Some(Value::Duration(Duration::from_secs(120)))
    );
    assert_eq!(
        value(&args, Key::addr),
        Some(Value::Addr("[::1]:3000".into()))
    );
    assert_eq!(value(&args, Key::log), Some(Value::Bool(true)));
    assert_eq!(args.serve.unwrap().to_string(), "serve_admin");
    assert_eq!(
        args.krate.unwrap().to_token_stream().to_string(),
        ":: my_intralb"
    );
}

#[test]
fn a_usize_suffix_is_accepted_and_others_are_not() {
    assert!(errors(quote!(queue = 10usize)).is_empty());
    let errors = errors(quote!(queue = 10u8));
    assert_eq!(
        errors,
        ["`queue` takes a plain integer such as `100`, without the `u8` suffix"]
    );
}

#[test]
fn an_unknown_key_lists_the_valid_keys() {
    let errors = errors(quote!(colour = 1));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(
            "unknown `#[balanced]` key `colour`; valid keys are `max_concurrent`, `queue`"
        ),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].ends_with("`serve`, `crate`, `layer` and `priority`"),
        "{}",
        errors[0]
    );
}

#[test]
fn a_misspelled_key_gets_a_hint() {
    for typo in [
        quote!(max_concurency = 1),
        quote!(concurrency = 1),
        quote!(timout = "1s"),
    ] {
        let errors = errors(typo.clone());
        assert!(errors[0].contains("did you mean `"), "{typo}: {errors:?}");
    }
    assert!(errors(quote!(concurrency = 1))[0].contains("did you mean `max_concurrent`?"));
}

#[test]
fn a_repeated_key_is_reported_once_and_the_first_value_kept() {
    let (args, errors) = parse(quote!(queue = 1, queue = 2));
    assert_eq!(errors, ["`queue` specified more than once"]);
    assert_eq!(value(&args, Key::queue), Some(Value::Count(1)));
}

#[test]
fn wrong_literal_types_say_what_is_expected() {
    assert_eq!(
        errors(quote!(queue = "100")),
        ["expected an integer literal for `queue`, found a string: write `queue = 100`"]
    );
    assert_eq!(
        errors(quote!(timeout = 5)),
        ["expected a duration string such as \"5s\" or \"250ms\" for `timeout`, found an integer"]
    );
    assert_eq!(
        errors(quote!(log = 1)),
        ["expected `true` or `false` for `log`, found an integer"]
    );
    assert_eq!(
        errors(quote!(addr = 8080)),
        ["expected an address string such as \"127.0.0.1:8080\" for `addr`, found an integer"]
    );
    assert_eq!(errors(quote!(queue = -1)), ["`queue` cannot be negative"]);
}

#[test]
fn all_errors_are_reported_together() {
    let errors = errors(quote!(
        queue = "x",
        colour = 1,
        timeout = "soon",
        max_concurrent = 0
    ));
    assert_eq!(errors.len(), 4, "{errors:?}");
}

#[test]
fn ranges_and_combinations_are_checked() {
    assert_eq!(
        errors(quote!(max_concurrent = 0)),
        ["`max_concurrent` must be at least 1: with 0 no request would ever be handled"]
    );
    assert!(errors(quote!(timeout = "0s"))[0].starts_with("`timeout` must be greater than zero"));
    assert_eq!(
        errors(quote!(max_concurrent = 4, min_workers = 5)),
        ["`min_workers` (5) cannot be greater than `max_concurrent` (4)"]
    );
    assert_eq!(
        errors(quote!(min_workers = 101)),
        ["`min_workers` (101) cannot be greater than `max_concurrent` (the default, 100)"]
    );
    assert!(errors(quote!(min_workers = 100)).is_empty());
    assert!(errors(quote!(queue = 99999999999999999999999))[0].starts_with("`queue` is too large"));
}

#[test]
fn bad_durations_and_addresses_quote_the_parser() {
    let errors = errors(quote!(timeout = "5 parsecs", addr = "localhost:80"));
    assert!(
        errors[0].starts_with("invalid duration \"5 parsecs\" for `timeout`: unknown time unit"),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].ends_with("expected a duration such as \"250ms\", \"5s\" or \"2m\""),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with(
            "invalid address \"localhost:80\" for `addr`: invalid socket address syntax"
        ),
        "{}",
        errors[1]
    );
}

#[test]
fn serve_and_crate_take_an_identifier_and_a_path_string() {
    assert_eq!(
        errors(quote!(serve = "serve_admin")),
        ["`serve` expects an identifier, not a string: write `serve = serve_admin`"]
    );
    assert_eq!(
        errors(quote!(crate = my_intralb)),
        ["`crate` expects a string literal, not a path: write `crate = \"my_intralb\"`"]
    );
    let (args, errors) = parse(quote!(crate = "crate::deps::intralb"));
    assert!(errors.is_empty());
    assert_eq!(
        args.krate.unwrap().to_token_stream().to_string(),
        "crate :: deps :: intralb"
    );
}

#[test]
fn a_key_without_a_value_shows_an_example() {
    assert_eq!(errors(quote!(log)), ["expected a value: `log = true`"]);
    assert_eq!(
        errors(quote!(timeout, queue = 1)),
        ["expected a value: `timeout = \"5s\"`"]
    );
}

#[test]
fn keys_from_string_tokens_parse_like_the_compiler_gives_them() {
    let tokens: TokenStream = "queue = 10, crate = \"x\"".parse().unwrap();
    assert!(errors(tokens).is_empty());
}

#[test]
fn a_broken_serve_or_crate_is_remembered() {
    assert!(parse(quote!(serve = "x")).0.meta_failed());
    assert!(parse(quote!(crate = 1)).0.meta_failed());
    assert!(parse(quote!(serve)).0.meta_failed());
    assert!(!parse(quote!(serve = s, crate = "c", queue = "x"))
        .0
        .meta_failed());
}

/// The whole expansion, as a string with the whitespace of `TokenStream::to_string`.
fn expand(args: TokenStream, item: TokenStream) -> String {
    super::balanced(args, item).to_string()
}

#[test]
fn only_the_keys_given_become_setters() {
    let out = expand(
        quote!(
            queue = 5,
            timeout = "250ms",
            addr = "127.0.0.1:8080",
            log = true
        ),
        quote!(
            fn app() -> Router {
                Router::new()
            }
        ),
    );
    let (builder, serve) = out
        .split_once("pub async fn serve")
        .expect("serve is generated");
    let builder = builder
        .split_once("pub fn app_builder () -> :: intralb :: __private :: Builder")
        .expect("the builder is generated")
        .1;
    assert!(builder.contains(":: intralb :: __private :: Builder :: new () . queue (5usize) . timeout (:: core :: time :: Duration :: from_nanos (250000000u64)) . addr (:: intralb :: __private :: socket_addr (\"127.0.0.1:8080\")) . log (true) . registered_setups () . registered_db_inits ()"), "{builder}");
    assert!(!builder.contains("max_concurrent"), "{builder}");
    assert!(
        serve.starts_with(" () -> :: intralb :: Result < () >"),
        "{serve}"
    );
    assert!(
        serve.contains(":: intralb :: __private :: serve (app_builder () , async { app () })"),
        "{serve}"
    );
}

#[test]
fn a_layer_is_called_and_added_to_the_builder() {
    let out = expand(
        quote!(layer = outer::cors, queue = 5),
        quote!(
            fn app() -> Router {
                Router::new()
            }
        ),
    );
    assert!(
        out.contains(". queue (5usize) . layer (outer :: cors ()) . registered_setups () . registered_db_inits ()"),
        "{out}"
    );
    assert!(
        errors(quote!(layer = "outer"))
            == ["`layer` expects the path of a function, not a string: write `layer = outer`"],
        "{:?}",
        errors(quote!(layer = "outer"))
    );
}

#[test]
fn a_priority_function_is_given_to_the_builder_as_is() {
    let out = expand(
        quote!(priority = classes::of, queue = 5),
        quote!(
            fn app() -> Router {
                Router::new()
            }
        ),
    );
    assert!(
        out.contains(". queue (5usize) . priority (classes :: of) . registered_setups ()"),
        "{out}"
    );
    assert_eq!(
        errors(quote!(priority = "classes::of")),
        ["`priority` expects the path of a function, not a string: write `priority = classes::of`"]
    );
}

#[test]
fn the_default_serve_comes_with_an_item_that_names_the_fix_if_defined_twice() {
    let app = quote!(
        fn app() -> Router {
            Router::new()
        }
    );
    let hint = "const two_balanced_in_one_module__name_one_with__serve_eq_another_name";
    assert!(expand(quote!(), app.clone()).contains(hint));
    assert!(!expand(quote!(serve = serve_admin), app).contains(hint));
}

#[test]
fn an_async_router_is_awaited_and_paths_follow_serve_and_crate() {
    let out = expand(
        quote!(serve = serve_admin, crate = "my_intralb"),
        quote!(
            async fn admin() -> Router {
                Router::new()
            }
        ),
    );
    assert!(
        out.contains("pub async fn serve_admin () -> :: my_intralb :: Result < () >"),
        "{out}"
    );
    assert!(out.contains("async { admin () . await }"), "{out}");
    assert!(!out.contains(":: intralb"), "{out}");
}

#[test]
fn on_error_the_item_is_kept_with_a_stub_serve() {
    let out = expand(
        quote!(queue = "x"),
        quote!(
            fn app() -> Router {
                Router::new()
            }
        ),
    );
    assert!(out.contains("compile_error"), "{out}");
    assert!(
        out.contains("fn app () -> Router { Router :: new () }"),
        "{out}"
    );
    assert!(out.contains("pub async fn serve () -> :: intralb :: Result < () > { let _ = app ; :: core :: unreachable ! () }"), "{out}");
}
