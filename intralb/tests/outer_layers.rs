//! Outer layers (`Builder::layer`): middleware in front of admission, around intralb's own
//! answers.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn, map_response, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use intralb::{Balancer, OuterLayer};
use intralb_test_support::*;
use tower_http::cors::CorsLayer;

/// `401` unless the request says `authorization: Bearer ok`.
async fn require_bearer(req: Request, next: Next) -> Response {
    match req.headers().get("authorization") {
        Some(value) if value == "Bearer ok" => next.run(req).await,
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

const AUTH: &[(&str, &str)] = &[("authorization", "Bearer ok")];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outer_layer_refuses_a_request_before_it_takes_a_queue_place() {
    let gate = Gate::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let builder = Balancer::builder()
        .max_concurrent(1)
        .queue(1)
        .layer(from_fn(require_bearer));
    let server = start(builder, hold_and_count(&gate, &calls)).await;
    let client = client();
    let busy = {
        let (client, addr) = (client.clone(), server.addr());
        tokio::spawn(async move { send(&client, addr, Method::GET, "/hold", AUTH, "").await })
    };
    server.wait_for("the worker busy", |s| s.busy == 1).await;
    let queued = {
        let (client, addr) = (client.clone(), server.addr());
        tokio::spawn(async move { send(&client, addr, Method::GET, "/", AUTH, "").await })
    };
    server.wait_for("one queued", |s| s.queued == 1).await;

    // The pool is saturated and the queue full: an authenticated request is shed...
    let shed = send(&client, server.addr(), Method::GET, "/", AUTH, "").await;
    assert_eq!(shed.status, 503);
    // ...and an unauthenticated one is refused by the layer, not shed.
    let refused = send(&client, server.addr(), Method::GET, "/", &[], "").await;
    assert_eq!(refused.status, 401);
    let stats = server.stats();
    assert_eq!(
        (stats.shed, stats.queued, stats.busy),
        (1, 1, 1),
        "{stats:?}"
    );

    gate.open(1);
    assert_eq!(busy.await.unwrap().status, 200);
    assert_eq!(queued.await.unwrap().status, 200);
    assert_eq!(
        calls.load(SeqCst),
        1,
        "the router ran the queued request only"
    );
    assert_eq!(server.stats().served, 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shed_503_carries_the_cors_headers_of_an_outer_cors_layer() {
    let gate = Gate::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let builder = Balancer::builder()
        .max_concurrent(1)
        .queue(0)
        .layer(CorsLayer::permissive());
    let server = start(builder, hold_and_count(&gate, &calls)).await;
    let busy = spawn_get(server.addr(), "/hold");
    server.wait_for("the worker busy", |s| s.busy == 1).await;

    let origin: &[(&str, &str)] = &[("origin", "https://app.example")];
    let shed = send(&client(), server.addr(), Method::GET, "/", origin, "").await;
    assert_eq!(shed.status, 503);
    let retry_after: u64 = shed.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=90).contains(&retry_after), "{retry_after}");
    assert_eq!(shed.header("access-control-allow-origin"), Some("*"));
    assert_eq!(server.stats().shed, 1);

    gate.open(1);
    assert_eq!(busy.await.unwrap().status, 200);
    let served = send(&client(), server.addr(), Method::GET, "/", origin, "").await;
    assert_eq!(served.status, 200);
    assert_eq!(served.header("access-control-allow-origin"), Some("*"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_504_passes_through_the_outer_layers() {
    let gate = Gate::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let builder = Balancer::builder()
        .timeout(std::time::Duration::from_millis(50))
        .layer(map_response(|mut res: Response| async move {
            res.headers_mut()
                .insert("x-outer", HeaderValue::from_static("yes"));
            res
        }));
    let server = start(builder, hold_and_count(&gate, &calls)).await;
    let reply = fetch(server.addr(), "/hold").await;
    assert_eq!(reply.status, 504);
    assert_eq!(reply.header("x-outer"), Some("yes"));
    assert_eq!(server.stats().timed_out, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_reads_the_body_an_outer_layer_passed_on_as_another_type() {
    let app = Router::new().route("/echo", post(|body: String| async move { body }));
    let builder = Balancer::builder().layer(from_fn(require_bearer));
    let server = start(builder, app).await;
    for body in ["", "hello", &"x".repeat(200_000)] {
        let reply = send(&client(), server.addr(), Method::POST, "/echo", AUTH, body).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.len(), body.len());
    }
    server.stop().await;
}

/// Appends `name` to the response's `x-order` header.
fn mark(name: &'static str) -> OuterLayer {
    OuterLayer::new(map_response(move |mut res: Response| async move {
        let order = match res.headers().get("x-order") {
            Some(before) => format!("{},{name}", before.to_str().unwrap()),
            None => name.to_owned(),
        };
        res.headers_mut()
            .insert("x-order", HeaderValue::from_str(&order).unwrap());
        res
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_layer_wraps_those_given_before_it() {
    let builder = Balancer::builder()
        .layer(mark("first"))
        .layer(mark("second"));
    let server = start(builder, Router::new()).await;
    let reply = fetch(server.addr(), "/").await;
    assert_eq!(reply.status, 404);
    // The response passes the inner layer first.
    assert_eq!(reply.header("x-order"), Some("first,second"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_are_answered_before_the_outer_layers() {
    let builder = Balancer::builder()
        .health("/healthz")
        .layer(from_fn(require_bearer));
    let server = start(builder, Router::new()).await;
    assert_eq!(fetch(server.addr(), "/healthz").await.status, 200);
    assert_eq!(fetch(server.addr(), "/other").await.status, 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_server_serves_on_the_loopback_until_stopped() {
    let app = Router::new().route("/", get(|| async { "Hello World" }));
    let server = Balancer::builder().start(app).await.unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    assert_eq!(fetch(addr, "/").await.body, "Hello World");
    within("the stop", server.stop()).await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed once stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_may_answer_with_a_body_of_another_type() {
    use http_body_util::BodyExt;
    use tower_http::map_response_body::MapResponseBodyLayer;

    // What a compression layer does: the response body becomes another type of body.
    let shout = MapResponseBodyLayer::new(|body: axum::body::Body| {
        body.map_frame(|frame| frame.map_data(|data| data.to_ascii_uppercase().into()))
    });
    let app = Router::new().route("/", get(|| async { "hello" }));
    let server = start(
        Balancer::builder().max_concurrent(1).queue(0).layer(shout),
        app,
    )
    .await;
    let reply = fetch(server.addr(), "/").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "HELLO"));
    server.stop().await;
}

/// A layer whose service always fails (as a tower service may, with an error for its caller).
#[derive(Clone)]
struct Failing;

impl<S> tower_layer::Layer<S> for Failing {
    type Service = Failing;

    fn layer(&self, _: S) -> Failing {
        Failing
    }
}

impl<B> tower_service::Service<axum::http::Request<B>> for Failing {
    type Response = Response;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Response, std::io::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: axum::http::Request<B>) -> Self::Future {
        std::future::ready(Err(std::io::Error::other("the layer broke")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outer_layers_error_is_answered_500_over_http2_too() {
    let server = start(Balancer::builder().layer(Failing), Router::new()).await;
    assert_eq!(fetch(server.addr(), "/").await.status, 500);
    assert_eq!(
        fetch_with(&h2_client(), server.addr(), "/").await.status,
        500
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outer_layers_serve_http2() {
    let app = Router::new().route("/", get(|| async { "Hello World" }));
    let server = start(Balancer::builder().layer(CorsLayer::permissive()), app).await;
    let origin: &[(&str, &str)] = &[("origin", "https://app.example")];
    let reply = send(&h2_client(), server.addr(), Method::GET, "/", origin, "").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "Hello World"));
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    server.stop().await;
}
