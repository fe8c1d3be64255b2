//! [`Activity`]: what a connection's requests tell its watchdog (`connection.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use http::Version;

/// What a connection's requests tell its watchdog: how many started, how many are running
/// (one atomic: started in the high half, running in the low one), and whether they are HTTP/2.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    requests: AtomicU64,
    http2: AtomicBool,
}

const ONE_RUNNING: u64 = 1;
const ONE_STARTED: u64 = 1 << 32;

impl Activity {
    /// A request starts; it counts as running until the returned guard drops (it goes into
    /// the response body: see `Watched` in `send.rs`).
    pub(crate) fn start(self: &Arc<Self>, version: Version) -> Running {
        self.requests
            .fetch_add(ONE_STARTED | ONE_RUNNING, Ordering::Relaxed);
        if version == Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        Running(Arc::clone(self))
    }

    /// Requests started so far.
    pub(crate) fn started(&self) -> u64 {
        self.requests.load(Ordering::Relaxed) >> 32
    }

    /// Requests running: their response (body included) not sent yet.
    pub(crate) fn running(&self) -> u64 {
        self.requests.load(Ordering::Relaxed) & (ONE_STARTED - 1)
    }

    /// Whether the connection speaks HTTP/2 (known once a request started).
    pub(crate) fn http2(&self) -> bool {
        self.http2.load(Ordering::Relaxed)
    }
}

/// A request running on a connection.
pub(crate) struct Running(Arc<Activity>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(ONE_RUNNING, Ordering::Relaxed);
    }
}
