//! The routes every opponent serves outside the notes scenario.
//!
//! - `GET /`: `Hello, World!` (fast path, scale).
//! - `GET /slow`: takes one of `slots` backend slots (a tokio `Semaphore`, FIFO), holds it for
//!   `hold`, answers `done` (overload). The slots model what limits capacity in a real service
//!   (16 database connections, say): without them a handler that only sleeps never saturates,
//!   and a plain server would look perfect at any load. Behind intralb or tower's limit the
//!   slots are never contended, since at most `limit = slots` handlers run.
//! - `GET /critical`: the same as `/slow`; intralb gives it `Priority::Critical` (admission).
//! - `GET /sleep/{ms}`: sleeps that long, for the drain.
//! - `--slots-schedule` changes the number of slots while serving (the adaptive scenario's
//!   capacity that halves and comes back).
//! - `GET /stats`: `PEAK MEAN_HOLD_US`: the most `/slow` handlers that were ever running at once
//!   (waiting for a slot included), which shows whether a limit bounded concurrency, and how
//!   long a slot was really held on average.
//!
//! tokio's timer works in whole milliseconds (a deadline is rounded up to the next tick, and the
//! driver parks for whole milliseconds), so `sleep(20 ms)` lasts about 21 ms, and capacity
//! would be 760 req/s, not 800. `/slow` therefore sleeps `hold − 1 ms`, which lasts about
//! `hold` on average; `/stats` reports the measured mean, and the report shows it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use tokio::sync::Semaphore;

/// What tokio's millisecond timer adds to a sleep, on average (see the module docs).
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// The state of `/slow`.
struct Backend {
    slots: Semaphore,
    hold: Duration,
    running: AtomicUsize,
    peak: AtomicUsize,
    held: AtomicU64,
    held_micros: AtomicU64,
}

impl Backend {
    /// From `from` slots to `to`: fewer as soon as the slots taken away are given back.
    async fn resize(&self, from: usize, to: usize) {
        if to > from {
            self.slots.add_permits(to - from);
        } else if let Ok(taken) = self.slots.acquire_many((from - to) as u32).await {
            taken.forget();
        }
    }
}

/// Counts a `/slow` handler as running while it exists.
struct Running<'a>(&'a Backend);

impl<'a> Running<'a> {
    fn enter(backend: &'a Backend) -> Self {
        let now = backend.running.fetch_add(1, Relaxed) + 1;
        backend.peak.fetch_max(now, Relaxed);
        Running(backend)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Relaxed);
    }
}

/// The routes, as a `Router` not yet made eager with `with_state(())`: the `naive-limit`
/// opponent needs it that way. `schedule`: the backend's slots from a moment (after now) on.
pub(crate) fn router(slots: usize, hold: Duration, schedule: &[(Duration, usize)]) -> Router {
    let backend = Arc::new(Backend {
        slots: Semaphore::new(slots),
        hold,
        running: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        held: AtomicU64::new(0),
        held_micros: AtomicU64::new(0),
    });
    let mut current = slots;
    for &(at, next) in schedule {
        let backend = Arc::clone(&backend);
        let from = current;
        tokio::spawn(async move {
            tokio::time::sleep(at).await;
            backend.resize(from, next).await;
        });
        current = next;
    }
    let for_slow = Arc::clone(&backend);
    Router::new()
        .route("/", get(|| async { "Hello, World!" }))
        .route(
            "/slow",
            get({
                let backend = Arc::clone(&for_slow);
                move || slow(Arc::clone(&backend))
            }),
        )
        .route("/critical", get(move || slow(Arc::clone(&for_slow))))
        .route("/sleep/{ms}", get(sleep))
        .route(
            "/stats",
            get(move || {
                let peak = backend.peak.load(Relaxed);
                let held = backend.held.load(Relaxed).max(1);
                let mean_hold_us = backend.held_micros.load(Relaxed) / held;
                async move { format!("{peak} {mean_hold_us}") }
            }),
        )
}

async fn slow(backend: Arc<Backend>) -> &'static str {
    let _running = Running::enter(&backend);
    let _slot = backend
        .slots
        .acquire()
        .await
        .expect("the backend's semaphore is never closed");
    let held_since = Instant::now();
    tokio::time::sleep(backend.hold.saturating_sub(TIMER_SLACK)).await;
    let held = u64::try_from(held_since.elapsed().as_micros()).unwrap_or(u64::MAX);
    backend.held.fetch_add(1, Relaxed);
    backend.held_micros.fetch_add(held, Relaxed);
    "done"
}

async fn sleep(Path(ms): Path<u64>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "slept"
}

/// intralb's priorities for these routes: `/critical` is `Critical`, the rest `Normal`.
pub(crate) fn priority(head: &http::request::Parts) -> intralb::Priority {
    if head.uri.path() == "/critical" {
        intralb::Priority::Critical
    } else {
        intralb::Priority::Normal
    }
}
