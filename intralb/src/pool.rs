//! The worker pool: dispatch, the pool-wide queue, shedding, scaling up, replacing broken
//! resources, and retiring.
//!
//! A worker is a slot, not a task: a request *leases* an idle worker and runs the router on its
//! own connection task with that worker's resources attached, then gives it back (when the last
//! [`Hold`] on it drops: see `worker.rs`). So the fast path is one uncontended semaphore permit
//! and a push/pop on the idle stack, with no task switch.
//!
//! - `permits` counts idle workers. Its waiters are the queue: FIFO, and a request that gives up
//!   (deadline, closed connection) leaves it in O(1).
//! - `idle` is a stack: a request takes the most recently used worker (its connections are
//!   warm), so surplus workers sink to the bottom, where the reaper retires them.
//! - `scale` (behind a lock taken only on the slow path) counts workers and waiters, decides
//!   whether a request may wait or is shed, and starts workers when requests would wait.
//!
//! Invariant: `permits <= idle.len()`; a worker is pushed before its permit is added and a
//! permit is taken before a worker is removed. `closed` is set under both locks, and a worker
//! is pushed only under the `idle` lock after checking it, so nothing joins the stack once
//! `close` has emptied it. Lock order: `scale`, then `idle`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::catch_unwind::panic_message;
use crate::config;
use crate::counters::Counters;
use crate::error::Result;
use crate::init::{self, Initializer};
use crate::resources::{Resources, Slot};
use crate::stats::Stats;
use crate::tally::Tally;
use crate::worker::{Hold, Home, Worker, REPLACE_ALL};
use crate::worker_id::WorkerId;

/// Why a request did not get a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// Every worker busy and the queue full.
    Shed,
    /// The deadline passed while the request waited.
    Expired,
    /// The pool is shutting down.
    Closed,
    /// No worker exists and every one that is starting has failed its last attempt.
    Unavailable,
}

/// An idle worker, and since when.
struct Idle {
    worker: Arc<Worker>,
    since: Instant,
}

struct Scale {
    /// Workers that exist or are starting.
    total: usize,
    /// Workers whose initializers are running, or waiting to retry after a failure.
    starting: usize,
    /// Of `starting`, those whose last attempt failed.
    failing: usize,
    /// Requests waiting for a permit.
    waiting: usize,
    free_ids: BinaryHeap<Reverse<u32>>,
    next_id: u32,
}

impl Scale {
    /// Counts a new worker as starting and gives it the lowest free id.
    fn reserve(&mut self) -> WorkerId {
        self.total += 1;
        self.starting += 1;
        self.take_id()
    }

    fn take_id(&mut self) -> WorkerId {
        let id = self.free_ids.pop().map_or_else(
            || {
                self.next_id += 1;
                self.next_id - 1
            },
            |Reverse(id)| id,
        );
        WorkerId::new(id)
    }

    fn forget_worker(&mut self, id: WorkerId) {
        self.total -= 1;
        self.free_ids.push(Reverse(id.get() as u32));
    }

    /// Nothing can serve soon: no worker is ready, and every one starting is failing.
    fn unavailable(&self) -> bool {
        self.starting > 0 && self.total == self.starting && self.failing == self.starting
    }
}

