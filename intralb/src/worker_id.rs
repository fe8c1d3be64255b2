//! `WorkerId`: which worker runs a request.

use std::fmt;

/// The identity of a worker.
///
/// Ids are small and reused: a worker that retires gives its id back, and a new worker takes the
/// lowest free one, so ids always lie in `0..max_concurrent`. That makes them usable as shard
/// indexes (one file or connection string per worker), and stable in logs.
///
/// Handlers receive it as an extractor (with the default `axum` feature), and every request
/// carries it in its extensions:
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use intralb::WorkerId;
///
/// async fn who(worker: WorkerId) -> String {
///     format!("served by worker {worker}")
/// }
/// let app: axum::Router = axum::Router::new().route("/who", axum::routing::get(who));
/// # }
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(u32);

impl WorkerId {
    pub(crate) fn new(index: u32) -> Self {
        WorkerId(index)
    }

    /// The id as an index, in `0..max_concurrent`.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkerId({})", self.0)
    }
}
