//! What the macros' expansions name. Not public API: no stability promises.

use std::future::Future;
use std::net::SocketAddr;

pub use inventory;

pub use crate::builder::Builder;
pub use crate::init::{ok, DbInit, Initializer};
pub use crate::setup::{RegisteredSetup, Setup};
pub use crate::worker_id::WorkerId;

use crate::router::RouterService;

/// An address `#[balanced]` already checked at compile time.
pub fn socket_addr(addr: &'static str) -> SocketAddr {
    addr.parse()
        .unwrap_or_else(|_| panic!("`{addr}` was checked by #[balanced] to be a socket address"))
}

/// The body of the `serve` function `#[balanced]` generates; `builder` is the generated
/// `<router>_builder()`, initializers included.
pub async fn serve<S, Fut>(builder: Builder, router: Fut) -> crate::Result<()>
where
    S: RouterService,
    Fut: Future<Output = S>,
{
    builder.apply_env()?.serve_with(router).await
}

/// The dispatch path alone, for the criterion benchmarks (`benches/`): no HTTP, no router.
#[cfg(feature = "bench-internals")]
pub mod bench {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::config;

    /// A pool of `workers` workers (all started) with a queue of `queue`.
    pub struct Pool(Arc<crate::pool::Pool>);

    /// A leased worker; dropping it gives the worker back.
    pub struct Lease(#[allow(dead_code)] crate::worker::Hold);

    impl Pool {
        /// Starts the pool (no initializers). Needs a tokio runtime.
        pub async fn new(workers: usize, queue: usize) -> Pool {
            let config = config::Pool {
                max_concurrent: workers,
                min_workers: Some(workers),
                queue,
                ..config::Pool::default()
            };
            Pool(
                crate::pool::Pool::start(&config, Vec::new())
                    .await
                    .expect("no initializers to fail"),
            )
        }

        /// Leases a worker, waiting in the queue if needed; `None` if shed.
        pub async fn lease(&self) -> Option<Lease> {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
            self.0
                .acquire(
                    crate::Priority::Normal,
                    tokio::time::Instant::now(),
                    deadline,
                )
                .await
                .ok()
                .map(Lease)
        }
    }
}
