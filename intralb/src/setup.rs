//! Setup: what runs once per process before the first worker starts (`#[setup]`,
//! [`Builder::setup`](crate::Builder::setup)), such as a schema migration.
//!
//! Initializers run once per worker, and workers start concurrently: a migration there runs
//! several times at once. A setup runs once, before any initializer, and its failure stops the
//! start with an error naming it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::catch_unwind::{panic_message, CatchUnwind};
use crate::error::{BoxError, Error, ErrorKind, Result};

type Run = dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>> + Send + Sync;

/// One setup step: a name (for its error) and the future it runs. Not public API: what
/// `#[setup]` registers, and what [`Builder::setup`](crate::Builder::setup) makes.
#[derive(Clone)]
pub struct Setup {
    name: &'static str,
    run: Arc<Run>,
}

impl fmt::Debug for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Setup").field(&self.name).finish()
    }
}

impl Setup {
    /// An `async` step.
    pub fn new<F, Fut, E>(name: &'static str, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        Setup {
            name,
            run: Arc::new(move || {
                let fut = f();
                Box::pin(async move { fut.await.map_err(Into::into) })
            }),
        }
    }

    /// A blocking step: it runs on tokio's blocking thread pool.
    pub fn blocking<F, E>(name: &'static str, f: F) -> Self
    where
        F: Fn() -> std::result::Result<(), E> + Send + Sync + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let f = Arc::new(f);
        Setup::new(name, move || {
            let f = Arc::clone(&f);
            async move {
                match tokio::task::spawn_blocking(move || f().map_err(Into::into)).await {
                    Ok(result) => result,
                    // A panic: re-raised, so that `run_all` reports it as one.
                    Err(join) => std::panic::resume_unwind(join.into_panic()),
                }
            }
        })
    }
}

/// Runs every step in order, each to its end before the next; the first failure (or panic)
/// is the error.
pub(crate) async fn run_all(setups: &[Setup]) -> Result<()> {
    for setup in setups {
        let failed = |message: String, source: Option<BoxError>| {
            let error = Error::new(
                ErrorKind::Setup,
                format!("setup `{}` failed: {message}", setup.name),
            );
            match source {
                Some(source) => error.with_source(source),
                None => error,
            }
        };
        match CatchUnwind::new((setup.run)()).await {
            Ok(Ok(())) => tracing::debug!(setup = setup.name, "setup done"),
            Ok(Err(source)) => return Err(failed(source.to_string(), Some(source))),
            Err(panic) => {
                return Err(failed(
                    format!("it panicked: {}", panic_message(&*panic)),
                    None,
                ))
            }
        }
    }
    Ok(())
}

/// What `#[setup]` registers (through `inventory`). Not public API.
#[derive(Debug)]
pub struct RegisteredSetup {
    make: fn() -> Setup,
}

impl RegisteredSetup {
    /// Used by `#[setup]`'s expansion.
    pub const fn new(make: fn() -> Setup) -> Self {
        RegisteredSetup { make }
    }
}

inventory::collect!(RegisteredSetup);

/// Every setup declared with `#[setup]` in the program, in a stable order (by path).
pub(crate) fn registered() -> Vec<Setup> {
    let mut setups: Vec<Setup> = inventory::iter::<RegisteredSetup>
        .into_iter()
        .map(|r| (r.make)())
        .collect();
    setups.sort_by_key(|s| s.name);
    setups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn setups_run_in_order_and_the_first_failure_names_its_step() {
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let step = |name: &'static str, fail: bool| {
            let order = Arc::clone(&order);
            Setup::new(name, move || {
                let order = Arc::clone(&order);
                async move {
                    order.lock().unwrap().push(name);
                    if fail {
                        Err("no database")
                    } else {
                        Ok(())
                    }
                }
            })
        };
        let error = run_all(&[step("a", false), step("b", true), step("c", false)])
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Setup);
        assert_eq!(error.to_string(), "setup `b` failed: no database");
        assert_eq!(*order.lock().unwrap(), ["a", "b"]);
    }

    #[tokio::test]
    async fn a_panicking_setup_is_an_error() {
        let panics = Setup::new("boom", || async {
            if true {
                panic!("migration 3 is broken");
            }
            Ok::<(), BoxError>(())
        });
        let error = run_all(&[panics]).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "setup `boom` failed: it panicked: migration 3 is broken"
        );
    }
}
