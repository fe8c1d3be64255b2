//! An intra-process load balancer in front of your HTTP router.
//!
//! A server that accepts every request and runs it at once degrades for everyone under
//! overload: latency climbs without bound, memory with it, and clients time out on work the
//! server still does. intralb puts a pool of *workers* in front of the router: at most
//! `max_concurrent` requests run, at most `queue` wait, and the rest are answered
//! `503 Service Unavailable` with `Retry-After` in microseconds, without touching the router.
//! The queue absorbs bursts but never stands (CoDel, newest first while it stands), and
//! requests may have a [`Priority`].
//! Every request has a deadline; every worker owns its resources (say, a SQLite connection).
//!
//! # Usage
//!
//! ```no_run
//! use axum::{routing::get, Router};
//!
//! #[intralb::balanced(max_concurrent = 100, queue = 100)]
//! fn app() -> Router {
//!     Router::new().route("/", get(|| async { "Hello World" }))
//! }
//!
//! #[tokio::main]
//! async fn main() -> intralb::Result<()> {
//!     serve().await
//! }
//! ```
//!
//! Per-worker resources are declared with [`db_init`] and reached with [`Db<T>`] (blocking
//! calls through [`Db::blocking`]); what must run once per process (a migration) with
//! [`setup`](macro@setup); the same without macros is [`Balancer::builder()`]. A long response learns that a
//! shutdown began through [`Drain`]. Middleware that must also wrap intralb's own `503` and
//! `504`, or refuse a request before it takes a queue place (CORS, auth, tracing), is an *outer
//! layer*: `#[balanced(layer = ...)]`, [`Builder::layer`].
//!
//! # Testing
//!
//! `#[balanced]` also generates `<router>_builder()`, the [`Builder`] its `serve` uses; a test
//! starts the whole app on a free port with [`Builder::start`], talks to it over
//! [`Server::local_addr`] with any HTTP client, and stops it with [`Server::stop`]:
//!
//! ```ignore
//! let server = app_builder().start(app()).await?;
//! let url = format!("http://{}/", server.local_addr());
//! // ... requests ...
//! server.stop().await?;
//! ```
//!
//! # How a request flows
//!
//! 1. **serve** (`serve.rs`, `connection.rs`, `activity.rs`): hyper-util reads the request
//!    head (HTTP/1.1 or h2c); every state of a connection has a timeout, kept by one watchdog
//!    timer per connection, and `max_connections` bounds them.
//! 2. **dispatch** (`dispatch.rs`, `body.rs`, `priority.rs`): the request gets its
//!    [`Priority`]; a body up to `buffer_body` is read whole, under `body_timeout`, so a slow
//!    client holds only its connection, never a worker; then the outer layers run, if any
//!    (`layer.rs`), and admission starts the deadline (`timeout`, queue wait included).
//! 3. **pool** (`pool.rs`, `queue.rs`, `limit.rs`): the request leases the most recently used
//!    idle worker; if none is idle, or the concurrency limit is reached (`max_concurrent`, or
//!    with `adaptive` the limit `limit.rs` finds from service times), it waits in the pool-wide
//!    queue (and a new worker starts if the pool may grow), whose discipline (CoDel, adaptive
//!    LIFO, priorities) decides who gets the next free worker and who is shed (`503` with a
//!    computed `Retry-After`).
//! 4. **serving** (`serving.rs`): the router runs on the request's task with the worker's id
//!    and a hold on the worker (`worker.rs`) in the request extensions, under the deadline
//!    (`504`, and the handler is cancelled) and a panic guard (`500`, and the worker's
//!    resources are re-initialised).
//! 5. The worker goes back to the pool when the response head is ready *and* the last hold on
//!    it drops (every [`Db<T>`] holds one, wherever it went); broken resources are replaced
//!    first (`#[db_init(broken = ...)]`, [`Db::discard`]); idle surplus workers retire after
//!    `idle_timeout`.
//!
//! # Status codes intralb answers itself
//!
//! | status | when | the router ran? |
//! |---|---|---|
//! | `503` + `Retry-After: N` | shed: no queue place for it, or it waited over twice `queue_target` in a standing queue, or a critical request took its place | no |
//! | `503` + `Retry-After: 1`–`2` | the deadline passed while queued | no |
//! | `503` + `Retry-After: 1`–`2` | no worker exists and every start is failing | no |
//! | `503` + `Connection: close` | shutting down, or still queued or running at its deadline | no, or cancelled |
//! | `504` | the deadline passed while running; the handler was cancelled | cancelled |
//! | `500` | the handler panicked, or the router returned an error | yes |
//! | `408` + `Connection: close` | the body did not arrive within `body_timeout` | no |
//! | `400` + `Connection: close` | the body could not be read | no |
//!
//! # Configuration
//!
//! | key | default | environment | meaning |
//! |---|---|---|---|
//! | `max_concurrent` | `100` | `INTRALB_MAX_CONCURRENT` | most requests running at once (= most workers) |
//! | `queue` | `100` | `INTRALB_QUEUE` | most requests waiting for a worker, pool-wide; `0`: none |
//! | `min_workers` | CPUs, at most `max_concurrent` | `INTRALB_MIN_WORKERS` | workers kept even when idle |
//! | `timeout` | `"30s"` | `INTRALB_TIMEOUT` | a request's deadline from arrival, queue wait included |
//! | `queue_target` | `"5ms"` | `INTRALB_QUEUE_TARGET` | target queue wait (CoDel): while no request in 100 ms waited less, those waiting twice as long get `503` and the newest are served first; `"0s"`: a plain FIFO |
//! | `idle_timeout` | `"60s"` | `INTRALB_IDLE_TIMEOUT` | idle time before a surplus worker retires |
//! | `adaptive` | `false` | `INTRALB_ADAPTIVE` | adaptive concurrency: the limit moves between a floor and `max_concurrent`, following measured service times against their unqueued baseline |
//! | `shutdown_timeout` | `"10s"` | `INTRALB_SHUTDOWN_TIMEOUT` | drain time on shutdown before cancelling |
//! | `drain_delay` | `"0s"` | `INTRALB_DRAIN_DELAY` | on shutdown, keep serving (not ready) this long before closing the listener |
//! | `metrics` | off | `INTRALB_METRICS` | path of a Prometheus endpoint, e.g. `"/metrics"` |
//! | `health` | off | `INTRALB_HEALTH` | path answering `200` while serving, e.g. `"/healthz"` |
//! | `ready` | off | `INTRALB_READY` | path answering `200`, then `503` once a drain starts, e.g. `"/readyz"` |
//! | `addr` | `"127.0.0.1:8080"` | `INTRALB_ADDR` | listening address |
//! | `reuse_port` | `false` | `INTRALB_REUSE_PORT` | bind with `SO_REUSEPORT` |
//! | `header_read_timeout` | `"10s"` | `INTRALB_HEADER_READ_TIMEOUT` | time a client has to send a request head (HTTP/2: the preface and its first request) before its connection closes; HTTP/1 keep-alive idle time |
//! | `buffer_body` | `65536` (64 KiB) | `INTRALB_BUFFER_BODY` | largest request body read whole before the request takes a queue place; `0`: none |
//! | `body_timeout` | `"10s"` | `INTRALB_BODY_TIMEOUT` | time a client has to send a buffered body, or between two reads of a streamed one; past it, `408` and the connection closes |
//! | `send_timeout` | `"30s"` | `INTRALB_SEND_TIMEOUT` | time a response may make no progress because its client does not read; then HTTP/2 resets its stream, HTTP/1 closes the connection |
//! | `connection_idle_timeout` | `"60s"` | `INTRALB_CONNECTION_IDLE_TIMEOUT` | time a connection may stay open without a request in flight |
//! | `max_connections` | ¾ of the file-descriptor limit | `INTRALB_MAX_CONNECTIONS` | most connections open at once; at the limit, accepting pauses until one closes |
//! | `log` | warnings and errors | `INTRALB_LOG` | the default `tracing` subscriber, if the program installed none: unset, warnings and errors; `true`, from info; `false`, none (`RUST_LOG` filters) |
//!
//! Durations are written `250ms`, `5s`, `1m`. An invalid value makes `serve` return an error
//! naming the variable, before anything is bound.
//!
//! `serve` and `crate` (see [`balanced`]), `layer` (an outer layer, [`Builder::layer`]) and
//! `priority` (a [`PriorityFn`], [`Builder::priority`]) are keys of the attribute only.
//!
//! Deployment behind nginx, Envoy or Kubernetes (readiness, drain, metrics, restarts) is
//! described in [docs/deploy.md](https://github.com/intralb/intralb/blob/main/docs/deploy.md);
//! how intralb compares with plain axum and tower in
//! [docs/comparison.md](https://github.com/intralb/intralb/blob/main/docs/comparison.md).
//!
//! # Without axum
//!
//! Any tower `Service` over `http::Request<`[`RequestBody`]`>` can be served (see
//! [`RouterService`]). Each request carries its [`WorkerId`] in its extensions, and
//! [`Db::from_extensions`] takes the worker's resource from them.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod activity;
mod body;
mod builder;
mod cast;
mod catch_unwind;
mod config;
mod connection;
mod counters;
mod db;
mod dispatch;
mod drain;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod histogram;
mod init;
mod layer;
mod limit;
mod listener;
mod log;
mod metrics;
mod outcome;
mod pool;
mod priority;
mod probes;
mod queue;
mod resources;
mod response;
mod router;
mod send;
mod serve;
mod server;
mod serving;
mod setup;
mod shared;
mod signal;
mod stats;
mod tally;
mod worker;
mod worker_id;

#[doc(hidden)]
pub mod __private;

pub use body::{BodyError, RequestBody};
pub use builder::{Balancer, Builder};
pub use db::{Db, Rejection};
pub use drain::Drain;
pub use error::{BoxError, Error, ErrorKind, Result};
pub use init::Initializer;
pub use layer::{Admission, AdmissionFuture, OuterLayer};
pub use priority::{Priority, PriorityFn};
pub use router::RouterService;
pub use server::Server;
pub use signal::shutdown_signal;
pub use stats::{Percentiles, PriorityStats, Stats};
pub use worker_id::WorkerId;

#[doc(inline)]
pub use intralb_macros::{balanced, db_init, setup};
