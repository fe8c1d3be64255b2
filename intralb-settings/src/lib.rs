//! The one declaration of intralb's settings.
//!
//! Every setting is declared once, in [`settings!`]: its name (the `#[balanced]` key and the
//! `Builder` setter), the sort of value it takes, its default, and one line of documentation,
//! grouped by the part of the runtime that uses it. Everything else is derived from it: the
//! runtime's configuration structs, defaults, `INTRALB_<KEY>` environment overrides and builder
//! setters (in `intralb`), the keys `#[balanced]` accepts and checks (in `intralb-macros`), and
//! a test that the documentation tables list exactly these.
//!
//! Not for direct use: depend on `intralb`.
#![forbid(unsafe_code)]
#![no_std]

/// Calls `$callback!` with the table of settings.
///
/// Each group is `[field: Type] { entries }` (the runtime keeps the group in `Config::field`, a
/// struct `Type`); each entry is
///
/// ```text
/// /// one line for the documentation tables
/// ///
/// /// More for the `Builder` setter's documentation (optional).
/// name: Kind = default, "default as the tables write it";
/// ```
///
/// The kinds are `Count` (a `usize`), `OptCount` (a `usize` with a computed default),
/// `Duration` (written `"250ms"`, `"5s"`, `"1m"`), `Addr` (a socket address), `Flag` (a
/// `bool`), `OptFlag` (a `bool` whose absence means something of its own) and `OptPath` (a URL
/// path, off by default). `default` is a literal: an integer, a
/// duration or address string, `true`/`false`, or `None`.
///
/// A new setting of an existing kind is one entry here (plus the code that uses it, and its row
/// in the documentation tables, which a test checks).
#[macro_export]
macro_rules! settings {
    ($callback:path) => {
        $callback! {
            [pool: Pool] {
                /// most requests running at once (= most workers)
                max_concurrent: Count = 100, "`100`";
                /// most requests waiting for a worker, pool-wide; `0`: none
                queue: Count = 100, "`100`";
                /// workers kept even when idle
                min_workers: OptCount = None, "CPUs, at most `max_concurrent`";
                /// a request's deadline from arrival, queue wait included
                timeout: Duration = "30s", "`\"30s\"`";
                /// target queue wait (CoDel): while no request in 100 ms waited less, those waiting twice as long get `503` and the newest are served first; `"0s"`: a plain FIFO
                ///
                /// So the queue absorbs bursts but never stands: at capacity it holds waits near
                /// the target instead of filling up. Clients that send their next request the
                /// moment the last is answered, and outnumber the workers (a batch job with many
                /// threads), keep a queue standing by construction: a share of them is answered
                /// `503` and comes straight back. For such traffic raise the target, or set
                /// `"0s"` (BENCHMARKS.md, the notes scenario, measures both).
                queue_target: Duration = "5ms", "`\"5ms\"`";
                /// idle time before a surplus worker retires
                idle_timeout: Duration = "60s", "`\"60s\"`";
                /// adaptive concurrency: the limit moves between a floor and `max_concurrent`, following measured service times against their unqueued baseline
                ///
                /// So a backend's real capacity is found instead of trusted to `max_concurrent`:
                /// requests beyond it wait in the queue (and its discipline) instead of in the
                /// backend. Read the current limit in `Stats::concurrency_limit`.
                adaptive: Flag = false, "`false`";
            }
            [drain: Drain] {
                /// drain time on shutdown before cancelling
                shutdown_timeout: Duration = "10s", "`\"10s\"`";
                /// on shutdown, keep serving (not ready) this long before closing the listener
                ///
                /// Meanwhile readiness answers `503` and responses carry `Connection: close`, so a
                /// load balancer stops routing here before the listener closes.
                drain_delay: Duration = "0s", "`\"0s\"`";
            }
            [probes: Probes] {
                /// path of a Prometheus endpoint, e.g. `"/metrics"`
                ///
                /// Answered by the balancer itself, without a worker. Installs a Prometheus
                /// recorder for the `metrics` facade unless the program installed its own, which
                /// then receives intralb's metrics instead.
                metrics: OptPath = None, "off";
                /// path answering `200` while serving, e.g. `"/healthz"`
                ///
                /// Answered without a worker or a queue place, so it answers under full overload.
                health: OptPath = None, "off";
                /// path answering `200`, then `503` once a drain starts, e.g. `"/readyz"`
                ///
                /// Answered without a worker or a queue place.
                ready: OptPath = None, "off";
            }
            [listener: Listener] {
                /// listening address
                addr: Addr = "127.0.0.1:8080", "`\"127.0.0.1:8080\"`";
                /// bind with `SO_REUSEPORT`
                ///
                /// So a new process can listen on the same port while this one drains (Unix).
                reuse_port: Flag = false, "`false`";
            }
            [connections: Connections] {
                /// time a client has to send a request head (HTTP/2: the preface and its first request) before its connection closes; HTTP/1 keep-alive idle time
                ///
                /// Counted from the connection's first byte, whose wait is bounded by the same
                /// time. No worker is taken until the head is read.
                header_read_timeout: Duration = "10s", "`\"10s\"`";
                /// largest request body read whole before the request takes a queue place; `0`: none
                ///
                /// A body up to this size is read completely, under `body_timeout`, before
                /// admission, so a slow client never holds a worker. Larger bodies stream to the
                /// handler, each read under `body_timeout`. The bytes buffered at once are at
                /// most `buffer_body × (max_concurrent + queue)`: a request waits (under its
                /// `body_timeout`) for room.
                buffer_body: Count = 65536, "`65536` (64 KiB)";
                /// time a client has to send a buffered body, or between two reads of a streamed one; past it, `408` and the connection closes
                body_timeout: Duration = "10s", "`\"10s\"`";
                /// time a response may make no progress because its client does not read; then HTTP/2 resets its stream, HTTP/1 closes the connection
                ///
                /// Checked every half `send_timeout`, so a stalled response is cut after one to one
                /// and a half of it. A response waiting for its own data (a stream between two
                /// events) is not stalled.
                send_timeout: Duration = "30s", "`\"30s\"`";
                /// time a connection may stay open without a request in flight
                ///
                /// HTTP/2 connections get a GOAWAY (HTTP/1 ones are closed sooner, by
                /// `header_read_timeout`).
                connection_idle_timeout: Duration = "60s", "`\"60s\"`";
                /// most connections open at once; at the limit, accepting pauses until one closes
                ///
                /// Defaults to three quarters of the process's file-descriptor limit, so that
                /// the rest stays for the workers' resources and the process.
                max_connections: OptCount = None, "¾ of the file-descriptor limit";
            }
            [process: Process] {
                /// the default `tracing` subscriber, if the program installed none: unset, warnings and errors; `true`, from info; `false`, none (`RUST_LOG` filters)
                ///
                /// Installed when serving, so that errors (a handler asking for a `Db<T>` that no
                /// initializer makes, a panic) reach stderr without any set-up.
                log: OptFlag = None, "warnings and errors";
            }
        }
    };
}
