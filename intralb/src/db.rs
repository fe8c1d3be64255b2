//! `Db<T>`: a handler's exclusive access to its worker's `T`.

use std::any::type_name;
use std::fmt;
use std::ops::{Deref, DerefMut};

use http::Extensions;
use tokio::sync::OwnedMutexGuard;

use crate::resources::WorkerContext;

/// Exclusive access to the current worker's `T`, the value its `#[db_init]` initializer made.
///
/// A worker runs one request at a time, so a `Db<T>` never waits: the request has the value to
/// itself until the `Db<T>` is dropped (at the latest when the handler's future finishes, is
/// cancelled by its deadline, or panics). `T` need not be `Sync` (a `rusqlite::Connection`
/// works), and `Db<T>` is `Send`, so a handler may hold it across `.await`.
///
/// With the default `axum` feature it is an extractor. Other tower services get it from the
/// request with [`Db::from_extensions`].
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use intralb::Db;
///
/// struct Counter(u64);
///
/// async fn hit(mut counter: Db<Counter>) -> String {
///     counter.0 += 1;
///     format!("this worker has served {} hits", counter.0)
/// }
/// let app: axum::Router = axum::Router::new().route("/hits", axum::routing::get(hit));
/// # }
/// ```
pub struct Db<T> {
    guard: OwnedMutexGuard<T>,
}

impl<T: Send + 'static> Db<T> {
    /// Takes the current worker's `T` from a request's extensions (for services that are not
    /// axum handlers).
    ///
    /// # Errors
    ///
    /// The request is not running on an intralb worker, no initializer produces a `T`, or this
    /// request already holds the worker's `T`.
    pub fn from_extensions(extensions: &Extensions) -> Result<Self, Rejection> {
        let context = extensions
            .get::<WorkerContext>()
            .ok_or(Rejection::not_balanced())?;
        let slot = context.resources.get::<T>().ok_or(Rejection {
            kind: RejectionKind::NoInitializer,
            type_name: type_name::<T>(),
        })?;
        let guard = slot.try_lock_owned().map_err(|_| Rejection {
            kind: RejectionKind::InUse,
            type_name: type_name::<T>(),
        })?;
        Ok(Db { guard })
    }
}

impl<T> Deref for Db<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for Db<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T: fmt::Debug> fmt::Debug for Db<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Db").field(&*self.guard).finish()
    }
}

/// Why a `Db<T>` (or a `WorkerId`) could not be extracted. Answered `500`, and logged.
#[derive(Debug, Clone)]
pub struct Rejection {
    kind: RejectionKind,
    type_name: &'static str,
}

#[derive(Debug, Clone, Copy)]
enum RejectionKind {
    NotBalanced,
    NoInitializer,
    InUse,
}

impl Rejection {
    pub(crate) fn not_balanced() -> Self {
        Rejection {
            kind: RejectionKind::NotBalanced,
            type_name: "",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.type_name;
        match self.kind {
            RejectionKind::NotBalanced => {
                f.write_str("this request is not running on an intralb worker (is the router served by intralb?)")
            }
            RejectionKind::NoInitializer => write!(
                f,
                "no #[db_init] initializer returns `{t}`, so there is no `Db<{t}>`: \
                 add one, or register it with `Builder::db_init`"
            ),
            RejectionKind::InUse => write!(
                f,
                "`Db<{t}>` is already held: take it once per request, and do not keep it \
                 after the response (for example in a spawned task)"
            ),
        }
    }
}

impl std::error::Error for Rejection {}