pub(crate) struct Pool {
    max: usize,
    queue: usize,
    min: usize,
    idle_timeout: Duration,
    inits: Arc<[Initializer]>,
    /// Whether any initializer has a `broken` check (skips the checks when none has).
    checks_broken: bool,
    permits: Semaphore,
    idle: Mutex<VecDeque<Idle>>,
    scale: Mutex<Scale>,
    closed: AtomicBool,
    closed_tx: watch::Sender<bool>,
    /// Woken when the pool becomes unavailable (see [`Scale::unavailable`]).
    unavailable: Notify,
    /// Wakes one failing worker to retry before its backoff ends: requests are being refused.
    retry_now: Notify,
    /// When `retry_now` was last notified, in milliseconds since `started`.
    last_nudge_ms: AtomicU64,
    started: Instant,
    /// Set when a drain begins (see [`Drain`](crate::Drain)).
    draining: AtomicBool,
    draining_tx: watch::Sender<bool>,
    /// Where workers start and resources drop, whichever thread gives a worker back.
    runtime: Handle,
    /// Workers whose resources are not dropped yet.
    live: Arc<Tally>,
    pub(crate) counters: Counters,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("max", &self.max)
            .field("queue", &self.queue)
            .field("min", &self.min)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover rather than propagate if it ever did.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    /// Creates the pool and starts `min_workers`; fails, naming the initializer, if one fails.
    pub(crate) async fn start(config: &config::Pool, inits: Vec<Initializer>) -> Result<Arc<Pool>> {
        let min = config.min_workers();
        let checks_broken = inits.iter().any(Initializer::checks_broken);
        let pool = Arc::new(Pool {
            max: config.max_concurrent,
            queue: config.queue,
            min,
            idle_timeout: config.idle_timeout,
            inits: inits.into(),
            checks_broken,
            permits: Semaphore::new(0),
            idle: Mutex::new(VecDeque::with_capacity(config.max_concurrent.min(1024))),
            scale: Mutex::new(Scale {
                total: 0,
                starting: 0,
                failing: 0,
                waiting: 0,
                free_ids: BinaryHeap::new(),
                next_id: 0,
            }),
            closed: AtomicBool::new(false),
            closed_tx: watch::Sender::new(false),
            unavailable: Notify::new(),
            retry_now: Notify::new(),
            last_nudge_ms: AtomicU64::new(0),
            started: Instant::now(),
            draining: AtomicBool::new(false),
            draining_tx: watch::Sender::new(false),
            runtime: Handle::current(),
            live: Arc::default(),
            counters: Counters::new(),
        });

        let mut starting = JoinSet::new();
        for _ in 0..min {
            let id = lock(&pool.scale).reserve();
            let inits = Arc::clone(&pool.inits);
            starting.spawn(async move {
                let mut slots = vec![None; inits.len()];
                (id, init::fill(&inits, id, &mut slots).await)
            });
        }
        while let Some(joined) = starting.join_next().await {
            let (id, result) = joined.expect("initializer tasks catch their panics");
            match result {
                Ok(resources) => pool.ready(id, resources, false),
                Err(err) => {
                    pool.counters.init_failed();
                    starting.abort_all();
                    pool.close().await;
                    return Err(err.into_error(id));
                }
            }
        }
        tokio::spawn(reap(Arc::downgrade(&pool), pool.closed_tx.subscribe()));
        Ok(pool)
    }

    /// Leases a worker: at once if one is idle, else after waiting in the queue until
    /// `deadline`, else not at all.
    pub(crate) async fn acquire(self: &Arc<Self>, deadline: Instant) -> Result<Hold, Rejected> {
        loop {
            // `None`: the worker's resources were found broken; it is being replaced.
            if let Some(hold) = self.acquire_once(deadline).await? {
                return Ok(hold);
            }
        }
    }

    async fn acquire_once(self: &Arc<Self>, deadline: Instant) -> Result<Option<Hold>, Rejected> {
        if let Ok(permit) = self.permits.try_acquire() {
            permit.forget();
            hooks::at("acquire:permit-taken");
            return self.lease();
        }
        // Registered before admission, so a failure reported in between is not missed.
        let mut unavailable = pin!(self.unavailable.notified());
        unavailable.as_mut().enable();
        self.enqueue()?;
        let _waiting = Waiting(self);
        tokio::select! {
            biased;
            permit = self.permits.acquire() => match permit {
                Ok(permit) => {
                    permit.forget();
                    self.lease()
                }
                Err(_closed) => Err(Rejected::Closed),
            },
            () = &mut unavailable => Err(Rejected::Unavailable),
            () = tokio::time::sleep_until(deadline) => Err(Rejected::Expired),
        }
    }

    /// Admits a request to the queue, or refuses it; starts a worker if one may be added.
    fn enqueue(self: &Arc<Self>) -> Result<(), Rejected> {
        if self.is_closed() {
            return Err(Rejected::Closed);
        }
        let mut scale = lock(&self.scale);
        if scale.unavailable() {
            drop(scale);
            self.nudge();
            return Err(Rejected::Unavailable);
        }
        // This request would wait: give it a worker of its own if the pool may grow. It waits
        // for that worker without taking a queue place.
        if scale.starting <= scale.waiting && scale.total < self.max {
            let id = scale.reserve();
            scale.waiting += 1;
            drop(scale);
            self.spawn_start(id, vec![None; self.inits.len()]);
            return Ok(());
        }
        if scale.waiting >= self.queue.saturating_add(scale.starting) {
            return Err(Rejected::Shed);
        }
        scale.waiting += 1;
        Ok(())
    }

