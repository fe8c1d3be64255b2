//! The accept loop, connections, and the graceful drain.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::dispatch::{Dispatch, Shared};
use crate::router::RouterService;

/// Connection-level settings.
pub(crate) struct ServeOptions {
    pub(crate) header_read_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) drain_delay: Duration,
}

/// Serves `listener` until `shutdown` resolves, then drains: readiness turns 503 and responses
/// ask for `Connection: close`, serving goes on for `drain_delay`, then accepting stops, executing
/// and queued requests finish within `shutdown_timeout`, the rest are cancelled, the workers
/// dropped.
pub(crate) async fn run<S: RouterService>(
    listener: TcpListener,
    shared: Arc<Shared>,
    router: S,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    http.http2().timer(TokioTimer::new());

    let graceful = GracefulShutdown::new();
    let (closing_tx, closing_rx) = watch::channel(false);
    let (abort_tx, abort_rx) = watch::channel(false);
    let connections = Connections {
        http,
        graceful: &graceful,
        closing: closing_rx,
        abort: abort_rx,
        first_byte_timeout: options.header_read_timeout,
        open: Arc::new(AtomicUsize::new(0)),
    };
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
        tokio::select! {
            biased;
            () = &mut stop_accepting => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => connections.serve(stream, peer, &shared, &router),
                Err(error) => accept_failed(error).await,
            },
        }
    }
    // Connections the kernel already completed are served rather than reset by the close.
    while let Ok(Ok((stream, peer))) = tokio::time::timeout(Duration::ZERO, listener.accept()).await
    {
        connections.serve(stream, peer, &shared, &router);
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
    let mut drained = pin!(graceful.shutdown());
    let mut cut = Cut::default();
    if tokio::time::timeout(options.shutdown_timeout, &mut drained)
        .await
        .is_err()
    {
        // The deadline: requests still running are cancelled and, like those still queued,
        // answered `503` + `Connection: close`; then connections get a moment to write those
        // answers, and the rest (streams, clients that do not read) are cut.
        cut.requests = pool.in_flight();
        shared.cut.fire();
        pool.close().await;
        if tokio::time::timeout(LAST_ANSWERS, &mut drained)
            .await
            .is_err()
        {
            cut.connections = open.load(Ordering::Relaxed);
            abort_tx.send_replace(true);
            drained.await;
        }
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
    let drained = pool.counters.answered() - answered_before;
    if cut.requests > 0 || cut.connections > 0 {
        tracing::warn!(
            drained,
            cut_requests = cut.requests,
            cut_connections = cut.connections,
            "shutdown: what was still running at the deadline was cut (requests answered 503; \
             connections with a response still streaming closed)"
        );
    } else {
        tracing::info!(drained, "shutdown complete");
    }
}

/// After the shutdown deadline, how long connections may take to write their last answers
/// before they are closed.
const LAST_ANSWERS: Duration = Duration::from_millis(500);

/// What the shutdown deadline cut.
#[derive(Default)]
struct Cut {
    /// Requests running or queued, answered `503`.
    requests: usize,
    /// Connections still open after their last answers (a response body still streaming, or a
    /// client that does not read).
    connections: usize,
}

/// Spawns one task per connection, watched for the graceful shutdown and abortable at its
/// deadline.
struct Connections<'a> {
    http: auto::Builder<TokioExecutor>,
    graceful: &'a GracefulShutdown,
    closing: watch::Receiver<bool>,
    abort: watch::Receiver<bool>,
    first_byte_timeout: Duration,
    /// Connection tasks alive.
    open: Arc<AtomicUsize>,
}

/// Counts a connection task as open while it lives.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connections<'_> {
    fn serve<S: RouterService>(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        shared: &Arc<Shared>,
        router: &S,
    ) {
        // Small responses must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let dispatch = Dispatch {
            shared: Arc::clone(shared),
            router: router.clone(),
        };
        let http = self.http.clone();
        let watcher = self.graceful.watcher();
        let first_byte_timeout = self.first_byte_timeout;
        let mut closing = self.closing.clone();
        let mut abort = self.abort.clone();
        self.open.fetch_add(1, Ordering::Relaxed);
        let open = Open(Arc::clone(&self.open));
        tokio::spawn(async move {
            let _open = open;
            let serve = async move {
                // hyper's header timeout starts once the protocol is detected: bound the wait
                // for the first byte too, or a silent client holds its connection forever.
                let mut byte = [0];
                let first_byte = tokio::time::timeout(first_byte_timeout, stream.peek(&mut byte));
                let sent = tokio::select! {
                    biased;
                    peeked = first_byte => matches!(peeked, Ok(Ok(1..))),
                    _ = closing.wait_for(|closing| *closing) => false,
                };
                if !sent {
                    return tracing::debug!(%peer, "closing a connection that sent nothing");
                }
                // The task owns its builder, so the connection borrows it (no second clone).
                let conn = http.serve_connection_with_upgrades(TokioIo::new(stream), dispatch);
                if let Err(error) = watcher.watch(conn).await {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            };
            tokio::select! {
                () = serve => {}
                _ = abort.wait_for(|abort| *abort) => {
                    tracing::debug!(%peer, "connection aborted at the shutdown deadline");
                }
            }
        });
    }
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

/// Resolves at the first SIGINT or SIGTERM; a second one then ends the process at once (exit
/// status 130), without draining.
///
/// This is what [`Builder::serve`](crate::Builder::serve) waits for; pass it to
/// [`Builder::spawn`](crate::Builder::spawn) to get the same behaviour with a listener of your
/// own.
pub async fn shutdown_signal() {
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGINT/SIGTERM; stop the process with SIGKILL");
            return std::future::pending().await;
        }
    };
    signals.recv().await;
    tracing::info!("shutdown signal received; a second one exits at once");
    // The same listeners: a signal that arrives from now on is not missed.
    tokio::spawn(async move {
        signals.recv().await;
        tracing::warn!("second shutdown signal: exiting without draining");
        std::process::exit(130);
    });
}

/// SIGINT and SIGTERM, listened for from creation on.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    #[cfg(not(unix))]
    fn new() -> io::Result<Self> {
        Ok(Signals {})
    }

    #[cfg(unix)]
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }

    #[cfg(not(unix))]
    async fn recv(&mut self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
