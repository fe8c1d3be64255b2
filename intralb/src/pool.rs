//! The worker pool: dispatch, the pool-wide queue, shedding, scaling up, replacing broken
//! resources, and retiring.
//!
//! A worker is a slot, not a task: a request *leases* an idle worker and runs the router on its
//! own connection task with that worker's resources attached, then gives it back (when the last
//! [`Hold`] on it drops: see `worker.rs`). So the fast path is one uncontended lock to pop the
//! idle stack, and one to push back, with no task switch.
//!
//! - `idle` is a stack: a request takes the most recently used worker (its connections are
//!   warm), so surplus workers sink to the bottom, where the reaper retires them.
//! - `queue` holds the requests waiting for a worker; its discipline (CoDel, adaptive LIFO,
//!   priorities) is in `queue.rs`. A worker given back goes straight to the waiter the queue
//!   picks, if any.
//! - `scale` counts workers, and a request that would wait starts a worker if the pool may grow.
//! - `limit` is how many requests may run at once: `max_concurrent`, or with `adaptive`, what
//!   the controller in `limit.rs` (fed every service time, through [`Pool::observe`]) finds.
//!   A request takes an idle worker only while fewer than `limit` run, else it waits; a worker
//!   given back goes to a waiter only then, else it idles (and retires as any idle worker); a
//!   worker starts for a waiting request only below `limit`.
//!
//! Invariant: while a worker is idle and fewer than `limit` requests run, no request waits
//! (when the limit rises, waiters are given workers at once). Everything above is behind one lock,
//! `core`, and a worker joins the idle stack (or a waiter) only under it after checking
//! `closed`, which `close` sets under it: nothing joins the stack once `close` has emptied it.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot::{self, error::TryRecvError};
use tokio::sync::{watch, Notify};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::catch_unwind::panic_message;
use crate::config;
use crate::counters::Counters;
use crate::error::Result;
use crate::init::{self, Initializer};
use crate::limit::Controller;
use crate::priority::Priority;
use crate::queue::{Admit, Grant, Queue};
use crate::resources::{Resources, Slot};
use crate::stats::Stats;
use crate::tally::Tally;
use crate::worker::{Hold, Home, Worker, REPLACE_ALL};
use crate::worker_id::WorkerId;

/// Why a request did not get a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// Every worker busy and no queue place for it, or it waited too long in a standing queue
    /// (CoDel), or a critical request took its place. Come back after this many seconds.
    Shed { retry_after: u64 },
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

/// Everything behind the pool's one lock.
struct Core {
    idle: VecDeque<Idle>,
    queue: Queue,
    scale: Scale,
    /// Most requests running at once: `max` unless the controller lowered it.
    limit: usize,
    /// With `adaptive`.
    control: Option<Controller>,
}

impl Core {
    /// Workers running a request.
    fn busy(&self) -> usize {
        self.scale.total - self.scale.starting - self.idle.len()
    }
}

