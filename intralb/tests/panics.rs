//! A panicking handler costs one 500 and that worker's resources, nothing else.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use intralb::{Balancer, Db, WorkerId};
use intralb_test_support::*;

/// Which initialisation of its worker a resource came from.
struct Generation(usize);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_handler_gets_500_and_its_worker_fresh_resources() {
    let inits = Arc::new(AtomicUsize::new(0));
    let init = {
        let inits = inits.clone();
        move |_: WorkerId| Ok::<_, std::convert::Infallible>(Generation(inits.fetch_add(1, SeqCst)))
    };
    let gate = Gate::new();
    let app = {
        let gate = gate.clone();
        Router::new()
            .route(
                "/generation",
                get(|db: Db<Generation>| async move { db.0.to_string() }),
            )
            .route(
                "/hold",
                get(move |_db: Db<Generation>| async move { gate.pass().await }),
            )
            .route(
                "/panic",
                get(|_db: Db<Generation>| async move {
                    if true {
                        panic!("handler bug");
                    }
                }),
            )
    };
    let builder = Balancer::builder()
        .max_concurrent(2)
        .min_workers(2)
        .db_init(init);
    let server = start(builder, app).await;
    let client = client();
    // Keep one worker busy throughout: it must be unaffected by the other one's panic.
    let held = spawn_get(server.addr(), "/hold");
    server.wait_for("one worker busy", |s| s.busy == 1).await;
    let before = fetch_with(&client, server.addr(), "/generation").await;
    assert_eq!(before.status, 200);

    let reply = fetch_with(&client, server.addr(), "/panic").await;
    assert_eq!(reply.status, 500);
    assert_eq!(server.stats().panicked, 1);
    server
        .wait_for("the worker re-initialised", |s| {
            s.idle == 1 && s.starting == 0
        })
        .await;
    assert_eq!(
        inits.load(SeqCst),
        3,
        "the panicked worker's resources were made anew"
    );
    let after = fetch_with(&client, server.addr(), "/generation").await;
    assert_eq!(
        after.body, "2",
        "the request after the panic sees the fresh resource"
    );
    assert_ne!(after.body, before.body);

    gate.open(1);
    assert_eq!(
        held.await.unwrap().status,
        200,
        "the other worker's request carried on"
    );
    server.stop().await;
}
