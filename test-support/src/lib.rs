//! What intralb's tests and its benchmark harness share; never published.
//!
//! One module per thing a test reaches for:
//!
//! - **client** (feature `client`): a real HTTP client over TCP, HTTP/1.1 or h2c
//!   ([`client`], [`h2_client`], [`send`], [`fetch`], [`spawn_get`]), and [`within`], which bounds
//!   a wait so that a hang fails one test instead of stalling the suite;
//! - **server** (feature `server`): a balancer on `127.0.0.1:0` ([`start`], [`TestServer`]),
//!   [`wait_for_stats`], and a [`Gate`] for handlers to park at;
//! - **process**: a program run as a real process ([`Example`], built by [`example_binary`]),
//!   [`wait_exit`] / [`wait_exit_within`], and [`free_port`];
//! - **postgres**: a throwaway PostgreSQL server ([`PgServer`]);
//! - **tempdir**: a directory removed on drop ([`TempDir`]).
//!
//! Both features are on by default. Without them (as the benchmark harness depends on it) the
//! crate uses nothing but std.
//!
//! # Usage
//!
//! ```toml
//! [dev-dependencies]
//! intralb-test-support = { path = "../test-support" }
//! ```
//!
//! A test of the runtime starts a server in its own process and talks to it over TCP:
//!
//! ```ignore
//! use intralb_test_support::*;
//!
//! #[tokio::test]
//! async fn the_router_answers() {
//!     let server = start(Balancer::builder(), app()).await;
//!     assert_eq!(fetch(server.addr(), "/").await.status, 200);
//!     server.stop().await;
//! }
//! ```
//!
//! An end-to-end test runs an example as a user would:
//!
//! ```no_run
//! use intralb_test_support::{Example, TempDir};
//!
//! let dir = TempDir::new("notes");
//! let notes = Example::start("notes", &[("NOTES_DB", &dir.file("notes.db"))]);
//! // … requests to notes.addr …
//! let (status, output) = notes.stop();
//! assert!(status.success(), "{output}");
//! ```

#[cfg(feature = "client")]
mod client;
mod postgres;
mod process;
#[cfg(feature = "server")]
mod server;
mod tempdir;

#[cfg(feature = "client")]
pub use client::{
    client, fetch, fetch_with, h2_client, send, spawn_get, within, HttpClient, Reply,
};
pub use postgres::PgServer;
pub use process::{example_binary, free_port, wait_exit, wait_exit_within, Example};
#[cfg(feature = "server")]
pub use server::{hold_and_count, start, try_start, wait_for_stats, Gate, TestServer};
pub use tempdir::TempDir;
