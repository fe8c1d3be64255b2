//! Graceful shutdown: refuse new connections, drain executing and queued requests, then stop.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use intralb::{Balancer, Db, Server, WorkerId};
use intralb_test_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Resource(Arc<AtomicUsize>);

impl Drop for Resource {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn gated(gate: &Gate) -> Router {
    let gate = gate.clone();
    Router::new().route(
        "/",
        get(move |_db: Db<Resource>| async move {
            gate.pass().await;
            "drained"
        }),
    )
}

fn counting_init(
    inits: &Arc<AtomicUsize>,
    drops: &Arc<AtomicUsize>,
) -> impl Fn(WorkerId) -> Result<Resource, Infallible> + Send + Sync + 'static {
    let (inits, drops) = (inits.clone(), drops.clone());
    move |_| {
        inits.fetch_add(1, SeqCst);
        Ok(Resource(drops.clone()))
    }
}

/// Connecting fails once the listener is closed; polls (bounded) until it does.
async fn wait_until_refused(server: &Server) {
    for _ in 0..2000 {
        if TcpStream::connect(server.local_addr()).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the listener still accepts connections after shutdown began");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_drains_executing_and_queued_requests_and_drops_resources() {
    let (inits, drops) = (Arc::default(), Arc::default());
    let gate = Gate::new();
    let builder = Balancer::builder()
        .max_concurrent(2)
        .min_workers(2)
        .queue(4)
        .db_init(counting_init(&inits, &drops));
    let server = start(builder, gated(&gate)).await;
    let replies: Vec<_> = (0..4).map(|_| spawn_get(server.addr(), "/")).collect();
    server
        .wait_for("2 running and 2 queued", |s| s.busy == 2 && s.queued == 2)
        .await;

    let server = server.begin_shutdown();
    wait_until_refused(&server).await;
    gate.open(4);
    for reply in replies {
        let reply = reply.await.unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (200, "drained"));
    }
    within("the drain", server.wait()).await.unwrap();
    assert_eq!(inits.load(SeqCst), 2);
    assert_eq!(
        drops.load(SeqCst),
        2,
        "every worker's resources were dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_running_or_queued_at_the_shutdown_deadline_are_answered_503_and_counted() {
    let (inits, drops) = (Arc::default(), Arc::default());
    let gate = Gate::new();
    let builder = Balancer::builder()
        .max_concurrent(1)
        .min_workers(1)
        .queue(2)
        .shutdown_timeout(Duration::from_millis(200))
        .db_init(counting_init(&inits, &drops));
    let server = start(builder, gated(&gate)).await;
    let running = spawn_get(server.addr(), "/");
    server.wait_for("the worker busy", |s| s.busy == 1).await;
    let queued = [spawn_get(server.addr(), "/"), spawn_get(server.addr(), "/")];
    server.wait_for("two queued", |s| s.queued == 2).await;

    // The gate never opens: the drain gives up at its deadline.
    let server = server.begin_shutdown();
    for reply in [running].into_iter().chain(queued) {
        let reply = within("an answer", reply).await.unwrap();
        assert_eq!(reply.status, 503, "{reply:?}");
        assert_eq!(reply.header("connection"), Some("close"), "{reply:?}");
        assert!(reply.body.starts_with("shutting down"), "{reply:?}");
    }
    let stats = server.stats();
    assert_eq!((stats.shutting_down, stats.served), (3, 0), "{stats:?}");
    within("the drain to give up", server.wait()).await.unwrap();
    assert_eq!(drops.load(SeqCst), inits.load(SeqCst), "resources dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keep_alive_connections_close_after_their_current_response() {
    let (inits, drops) = (Arc::default(), Arc::default());
    let gate = Gate::new();
    let builder = Balancer::builder().db_init(counting_init(&inits, &drops));
    let server = start(builder, gated(&gate)).await;
    let mut conn = TcpStream::connect(server.addr()).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    server
        .wait_for("the request running", |s| s.busy == 1)
        .await;

    let server = server.begin_shutdown();
    wait_until_refused(&server).await;
    gate.open(1);
    let mut response = Vec::new();
    within("the connection to close", conn.read_to_end(&mut response))
        .await
        .unwrap();
    let response = String::from_utf8_lossy(&response).to_ascii_lowercase();
    assert!(response.starts_with("http/1.1 200"), "{response}");
    assert!(response.contains("connection: close"), "{response}");
    assert!(
        response.ends_with("drained"),
        "one response, then the close: {response}"
    );
    within("the drain", server.wait()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_connection_that_sent_nothing_does_not_hold_up_shutdown() {
    // Both timeouts far beyond the test's bound: only closing the idle connection at once passes.
    let builder = Balancer::builder()
        .header_read_timeout(Duration::from_secs(60))
        .shutdown_timeout(Duration::from_secs(60));
    let server = start(builder, gated(&Gate::new())).await;
    let mut idle = TcpStream::connect(server.addr()).await.unwrap();

    let server = server.begin_shutdown();
    within("the shutdown", server.wait()).await.unwrap();
    let mut rest = Vec::new();
    within("the idle connection to close", idle.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty(), "closed without a response: {rest:?}");
}
