//! `Db<T>`: a handler's exclusive access to its worker's `T`.

use std::any::type_name;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use http::Extensions;
use tokio::sync::OwnedMutexGuard;

use crate::worker::Hold;

/// Exclusive access to the current worker's `T`, the value its `#[db_init]` initializer made.
///
/// A worker runs one request at a time, so a `Db<T>` never waits: the request has the value to
/// itself for as long as the `Db<T>` lives. **The worker stays busy for that long**, even past
/// the response head: a `Db<T>` moved into a streaming body, an upgrade closure or a spawned task
/// keeps its worker out of the pool (and counted against `max_concurrent`) until it is dropped,
/// so no other request ever finds the value in use. `T` need not be `Sync` (a
/// `rusqlite::Connection` works), and `Db<T>` is `Send`, so a handler may hold it across
/// `.await`.
///
/// - Blocking calls (SQLite, file I/O, CPU-heavy work) go through [`Db::blocking`], which runs
///   them on tokio's blocking threads: the runtime keeps answering, shedding and probing
///   while the database is slow.
/// - A value that is broken (a closed connection) is replaced with [`Db::discard`], or
///   automatically with `#[db_init(broken = ...)]`.
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
    /// `None` only while [`Db::blocking`] has it on another thread, or after such a call was
    /// cancelled.
    held: Option<Held<T>>,
}

/// The value, the hold that keeps its worker busy, and its position among the worker's values.
struct Held<T> {
    guard: OwnedMutexGuard<T>,
    hold: Hold,
    index: usize,
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
        let hold = extensions.get::<Hold>().ok_or(Rejection::not_balanced())?;
        let (index, slot) = hold.worker().resources.get::<T>().ok_or(Rejection {
            kind: RejectionKind::NoInitializer,
            type_name: type_name::<T>(),
        })?;
        let guard = slot.try_lock_owned().map_err(|_| Rejection {
            kind: RejectionKind::InUse,
            type_name: type_name::<T>(),
        })?;
        Ok(Db {
            held: Some(Held {
                guard,
                hold: hold.clone(),
                index,
            }),
        })
    }

    /// Runs `f` with the value on tokio's blocking threads, and waits for its result.
    ///
    /// Use it for every call that may block: a SQLite query waiting for a lock would otherwise
    /// stall one of the runtime's threads, and with them the accept loop, the probes and the
    /// shedding of other requests. The value never leaves its worker: it moves to the blocking
    /// thread with the hold on the worker and comes back when `f` returns.
    ///
    /// If the handler is cancelled meanwhile (its deadline passed: the client gets `504`), `f`
    /// still runs to its end, and the worker stays busy until it has; the value is then
    /// released. So a write in `f` may commit after its client was told `504`: make writes
    /// idempotent, or let clients check before they retry. A panic in `f` is the handler's:
    /// `500`, and the worker's values are replaced.
    ///
    /// An associated function (`Db::blocking(&mut db, ...)`), so it never hides a method of `T`.
    ///
    /// # Panics
    ///
    /// Using the `Db<T>` again after a `Db::blocking` future was dropped before it finished
    /// (say, inside a `select!` whose other branch won) panics: the value is still on the
    /// blocking thread.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[cfg(feature = "axum")] {
    /// use intralb::Db;
    /// use rusqlite::Connection;
    ///
    /// async fn count(mut db: Db<Connection>) -> String {
    ///     let n = Db::blocking(&mut db, |conn| {
    ///         conn.query_row("SELECT count(*) FROM notes", [], |row| row.get::<_, i64>(0))
    ///     })
    ///     .await;
    ///     match n {
    ///         Ok(n) => n.to_string(),
    ///         Err(error) => format!("database error: {error}"),
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn blocking<F, R>(db: &mut Db<T>, f: F) -> R
    where
        F: FnOnce(&mut T) -> R + Send + 'static,
        R: Send + 'static,
    {
        let mut held = db.held.take().expect(IN_FLIGHT);
        let call = tokio::task::spawn_blocking(move || {
            let result = catch_unwind(AssertUnwindSafe(|| f(&mut held.guard)));
            if result.is_err() {
                // Before the hold drops: the worker must not be given back as it is.
                held.hold.worker().poison();
            }
            (held, result)
        });
        match call.await {
            Ok((held, Ok(value))) => {
                db.held = Some(held);
                value
            }
            Ok((held, Err(panic))) => {
                drop(held);
                resume_unwind(panic)
            }
            // Only when the runtime shuts down before the call started; the value was dropped.
            Err(join) if join.is_panic() => resume_unwind(join.into_panic()),
            Err(_) => panic!("the runtime shut down before `Db::blocking` could run"),
        }
    }

    /// Drops this `Db<T>` and has the worker's `T` replaced: once the worker is given back, the
    /// value is dropped off the request path and its initializer runs again (with backoff if it
    /// fails) before the worker serves again. The worker's other values are kept.
    ///
    /// Call it when the value is broken in a way that a `broken` check does not see, for
    /// example after an error that leaves a connection in an unknown state.
    ///
    /// An associated function (`Db::discard(db)`), so it never hides a method of `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "axum")] {
    /// use intralb::Db;
    ///
    /// struct Upstream { healthy: bool }
    ///
    /// async fn call(upstream: Db<Upstream>) -> &'static str {
    ///     if !upstream.healthy {
    ///         Db::discard(upstream);
    ///         return "upstream lost; this worker reconnects";
    ///     }
    ///     "ok"
    /// }
    /// # }
    /// ```
    pub fn discard(db: Db<T>) {
        if let Some(held) = &db.held {
            held.hold.worker().replace(held.index);
        }
    }
}

const IN_FLIGHT: &str =
    "`Db<T>` used after a `Db::blocking` call on it was cancelled: the value is still on the blocking thread";

impl<T> Deref for Db<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.held.as_ref().expect(IN_FLIGHT).guard
    }
}

impl<T> DerefMut for Db<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.held.as_mut().expect(IN_FLIGHT).guard
    }
}

impl<T: fmt::Debug> fmt::Debug for Db<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.held {
            Some(held) => f.debug_tuple("Db").field(&*held.guard).finish(),
            None => f.write_str("Db(<on a blocking thread>)"),
        }
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
                "`Db<{t}>` is already held by this request: take it once per request"
            ),
        }
    }
}

impl std::error::Error for Rejection {}
