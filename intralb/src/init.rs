//! Initializers: the functions that give every worker its own resources (`#[db_init]`).

use std::any::{type_name, TypeId};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::catch_unwind::{panic_message, CatchUnwind};
use crate::error::{BoxError, Error, ErrorKind, Result};
use crate::resources::{Resources, Slot};
use crate::worker_id::WorkerId;

type SyncInit = dyn Fn(WorkerId) -> Result<Slot, BoxError> + Send + Sync;
type AsyncInit =
    dyn Fn(WorkerId) -> Pin<Box<dyn Future<Output = Result<Slot, BoxError>> + Send>> + Send + Sync;

#[derive(Clone)]
enum Run {
    /// Runs on tokio's blocking pool: opening a database is blocking I/O.
    Sync(Arc<SyncInit>),
    Async(Arc<AsyncInit>),
}

/// Whether a worker's value is broken, type-erased.
#[derive(Clone)]
struct BrokenCheck {
    type_id: TypeId,
    type_name: &'static str,
    check: Arc<dyn Fn(&Slot) -> bool + Send + Sync>,
}

/// One per-worker resource constructor: what `#[db_init]` registers, and what
/// [`Builder::db_init`](crate::Builder::db_init) takes.
///
/// # Examples
///
/// A PostgreSQL client per worker, replaced when its connection dies:
///
/// ```ignore
/// use intralb::{Balancer, Initializer, WorkerId};
///
/// async fn connect(_worker: WorkerId) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
///     let (client, connection) = tokio_postgres::connect(URL, tokio_postgres::NoTls).await?;
///     tokio::spawn(connection);
///     Ok(client)
/// }
///
/// let builder = Balancer::builder().initializer(
///     Initializer::asynchronous("connect", connect).broken(tokio_postgres::Client::is_closed),
/// );
/// ```
#[derive(Clone)]
pub struct Initializer {
    name: &'static str,
    type_id: TypeId,
    type_name: &'static str,
    run: Run,
    broken: Option<BrokenCheck>,
}

impl std::fmt::Debug for Initializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initializer")
            .field("name", &self.name)
            .field("type", &self.type_name)
            .finish()
    }
}

/// An initializer failed (or panicked) for one worker.
#[derive(Debug)]
pub(crate) struct InitError {
    pub(crate) initializer: &'static str,
    pub(crate) source: BoxError,
}

impl InitError {
    pub(crate) fn into_error(self, worker: WorkerId) -> Error {
        Error::new(
            ErrorKind::Init,
            format!(
                "initializer `{}` failed for worker {worker}: {}",
                self.initializer, self.source
            ),
        )
        .with_source(self.source)
    }
}

