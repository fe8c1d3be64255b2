//! Shared by the runtime's integration tests: a server on 127.0.0.1:0 and a real HTTP client.
#![allow(dead_code, unreachable_pub)]

mod client;
pub mod postgres;
pub use client::*;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use intralb::{Builder, RouterService, Server, Stats};
use tokio::sync::{oneshot, Semaphore};

/// A running balancer and the switch that shuts it down.
pub struct TestServer {
    pub server: Server,
    stop: oneshot::Sender<()>,
}

impl TestServer {
    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn stats(&self) -> Stats {
        self.server.stats()
    }

    /// Waits (polling the stats, bounded) until `cond` holds; panics with the last stats if not.
    pub async fn wait_for(&self, what: &str, cond: impl Fn(&Stats) -> bool) -> Stats {
        wait_for_stats(&self.server, what, cond).await
    }

    /// Starts the drain and waits until it is over.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.server.wait().await.expect("server shuts down cleanly");
    }

    /// Starts the drain without waiting; returns the server to wait on later.
    pub fn begin_shutdown(self) -> Server {
        let _ = self.stop.send(());
        self.server
    }
}

pub async fn wait_for_stats(server: &Server, what: &str, cond: impl Fn(&Stats) -> bool) -> Stats {
    // Polls a condition the server reports; a bounded wait, not a sleep the test relies on.
    for _ in 0..2000 {
        let stats = server.stats();
        if cond(&stats) {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}; stats: {:#?}", server.stats());
}

pub async fn start<S: RouterService>(builder: Builder, router: S) -> TestServer {
    try_start(builder, router).await.expect("server starts")
}

pub async fn try_start<S: RouterService>(
    builder: Builder,
    router: S,
) -> intralb::Result<TestServer> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = builder
        .spawn(listener, router, async {
            let _ = stopped.await;
        })
        .await?;
    Ok(TestServer { server, stop })
}

/// Handlers park here until the test opens it; the test sees them parked through the stats.
#[derive(Clone)]
pub struct Gate(Arc<Semaphore>);

impl Gate {
    pub fn new() -> Self {
        Gate(Arc::new(Semaphore::new(0)))
    }

    pub async fn pass(&self) {
        self.0.acquire().await.expect("gate open").forget();
    }

    pub fn open(&self, n: usize) {
        self.0.add_permits(n);
    }
}