    /// Takes the idle worker behind a permit; `Closed` if `close` emptied the stack meanwhile,
    /// `None` if its resources broke while it idled (a database restarted): it is replaced.
    fn lease(self: &Arc<Self>) -> Result<Option<Hold>, Rejected> {
        let popped = lock(&self.idle).pop_back();
        let Some(idle) = popped else {
            debug_assert!(self.is_closed(), "a permit without an idle worker");
            return Err(Rejected::Closed);
        };
        if self.checks_broken {
            let broken = self.broken_resources(&idle.worker);
            if broken != 0 {
                self.reinitialize(idle.worker, broken);
                return Ok(None);
            }
        }
        Ok(Some(Hold::lease(idle.worker)))
    }

    /// Requests are refused because every start is failing: wake one failing worker to retry
    /// now rather than at the end of its backoff, at most every [`NUDGE_EVERY`], so that the pool
    /// recovers as soon as the resource is back without hammering it while it is not.
    fn nudge(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_nudge_ms.load(Ordering::Relaxed);
        let every = NUDGE_EVERY.as_millis() as u64;
        if (last == 0 || now >= last.saturating_add(every))
            && self
                .last_nudge_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.retry_now.notify_one();
        }
    }

    /// A started worker joins the idle stack (or is dropped if the pool closed meanwhile).
    fn ready(self: &Arc<Self>, id: WorkerId, resources: Resources, failed_before: bool) {
        let home: Weak<dyn Home> = Arc::downgrade(self) as Weak<Pool>;
        let worker = Worker::new(id, resources, home, &self.live);
        {
            let mut scale = lock(&self.scale);
            scale.starting -= 1;
            if failed_before {
                scale.failing -= 1;
            }
        }
        hooks::at("ready:counted");
        let mut idle = lock(&self.idle);
        if self.is_closed() {
            drop(idle);
            lock(&self.scale).forget_worker(id);
            self.drop_off_thread(vec![worker]);
            return;
        }
        idle.push_back(Idle {
            worker,
            since: Instant::now(),
        });
        drop(idle);
        self.permits.add_permits(1);
        tracing::debug!(worker = %id, "worker ready");
    }

    /// The last hold on a worker dropped: check its resources, then make it idle again, or
    /// replace what is broken first.
    fn give_back(self: &Arc<Self>, worker: Arc<Worker>, now: Instant) {
        let mut replace = worker.take_replacements();
        if self.checks_broken && replace & REPLACE_ALL == 0 {
            replace |= self.broken_resources(&worker);
        }
        if replace != 0 {
            return self.reinitialize(worker, replace);
        }
        let mut idle = lock(&self.idle);
        if self.is_closed() {
            drop(idle);
            lock(&self.scale).forget_worker(worker.id);
            self.drop_off_thread(vec![worker]);
            return;
        }
        idle.push_back(Idle { worker, since: now });
        drop(idle);
        self.permits.add_permits(1);
    }

    /// The resources whose initializer's `broken` check says so.
    fn broken_resources(&self, worker: &Worker) -> u64 {
        let mut broken = 0;
        for (index, (init, slot)) in self.inits.iter().zip(worker.resources.slots()).enumerate() {
            if init.is_broken(slot) {
                tracing::warn!(
                    worker = %worker.id,
                    initializer = init.name(),
                    "a worker resource is broken; replacing it"
                );
                broken |= if index < 63 { 1 << index } else { REPLACE_ALL };
            }
        }
        broken
    }

    /// Drops the resources marked in `replace` (off the request path) and initialises them
    /// again; the worker serves again once they exist.
    fn reinitialize(self: &Arc<Self>, worker: Arc<Worker>, replace: u64) {
        let id = worker.id;
        if replace & REPLACE_ALL == 0 {
            let replaced: Vec<&str> = (0..self.inits.len().min(63))
                .filter(|index| replace & (1 << index) != 0)
                .map(|index| self.inits[index].name())
                .collect();
            tracing::info!(worker = %id, ?replaced, "replacing worker resources");
        }
        let kept = worker
            .resources
            .slots()
            .enumerate()
            .map(|(index, slot)| {
                let replaced = replace & REPLACE_ALL != 0 || replace & (1 << index) != 0;
                (!replaced).then(|| slot.clone())
            })
            .collect();
        {
            let mut scale = lock(&self.scale);
            if self.is_closed() {
                scale.forget_worker(id);
            } else {
                scale.starting += 1;
                drop(scale);
                self.spawn_start(id, kept);
            }
        }
        self.drop_off_thread(vec![worker]);
    }

    fn spawn_start(self: &Arc<Self>, id: WorkerId, slots: Vec<Option<Slot>>) {
        self.runtime
            .spawn(start_worker(Arc::clone(self), id, slots));
    }

    /// Stops the pool: waiting requests are refused, idle workers dropped now and busy ones when
    /// they are given back. Waits until the idle workers' resources are dropped.
    pub(crate) async fn close(&self) {
        if let Some(dropping) = self.shut() {
            let _ = dropping.await;
        }
    }

    /// Resolves once every worker's resources are dropped: after `close`, the workers that were
    /// busy are dropped when their last hold is.
    pub(crate) async fn all_dropped(&self) {
        self.live.zero().await;
    }

    /// `close` without the wait.
    fn shut(&self) -> Option<JoinHandle<()>> {
        let workers: Vec<Arc<Worker>> = {
            let mut scale = lock(&self.scale);
            let mut idle = lock(&self.idle);
            self.closed.store(true, Ordering::Release);
            idle.drain(..)
                .map(|idle| {
                    scale.forget_worker(idle.worker.id);
                    idle.worker
                })
                .collect()
        };
        self.closed_tx.send_replace(true);
        self.permits.close();
        self.drop_off_thread(workers)
    }

    /// Retires workers idle for `idle_timeout`, oldest first, down to `min`. Returns when to
    /// look again.
    fn retire_idle(&self) -> Instant {
        let now = Instant::now();
        let mut retired = Vec::new();
        let next = {
            let mut scale = lock(&self.scale);
            let mut idle = lock(&self.idle);
            loop {
                let Some(oldest) = idle.front() else {
                    break now + self.idle_timeout;
                };
                let expires = oldest.since + self.idle_timeout;
                if scale.total <= self.min {
                    break now + self.idle_timeout;
                }
                if expires > now {
                    break expires;
                }
                // Take its permit first: the invariant says one is there unless a request
                // is about to lease it, in which case the worker is not idle after all.
                let Ok(permit) = self.permits.try_acquire() else {
                    break now + (self.idle_timeout / 4).max(Duration::from_millis(1));
                };
                permit.forget();
                let worker = idle.pop_front().expect("checked above").worker;
                scale.forget_worker(worker.id);
                tracing::debug!(worker = %worker.id, "worker retired after idling");
                retired.push(worker);
            }
        };
        self.drop_off_thread(retired);
        next
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut stats = Stats::empty();
        {
            let scale = lock(&self.scale);
            let idle = lock(&self.idle).len();
            stats.workers = scale.total - scale.starting;
            stats.starting = scale.starting;
            stats.idle = idle;
            stats.busy = stats.workers - idle;
            stats.queued = scale.waiting;
        }
        self.counters.snapshot(&mut stats);
        stats
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Requests holding a worker or waiting for one.
    pub(crate) fn in_flight(&self) -> usize {
        let scale = lock(&self.scale);
        let idle = lock(&self.idle).len();
        scale.total - scale.starting - idle + scale.waiting
    }

    /// A drain begins: [`Drain`](crate::Drain) resolves, readiness answers 503.
    pub(crate) fn begin_drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.draining_tx.send_replace(true);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub(crate) fn draining(&self) -> watch::Receiver<bool> {
        self.draining_tx.subscribe()
    }

    /// Drops workers (and so the user's resources, e.g. database connections, whose `Drop` may
    /// block) on the blocking pool. `Resources` drops each value apart, so a panicking `Drop`
    /// costs only its own value.
    fn drop_off_thread(&self, workers: Vec<Arc<Worker>>) -> Option<JoinHandle<()>> {
        if workers.is_empty() {
            return None;
        }
        Some(self.runtime.spawn_blocking(move || {
            for worker in workers {
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| drop(worker))) {
                    tracing::error!(panic = panic_message(&*panic), "dropping a worker panicked");
                }
            }
        }))
    }
}

