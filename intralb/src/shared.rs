//! [`Shared`]: what every connection of a server shares, and the shutdown deadline's signal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, CONNECTION};
use http::Response;
use tokio::sync::Notify;

use crate::body::Bodies;
use crate::pool::Pool;
use crate::priority::PriorityFn;
use crate::probes::Probes;

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) pool: Arc<Pool>,
    pub(crate) timeout: Duration,
    /// Gives each request its priority; `None`: every request is `Normal`.
    pub(crate) priority: Option<PriorityFn>,
    pub(crate) probes: Probes,
    /// Fired at the shutdown deadline: requests still running are answered `503`.
    pub(crate) cut: Cut,
    /// Reads request bodies before admission.
    pub(crate) bodies: Bodies,
}

impl Shared {
    /// Set when a shutdown begins: readiness answers 503 and connections are asked to close.
    pub(crate) fn is_draining(&self) -> bool {
        self.pool.is_draining()
    }

    /// The last touch on every answer: while draining, HTTP/1 clients are told to reconnect
    /// elsewhere (HTTP/2 gets GOAWAY).
    #[inline]
    pub(crate) fn conclude<B>(&self, http1: bool, mut response: Response<B>) -> Response<B> {
        self.conclude_in_place(http1, &mut response);
        response
    }

    /// [`conclude`](Self::conclude), for a response that is not to be moved once more.
    #[inline]
    pub(crate) fn conclude_in_place<B>(&self, http1: bool, response: &mut Response<B>) {
        if http1 && self.is_draining() {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

/// The shutdown deadline, as a signal every running request waits on.
#[derive(Default)]
pub(crate) struct Cut {
    fired: AtomicBool,
    notify: Notify,
}

impl Cut {
    pub(crate) fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Resolves once fired. Registers only when polled, so a request that finishes on its first
    /// poll never touches the shared list.
    pub(crate) async fn fired(&self) {
        // Created before the check: a `fire` in between still wakes it.
        let notified = self.notify.notified();
        if self.fired.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}
