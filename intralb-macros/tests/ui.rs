//! Compile-time behaviour of `#[balanced]` and `#[db_init]`, with trybuild.
//!
//! `ui/pass/*.rs` must compile (and their `main` run), `ui/fail/*.rs` must fail with exactly the
//! diagnostics in the `.stderr` file beside each. After changing a message, refresh the
//! snapshots with
//!
//! ```sh
//! TRYBUILD=overwrite cargo test -p intralb-macros --test ui
//! ```
//!
//! and read every changed `.stderr`: the message, and the span under the right token.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
