//! The accept loop, connections, and the graceful drain.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::dispatch::{Dispatch, Shared};
use crate::router::RouterService;

/// Connection-level settings.
pub(crate) struct ServeOptions {
    pub(crate) header_read_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
}

/// Serves `listener` until `shutdown` resolves, then drains: stop accepting, let executing and
/// queued requests finish within `shutdown_timeout`, cancel the rest, drop the workers.
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
    let (abort_tx, abort_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
        };
        // Small responses must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let dispatch = Dispatch {
            shared: Arc::clone(&shared),
            router: router.clone(),
        };
        let conn = http.serve_connection_with_upgrades(TokioIo::new(stream), dispatch);
        let conn = graceful.watch(conn.into_owned());
        let mut abort = abort_rx.clone();
        tokio::spawn(async move {
            tokio::select! {
                result = conn => if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                },
                _ = abort.wait_for(|abort| *abort) => {
                    tracing::debug!(%peer, "connection aborted at the shutdown deadline");
                }
            }
        });
    }

    // Closing the listener refuses new connections at once.
    drop(listener);
    let pool = &shared.pool;
    let answered_before = pool.counters.answered();
    tracing::info!(
        in_flight = pool.in_flight(),
        "shutting down: no longer accepting; draining in-flight requests"
    );
    // Keep-alive connections close after their current response (HTTP/2: GOAWAY).
    let mut drained = pin!(graceful.shutdown());
    let aborted = match tokio::time::timeout(options.shutdown_timeout, &mut drained).await {
        Ok(()) => 0,
        Err(_) => {
            let aborted = pool.in_flight();
            abort_tx.send_replace(true);
            drained.await;
            aborted
        }
    };
    pool.close().await;
    let drained = pool.counters.answered() - answered_before;
    if aborted > 0 {
        tracing::warn!(
            drained,
            aborted,
            "shutdown: requests still running at the deadline were cancelled"
        );
    } else {
        tracing::info!(drained, aborted, "shutdown complete");
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

/// Resolves at the first SIGINT or SIGTERM; a second one ends the process at once.
pub(crate) async fn shutdown_signal() {
    signal().await;
    tracing::info!("shutdown signal received; a second one exits at once");
    tokio::spawn(async {
        signal().await;
        tracing::warn!("second shutdown signal: exiting without draining");
        std::process::exit(130);
    });
}

async fn signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
