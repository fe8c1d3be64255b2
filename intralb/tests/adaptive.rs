//! Adaptive concurrency over real TCP: the limit found shows in `Stats` and in the metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use intralb::Balancer;
use intralb_test_support::*;
use tokio::sync::Semaphore;

/// A backend of four slots, each held 20 ms by a request.
fn four_slots() -> Router {
    let slots = Arc::new(Semaphore::new(4));
    Router::new().route(
        "/",
        get(move || {
            let slots = Arc::clone(&slots);
            async move {
                let _slot = slots.acquire().await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }),
    )
}

/// The value of the gauge `name` in a Prometheus text body.
fn gauge(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_limit_found_shows_in_stats_and_metrics() {
    let builder = Balancer::builder()
        .max_concurrent(64)
        .queue(64)
        .adaptive(true)
        .metrics("/metrics");
    let server = start(builder, four_slots()).await;
    assert_eq!(
        server.stats().concurrency_limit,
        20,
        "starts at 20 (a slow start), below max_concurrent"
    );
    let metrics = fetch(server.addr(), "/metrics").await.body;
    assert_eq!(gauge(&metrics, "intralb_concurrency_limit"), 20.0);

    // Forty-eight clients at once against four slots: 240 ms a request if all of them ran.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..48)
        .map(|_| {
            let (stop, addr) = (Arc::clone(&stop), server.addr());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    fetch(addr, "/").await;
                }
            })
        })
        .collect();
    let stats = server
        .wait_for("the limit to come down", |s| s.concurrency_limit <= 16)
        .await;
    assert!(stats.concurrency_limit >= 2, "{stats:?}");
    let metrics = fetch(server.addr(), "/metrics").await.body;
    let limit = gauge(&metrics, "intralb_concurrency_limit");
    assert!((2.0..=32.0).contains(&limit), "{limit}");
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    server.stop().await;
}
