//! [`Tally`]: a count of things alive (workers, connections) that can be waited on to reach
//! zero, wherever the last one ends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Counts the [`Counted`] tokens alive.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    count: AtomicUsize,
    zero: Notify,
}

impl Tally {
    /// Counts one more until the token drops.
    pub(crate) fn enter(self: &Arc<Self>) -> Counted {
        self.count.fetch_add(1, Ordering::Relaxed);
        Counted(Arc::clone(self))
    }

    pub(crate) fn get(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Resolves once the count is zero.
    pub(crate) async fn zero(&self) {
        loop {
            // Created before the check: a drop to zero in between still wakes it.
            let zero = self.zero.notified();
            if self.get() == 0 {
                return;
            }
            zero.await;
        }
    }
}

/// One thing counted in a [`Tally`], until dropped.
#[derive(Debug)]
pub(crate) struct Counted(Arc<Tally>);

impl Drop for Counted {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.zero.notify_waiters();
        }
    }
}
