//! Procedural macros for [intralb](https://docs.rs/intralb): `#[balanced]`, `#[db_init]` and
//! `#[setup]`.
//!
//! Use them through the runtime crate, as `intralb::balanced` and `intralb::db_init`; this crate
//! is an implementation detail, pinned by `intralb` to an exact version. The code they generate
//! names only `::intralb::__private::...` (and `::core`), so a crate that uses them depends on
//! `intralb` alone.
//!
//! # Usage
//!
//! ```ignore
//! use axum::{routing::get, Router};
//! use intralb::{balanced, db_init, Db, WorkerId};
//! use rusqlite::Connection;
//!
//! #[db_init]
//! fn open(worker: WorkerId) -> rusqlite::Result<Connection> {
//!     Connection::open(format!("shard-{}.db", worker.get()))
//! }
//!
//! #[balanced(max_concurrent = 64, timeout = "2s")]
//! fn app() -> Router {
//!     Router::new().route("/", get(|db: Db<Connection>| async move { /* ... */ }))
//! }
//!
//! #[tokio::main]
//! async fn main() -> intralb::Result<()> {
//!     serve().await
//! }
//! ```
//!
//! # How the crate is laid out
//!
//! Each macro is a pipeline in its own module: `balanced::args` parses the attribute into a
//! model that keeps every value's span, `balanced::validate` checks what needs more than one
//! value, and `balanced::expand` writes the code; `db_init::args` parses its attribute,
//! `db_init::signature` reads the function, and `db_init::expand` writes its registration;
//! `setup` does the same for `#[setup]`, in one file.
//! `common` holds what both share, the `key = value` parser included. Every error is spanned at the offending token,
//! all errors are reported at once, and the user's item is always emitted unchanged next to
//! them.

mod balanced;
mod common;
mod db_init;
mod setup;

use proc_macro::TokenStream;

