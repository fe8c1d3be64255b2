//! The pool-wide queue: FIFO, bounded, shedding at once, and deadlines in and out of it.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use intralb::{Balancer, Db};
use intralb_test_support::*;
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_requests_are_served_in_arrival_order() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let gate = Gate::new();
    let app = {
        let (order, gate) = (order.clone(), gate.clone());
        Router::new().route(
            "/{n}",
            get(move |Path(n): Path<u32>| async move {
                order.lock().unwrap().push(n);
                gate.pass().await;
            }),
        )
    };
    let builder = Balancer::builder().max_concurrent(1).queue(10);
    let server = start(builder, app).await;
    let mut replies = vec![spawn_get(server.addr(), "/0")];
    server.wait_for("the worker busy", |s| s.busy == 1).await;
    for n in 1..=4 {
        replies.push(spawn_get(server.addr(), &format!("/{n}")));
        server.wait_for("one more queued", |s| s.queued == n).await;
    }
    gate.open(5);
    for reply in replies {
        assert_eq!(reply.await.unwrap().status, 200);
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_sheds_with_503_and_retry_after_without_running_the_router() {
    let gate = Gate::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let builder = Balancer::builder().max_concurrent(1).queue(1);
    let server = start(builder, hold_and_count(&gate, &calls)).await;
    let busy = spawn_get(server.addr(), "/hold");
    server.wait_for("the worker busy", |s| s.busy == 1).await;
    let queued = spawn_get(server.addr(), "/");
    server.wait_for("one queued", |s| s.queued == 1).await;

    let shed = fetch(server.addr(), "/").await;
    assert_eq!(shed.status, 503);
    let retry_after: u64 = shed.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=90).contains(&retry_after), "{retry_after}");
    assert!(shed.body.contains("queue is full"), "{}", shed.body);
    assert_eq!(
        calls.load(SeqCst),
        0,
        "a shed request never reaches the router"
    );
    assert_eq!(server.stats().shed, 1);

    gate.open(1);
    assert_eq!(busy.await.unwrap().status, 200);
    assert_eq!(queued.await.unwrap().status, 200);
    assert_eq!(calls.load(SeqCst), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_zero_queue_nothing_waits() {
    let gate = Gate::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let builder = Balancer::builder().max_concurrent(1).queue(0);
    let server = start(builder, hold_and_count(&gate, &calls)).await;
    let busy = spawn_get(server.addr(), "/hold");
    server.wait_for("the worker busy", |s| s.busy == 1).await;
    assert_eq!(fetch(server.addr(), "/").await.status, 503);
    gate.open(1);
    assert_eq!(busy.await.unwrap().status, 200);
    assert_eq!(
        fetch(server.addr(), "/").await.status,
        200,
        "served again once a worker is free"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_past_its_deadline_while_running_gets_504_and_is_cancelled() {
    struct SignalOnDrop(Option<oneshot::Sender<()>>);
    impl Drop for SignalOnDrop {
        fn drop(&mut self) {
            let _ = self.0.take().unwrap().send(());
        }
    }
    let (cancelled_tx, cancelled) = oneshot::channel();
    let cancelled_tx = Arc::new(Mutex::new(Some(cancelled_tx)));
    let app = Router::new()
        .route(
            "/forever",
            get(move || async move {
                let _guard = SignalOnDrop(cancelled_tx.lock().unwrap().take());
                std::future::pending::<()>().await;
            }),
        )
        .route("/", get(|| async { "fast" }));
    let builder = Balancer::builder()
        .max_concurrent(1)
        .min_workers(1)
        .timeout(Duration::from_millis(200));
    let server = start(builder, app).await;

    let reply = fetch(server.addr(), "/forever").await;
    assert_eq!(reply.status, 504);
    within("the handler's cancellation", cancelled)
        .await
        .expect("the handler future was dropped");
    assert_eq!(server.stats().timed_out, 1);
    let reply = fetch(server.addr(), "/").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "fast"),
        "the worker is back"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_past_its_deadline_in_the_queue_gets_503_and_never_runs() {
    // `/block` keeps its worker in a blocking call, which outlives the handler's deadline: the
    // worker stays busy, so the queued request must expire where it waits. (Blocking a runtime
    // thread instead can hang the test: tokio cannot steal a task parked behind it.)
    let (release, released) = mpsc::channel::<()>();
    let released = Arc::new(Mutex::new(released));
    let calls = Arc::new(AtomicUsize::new(0));
    let app = {
        let calls = calls.clone();
        Router::new()
            .route(
                "/block",
                get(move |mut db: Db<()>| async move {
                    Db::blocking(&mut db, move |_| released.lock().unwrap().recv().unwrap()).await
                }),
            )
            .route(
                "/",
                get(move || async move {
                    calls.fetch_add(1, SeqCst);
                }),
            )
    };
    let builder = Balancer::builder()
        .max_concurrent(1)
        .queue(1)
        .timeout(Duration::from_millis(300))
        .db_init(|_| Ok::<_, std::convert::Infallible>(()));
    let server = start(builder, app).await;
    let blocked = spawn_get(server.addr(), "/block");
    server.wait_for("the worker busy", |s| s.busy == 1).await;

    let expired = fetch(server.addr(), "/").await;
    assert_eq!(expired.status, 503);
    assert!(matches!(expired.header("retry-after"), Some("1" | "2")));
    assert!(
        expired.body.contains("waited in the queue"),
        "{}",
        expired.body
    );
    assert_eq!(calls.load(SeqCst), 0, "the handler never ran");
    assert_eq!(server.stats().expired_in_queue, 1);
    release.send(()).unwrap();
    assert_eq!(blocked.await.unwrap().status, 504, "its deadline passed");
    server.stop().await;
}
