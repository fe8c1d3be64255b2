//! A worker, and the holds that keep it busy.
//!
//! A worker is leased to one request at a time. The lease is a [`Hold`]; every `Db<T>` taken
//! from the worker, and the request's extensions, hold it too (a `Hold` clones). The worker goes
//! back to the pool when the *last* hold drops: after the response head is ready *and* every
//! `Db<T>` is gone, wherever it went (a streaming body, an upgrade closure, a spawned task). So a
//! worker is never leased while something can still reach its resources, and work that keeps
//! them counts against `max_concurrent`.

use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use tokio::sync::watch;
use tokio::time::Instant;

use crate::resources::Resources;
use crate::tally::{Counted, Tally};
use crate::worker_id::WorkerId;

/// Where a worker goes back to when its last hold drops: the pool, which implements this (so
/// that this file does not depend on it).
pub(crate) trait Home: Send + Sync {
    /// The last hold on `worker` dropped at `now`.
    fn give_back(self: Arc<Self>, worker: Arc<Worker>, now: Instant);
    /// Becomes `true` when a drain begins.
    fn draining(&self) -> watch::Receiver<bool>;
}

/// Replace every resource of the worker (its request panicked, or a resource past bit 62 asked).
pub(crate) const REPLACE_ALL: u64 = 1 << 63;

/// One worker: its id, its resources, and who holds it.
#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) id: WorkerId,
    pub(crate) resources: Resources,
    /// Holds alive while leased; 0 while idle.
    holds: AtomicUsize,
    /// Resources to replace when the worker is given back: bit `i` for the `i`-th initializer's
    /// value, [`REPLACE_ALL`] for all of them.
    replace: AtomicU64,
    home: Weak<dyn Home>,
    /// Last, so it counts the worker as gone only once its resources are dropped.
    _alive: Counted,
}

impl Worker {
    pub(crate) fn new(
        id: WorkerId,
        resources: Resources,
        home: Weak<dyn Home>,
        live: &Arc<Tally>,
    ) -> Arc<Worker> {
        Arc::new(Worker {
            id,
            resources,
            holds: AtomicUsize::new(0),
            replace: AtomicU64::new(0),
            home,
            _alive: live.enter(),
        })
    }

    /// Asks for the `index`-th resource to be replaced when the worker is given back.
    pub(crate) fn replace(&self, index: usize) {
        let bit = if index < 63 { 1 << index } else { REPLACE_ALL };
        self.replace.fetch_or(bit, Ordering::Relaxed);
    }

    /// The request panicked: its resources may be mid-operation, so all are replaced.
    pub(crate) fn poison(&self) {
        self.replace.fetch_or(REPLACE_ALL, Ordering::Relaxed);
    }

    /// The resources to replace, and forgets them (the worker is being given back).
    pub(crate) fn take_replacements(&self) -> u64 {
        self.replace.swap(0, Ordering::Relaxed)
    }

    /// The pool this worker belongs to, unless it was dropped.
    pub(crate) fn home(&self) -> Option<Arc<dyn Home>> {
        self.home.upgrade()
    }
}

/// Keeps a leased worker busy; the last one dropped gives the worker back.
///
/// Cloning takes another hold on the same worker (one atomic increment, like `Arc`).
#[derive(Debug)]
pub(crate) struct Hold(Option<Arc<Worker>>);

impl Hold {
    /// The first hold on an idle worker: its lease.
    pub(crate) fn lease(worker: Arc<Worker>) -> Hold {
        debug_assert_eq!(worker.holds.load(Ordering::Relaxed), 0, "leased twice");
        worker.holds.store(1, Ordering::Relaxed);
        Hold(Some(worker))
    }

    pub(crate) fn worker(&self) -> &Worker {
        self.0.as_ref().expect("present until dropped")
    }

    pub(crate) fn id(&self) -> WorkerId {
        self.worker().id
    }

    /// Drops this hold; if it is the last, the worker is idle from `now` (saves a clock read).
    pub(crate) fn release_at(mut self, now: Instant) {
        self.drop_at(|| now);
    }

    /// Drops this hold; if it is the last, the worker is idle from `now()`, read only then.
    fn drop_at(&mut self, now: impl FnOnce() -> Instant) {
        let Some(worker) = self.0.take() else { return };
        // As `Arc`'s drop: the decrement releases this hold's writes (replacements), and the
        // last one acquires every other hold's.
        if worker.holds.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        match worker.home() {
            Some(home) => home.give_back(worker, now()),
            None => drop(worker),
        }
    }
}

impl Clone for Hold {
    fn clone(&self) -> Self {
        let worker = self.0.as_ref().expect("present until dropped");
        worker.holds.fetch_add(1, Ordering::Relaxed);
        Hold(Some(Arc::clone(worker)))
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.0.is_some() {
            self.drop_at(Instant::now);
        }
    }
}