pub(crate) struct Pool {
    max: usize,
    /// Whether the limit adapts (then [`Pool::observe`] feeds it).
    pub(crate) adaptive: bool,
    /// With `adaptive`, one finished request in this many (on each thread) is a sample: the
    /// controller's [`Moved::stride`](crate::limit::Moved).
    stride: AtomicUsize,
    queue: usize,
    min: usize,
    idle_timeout: Duration,
    inits: Arc<[Initializer]>,
    /// Whether any initializer has a `broken` check (skips the checks when none has).
    checks_broken: bool,
    core: Mutex<Core>,
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

/// What the first look at the pool found for a request.
enum Found {
    /// An idle worker, leased.
    Idle(Arc<Worker>),
    /// A place in the queue; `start`: a worker to start for it.
    Queued(oneshot::Receiver<Grant>, Option<WorkerId>),
}

impl Pool {
    /// Creates the pool and starts `min_workers`; fails, naming the initializer, if one fails.
    pub(crate) async fn start(config: &config::Pool, inits: Vec<Initializer>) -> Result<Arc<Pool>> {
        let min = config.min_workers();
        let checks_broken = inits.iter().any(Initializer::checks_broken);
        let now = Instant::now();
        let pool = Arc::new(Pool {
            max: config.max_concurrent,
            adaptive: config.adaptive,
            stride: AtomicUsize::new(1),
            queue: config.queue,
            min,
            idle_timeout: config.idle_timeout,
            inits: inits.into(),
            checks_broken,
            core: Mutex::new(Core {
                idle: VecDeque::with_capacity(config.max_concurrent.min(1024)),
                queue: Queue::new(config.queue_target, now),
                scale: Scale {
                    total: 0,
                    starting: 0,
                    failing: 0,
                    free_ids: BinaryHeap::new(),
                    next_id: 0,
                },
                limit: crate::limit::starting_limit(config.max_concurrent, config.adaptive),
                control: config
                    .adaptive
                    .then(|| Controller::new(config.max_concurrent, now)),
            }),
            closed: AtomicBool::new(false),
            closed_tx: watch::Sender::new(false),
            unavailable: Notify::new(),
            retry_now: Notify::new(),
            last_nudge_ms: AtomicU64::new(0),
            started: now,
            draining: AtomicBool::new(false),
            draining_tx: watch::Sender::new(false),
            runtime: Handle::current(),
            live: Arc::default(),
            counters: Counters::new(),
        });

        let mut starting = JoinSet::new();
        for _ in 0..min {
            let id = lock(&pool.core).scale.reserve();
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

    /// Leases a worker to a request of `priority` that arrived at `now`: at once if one is
    /// idle, else after waiting in the queue (until `deadline` at the latest), else not at all.
    /// (The dispatch calls the two halves itself, to box only the second.)
    #[cfg(any(test, feature = "bench-internals"))]
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        priority: Priority,
        now: Instant,
        deadline: Instant,
    ) -> Result<Hold, Rejected> {
        match self.acquire_now(priority, now)? {
            Some(hold) => Ok(hold),
            None => self.wait(priority, now, deadline).await,
        }
    }

    /// The fast path of `acquire`, without a future: a worker if one is idle,
    /// `None` if the request has to [`wait`](Self::wait).
    pub(crate) fn acquire_now(
        self: &Arc<Self>,
        priority: Priority,
        now: Instant,
    ) -> Result<Option<Hold>, Rejected> {
        loop {
            let Some(worker) = self.take_idle(priority, now)? else {
                return Ok(None);
            };
            hooks::at("acquire:idle-taken");
            if let Some(hold) = self.lease(worker) {
                return Ok(Some(hold));
            }
        }
    }

    /// The fast path: the most recently used idle worker, if any.
    fn take_idle(&self, priority: Priority, now: Instant) -> Result<Option<Arc<Worker>>, Rejected> {
        let mut core = lock(&self.core);
        if self.is_closed() {
            return Err(Rejected::Closed);
        }
        if core.limit < self.max && core.busy() >= core.limit {
            return Ok(None);
        }
        let idle = core.idle.pop_back();
        if idle.is_some() {
            core.queue.granted_at_once(priority, now);
        }
        Ok(idle.map(|idle| idle.worker))
    }

    /// No worker was idle: queue the request (starting a worker for it if the pool may grow),
    /// or refuse it.
    pub(crate) async fn wait(
        self: &Arc<Self>,
        priority: Priority,
        now: Instant,
        deadline: Instant,
    ) -> Result<Hold, Rejected> {
        // Registered before admission, so a failure reported in between is not missed.
        let mut unavailable = pin!(self.unavailable.notified());
        unavailable.as_mut().enable();
        let (rx, start) = loop {
            match self.enqueue(priority, now)? {
                Found::Idle(worker) => {
                    if let Some(hold) = self.lease(worker) {
                        return Ok(hold);
                    }
                }
                Found::Queued(rx, start) => break (rx, start),
            }
        };
        let mut waiting = Waiting {
            pool: self,
            priority,
            rx: Some(rx),
        };
        if let Some(id) = start {
            self.spawn_start(id, vec![None; self.inits.len()]);
        }
        let check = |pool: &Pool| {
            lock(&pool.core)
                .queue
                .next_check(priority, now, Instant::now())
        };
        let next = |check: Option<Instant>| check.map_or(deadline, |check| check.min(deadline));
        let mut timer = pin!(tokio::time::sleep_until(next(check(self))));
        loop {
            let rx = waiting.rx.as_mut().expect("present until answered");
            tokio::select! {
                biased;
                grant = rx => {
                    waiting.rx = None;
                    return match grant {
                        Ok(Grant::Worker(worker)) => Ok(Hold::lease(worker)),
                        Ok(Grant::Shed) => Err(self.shed()),
                        Err(_closed) => Err(Rejected::Closed),
                    };
                }
                () = &mut unavailable => return Err(Rejected::Unavailable),
                () = &mut timer => {
                    let checked = Instant::now();
                    if checked >= deadline {
                        return Err(Rejected::Expired);
                    }
                    let mut core = lock(&self.core);
                    if core.queue.sloughs(priority, now, checked) {
                        let retry_after = core.queue.retry_after(checked);
                        return Err(Rejected::Shed { retry_after });
                    }
                    let again = core.queue.next_check(priority, now, checked);
                    drop(core);
                    timer.as_mut().reset(next(again));
                }
            }
        }
    }

    /// `Shed`, with a `Retry-After` from the queue as it is now.
    fn shed(&self) -> Rejected {
        Rejected::Shed {
            retry_after: lock(&self.core).queue.retry_after(Instant::now()),
        }
    }

    /// Admits a request to the queue, or refuses it; reserves a worker to start for it if the
    /// pool may grow. A worker given back since the first look is taken at once.
    fn enqueue(self: &Arc<Self>, priority: Priority, now: Instant) -> Result<Found, Rejected> {
        let mut core = lock(&self.core);
        if self.is_closed() {
            return Err(Rejected::Closed);
        }
        let below_limit = core.limit >= self.max || core.busy() < core.limit;
        if below_limit {
            if let Some(idle) = core.idle.pop_back() {
                core.queue.granted_at_once(priority, now);
                return Ok(Found::Idle(idle.worker));
            }
        }
        if core.scale.unavailable() {
            drop(core);
            self.nudge();
            return Err(Rejected::Unavailable);
        }
        // This request would wait: give it a worker of its own if the pool may grow. It waits
        // for that worker without taking a queue place.
        let waiting = core.queue.len();
        let start = (core.scale.starting <= waiting && core.scale.total < core.limit)
            .then(|| core.scale.reserve());
        if start.is_none() {
            let places = self.queue.saturating_add(core.scale.starting);
            match core.queue.admit(priority, places, now) {
                Admit::Wait => {}
                Admit::Displace(displaced) => {
                    let _ = displaced.send(Grant::Shed);
                }
                Admit::Refuse => {
                    let retry_after = core.queue.retry_after(now);
                    return Err(Rejected::Shed { retry_after });
                }
            }
        }
        Ok(Found::Queued(core.queue.push(priority, now), start))
    }

    /// Leases a worker taken from the idle stack; `None` if its resources broke while it idled
    /// (a database restarted): it is being replaced.
    fn lease(self: &Arc<Self>, worker: Arc<Worker>) -> Option<Hold> {
        if self.checks_broken {
            let broken = self.broken_resources(&worker);
            if broken != 0 {
                self.reinitialize(worker, broken);
                return None;
            }
        }
        Some(Hold::lease(worker))
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

    /// A started worker serves: it goes to a waiting request or joins the idle stack (or is
    /// dropped if the pool closed meanwhile).
    fn ready(self: &Arc<Self>, id: WorkerId, resources: Resources, failed_before: bool) {
        let home: Weak<dyn Home> = Arc::downgrade(self) as Weak<Pool>;
        let worker = Worker::new(id, resources, home, &self.live);
        let mut core = lock(&self.core);
        core.scale.starting -= 1;
        if failed_before {
            core.scale.failing -= 1;
        }
        self.put(core, worker, Instant::now());
        tracing::debug!(worker = %id, "worker ready");
    }

    /// The last hold on a worker dropped: check its resources, then make it serve again, or
    /// replace what is broken first.
    fn give_back(self: &Arc<Self>, worker: Arc<Worker>, now: Instant) {
        let mut replace = worker.take_replacements();
        if self.checks_broken && replace & REPLACE_ALL == 0 {
            replace |= self.broken_resources(&worker);
        }
        if replace != 0 {
            return self.reinitialize(worker, replace);
        }
        self.put(lock(&self.core), worker, now);
    }

    /// A worker that can serve goes to the waiter the queue picks (if fewer than `limit` others
    /// run), else onto the idle stack; dropped instead if the pool is closed. Grants are sent
    /// under the lock, so a waiter that gives up (under it too) knows whether it was sent one.
    fn put(&self, mut core: MutexGuard<'_, Core>, worker: Arc<Worker>, now: Instant) {
        if core.queue.is_empty() && !self.is_closed() {
            // The fast path: nobody waits.
            core.idle.push_back(Idle { worker, since: now });
            return;
        }
        if self.is_closed() {
            core.scale.forget_worker(worker.id);
            drop(core);
            self.drop_off_thread(vec![worker]);
            return;
        }
        // The worker is not idle, so it counts as busy: the others (one fewer) are at the limit.
        if core.limit < self.max && core.busy() > core.limit {
            core.idle.push_back(Idle { worker, since: now });
            return;
        }
        Self::grant(&mut core, worker, now);
    }

    /// Sends `worker` to the waiter the queue picks, or makes it idle if none waits.
    fn grant(core: &mut Core, mut worker: Arc<Worker>, now: Instant) {
        while let Some(waiter) = core.queue.next(now) {
            match waiter.send(Grant::Worker(worker)) {
                Ok(()) => return,
                Err(Grant::Worker(back)) => worker = back,
                Err(Grant::Shed) => unreachable!("a worker was sent"),
            }
        }
        core.idle.push_back(Idle { worker, since: now });
    }

    /// Whether the request that just ended is a sample for the controller (with `adaptive`):
    /// one in the controller's stride, counted on each thread (no shared counter).
    pub(crate) fn sampled(&self) -> bool {
        thread_local! {
            static ENDED: Cell<usize> = const { Cell::new(0) };
        }
        let stride = self.stride.load(Ordering::Relaxed);
        stride <= 1
            || ENDED.with(|ended| {
                let count = ended.get().wrapping_add(1);
                ended.set(count);
                count % stride == 0
            })
    }

    /// A request that `started` on a worker ended at `now` (with `adaptive`): the controller
    /// takes its service time, and if the limit rose, waiters get idle workers (or workers
    /// start for them) at once.
    pub(crate) fn observe(self: &Arc<Self>, started: Instant, now: Instant) {
        let mut core = lock(&self.core);
        let busy = core.busy();
        let Some(moved) = core
            .control
            .as_mut()
            .and_then(|control| control.observe(started, now, busy))
        else {
            return;
        };
        core.limit = moved.to;
        self.stride.store(moved.stride, Ordering::Relaxed);
        if moved.to < moved.from {
            // Those waiting now wait for fewer workers: the queue stands from now on.
            core.queue.limit_cut(now);
        }
        let mut starts = Vec::new();
        while moved.to > moved.from && !core.queue.is_empty() && core.busy() < core.limit {
            if let Some(idle) = core.idle.pop_back() {
                Self::grant(&mut core, idle.worker, now);
            } else if core.scale.starting < core.queue.len() && core.scale.total < core.limit {
                starts.push(core.scale.reserve());
            } else {
                break;
            }
        }
        drop(core);
        for id in starts {
            self.spawn_start(id, vec![None; self.inits.len()]);
        }
        if moved.log {
            tracing::info!(
                from = moved.from,
                to = moved.to,
                mean_service_time = ?moved.mean,
                baseline = ?moved.baseline,
                "adaptive concurrency limit moved"
            );
        }
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
            let mut core = lock(&self.core);
            if self.is_closed() {
                core.scale.forget_worker(id);
            } else {
                core.scale.starting += 1;
                drop(core);
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
            let mut core = lock(&self.core);
            self.closed.store(true, Ordering::Release);
            // Dropping the waiters' channels tells them.
            core.queue.clear();
            let Core { idle, scale, .. } = &mut *core;
            idle.drain(..)
                .map(|idle| {
                    scale.forget_worker(idle.worker.id);
                    idle.worker
                })
                .collect()
        };
        self.closed_tx.send_replace(true);
        self.drop_off_thread(workers)
    }

    /// Retires workers idle for `idle_timeout`, oldest first, down to `min`. Returns when to
    /// look again.
    fn retire_idle(&self) -> Instant {
        let now = Instant::now();
        let mut retired = Vec::new();
        let next = {
            let mut core = lock(&self.core);
            loop {
                let Some(oldest) = core.idle.front() else {
                    break now + self.idle_timeout;
                };
                let expires = oldest.since + self.idle_timeout;
                if core.scale.total <= self.min {
                    break now + self.idle_timeout;
                }
                if expires > now {
                    break expires;
                }
                let worker = core.idle.pop_front().expect("checked above").worker;
                core.scale.forget_worker(worker.id);
                tracing::debug!(worker = %worker.id, "worker retired after idling");
                retired.push(worker);
            }
        };
        self.drop_off_thread(retired);
        next
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut stats = self.occupancy();
        self.counters.snapshot(&mut stats);
        stats
    }

    /// [`stats`](Self::stats)' workers and queue, without the counters and latencies (what the
    /// gauges need).
    pub(crate) fn occupancy(&self) -> Stats {
        let mut stats = Stats::empty();
        {
            let core = lock(&self.core);
            stats.workers = core.scale.total - core.scale.starting;
            stats.starting = core.scale.starting;
            stats.idle = core.idle.len();
            stats.busy = stats.workers - stats.idle;
            stats.concurrency_limit = core.limit;
            stats.queued = core.queue.len();
            for priority in Priority::ALL {
                stats.by_priority[priority.rank()].queued = core.queue.len_of(priority);
            }
        }
        stats
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Requests holding a worker or waiting for one.
    pub(crate) fn in_flight(&self) -> usize {
        let core = lock(&self.core);
        core.busy() + core.queue.len()
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

/// A request in the queue. Dropped without an answer (it gave up: its deadline, CoDel, or its
/// client went away), it leaves the queue, and gives back a worker sent to it meanwhile.
struct Waiting<'a> {
    pool: &'a Arc<Pool>,
    priority: Priority,
    /// Until an answer is received.
    rx: Option<oneshot::Receiver<Grant>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        let mut core = lock(&self.pool.core);
        // Grants are sent under the lock: nothing can arrive after this look.
        match rx.try_recv() {
            Err(TryRecvError::Empty) => {
                // Closed first, so that the queue can tell its entry is gone.
                drop(rx);
                core.queue.leave(self.priority);
            }
            Ok(Grant::Worker(worker)) => self.pool.put(core, worker, Instant::now()),
            Ok(Grant::Shed) | Err(TryRecvError::Closed) => {}
        }
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
                let mut core = lock(&pool.core);
                if !failed {
                    failed = true;
                    core.scale.failing += 1;
                }
                if core.scale.unavailable() {
                    drop(core);
                    pool.unavailable.notify_waiters();
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(jittered(backoff)) => {}
            () = pool.retry_now.notified() => {}
            _ = closed.wait_for(|closed| *closed) => {
                let mut core = lock(&pool.core);
                core.scale.starting -= 1;
                core.scale.failing -= 1;
                core.scale.forget_worker(id);
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
        pool.counters.metrics.set_gauges(&pool.occupancy());
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