/// Serves the annotated router behind intralb's load balancer.
///
/// Put `#[balanced(...)]` on the function that builds your router (an `axum::Router`, or any
/// tower service the runtime accepts). The function stays as written and callable; next to it
/// the attribute generates
///
/// ```ignore
/// pub async fn serve() -> intralb::Result<()>
/// ```
///
/// which runs every [`#[setup]`](macro@setup) function once, starts the workers (running every
/// [`#[db_init]`](macro@db_init) function for each),
/// builds the router once by calling your function, and serves it on `addr` with a bounded
/// number of requests in flight (`max_concurrent`), a bounded queue in front of them (`queue`)
/// and a deadline per request (`timeout`), until SIGINT or SIGTERM; then it drains in-flight
/// requests for up to `shutdown_timeout` and returns. Beside it, the attribute generates
///
/// ```ignore
/// pub fn <router>_builder() -> intralb::Builder // `fn app()` → `app_builder()`
/// ```
///
/// the `Builder` that `serve` uses (the attribute's settings and layer, every `#[setup]` and
/// `#[db_init]`), with which a test starts the app on a free port:
/// `app_builder().start(app()).await?` (see `intralb::Builder::start`). A bad setting (say, from an environment
/// variable), a failing initializer or an address that cannot be bound is returned as an error
/// before anything is served. The function may be `async`; it takes no parameters and has no
/// generics.
///
/// # Syntax
///
/// ```ignore
/// #[balanced]
/// #[balanced(key = value, ...)]
/// ```
///
/// # Attributes
///
/// Every key is optional. The values are checked at compile time: an out-of-range number, a
/// duration or an address that does not parse is a compile error pointing at it. Each runtime
/// key can also be set when the program starts, with the environment variable shown, which
/// takes precedence over the attribute (an empty variable counts as unset).
///
/// Counts are integer literals; durations (`"250ms"`) and addresses (`"0.0.0.0:8080"`) are
/// strings; flags are `true` or `false`; paths are strings that start with `/`.
///
/// | key | default | environment | meaning |
/// |---|---|---|---|
/// | `max_concurrent` | `100` | `INTRALB_MAX_CONCURRENT` | most requests running at once (= most workers) |
/// | `queue` | `100` | `INTRALB_QUEUE` | most requests waiting for a worker, pool-wide; `0`: none |
/// | `min_workers` | CPUs, at most `max_concurrent` | `INTRALB_MIN_WORKERS` | workers kept even when idle |
/// | `timeout` | `"30s"` | `INTRALB_TIMEOUT` | a request's deadline from arrival, queue wait included |
/// | `queue_target` | `"5ms"` | `INTRALB_QUEUE_TARGET` | target queue wait (CoDel): while no request in 100 ms waited less, those waiting twice as long get `503` and the newest are served first; `"0s"`: a plain FIFO |
/// | `idle_timeout` | `"60s"` | `INTRALB_IDLE_TIMEOUT` | idle time before a surplus worker retires |
/// | `adaptive` | `false` | `INTRALB_ADAPTIVE` | adaptive concurrency: the limit moves between a floor and `max_concurrent`, following measured service times against their unqueued baseline |
/// | `shutdown_timeout` | `"10s"` | `INTRALB_SHUTDOWN_TIMEOUT` | drain time on shutdown before cancelling |
/// | `drain_delay` | `"0s"` | `INTRALB_DRAIN_DELAY` | on shutdown, keep serving (not ready) this long before closing the listener |
/// | `metrics` | off | `INTRALB_METRICS` | path of a Prometheus endpoint, e.g. `"/metrics"` |
/// | `health` | off | `INTRALB_HEALTH` | path answering `200` while serving, e.g. `"/healthz"` |
/// | `ready` | off | `INTRALB_READY` | path answering `200`, then `503` once a drain starts, e.g. `"/readyz"` |
/// | `addr` | `"127.0.0.1:8080"` | `INTRALB_ADDR` | listening address |
/// | `reuse_port` | `false` | `INTRALB_REUSE_PORT` | bind with `SO_REUSEPORT` |
/// | `header_read_timeout` | `"10s"` | `INTRALB_HEADER_READ_TIMEOUT` | time a client has to send a request head (HTTP/2: the preface and its first request) before its connection closes; HTTP/1 keep-alive idle time |
/// | `buffer_body` | `65536` (64 KiB) | `INTRALB_BUFFER_BODY` | largest request body read whole before the request takes a queue place; `0`: none |
/// | `body_timeout` | `"10s"` | `INTRALB_BODY_TIMEOUT` | time a client has to send a buffered body, or between two reads of a streamed one; past it, `408` and the connection closes |
/// | `send_timeout` | `"30s"` | `INTRALB_SEND_TIMEOUT` | time a response may make no progress because its client does not read; then HTTP/2 resets its stream, HTTP/1 closes the connection |
/// | `connection_idle_timeout` | `"60s"` | `INTRALB_CONNECTION_IDLE_TIMEOUT` | time a connection may stay open without a request in flight |
/// | `max_connections` | ¾ of the file-descriptor limit | `INTRALB_MAX_CONNECTIONS` | most connections open at once; at the limit, accepting pauses until one closes |
/// | `log` | warnings and errors | `INTRALB_LOG` | the default `tracing` subscriber, if the program installed none: unset, warnings and errors; `true`, from info; `false`, none (`RUST_LOG` filters) |
/// | `serve` | `serve` | — | the name of the generated function (an identifier) |
/// | `crate` | `"intralb"` | — | the path of the `intralb` crate, if renamed, e.g. `"my_intralb"` |
/// | `layer` | none | — | the path of a function returning a tower layer to run in front of admission, e.g. `outer` |
/// | `priority` | none | — | the path of a `fn(&http::request::Parts) -> intralb::Priority`, e.g. `classify` |
///
/// Durations are [humantime](https://docs.rs/humantime) strings: `"250ms"`, `"5s"`, `"2m"`,
/// `"1h 30m"`. Addresses are IP addresses and ports; host names are not resolved.
///
/// `layer = PATH` names a function, taking no arguments, that returns a tower layer to put *in
/// front of admission*: it sees every request before it takes a queue place, and wraps every
/// answer, intralb's own `503` and `504` included (CORS, authentication, request ids,
/// tracing). Any layer `intralb::Builder::layer` accepts; `intralb::OuterLayer::new` boxes one
/// whose type cannot be written. Middleware added with `Router::layer` inside the function
/// runs inside a worker instead.
///
/// `serve = name` lets two routers live in one module (say, a public API and an admin API on
/// another port). `crate = "path"` is for a crate that depends on intralb under another name,
/// or re-exports it: a bare name such as `"my_intralb"` is taken as a crate name
/// (`::my_intralb`); a path starting with `crate`, `self` or `super` is used as written.
///
/// The generated function is a free `pub async fn` placed where the attribute is; put the
/// attribute on a free function, not on a method in an `impl` block (the attribute cannot see
/// that it is in one, but the generated `serve` would then be an associated function that
/// calls the router function without `Self::`).
///
/// # Examples
///
/// ```ignore
/// use axum::{routing::get, Router};
/// use intralb::balanced;
///
/// #[balanced(max_concurrent = 64, queue = 256, timeout = "2s", addr = "0.0.0.0:8080")]
/// fn app() -> Router {
///     Router::new().route("/", get(|| async { "hello" }))
/// }
///
/// #[tokio::main]
/// async fn main() -> intralb::Result<()> {
///     serve().await
/// }
/// ```
///
/// Two routers in one program, the second built by an `async` function:
///
/// ```ignore
/// # use axum::{routing::get, Router};
/// # use intralb::balanced;
/// #[balanced(addr = "0.0.0.0:8080")]
/// fn public() -> Router {
///     Router::new().route("/", get(|| async { "hello" }))
/// }
///
/// #[balanced(serve = serve_admin, addr = "127.0.0.1:9090", max_concurrent = 4, log = true)]
/// async fn admin() -> Router {
///     Router::new().route("/health", get(|| async { "ok" }))
/// }
///
/// #[tokio::main]
/// async fn main() -> intralb::Result<()> {
///     tokio::try_join!(serve(), serve_admin())?;
///     Ok(())
/// }
/// ```
///
/// # What it expands to
///
/// The first example is equivalent to writing, without the macro (`__private` is not public
/// API; `intralb::Builder` is):
///
/// ```ignore
/// fn app() -> Router {
///     Router::new().route("/", get(|| async { "hello" }))
/// }
///
/// pub fn app_builder() -> intralb::Builder {
///     intralb::Builder::new()
///         .max_concurrent(64)
///         .queue(256)
///         .timeout(std::time::Duration::from_secs(2))
///         .addr("0.0.0.0:8080".parse().unwrap())
///         // `.layer(outer())` with `layer = outer`
///         .registered_setups()
///         .registered_db_inits()
/// }
///
/// pub async fn serve() -> intralb::Result<()> {
///     intralb::__private::serve(
///         app_builder(), // the environment's overrides are applied to it
///         async { app() }, // `async { app().await }` for an `async fn app`
///     )
///     .await
/// }
/// ```
///
/// Only the keys you give become setters; the others keep the `Builder`'s defaults (and its
/// environment variables).
///
/// # Compile errors
///
/// A function that returns an axum `Router<S>` still waiting for its state is told to call
/// `.with_state(...)`; two `#[balanced]` in one module without `serve = ...` are told to name
/// one (rustc reports the hidden item
/// `two_balanced_in_one_module__name_one_with__serve_eq_another_name` defined twice, beside
/// `serve`); a crate that depends on intralb under another name is told to add
/// `crate = "..."`. Unknown keys (with a hint for a close misspelling), repeated keys, values of the wrong type,
/// out-of-range numbers, `max_concurrent = 0`, a zero `timeout`, `min_workers` above
/// `max_concurrent`, durations and addresses that do not parse, and a function that takes
/// parameters, is generic, is a method, is `unsafe` or `extern`, or returns nothing. All of them
/// are reported at once; the function is still emitted, so the rest of the crate type-checks.
#[proc_macro_attribute]
pub fn balanced(args: TokenStream, item: TokenStream) -> TokenStream {
    balanced::balanced(args.into(), item.into()).into()
}

