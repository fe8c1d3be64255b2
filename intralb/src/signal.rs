//! SIGINT and SIGTERM: the signal that starts a drain, and the second one that ends the process.

use std::io;

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
