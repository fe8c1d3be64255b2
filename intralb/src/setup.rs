//! Setup: what runs once per process before the first worker starts (`#[setup]`,
//! [`Builder::setup`](crate::Builder::setup)), such as a schema migration.
//!
//! Initializers run once per worker, and workers start concurrently: a migration there runs
//! several times at once. A setup runs before any initializer, and its failure stops the start
//! with an error naming it. One declared with `#[setup]` runs once per process, however many
//! servers start (two `#[balanced]` routers, a test starting the app again): the first start
//! runs it, the others wait for it, and after a failure the next start tries again. One given
//! to [`Builder::setup`](crate::Builder::setup) runs at each start of that builder.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::catch_unwind::{panic_message, CatchUnwind};
use crate::error::{BoxError, Error, ErrorKind, Result};

type Run = dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>> + Send + Sync;

/// One setup step: a name (for its error) and the future it runs. Not public API: what
/// `#[setup]` registers, and what [`Builder::setup`](crate::Builder::setup) makes.
#[derive(Clone)]
pub struct Setup {
    name: &'static str,
    run: Arc<Run>,
    /// For a registered setup: done once per process.
    once: Option<Arc<OnceCell<()>>>,
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
            once: None,
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

/// Runs every step in order, each to its end before the next (a registered one only if no start
/// of this process has run it yet); the first failure (or panic) is the error.
pub(crate) async fn run_all(setups: &[Setup]) -> Result<()> {
    for setup in setups {
        let run = || async {
            match CatchUnwind::new((setup.run)()).await {
                Ok(Ok(())) => {
                    tracing::debug!(setup = setup.name, "setup done");
                    Ok(())
                }
                Ok(Err(source)) => Err(Error::new(
                    ErrorKind::Setup,
                    format!("setup `{}` failed: {source}", setup.name),
                )
                .with_source(source)),
                Err(panic) => Err(Error::new(
                    ErrorKind::Setup,
                    format!(
                        "setup `{}` failed: it panicked: {}",
                        setup.name,
                        panic_message(&*panic)
                    ),
                )),
            }
        };
        match &setup.once {
            Some(once) => once.get_or_try_init(run).await.map(|_| ())?,
            None => run().await?,
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

/// Whether each registered setup has run in this process, by its path (unique: a function's).
static DONE: Mutex<BTreeMap<&'static str, Arc<OnceCell<()>>>> = Mutex::new(BTreeMap::new());

inventory::collect!(RegisteredSetup);

/// Every setup declared with `#[setup]` in the program, in a stable order (by path), each to
/// run once per process.
pub(crate) fn registered() -> Vec<Setup> {
    let mut setups: Vec<Setup> = inventory::iter::<RegisteredSetup>
        .into_iter()
        .map(|r| {
            let setup = (r.make)();
            let mut done = DONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let once = Arc::clone(done.entry(setup.name).or_default());
            Setup {
                once: Some(once),
                ..setup
            }
        })
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