impl Home for Pool {
    fn give_back(self: Arc<Self>, worker: Arc<Worker>, now: Instant) {
        Pool::give_back(&self, worker, now);
    }

    fn draining(&self) -> watch::Receiver<bool> {
        Pool::draining(self)
    }
}

/// Counts a request as waiting for as long as it exists.
struct Waiting<'a>(&'a Pool);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(&self.0.scale).waiting -= 1;
    }
}

/// Starts one worker off the request path (or restores one whose resources were replaced),
/// retrying a failing initializer with backoff. `slots` holds the resources it keeps.
async fn start_worker(pool: Arc<Pool>, id: WorkerId, mut slots: Vec<Option<Slot>>) {
    let mut backoff = Duration::from_millis(100);
    let mut failed = false;
    let mut closed = pool.closed_tx.subscribe();
    loop {
        match init::fill(&pool.inits, id, &mut slots).await {
            Ok(resources) => return pool.ready(id, resources, failed),
            Err(err) => {
                pool.counters.init_failed();
                tracing::error!(
                    worker = %id,
                    initializer = err.initializer,
                    error = %err.source,
                    retry_in = ?backoff,
                    "worker failed to start"
                );
                let mut scale = lock(&pool.scale);
                if !failed {
                    failed = true;
                    scale.failing += 1;
                }
                if scale.unavailable() {
                    drop(scale);
                    pool.unavailable.notify_waiters();
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(jittered(backoff)) => {}
            () = pool.retry_now.notified() => {}
            _ = closed.wait_for(|closed| *closed) => {
                let mut scale = lock(&pool.scale);
                scale.starting -= 1;
                scale.failing -= 1;
                scale.forget_worker(id);
                return;
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Keeps the gauges current (once a second) for any recorder, until the pool closes.
pub(crate) async fn sample_gauges(pool: Weak<Pool>) {
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    every_second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every_second.tick().await;
        let Some(pool) = pool.upgrade().filter(|pool| !pool.is_closed()) else {
            return;
        };
        pool.counters.metrics.set_gauges(&pool.stats());
        #[cfg(feature = "prometheus")]
        if let Some(handle) = crate::metrics::prometheus::handle() {
            handle.run_upkeep();
        }
    }
}

/// At most how often refused requests wake a failing worker early.
const NUDGE_EVERY: Duration = Duration::from_millis(250);

/// Between half and all of `backoff`, so that workers that failed together do not all retry
/// together.
fn jittered(backoff: Duration) -> Duration {
    let half = backoff / 2;
    // The clock's low bits are random enough to spread a few workers apart.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let spread = u32::try_from(half.as_millis()).unwrap_or(u32::MAX).max(1);
    half + Duration::from_millis(u64::from(nanos % spread))
}

/// Retires idle workers until the pool closes or is dropped.
async fn reap(pool: Weak<Pool>, mut closed: watch::Receiver<bool>) {
    loop {
        let Some(next) = pool.upgrade().map(|pool| pool.retire_idle()) else {
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = closed.wait_for(|closed| *closed) => return,
        }
    }
}

/// Points where a test can run code between two steps of the pool, to force an interleaving.
mod hooks {
    #[cfg(not(test))]
    #[inline(always)]
    pub(super) fn at(_point: &'static str) {}

    #[cfg(test)]
    type Hook = Box<dyn FnMut(&'static str)>;

    #[cfg(test)]
    thread_local! {
        static HOOK: std::cell::RefCell<Option<Hook>> = const { std::cell::RefCell::new(None) };
    }

    /// Runs the hook set on this thread, if any.
    #[cfg(test)]
    pub(super) fn at(point: &'static str) {
        let hook = HOOK.with(|hook| hook.borrow_mut().take());
        if let Some(mut hook) = hook {
            hook(point);
            HOOK.with(|slot| *slot.borrow_mut() = Some(hook));
        }
    }

    /// Sets the hook for this thread (tests use a current-thread runtime).
    #[cfg(test)]
    pub(super) fn set(hook: impl FnMut(&'static str) + 'static) {
        HOOK.with(|slot| *slot.borrow_mut() = Some(Box::new(hook)));
    }
}

#[cfg(test)]
mod tests;