/// Gives every worker its own resource, opened by the annotated function.
///
/// The function receives the [`WorkerId`](https://docs.rs/intralb/latest/intralb/struct.WorkerId.html)
/// of a worker and returns the value that worker owns: a database connection, a file, a client.
/// The runtime calls it for each worker it starts, before that worker takes requests; handlers
/// then receive the value of the worker running them as `intralb::Db<T>`. A worker runs one
/// request at a time, so the value needs to be `Send`, not `Sync`: a plain
/// `rusqlite::Connection` works.
///
/// # Syntax
///
/// ```ignore
/// #[db_init]
/// fn NAME(worker: WorkerId) -> T
/// #[db_init]
/// fn NAME(worker: WorkerId) -> Result<T, E>
/// #[db_init]
/// async fn NAME(worker: WorkerId) -> T
/// #[db_init]
/// async fn NAME(worker: WorkerId) -> Result<T, E>
/// #[db_init(broken = PATH, crate = "path")]
/// ```
///
/// # Attributes
///
/// Both keys are optional; each may be given once.
///
/// - `broken = PATH`: the path (not a string) of a function `fn(&T) -> bool` that tells
///   whether the resource `T` is broken, such as `is_broken` (a function of yours) or
///   `tokio_postgres::Client::is_closed` (a method of the resource). It runs each time a worker
///   is given back after a request; when it returns `true`, the resource is dropped and this
///   function opens a new one before the worker serves again. It must be cheap and must not
///   block. `T` is the type the function returns (inside the `Result`, if fallible): another
///   type fails the start of the balancer. See
///   [`Initializer::broken`](https://docs.rs/intralb/latest/intralb/struct.Initializer.html#method.broken).
///   A function that does not take a `&T` or return a `bool` is a compile error at `PATH`.
/// - `crate = "path"`: a string holding the path of the `intralb` crate, for a crate that
///   depends on intralb under another name (`lb = { package = "intralb", ... }` in
///   `Cargo.toml`, then `crate = "lb"`) or re-exports it. As for
///   [`#[balanced]`](macro@balanced), a bare name such as `"lb"` is taken as a crate name
///   (`::lb`); a path starting with `::`, `crate`, `self` or `super` is used as written.
///   Default: `"intralb"`.
///
/// A return type whose last path segment is `Result` (`Result<T, E>`, `io::Result<T>`,
/// `rusqlite::Result<T>`) is fallible: an error (or a panic) fails the worker's start, with the
/// function's path in the message. `E` must convert into
/// `Box<dyn std::error::Error + Send + Sync>`. Any other return type is the resource itself.
/// A blocking function runs on tokio's blocking thread pool; an `async fn` runs on the runtime.
/// Each resource type may be produced by one initializer only, or `Db<T>` would not know which
/// to give; the runtime rejects a duplicate when it starts, with an error that says to wrap one
/// in a newtype (`struct Replica(Connection);`, then `Db<Replica>`).
///
/// Workers start concurrently, so this function runs concurrently for several workers (at
/// startup, `min_workers` at once). What must run once, such as a schema migration, goes in a
/// [`#[setup]`](macro@setup) function, which runs before any initializer.
///
/// The parameter's pattern and the spelling of its type are yours (`_: intralb::WorkerId`
/// works). The function must be a free function with exactly that one parameter and no generics;
/// it cannot be `unsafe`, `extern` or variadic, and must return something. The function stays as
/// written, and can still be called directly.
///
/// # Examples
///
/// ```ignore
/// use axum::{routing::get, Router};
/// use intralb::{balanced, db_init, Db, WorkerId};
/// use rusqlite::Connection;
///
/// /// One SQLite shard per worker.
/// #[db_init]
/// fn open(worker: WorkerId) -> rusqlite::Result<Connection> {
///     Connection::open(format!("shard-{}.db", worker.get()))
/// }
///
/// /// An infallible, asynchronous initializer.
/// #[db_init]
/// async fn counter(_: WorkerId) -> std::collections::HashMap<String, u64> {
///     Default::default()
/// }
///
/// #[balanced]
/// fn app() -> Router {
///     Router::new().route("/", get(|db: Db<Connection>| async move { /* ... */ }))
/// }
/// ```
///
/// A client that can break, with the check that tells:
///
/// ```ignore
/// use intralb::{db_init, WorkerId};
/// use tokio_postgres::{Client, NoTls};
///
/// #[db_init(broken = Client::is_closed)]
/// async fn connect(_: WorkerId) -> Result<Client, tokio_postgres::Error> {
///     let (client, connection) = tokio_postgres::connect("host=localhost user=app", NoTls).await?;
///     tokio::spawn(connection);
///     Ok(client)
/// }
/// ```
///
/// With intralb renamed in `Cargo.toml` (`lb = { package = "intralb", version = "..." }`):
///
/// ```ignore
/// use rusqlite::Connection;
///
/// #[lb::db_init(crate = "lb", broken = is_broken)]
/// fn shard(worker: lb::WorkerId) -> rusqlite::Result<Connection> {
///     Connection::open(format!("shard-{}.db", worker.get()))
/// }
///
/// fn is_broken(connection: &Connection) -> bool {
///     connection.query_row("SELECT 1", [], |_| Ok(())).is_err()
/// }
/// ```
///
/// # What it expands to
///
/// `open` above stays as it is, and is registered (through the `inventory` crate, which
/// `intralb` re-exports for the purpose) as if you had passed its initializer to
/// `intralb::Builder::db_init` yourself:
///
/// ```ignore
/// fn open(worker: WorkerId) -> rusqlite::Result<Connection> {
///     Connection::open(format!("shard-{}.db", worker.get()))
/// }
///
/// intralb::__private::inventory::submit! {
///     intralb::__private::DbInit::new(|| {
///         intralb::__private::Initializer::sync(
///             concat!(module_path!(), "::", "open"),
///             |worker| open(worker),
///         )
///     })
/// }
/// ```
///
/// The value of an infallible function is wrapped in `Ok::<_, std::convert::Infallible>(...)`,
/// and an `async fn` is registered with `Initializer::asynchronous`, as
/// `|worker| async move { Ok::<_, Infallible>(counter(worker).await) }`. With
/// `broken = PATH`, the initializer is followed by `.broken(PATH)`:
///
/// ```ignore
/// intralb::__private::Initializer::asynchronous(
///     concat!(module_path!(), "::", "connect"),
///     |worker| async move { connect(worker).await },
/// )
/// .broken(Client::is_closed)
/// ```
///
/// and with `crate = "lb"`, every `intralb::` above is `::lb::`.
///
/// # Compile errors
///
/// Unknown keys (with a hint for a close misspelling), repeated keys, a key without a value, a
/// `broken` that is not a path (a string, a closure, a call), a `crate` that is not a string
/// holding a path, and a function that is not a free function of one parameter returning
/// something (see above). All of them are reported at once; the function is still emitted, so
/// the rest of the crate type-checks.
#[proc_macro_attribute]
pub fn db_init(args: TokenStream, item: TokenStream) -> TokenStream {
    db_init::db_init(args.into(), item.into()).into()
}

