//! A router that is a tower service of its own, not only an axum `Router`: one that is not ready
//! at once is waited for, one whose readiness fails or whose `call` panics costs that request a
//! `500` (and, for the panic, the worker's resources), nothing else.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use intralb::{Balancer, Db, RequestBody, WorkerId};
use intralb_test_support::*;

/// What the test makes of [`Picky`]'s readiness.
#[derive(Default)]
struct Readiness {
    /// Ready, and whoever waits for it to be.
    state: Mutex<(bool, Option<Waker>)>,
    /// Its readiness fails.
    failing: AtomicBool,
}

impl Readiness {
    fn open(&self) {
        let mut state = self.state.lock().unwrap();
        state.0 = true;
        if let Some(waker) = state.1.take() {
            waker.wake();
        }
    }
}

/// A router in front of an axum `Router`: ready when the test says so, and its `call` panics on
/// `/boom` (before there is a future).
#[derive(Clone)]
struct Picky {
    inner: Router,
    readiness: Arc<Readiness>,
}

impl tower_service::Service<http::Request<RequestBody>> for Picky {
    type Response = axum::response::Response;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.readiness.failing.load(SeqCst) {
            return Poll::Ready(Err(std::io::Error::other("the router is broken")));
        }
        let mut state = self.readiness.state.lock().unwrap();
        if state.0 {
            Poll::Ready(Ok(()))
        } else {
            state.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    fn call(&mut self, req: http::Request<RequestBody>) -> Self::Future {
        if req.uri().path() == "/boom" {
            panic!("the router broke taking the request");
        }
        let future = self.inner.call(req);
        Box::pin(async move {
            match future.await {
                Ok(response) => Ok(response),
                Err(never) => match never {},
            }
        })
    }
}

/// Which initialisation of its worker a resource came from.
struct Generation(usize);

fn picky(readiness: &Arc<Readiness>) -> Picky {
    Picky {
        inner: Router::new().route("/", get(|| async { "hello" })).route(
            "/generation",
            get(|db: Db<Generation>| async move { db.0.to_string() }),
        ),
        readiness: Arc::clone(readiness),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_not_ready_at_once_is_waited_for() {
    let readiness = Arc::new(Readiness::default());
    // Every timer past `within`'s bound (the request's deadline, its connection's checks): only
    // the router's wake may poll it again.
    let long = Duration::from_secs(120);
    let builder = Balancer::builder()
        .max_concurrent(1)
        .min_workers(1)
        .timeout(long)
        .header_read_timeout(long)
        .send_timeout(long);
    let server = start(builder, picky(&readiness)).await;
    let reply = spawn_get(server.addr(), "/");
    // The request has its worker, and waits for the router.
    server.wait_for("the worker busy", |s| s.busy == 1).await;
    assert!(!reply.is_finished());
    readiness.open();
    // A router asked only with a waker that does nothing would never wake the request again.
    let reply = within("the request waiting for the router", reply)
        .await
        .unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "hello"));
    server
        .wait_for("the worker given back", |s| s.idle == 1)
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_whose_readiness_fails_costs_that_request_a_500() {
    let readiness = Arc::new(Readiness::default());
    readiness.open();
    readiness.failing.store(true, SeqCst);
    let builder = Balancer::builder().max_concurrent(1).min_workers(1);
    let server = start(builder, picky(&readiness)).await;
    let client = client();
    assert_eq!(fetch_with(&client, server.addr(), "/").await.status, 500);
    assert_eq!(server.stats().failed, 1);
    readiness.failing.store(false, SeqCst);
    let reply = fetch_with(&client, server.addr(), "/").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "hello"),
        "the worker was given back"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_that_panics_taking_a_request_costs_a_500_and_the_workers_resources() {
    let readiness = Arc::new(Readiness::default());
    readiness.open();
    let inits = Arc::new(AtomicUsize::new(0));
    let init = {
        let inits = inits.clone();
        move |_: WorkerId| Ok::<_, Infallible>(Generation(inits.fetch_add(1, SeqCst)))
    };
    let builder = Balancer::builder()
        .max_concurrent(1)
        .min_workers(1)
        .db_init(init);
    let server = start(builder, picky(&readiness)).await;
    let client = client();
    let before = fetch_with(&client, server.addr(), "/generation").await;
    assert_eq!((before.status, before.body.as_str()), (200, "0"));

    assert_eq!(
        fetch_with(&client, server.addr(), "/boom").await.status,
        500
    );
    assert_eq!(server.stats().panicked, 1);
    server
        .wait_for("the worker re-initialised", |s| {
            s.idle == 1 && s.starting == 0
        })
        .await;
    let after = fetch_with(&client, server.addr(), "/generation").await;
    assert_eq!(
        (after.status, after.body.as_str()),
        (200, "1"),
        "the request after the panic sees the fresh resource"
    );
    server.stop().await;
}
