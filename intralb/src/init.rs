//! Initializers: the functions that give every worker its own resources (`#[db_init]`).

use std::any::{type_name, TypeId};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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

/// One per-worker resource constructor: what `#[db_init]` registers, and what
/// [`Builder::db_init`](crate::Builder::db_init) takes.
#[derive(Clone)]
pub struct Initializer {
    name: &'static str,
    type_id: TypeId,
    type_name: &'static str,
    run: Run,
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
            run: Run::Async(Arc::new(move |worker| {
                let fut = f(worker);
                Box::pin(async move { fut.await.map(Slot::new).map_err(Into::into) })
            })),
        }
    }

    /// The name it was registered under (for `#[db_init]`, the function's path).
    pub fn name(&self) -> &'static str {
        self.name
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

/// Runs every initializer for one worker, in order.
pub(crate) async fn run_all(
    inits: &[Initializer],
    worker: WorkerId,
) -> Result<Resources, InitError> {
    let mut slots = Vec::with_capacity(inits.len());
    for init in inits {
        match init.run(worker).await {
            Ok(slot) => slots.push((init.type_id, slot)),
            Err(source) => {
                return Err(InitError {
                    initializer: init.name,
                    source,
                })
            }
        }
    }
    Ok(Resources::new(slots))
}

/// Rejects two initializers producing the same type: `Db<T>` would not know which to give.
pub(crate) fn check_unique(inits: &[Initializer]) -> Result<()> {
    for (i, a) in inits.iter().enumerate() {
        if let Some(b) = inits[..i].iter().find(|b| b.type_id == a.type_id) {
            return Err(Error::new(
                ErrorKind::DuplicateInit,
                format!(
                    "two initializers return `{}`: `{}` and `{}`; `Db<{}>` needs exactly one",
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
            "two initializers return `u8`: `app::a` and `app::b`; `Db<u8>` needs exactly one"
        );
    }

    #[tokio::test]
    async fn a_panicking_initializer_is_an_error_not_a_crash() {
        let init = Initializer::sync("app::boom", |_| -> Result<u8, BoxError> {
            panic!("no disk")
        });
        let err = run_all(&[init], WorkerId::new(0)).await.unwrap_err();
        assert_eq!(err.initializer, "app::boom");
        assert_eq!(err.source.to_string(), "initializer panicked: no disk");
        let init = Initializer::asynchronous("app::boom_async", |_| async {
            if true {
                panic!("no network");
            }
            Ok::<u8, BoxError>(1)
        });
        let err = run_all(&[init], WorkerId::new(0)).await.unwrap_err();
        assert_eq!(err.source.to_string(), "initializer panicked: no network");
    }
}