/// Runs the annotated function once per process, before the first worker starts: a schema
/// migration, say.
///
/// Initializers (`#[db_init]`) run once per worker, and workers start concurrently, so a
/// migration in one runs several times at once (two `CREATE TABLE` at once can fail). A setup
/// function runs once per process, before any initializer; the generated `serve` (and the
/// builder `#[balanced]` generates) runs every setup function of the program, in the order of
/// their paths, each to its end. Another server started in the same process (a second
/// `#[balanced]` router, a test starting the app again) waits for that run rather than running
/// it again; after a failure, the next start runs it again. An error or a panic stops the start: `serve` returns an error
/// naming the function (`ErrorKind::Setup`), before anything is bound.
///
/// # Syntax
///
/// ```ignore
/// #[setup]
/// async fn NAME() -> Result<(), E>
/// #[setup]
/// fn NAME() -> Result<(), E>
/// #[setup]
/// async fn NAME()
/// #[setup(crate = "path")]
/// ```
///
/// A blocking function runs on tokio's blocking thread pool. `E` must convert into
/// `Box<dyn std::error::Error + Send + Sync>`. The function takes no parameters, has no
/// generics, and stays callable as written. `crate = "path"` is as for
/// [`#[db_init]`](macro@db_init).
///
/// # Examples
///
/// ```ignore
/// use rusqlite::Connection;
///
/// #[intralb::setup]
/// fn migrate() -> rusqlite::Result<()> {
///     let conn = Connection::open("notes.db")?;
///     conn.execute_batch("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)")
/// }
/// ```
///
/// # What it expands to
///
/// ```ignore
/// intralb::__private::inventory::submit! {
///     intralb::__private::RegisteredSetup::new(|| {
///         intralb::__private::Setup::blocking(concat!(module_path!(), "::", "migrate"), || migrate())
///     })
/// }
/// ```
///
/// Without macros: `Builder::setup(migrate)` (an `async fn`).
#[proc_macro_attribute]
pub fn setup(args: TokenStream, item: TokenStream) -> TokenStream {
    setup::setup(args.into(), item.into()).into()
}
