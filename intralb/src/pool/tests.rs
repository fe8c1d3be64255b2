//! The pool's races and limits, each forced deterministically through a hook point.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Pool, Rejected};
use crate::config;
use crate::error::BoxError;
use crate::init::Initializer;
use crate::priority::Priority;
use crate::worker::Hold;

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

async fn acquire(pool: &Arc<Pool>, deadline: Instant) -> Result<Hold, Rejected> {
    pool.acquire(Priority::Normal, Instant::now(), deadline)
        .await
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
    assert_eq!(
        acquire(&pool, until).await.err(),
        Some(Rejected::Unavailable)
    );
    assert!(Instant::now() < until);
    // The pool may still grow: the next request starts another worker, which fails too.
    assert_eq!(
        acquire(&pool, until).await.err(),
        Some(Rejected::Unavailable)
    );
    // Now every worker is failing and none may be added: refused without waiting for anything.
    let before = attempts.load(Ordering::Relaxed);
    let now = Instant::now();
    assert_eq!(
        acquire(&pool, until).await.err(),
        Some(Rejected::Unavailable)
    );
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
        acquire(&pool, deadline()).await.err(),
        Some(Rejected::Unavailable)
    );
    // A long outage: the worker's backoff grows to its cap, 10 s.
    tokio::time::sleep(Duration::from_secs(60)).await;
    down.store(false, Ordering::Relaxed);

    // The database is back. The next request is still refused, but it wakes the worker, whose
    // retry succeeds at once: served again long before the backoff (5 to 10 s) would end.
    assert_eq!(
        acquire(&pool, deadline()).await.err(),
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
    assert!(acquire(&pool, deadline()).await.is_ok());
    pool.close().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_worker_taken_just_before_close_serves_and_is_dropped_when_given_back() {
    let pool = Pool::start(&config(1, 1, 0), Vec::new()).await.unwrap();
    let closing = Arc::clone(&pool);
    super::hooks::set(move |point| {
        if point == "acquire:idle-taken" {
            closing.shut();
        }
    });
    let hold = acquire(&pool, deadline())
        .await
        .expect("taken before the close");
    assert_eq!(pool.stats().workers, 1, "busy, so not dropped yet");
    drop(hold);
    pool.all_dropped().await;
    assert_eq!(pool.stats().workers, 0);
}

/// The queue's discipline, on the paused clock: `max` workers (all started), `queue` places,
/// CoDel's `target`.
async fn paused_pool(max: usize, queue: usize, target: Duration) -> Arc<Pool> {
    let config = config::Pool {
        queue_target: target,
        ..config(max, max, queue)
    };
    Pool::start(&config, Vec::new()).await.unwrap()
}

/// A request of `priority` that waits on its own task; resolves to its answer.
fn waiter(pool: &Arc<Pool>, priority: Priority) -> tokio::task::JoinHandle<Result<Hold, Rejected>> {
    let pool = Arc::clone(pool);
    tokio::spawn(async move {
        let now = Instant::now();
        pool.acquire(priority, now, now + Duration::from_secs(30))
            .await
    })
}

/// Lets spawned waiters run until they wait (the clock is paused, so nothing else moves).
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// Which of `waiters` has an answer, as (index, got a worker).
fn answered(waiters: &mut [tokio::task::JoinHandle<Result<Hold, Rejected>>]) -> Vec<(usize, bool)> {
    waiters
        .iter_mut()
        .enumerate()
        .filter(|(_, waiter)| waiter.is_finished())
        .map(|(index, waiter)| {
            let answer = futures_now(waiter);
            (index, answer.is_ok())
        })
        .collect()
}

fn futures_now(
    waiter: &mut tokio::task::JoinHandle<Result<Hold, Rejected>>,
) -> Result<Hold, Rejected> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match std::pin::Pin::new(waiter).poll(&mut cx) {
        std::task::Poll::Ready(joined) => joined.expect("waiters do not panic"),
        std::task::Poll::Pending => unreachable!("finished"),
    }
}

use std::future::Future as _;

