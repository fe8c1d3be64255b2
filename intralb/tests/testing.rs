//! The testing story: a test starts the annotated app, with its attribute's settings, its layer,
//! its setup and its initializers, on a free port, and stops it.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use axum::http::HeaderValue;
use axum::middleware::map_response;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use intralb::{Db, OuterLayer, WorkerId};
use intralb_test_support::*;

static SETUPS: AtomicUsize = AtomicUsize::new(0);

#[intralb::setup]
async fn count_setups() {
    SETUPS.fetch_add(1, SeqCst);
}

struct Greeting(String);

/// Fails the start unless a setup ran before: whichever test starts first, its builder must
/// have run the setup.
#[intralb::db_init]
fn greeting(worker: WorkerId) -> Result<Greeting, &'static str> {
    if SETUPS.load(SeqCst) == 0 {
        return Err("the setup did not run before the initializers");
    }
    Ok(Greeting(format!("hello from worker {worker}")))
}

fn stamp() -> OuterLayer {
    OuterLayer::new(map_response(|mut res: Response| async move {
        res.headers_mut()
            .insert("x-stamped", HeaderValue::from_static("yes"));
        res
    }))
}

#[intralb::balanced(min_workers = 2, max_concurrent = 2, layer = stamp)]
fn app() -> Router {
    Router::new().route("/", get(|db: Db<Greeting>| async move { db.0.clone() }))
}

#[intralb::balanced(serve = serve_admin, max_concurrent = 1, queue = 0)]
async fn admin() -> Router {
    Router::new().route("/ping", get(|| async { "pong" }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_builder_starts_the_app_with_everything_its_attribute_declares() {
    let server = app_builder().start(app()).await.unwrap();
    // `min_workers = 2`, their initializer, and the setup before them.
    assert_eq!(server.stats().workers, 2);

    let reply = fetch(server.local_addr(), "/").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.starts_with("hello from worker "),
        "{}",
        reply.body
    );
    assert_eq!(reply.header("x-stamped"), Some("yes"), "the layer is there");
    within("the stop", server.stop()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_router_in_the_module_has_its_own_builder() {
    let server = admin_builder().start(admin().await).await.unwrap();
    let reply = fetch(server.local_addr(), "/ping").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "pong"));
    assert_eq!(
        reply.header("x-stamped"),
        None,
        "not the other router's layer"
    );
    within("the stop", server.stop()).await.unwrap();
}
