//! A worker's resources: one value per initializer, each behind its own lock.

use std::any::{Any, TypeId};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::worker_id::WorkerId;

/// One initializer's value for one worker, type-erased: an `Arc<Mutex<T>>`.
///
/// A worker runs one request at a time, so the lock is never contended in correct use; it exists
/// so that `Db<T>` can own its access (`Send` even when `T` is not `Sync`, and released when the
/// handler's future is dropped, finishes or panics).
pub(crate) struct Slot(Box<dyn Any + Send + Sync>);

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

impl Slot {
    pub(crate) fn new<T: Send + 'static>(value: T) -> Self {
        Slot(Box::new(Arc::new(Mutex::new(value))))
    }
}

/// Every value a worker owns, looked up by type.
#[derive(Debug)]
pub(crate) struct Resources {
    slots: Vec<(TypeId, Slot)>,
}

impl Resources {
    pub(crate) fn new(slots: Vec<(TypeId, Slot)>) -> Self {
        Resources { slots }
    }

    /// The lock around the worker's `T`, if an initializer produces one.
    pub(crate) fn get<T: Send + 'static>(&self) -> Option<Arc<Mutex<T>>> {
        let id = TypeId::of::<T>();
        // A handful of initializers at most: a linear scan beats hashing.
        self.slots
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, slot)| slot.0.downcast_ref::<Arc<Mutex<T>>>())
            .cloned()
    }
}

/// What a request carries in its extensions while a worker runs it.
#[derive(Clone)]
pub(crate) struct WorkerContext {
    pub(crate) id: WorkerId,
    pub(crate) resources: Arc<Resources>,
}
