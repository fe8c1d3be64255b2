//! The pool's races and limits, each forced deterministically through a hook point.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{hooks, lock, Pool, Rejected};
use crate::config;
use crate::error::BoxError;
use crate::init::Initializer;

fn config(max: usize, min: usize, queue: usize) -> config::Pool {
    config::Pool {
        max_concurrent: max,
        min_workers: Some(min),
        queue,
        ..config::Pool::default()
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

#[tokio::test(flavor = "current_thread")]
async fn a_close_between_taking_a_permit_and_the_worker_answers_closed() {
    let pool = Pool::start(&config(1, 1, 0), Vec::new()).await.unwrap();
    let closing = Arc::clone(&pool);
    hooks::set(move |point| {
        if point == "acquire:permit-taken" {
            closing.shut();
        }
    });
    // Before the fix, `lease` panicked: "a permit always has an idle worker behind it".
    assert_eq!(pool.acquire(deadline()).await.err(), Some(Rejected::Closed));
}

#[tokio::test(flavor = "current_thread")]
async fn a_worker_that_becomes_ready_during_close_is_dropped_not_kept() {
    let pool = Pool::start(&config(1, 0, 0), Vec::new()).await.unwrap();
    let closing = Arc::clone(&pool);
    hooks::set(move |point| {
        if point == "ready:counted" {
            closing.shut();
        }
    });
    // The request starts a worker for itself; the pool closes just as that worker is ready.
    assert_eq!(pool.acquire(deadline()).await.err(), Some(Rejected::Closed));
    let stats = pool.stats();
    assert_eq!((stats.workers, stats.idle), (0, 0), "{stats:?}");
    assert_eq!(lock(&pool.scale).total, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_that_starts_a_worker_is_not_shed_by_a_waiter_already_served() {
    let pool = Pool::start(&config(3, 1, 0), Vec::new()).await.unwrap();
    let _busy = pool.acquire(deadline()).await.unwrap();
    // A waiter that was handed a permit but has not run yet still counts as waiting.
    lock(&pool.scale).waiting += 1;
    // Before the fix: a worker was started for this request, and the request was shed.
    let lease = pool.acquire(deadline()).await;
    assert!(lease.is_ok(), "{:?}", lease.err());
    lock(&pool.scale).waiting -= 1;
}

/// A resource whose `Drop` panics.
struct Grenade;

impl Drop for Grenade {
    fn drop(&mut self) {
        panic!("a resource's Drop panicked");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn workers_whose_resources_panic_on_drop_are_dropped_without_aborting() {
    let inits = vec![
        Initializer::sync("grenade", |_| Ok::<_, BoxError>(Grenade)),
        Initializer::sync("second", |_| Ok::<_, BoxError>((Grenade, 1u8))),
    ];
    let pool = Pool::start(&config(2, 2, 0), inits).await.unwrap();
    // Before the fix, two workers dropped together (and here, two values in one worker)
    // panicked while unwinding: the process aborted.
    pool.close().await;
    assert_eq!(pool.stats().workers, 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn when_every_start_fails_requests_are_refused_at_once() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&attempts);
    let failing = Initializer::sync("down", move |_| {
        counted.fetch_add(1, Ordering::Relaxed);
        Err::<u8, BoxError>("connection refused".into())
    });
    let pool = Pool::start(&config(2, 0, 10), vec![failing]).await.unwrap();
    // The first request waits for the worker started for it, which fails: refused then, not at
    // its deadline.
    let until = deadline();
    assert_eq!(pool.acquire(until).await.err(), Some(Rejected::Unavailable));
    assert!(Instant::now() < until);
    // The pool may still grow: the next request starts another worker, which fails too.
    assert_eq!(pool.acquire(until).await.err(), Some(Rejected::Unavailable));
    // Now every worker is failing and none may be added: refused without waiting for anything.
    let before = attempts.load(Ordering::Relaxed);
    let now = Instant::now();
    assert_eq!(pool.acquire(until).await.err(), Some(Rejected::Unavailable));
    assert_eq!(
        Instant::now(),
        now,
        "answered at once (the clock is paused)"
    );
    assert_eq!(attempts.load(Ordering::Relaxed), before);
    pool.close().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_refused_request_wakes_a_failing_worker_so_the_pool_recovers_at_once() {
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = Arc::clone(&down);
    let init = Initializer::asynchronous("db", move |_| {
        let down = flag.load(Ordering::Relaxed);
        async move {
            if down {
                Err::<u8, BoxError>("connection refused".into())
            } else {
                Ok(1)
            }
        }
    });
    let pool = Pool::start(&config(1, 0, 10), vec![init]).await.unwrap();
    assert_eq!(
        pool.acquire(deadline()).await.err(),
        Some(Rejected::Unavailable)
    );
    // A long outage: the worker's backoff grows to its cap, 10 s.
    tokio::time::sleep(Duration::from_secs(60)).await;
    down.store(false, Ordering::Relaxed);

    // The database is back. The next request is still refused, but it wakes the worker, whose
    // retry succeeds at once: served again long before the backoff (5 to 10 s) would end.
    assert_eq!(
        pool.acquire(deadline()).await.err(),
        Some(Rejected::Unavailable)
    );
    let woken = Instant::now();
    while pool.stats().workers == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        Instant::now() - woken < Duration::from_millis(10),
        "recovered at once"
    );
    assert!(pool.acquire(deadline()).await.is_ok());
    pool.close().await;
}
