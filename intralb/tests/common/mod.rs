//! Shared by the runtime's integration tests: a server on 127.0.0.1:0 and a real HTTP client.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
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

pub async fn try_start<S: RouterService>(builder: Builder, router: S) -> intralb::Result<TestServer> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = builder
        .spawn(listener, router, async {
            let _ = stopped.await;
        })
        .await?;
    Ok(TestServer { server, stop })
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

pub async fn fetch_with(client: &HttpClient, addr: SocketAddr, path: &str) -> Reply {
    let req = Request::get(format!("http://{addr}{path}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = client.request(req).await.expect("request succeeds at the HTTP level");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub async fn fetch(addr: SocketAddr, path: &str) -> Reply {
    fetch_with(&client(), addr, path).await
}

/// Sends `GET path` on its own task.
pub fn spawn_get(addr: SocketAddr, path: &str) -> tokio::task::JoinHandle<Reply> {
    let path = path.to_owned();
    tokio::spawn(async move { fetch(addr, &path).await })
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

/// Runs `f` with a bound on its duration, so a hang fails the test instead of the suite.
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 20s"))
}
