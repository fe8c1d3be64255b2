//! The accept loop and the graceful drain, top to bottom: accept until the shutdown future
//! resolves, then drain within `shutdown_timeout`, then cut what is left.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioTimer;
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::connection::{Connections, Timeouts};
use crate::dispatch;
use crate::layer::{Admission, Layers};
use crate::response::boxed;
use crate::router::RouterService;
use crate::send::StreamExecutor;
use crate::shared::Shared;
use crate::tally::Tally;

/// Connection-level settings.
pub(crate) struct ServeOptions {
    pub(crate) header_read_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) drain_delay: Duration,
    pub(crate) connection_idle_timeout: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) max_connections: usize,
}

/// Serves `listener` until `shutdown` resolves, then drains: readiness turns 503 and responses
/// ask for `Connection: close`, serving goes on for `drain_delay`, then accepting stops, executing
/// and queued requests finish within `shutdown_timeout`, the rest are cancelled, the workers
/// dropped.
pub(crate) async fn run<S: RouterService>(
    listener: TcpListener,
    shared: Arc<Shared>,
    router: S,
    layers: Layers,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    // Built once; each connection holds a clone (an `Arc`), each request clones the layers'
    // services. Without layers, `None`: connections call admission directly.
    let outer = layers.wrap(|| {
        let shared = Arc::clone(&shared);
        // A router need not be `Sync`; layers' services are shared between connections.
        let router = std::sync::Mutex::new(router.clone());
        Admission::new(move |req| {
            let shared = Arc::clone(&shared);
            let router = router.lock().unwrap_or_else(|e| e.into_inner()).clone();
            async move { boxed(dispatch::admit(shared, router, req).await) }
        })
    });
    let mut http = auto::Builder::new(StreamExecutor {
        send_timeout: options.send_timeout,
    });
    // hyper's own header timer would cost every request a timer of its own; the connection's
    // watchdog, which times the first request and idling anyway, enforces
    // `header_read_timeout` instead (see `connection.rs`).
    http.http1().header_read_timeout(None);
    // An idle HTTP/2 peer is pinged; one that does not answer is dropped.
    http.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_EVERY)
        .keep_alive_timeout(H2_PING_TIMEOUT);

    let (closing_tx, closing_rx) = watch::channel(false);
    let (abort_tx, abort_rx) = watch::channel(false);
    let connections = Connections {
        http,
        closing: closing_rx,
        abort: abort_rx,
        timeouts: Timeouts {
            first_request: options.header_read_timeout,
            idle: options.connection_idle_timeout,
            send: options.send_timeout,
        },
        open: Arc::new(Tally::default()),
        outer,
    };
    // At `max_connections`, accepting pauses: new clients wait in the kernel's backlog.
    let limit = Arc::new(Semaphore::new(options.max_connections));
    let stop_accepting = async {
        shutdown.await;
        shared.pool.begin_drain();
        if !options.drain_delay.is_zero() {
            tracing::info!(
                drain_delay = ?options.drain_delay,
                "draining: readiness answers 503; serving on before closing the listener"
            );
            tokio::time::sleep(options.drain_delay).await;
        }
    };
    let mut stop_accepting = pin!(stop_accepting);
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut stop_accepting => break,
            permit = Arc::clone(&limit).acquire_owned() => permit.expect("the limit is never closed"),
        };
        tokio::select! {
            biased;
            () = &mut stop_accepting => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => connections.serve(stream, peer, &shared, &router, permit),
                Err(error) => accept_failed(error).await,
            },
        }
    }
    // Connections the kernel already completed are served rather than reset by the close; a
    // bounded number, so that clients reconnecting at once cannot keep the listener open.
    for _ in 0..BACKLOG_SERVED_AT_CLOSE {
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            break;
        };
        match tokio::time::timeout(Duration::ZERO, listener.accept()).await {
            Ok(Ok((stream, peer))) => connections.serve(stream, peer, &shared, &router, permit),
            _ => break,
        }
    }

    // Closing the listener refuses new connections at once; connections that have not sent a
    // byte yet close too (they hold no request).
    drop(listener);
    closing_tx.send_replace(true);
    let pool = &shared.pool;
    let answered_before = pool.counters.answered();
    tracing::info!(
        in_flight = pool.in_flight(),
        "shutting down: no longer accepting; draining in-flight requests"
    );
    // Keep-alive connections close after their current response (HTTP/2: GOAWAY).
    let open = Arc::clone(&connections.open);
    let mut drained = pin!(open.zero());
    let mut cut = Cut::default();
    if tokio::time::timeout(options.shutdown_timeout, &mut drained)
        .await
        .is_err()
    {
        // The deadline: requests still running are cancelled and, like those still queued,
        // answered `503` + `Connection: close`; then connections get a moment to write those
        // answers, and the rest (streams, clients that do not read) are cut.
        let answered_at_deadline = pool.counters.answered();
        shared.cut.fire();
        pool.close().await;
        if tokio::time::timeout(LAST_ANSWERS, &mut drained)
            .await
            .is_err()
        {
            cut.connections = open.get();
            abort_tx.send_replace(true);
            drained.await;
        }
        // Everything answered from the deadline on was cut (running or queued): `503`.
        cut.requests = pool.counters.answered() - answered_at_deadline;
    }
    pool.close().await;
    // Workers given back after `close` (a request cut at the deadline) drop off-thread; a
    // `Db<T>` kept outside any request (in a detached task) may hold one longer: not waited for.
    if tokio::time::timeout(LAST_ANSWERS, pool.all_dropped())
        .await
        .is_err()
    {
        tracing::warn!(
            "shutdown: some workers are still held (a `Db<T>` kept in a task that outlived its \
             request); their resources drop when it does"
        );
    }
    let drained = pool.counters.answered() - answered_before - cut.requests;
    if cut.requests > 0 || cut.connections > 0 {
        tracing::warn!(
            drained,
            cut_requests = cut.requests,
            cut_connections = cut.connections,
            "shutdown: what was still running at the deadline was cut (requests answered 503 before \
             their response head; connections with a response still streaming closed)"
        );
    } else {
        tracing::info!(drained, "shutdown complete");
    }
}

/// How often an idle HTTP/2 peer is pinged, and how long it has to answer.
const H2_PING_EVERY: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// The most connections accepted from the backlog once the drain closes the listener.
const BACKLOG_SERVED_AT_CLOSE: usize = 256;

/// After the shutdown deadline, how long connections may take to write their last answers
/// before they are closed.
const LAST_ANSWERS: Duration = Duration::from_millis(500);

/// What the shutdown deadline cut.
#[derive(Default)]
struct Cut {
    /// Requests running or queued, answered `503`.
    requests: u64,
    /// Connections still open after their last answers (a response body still streaming, or a
    /// client that does not read).
    connections: usize,
}

/// Errors on one incoming connection are that connection's; others (out of file descriptors)
/// are the process's, so back off instead of spinning.
async fn accept_failed(error: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed; retrying in 50ms");
    tokio::time::sleep(Duration::from_millis(50)).await;
}
