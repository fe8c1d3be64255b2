//! What the macros' expansions name. Not public API: no stability promises.

use std::future::Future;
use std::net::SocketAddr;

pub use inventory;

pub use crate::builder::Builder;
pub use crate::init::{ok, DbInit, Initializer};
pub use crate::worker_id::WorkerId;

use crate::router::RouterService;

/// An address `#[balanced]` already checked at compile time.
pub fn socket_addr(addr: &'static str) -> SocketAddr {
    addr.parse()
        .unwrap_or_else(|_| panic!("`{addr}` was checked by #[balanced] to be a socket address"))
}

/// The body of the `serve` function `#[balanced]` generates.
pub async fn serve<S, Fut>(builder: Builder, router: Fut) -> crate::Result<()>
where
    S: RouterService,
    Fut: Future<Output = S>,
{
    builder
        .with_registered_inits()
        .apply_env()?
        .serve_with(router)
        .await
}