const TARGET: Duration = Duration::from_millis(5);

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn at_twice_its_capacity_the_queue_sheds_within_twice_the_target_and_serves_the_newest() {
    // One worker, 20 ms a request (50/s); a request every 10 ms (100/s), for 2 s.
    let pool = paused_pool(1, 100, TARGET).await;
    let service = Duration::from_millis(20);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let start = Instant::now();
    for _ in 0..200 {
        let (pool, tx) = (Arc::clone(&pool), tx.clone());
        tokio::spawn(async move {
            let arrived = Instant::now();
            let answer = pool
                .acquire(Priority::Normal, arrived, arrived + Duration::from_secs(30))
                .await;
            let waited = Instant::now() - arrived;
            let served = answer.is_ok();
            if let Ok(hold) = answer {
                tokio::time::sleep(service).await;
                drop(hold);
            }
            tx.send((arrived - start, served, waited)).unwrap();
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(tx);
    let mut answers = Vec::new();
    while let Some(answer) = rx.recv().await {
        answers.push(answer);
    }
    assert_eq!(answers.len(), 200);
    // Once CoDel has seen the queue stand (two intervals), it holds waits near the target.
    let settled = |arrived: &Duration| *arrived >= crate::queue::INTERVAL * 3;
    let longest_served = answers
        .iter()
        .filter(|(arrived, served, _)| settled(arrived) && *served)
        .map(|(_, _, waited)| *waited)
        .max()
        .unwrap();
    assert!(longest_served <= TARGET * 2, "{longest_served:?}");
    let shed: Vec<Duration> = answers
        .iter()
        .filter(|(arrived, served, _)| settled(arrived) && !*served)
        .map(|(_, _, waited)| *waited)
        .collect();
    assert!(shed.len() > 50, "half are shed: {}", shed.len());
    for waited in &shed {
        assert!(
            *waited > TARGET * 2,
            "shed before twice the target: {waited:?}"
        );
        assert!(
            *waited <= TARGET * 2 + Duration::from_millis(1),
            "{waited:?}"
        );
    }
    // And the worker never idled while requests waited: served back to back.
    let served = answers.iter().filter(|(_, served, _)| *served).count();
    let elapsed = Instant::now() - start;
    assert!(
        served as u128 >= elapsed.as_millis() / service.as_millis() - 1,
        "{served} served in {elapsed:?}"
    );
    pool.close().await;
}

async fn futures_now_when_done(
    waiter: &mut tokio::task::JoinHandle<Result<Hold, Rejected>>,
) -> Result<Hold, Rejected> {
    waiter.await.expect("waiters do not panic")
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn without_a_target_the_queue_is_a_plain_fifo_up_to_the_deadline() {
    let pool = paused_pool(1, 10, Duration::ZERO).await;
    let busy = acquire(&pool, deadline()).await.unwrap();
    let mut waiters: Vec<_> = (0..3).map(|_| waiter(&pool, Priority::Normal)).collect();
    settle().await;
    // Far beyond any interval: nobody is shed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(answered(&mut waiters).is_empty());
    drop(busy);
    settle().await;
    assert_eq!(answered(&mut waiters), vec![(0, true)], "oldest first");
    pool.close().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_standing_queue_serves_the_newest_first_and_an_empty_one_the_oldest() {
    // A long target, so that waiters are not shed while the order is observed.
    let target = Duration::from_millis(60);
    let pool = paused_pool(1, 10, target).await;
    let busy = acquire(&pool, deadline()).await.unwrap();

    // Not standing: first in, first out.
    let mut waiters: Vec<_> = (0..3).map(|_| waiter(&pool, Priority::Normal)).collect();
    settle().await;
    let held = acquire_from_queue(&pool, busy, &mut waiters).await;
    assert_eq!(held.0, 0, "FIFO while the queue does not stand");
    waiters.remove(0);

    // The older of the two others gets the worker 150 ms after it came: when CoDel next
    // decides, the queue stands (and the other, over twice the target by then, is shed).
    tokio::time::sleep(Duration::from_millis(150)).await;
    let held = acquire_from_queue(&pool, held.1, &mut waiters).await;
    tokio::time::sleep(crate::queue::INTERVAL).await;
    let standing = super::lock(&pool.core)
        .queue
        .standing(Priority::Normal, Instant::now());
    assert!(standing);

    // Standing: last in, first out.
    let mut waiters: Vec<_> = (0..3).map(|_| waiter(&pool, Priority::Normal)).collect();
    settle().await;
    let (newest, _hold) = acquire_from_queue(&pool, held.1, &mut waiters).await;
    assert_eq!(newest, 2, "LIFO while the queue stands");
    pool.close().await;
}

/// Gives `busy` back and returns which waiter got the worker, with its hold.
async fn acquire_from_queue(
    _pool: &Arc<Pool>,
    busy: Hold,
    waiters: &mut [tokio::task::JoinHandle<Result<Hold, Rejected>>],
) -> (usize, Hold) {
    drop(busy);
    settle().await;
    let index = waiters
        .iter()
        .position(|waiter| waiter.is_finished())
        .expect("one waiter got the worker");
    let hold = futures_now(&mut waiters[index]).expect("a worker");
    (index, hold)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn critical_requests_displace_sheddable_ones_first_and_are_served_first() {
    let pool = paused_pool(1, 2, TARGET).await;
    let busy = acquire(&pool, deadline()).await.unwrap();
    let mut normal = waiter(&pool, Priority::Normal);
    settle().await;
    // One place of two taken: a sheddable request may take only half the queue.
    let sheddable = waiter(&pool, Priority::Sheddable).await.unwrap();
    assert!(
        matches!(sheddable, Err(Rejected::Shed { .. })),
        "{sheddable:?}"
    );
    let mut second = waiter(&pool, Priority::Normal);
    settle().await;
    // Full: a critical request takes the oldest normal request's place…
    let mut critical = waiter(&pool, Priority::Critical);
    settle().await;
    assert!(normal.is_finished());
    assert!(matches!(
        futures_now(&mut normal),
        Err(Rejected::Shed { .. })
    ));
    // …and is served before the normal one that came earlier.
    drop(busy);
    settle().await;
    assert!(critical.is_finished() && !second.is_finished());
    drop(futures_now(&mut critical).unwrap());
    assert!(futures_now_when_done(&mut second).await.is_ok());
    // Full of critical requests, a critical one is refused: there is nobody to displace.
    let _busy = acquire(&pool, deadline()).await.unwrap();
    let _both: Vec<_> = (0..2).map(|_| waiter(&pool, Priority::Critical)).collect();
    settle().await;
    let third = waiter(&pool, Priority::Critical).await.unwrap();
    assert!(matches!(third, Err(Rejected::Shed { .. })), "{third:?}");
    let stats = pool.stats();
    assert_eq!(stats.priority(Priority::Critical).queued, 2, "{stats:?}");
    pool.close().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn retry_after_is_the_backlog_over_the_measured_rate_jittered() {
    let pool = paused_pool(1, 9, Duration::ZERO).await;
    // Five grants in two seconds and a half.
    for _ in 0..4 {
        drop(acquire(&pool, deadline()).await.unwrap());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _busy = acquire(&pool, deadline()).await.unwrap();
    let _queued: Vec<_> = (0..9).map(|_| waiter(&pool, Priority::Normal)).collect();
    settle().await;
    // Ten requests ahead of the next (nine waiting, and itself) at two and a half a second:
    // four seconds, plus up to half as much again.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        match acquire(&pool, deadline()).await {
            Err(Rejected::Shed { retry_after }) => {
                assert!((4..=6).contains(&retry_after), "{retry_after}");
                seen.insert(retry_after);
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(seen.len() > 1, "jittered: {seen:?}");
    pool.close().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn with_adaptive_a_backend_of_four_slots_gets_a_limit_near_four_and_bounded_waits() {
    // Four real slots, 20 ms each (200/s), behind max_concurrent = 64; a request every 2 ms
    // (500/s) for 6 s. Without the limit, 64 would run and each take 320 ms.
    let config = config::Pool {
        adaptive: true,
        queue_target: TARGET,
        ..config(64, 0, 64)
    };
    let pool = Pool::start(&config, Vec::new()).await.unwrap();
    let slots = Arc::new(tokio::sync::Semaphore::new(4));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let start = Instant::now();
    let mut limits = Vec::new();
    for _ in 0..3000 {
        let (shared, slots, tx) = (Arc::clone(&pool), Arc::clone(&slots), tx.clone());
        tokio::spawn(async move {
            let pool = shared;
            let arrived = Instant::now();
            let answer = pool
                .acquire(Priority::Normal, arrived, arrived + Duration::from_secs(30))
                .await;
            let started = Instant::now();
            if let Ok(hold) = answer {
                let permit = slots.acquire().await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(permit);
                // As `serving.rs` does: the sample, then the worker back.
                pool.observe(started, Instant::now());
                drop(hold);
                let _ = tx.send((arrived - start, started - arrived, Instant::now() - started));
            }
        });
        tokio::time::sleep(Duration::from_millis(2)).await;
        limits.push((Instant::now() - start, pool.stats().concurrency_limit));
    }
    drop(tx);
    let mut served = Vec::new();
    while let Some(answer) = rx.recv().await {
        served.push(answer);
    }
    let settled = |at: &Duration| *at >= Duration::from_secs(2);
    let settled_limits: Vec<usize> = limits
        .iter()
        .filter(|(at, _)| settled(at))
        .map(|(_, limit)| *limit)
        .collect();
    let (low, high) = (
        *settled_limits.iter().min().unwrap(),
        *settled_limits.iter().max().unwrap(),
    );
    assert!(low >= 2 && high <= 7, "the limit stayed in {low}..={high}");
    // The backend stays busy: at least nine tenths of its 200/s are served.
    let rate = served.len() as f64 / 6.0;
    assert!(rate >= 180.0, "{rate}/s served");
    // Service times stay near the backend's own (20 ms; 320 ms if all 64 ran), and waits are
    // CoDel's: near the target, and after a cut (the queue not standing yet) at most about an
    // interval.
    let (mut waits, mut services): (Vec<Duration>, Vec<Duration>) = served
        .iter()
        .filter(|(at, ..)| settled(at))
        .map(|(_, waited, service)| (*waited, *service))
        .unzip();
    waits.sort();
    services.sort();
    let p99 = |sorted: &[Duration]| sorted[sorted.len() * 99 / 100];
    assert!(
        p99(&services) <= Duration::from_millis(45),
        "{:?}",
        p99(&services)
    );
    assert!(
        waits[waits.len() / 2] <= TARGET * 2,
        "{:?}",
        waits[waits.len() / 2]
    );
    let longest = *waits.last().unwrap();
    assert!(longest <= crate::queue::INTERVAL, "{longest:?}");
    pool.close().await;
}
