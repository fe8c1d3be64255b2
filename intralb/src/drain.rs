//! [`Drain`]: how a long-lived response learns that a shutdown began.

use std::fmt;
use std::future::Future;

use http::Extensions;
use tokio::sync::watch;

use crate::db::Rejection;
use crate::worker::Hold;

/// Resolves when the server begins to drain (SIGINT/SIGTERM, or the shutdown future of
/// [`Builder::spawn`](crate::Builder::spawn)), so a stream or a WebSocket can end cleanly
/// instead of being cut at the end of `shutdown_timeout`. That is the moment readiness turns
/// `503`: before `drain_delay`, while new requests are still served.
///
/// A response whose head is sent has left the balancer: the drain waits for it (up to
/// `shutdown_timeout`, then cuts its connection), but cannot end it. An SSE stream ends its
/// body when [`signaled`](Drain::signaled) resolves; a WebSocket handler sends its close frame.
///
/// With the default `axum` feature it is an extractor; otherwise take it from the request with
/// [`Drain::from_extensions`]. It is cheap to clone and `'static`, so it moves into bodies and
/// upgrade closures; it holds no worker.
///
/// # Examples
///
/// A long poll that gives up when the server drains, so the client reconnects elsewhere at
/// once (a stream does the same in its body):
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use intralb::Drain;
///
/// async fn next_event() -> &'static str {
///     std::future::pending().await
/// }
///
/// async fn poll(drain: Drain) -> &'static str {
///     tokio::select! {
///         event = next_event() => event,
///         () = drain.signaled() => "draining: reconnect\n",
///     }
/// }
/// let app: axum::Router = axum::Router::new().route("/poll", axum::routing::get(poll));
/// # }
/// ```
#[derive(Clone)]
pub struct Drain {
    draining: watch::Receiver<bool>,
}

impl Drain {
    /// Takes the drain signal from a request's extensions (for services that are not axum
    /// handlers).
    ///
    /// # Errors
    ///
    /// The request is not running on an intralb worker.
    pub fn from_extensions(extensions: &Extensions) -> Result<Self, Rejection> {
        let home = extensions
            .get::<Hold>()
            .and_then(|hold| hold.worker().home())
            .ok_or(Rejection::not_balanced())?;
        Ok(Drain {
            draining: home.draining(),
        })
    }

    /// Whether the drain has begun.
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Resolves once the drain has begun (at once if it already has). Owns what it needs, so
    /// it can be stored in a stream.
    pub fn signaled(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut draining = self.draining.clone();
        async move {
            // An error means the server is gone: that is a drain too.
            let _ = draining.wait_for(|draining| *draining).await;
        }
    }
}

impl fmt::Debug for Drain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("draining", &self.is_draining())
            .finish()
    }
}