impl Initializer {
    /// A blocking initializer; it runs on tokio's blocking thread pool.
    pub fn sync<F, T, E>(name: &'static str, f: F) -> Self
    where
        F: Fn(WorkerId) -> Result<T, E> + Send + Sync + 'static,
        T: Send + 'static,
        E: Into<BoxError>,
    {
        Initializer {
            name,
            type_id: TypeId::of::<T>(),
            type_name: type_name::<T>(),
            broken: None,
            run: Run::Sync(Arc::new(move |worker| {
                f(worker).map(Slot::new).map_err(Into::into)
            })),
        }
    }

    /// An `async` initializer; it runs on the runtime, off the request path.
    pub fn asynchronous<F, Fut, T, E>(name: &'static str, f: F) -> Self
    where
        F: Fn(WorkerId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<BoxError>,
    {
        Initializer {
            name,
            type_id: TypeId::of::<T>(),
            type_name: type_name::<T>(),
            broken: None,
            run: Run::Async(Arc::new(move |worker| {
                let fut = f(worker);
                Box::pin(async move { fut.await.map(Slot::new).map_err(Into::into) })
            })),
        }
    }

    /// Replaces the value when `check` says it is broken.
    ///
    /// `check` runs each time a worker is given back (after its request, once every `Db<T>`
    /// is dropped); when it returns `true` the value is dropped off the request path and the
    /// initializer runs again, with backoff, before the worker serves again. It must be cheap
    /// and must not block: a flag such as `tokio_postgres::Client::is_closed`. A panic in it
    /// counts as `true`. A handler can say the same with [`Db::discard`](crate::Db::discard).
    ///
    /// `T` must be the type the initializer returns; starting the balancer fails otherwise.
    pub fn broken<T, F>(mut self, check: F) -> Self
    where
        T: Send + 'static,
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        self.broken = Some(BrokenCheck {
            type_id: TypeId::of::<T>(),
            type_name: type_name::<T>(),
            check: Arc::new(move |slot: &Slot| {
                // Every hold is gone when this runs, so the lock is free.
                let Some(lock) = slot.downcast_ref::<T>() else {
                    return false;
                };
                lock.try_lock().is_ok_and(|value| check(&value))
            }),
        });
        self
    }

    /// The name it was registered under (for `#[db_init]`, the function's path).
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn checks_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// Whether this initializer's value in `slot` is broken (`false` without a check).
    pub(crate) fn is_broken(&self, slot: &Slot) -> bool {
        let Some(broken) = &self.broken else {
            return false;
        };
        catch_unwind(AssertUnwindSafe(|| (broken.check)(slot))).unwrap_or_else(|panic| {
            tracing::error!(
                initializer = self.name,
                panic = panic_message(&*panic),
                "the `broken` check panicked; replacing the value"
            );
            true
        })
    }

    async fn run(&self, worker: WorkerId) -> Result<Slot, BoxError> {
        let outcome = match &self.run {
            Run::Sync(f) => {
                let f = Arc::clone(f);
                match tokio::task::spawn_blocking(move || f(worker)).await {
                    Ok(result) => Ok(result),
                    Err(join) if join.is_panic() => Err(join.into_panic()),
                    Err(join) => return Err(join.into()),
                }
            }
            Run::Async(f) => CatchUnwind::new(f(worker)).await,
        };
        outcome.unwrap_or_else(|panic| {
            Err(format!("initializer panicked: {}", panic_message(&*panic)).into())
        })
    }
}

/// Runs, in order, the initializers whose value is missing from `slots` (one entry per
/// initializer), and returns the worker's resources once none is missing. On an error the
/// values made so far stay in `slots`, so a retry runs only what is still missing.
pub(crate) async fn fill(
    inits: &[Initializer],
    worker: WorkerId,
    slots: &mut [Option<Slot>],
) -> Result<Resources, InitError> {
    debug_assert_eq!(inits.len(), slots.len());
    for (init, slot) in inits.iter().zip(slots.iter_mut()) {
        if slot.is_none() {
            let value = init.run(worker).await.map_err(|source| InitError {
                initializer: init.name,
                source,
            })?;
            *slot = Some(value);
        }
    }
    let resources = inits
        .iter()
        .zip(slots.iter_mut())
        .map(|(init, slot)| (init.type_id, slot.take().expect("filled above")))
        .collect();
    Ok(Resources::new(resources))
}

/// Rejects two initializers producing the same type (`Db<T>` would not know which to give),
/// and a `broken` check for another type than its initializer's.
pub(crate) fn check_unique(inits: &[Initializer]) -> Result<()> {
    for init in inits {
        if let Some(broken) = init.broken.as_ref().filter(|b| b.type_id != init.type_id) {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "the `broken` check of initializer `{}` takes `&{}`, but the initializer \
                     returns `{}`: give it a `fn(&{}) -> bool`",
                    init.name, broken.type_name, init.type_name, init.type_name
                ),
            ));
        }
    }
    for (i, a) in inits.iter().enumerate() {
        if let Some(b) = inits[..i].iter().find(|b| b.type_id == a.type_id) {
            return Err(Error::new(
                ErrorKind::DuplicateInit,
                format!(
                    "two initializers return `{}`: `{}` and `{}`; `Db<{}>` needs exactly one: \
                     wrap one in a newtype (`struct Replica(Connection);`) and ask for `Db<Replica>`",
                    a.type_name, b.name, a.name, a.type_name
                ),
            ));
        }
    }
    Ok(())
}

/// What `#[db_init]` submits to the registry: a constructor for its [`Initializer`].
#[doc(hidden)]
pub struct DbInit {
    make: fn() -> Initializer,
}

impl DbInit {
    /// Used by `#[db_init]`'s expansion.
    pub const fn new(make: fn() -> Initializer) -> Self {
        DbInit { make }
    }
}

inventory::collect!(DbInit);

/// Every initializer declared with `#[db_init]` in the program, in a stable order.
pub(crate) fn registered() -> Vec<Initializer> {
    let mut inits: Vec<Initializer> = inventory::iter::<DbInit>
        .into_iter()
        .map(|d| (d.make)())
        .collect();
    inits.sort_by_key(|i| i.name);
    inits
}

#[doc(hidden)]
/// Wraps an infallible initializer's value (used by `#[db_init]`'s expansion).
pub fn ok<T>(value: T) -> Result<T, std::convert::Infallible> {
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_types_are_named_in_the_error() {
        let a = Initializer::sync("app::a", |_| Ok::<u8, BoxError>(1));
        let b = Initializer::sync("app::b", |_| Ok::<u8, BoxError>(2));
        let err = check_unique(&[a, b]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "two initializers return `u8`: `app::a` and `app::b`; `Db<u8>` needs exactly one: \
             wrap one in a newtype (`struct Replica(Connection);`) and ask for `Db<Replica>`"
        );
    }

    #[tokio::test]
    async fn a_panicking_initializer_is_an_error_not_a_crash() {
        let init = Initializer::sync("app::boom", |_| -> Result<u8, BoxError> {
            panic!("no disk")
        });
        let err = fill(&[init], WorkerId::new(0), &mut [None])
            .await
            .unwrap_err();
        assert_eq!(err.initializer, "app::boom");
        assert_eq!(err.source.to_string(), "initializer panicked: no disk");
        let init = Initializer::asynchronous("app::boom_async", |_| async {
            if true {
                panic!("no network");
            }
            Ok::<u8, BoxError>(1)
        });
        let err = fill(&[init], WorkerId::new(0), &mut [None])
            .await
            .unwrap_err();
        assert_eq!(err.source.to_string(), "initializer panicked: no network");
    }
}
