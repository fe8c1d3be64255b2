//! A balancer on `127.0.0.1:0`, stopped when the test says, and the means to wait for what it
//! reports.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use intralb::{Builder, RouterService, Server, Stats};
use tokio::sync::{oneshot, Semaphore};

/// A running balancer and the switch that shuts it down.
pub struct TestServer {
    /// The server itself, for what the helpers here do not cover.
    pub server: Server,
    stop: oneshot::Sender<()>,
}

impl TestServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Its stats now.
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

/// Waits until `cond` holds for `server`'s stats, and returns them; panics naming `what`, with
/// the last stats, after about 10 s.
///
/// It polls a condition the server reports: a bounded wait, not a sleep the test relies on.
pub async fn wait_for_stats(server: &Server, what: &str, cond: impl Fn(&Stats) -> bool) -> Stats {
    for _ in 0..2000 {
        let stats = server.stats();
        if cond(&stats) {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}; stats: {:#?}", server.stats());
}

/// Serves `router` on `127.0.0.1:0` with `builder`'s settings; panics if it does not start.
pub async fn start<S: RouterService>(builder: Builder, router: S) -> TestServer {
    try_start(builder, router).await.expect("server starts")
}

/// Serves `router` on `127.0.0.1:0` with `builder`'s settings, or returns why it did not start.
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
    /// A closed gate.
    pub fn new() -> Self {
        Gate(Arc::new(Semaphore::new(0)))
    }

    /// Waits until the gate lets one through.
    pub async fn pass(&self) {
        self.0.acquire().await.expect("gate open").forget();
    }

    /// Lets `n` more through.
    pub fn open(&self, n: usize) {
        self.0.add_permits(n);
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

/// A router whose `/hold` parks at `gate` (holding its worker) and whose `/` counts in `calls`
/// how often the router ran it.
pub fn hold_and_count(gate: &Gate, calls: &Arc<AtomicUsize>) -> Router {
    let (gate, calls) = (gate.clone(), calls.clone());
    Router::new()
        .route("/hold", get(move || async move { gate.pass().await }))
        .route(
            "/",
            get(move || async move {
                calls.fetch_add(1, SeqCst);
            }),
        )
}
