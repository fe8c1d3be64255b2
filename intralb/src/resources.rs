//! A worker's resources: one value per initializer, each behind its own lock.

use std::any::{Any, TypeId};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::catch_unwind::panic_message;

/// One initializer's value for one worker, type-erased: an `Arc<Mutex<T>>`.
///
/// A worker runs one request at a time, so the lock is never contended in correct use; it exists
/// so that `Db<T>` can own its access (`Send` even when `T` is not `Sync`, and released when the
/// `Db<T>` drops: with the handler's future, or later if it was moved into a body or a task). Cloning a slot shares the value: a worker
/// whose other resources are replaced keeps this one.
#[derive(Clone)]
pub(crate) struct Slot(Arc<dyn Any + Send + Sync>);

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

impl Slot {
    pub(crate) fn new<T: Send + 'static>(value: T) -> Self {
        Slot(Arc::new(Mutex::new(value)))
    }

    /// The lock around the value, if it is a `T`.
    pub(crate) fn downcast<T: Send + 'static>(&self) -> Option<Arc<Mutex<T>>> {
        Arc::clone(&self.0).downcast::<Mutex<T>>().ok()
    }

    /// The lock around the value, borrowed, if it is a `T`.
    pub(crate) fn downcast_ref<T: Send + 'static>(&self) -> Option<&Mutex<T>> {
        self.0.downcast_ref::<Mutex<T>>()
    }
}

/// Every value a worker owns, looked up by type, in the initializers' order.
#[derive(Debug)]
pub(crate) struct Resources {
    slots: Vec<(TypeId, Slot)>,
}

impl Resources {
    pub(crate) fn new(slots: Vec<(TypeId, Slot)>) -> Self {
        Resources { slots }
    }

    /// The position of the worker's `T` and the lock around it, if an initializer produces one.
    pub(crate) fn get<T: Send + 'static>(&self) -> Option<(usize, Arc<Mutex<T>>)> {
        let id = TypeId::of::<T>();
        // A handful of initializers at most: a linear scan beats hashing.
        let index = self.slots.iter().position(|(t, _)| *t == id)?;
        self.slots[index]
            .1
            .downcast::<T>()
            .map(|slot| (index, slot))
    }

    pub(crate) fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().map(|(_, slot)| slot)
    }
}

impl Drop for Resources {
    /// Drops the values one by one, so that a panicking `Drop` costs only its own value: two
    /// panics in one unwinding would abort the process.
    fn drop(&mut self) {
        for (_, slot) in self.slots.drain(..) {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| drop(slot))) {
                tracing::error!(
                    panic = panic_message(&*panic),
                    "a worker resource panicked while being dropped"
                );
            }
        }
    }
}
