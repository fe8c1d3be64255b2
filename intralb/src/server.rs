//! [`Server`]: a running balancer started with [`Builder::spawn`](crate::Builder::spawn).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::error::{Error, ErrorKind, Result};
use crate::pool::Pool;
use crate::stats::Stats;

/// A running balancer: its address, its [`Stats`], and a way to wait for its shutdown.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    pool: Arc<Pool>,
    task: JoinHandle<()>,
}

impl Server {
    pub(crate) fn new(local_addr: SocketAddr, pool: Arc<Pool>, task: JoinHandle<()>) -> Self {
        Server {
            local_addr,
            pool,
            task,
        }
    }

    /// The address it listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A snapshot of workers, queue, counters and latencies.
    pub fn stats(&self) -> Stats {
        self.pool.stats()
    }

    /// Waits until the shutdown future has resolved and the drain is over (every worker's
    /// resources dropped).
    ///
    /// # Errors
    ///
    /// Only if the server task itself panicked, which is a bug in intralb.
    pub async fn wait(self) -> Result<()> {
        self.task.await.map_err(|join| {
            Error::new(
                ErrorKind::Io,
                "the server task failed; this is a bug in intralb",
            )
            .with_source(join)
        })
    }
}
