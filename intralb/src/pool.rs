//! The worker pool: dispatch, the pool-wide queue, shedding, scaling up and retiring.
//!
//! A worker is a slot, not a task: a request *leases* an idle worker and runs the router on its
//! own connection task with that worker's resources attached, then gives it back. So the fast
//! path is one uncontended semaphore permit and a push/pop on the idle stack, with no task
//! switch.
//!
//! - `permits` counts idle workers. Its waiters are the queue: FIFO, and a request that gives up
//!   (deadline, closed connection) leaves it in O(1).
//! - `idle` is a stack: a request takes the most recently used worker (its connections are
//!   warm), so surplus workers sink to the bottom, where the reaper retires them.
//! - `scale` (behind a lock taken only on the slow path) counts workers and waiters, decides
//!   whether a request may wait or is shed, and starts workers when requests would wait.
//!
//! Invariant: `permits <= idle.len()`; a worker is pushed before its permit is added and a
//! permit is taken before a worker is removed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::Config;
use crate::error::Result;
use crate::init::{self, Initializer};
use crate::resources::WorkerContext;
use crate::stats::{Counters, Stats};
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
}

struct Worker {
    context: WorkerContext,
    idle_since: Instant,
}

struct Scale {
    /// Workers that exist or are starting.
    total: usize,
    /// Workers whose initializers are running.
    starting: usize,
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
}

pub(crate) struct Pool {
    max: usize,
    queue: usize,
    min: usize,
    idle_timeout: Duration,
    inits: Arc<[Initializer]>,
    permits: Semaphore,
    idle: Mutex<VecDeque<Worker>>,
    scale: Mutex<Scale>,
    closed: AtomicBool,
    closed_tx: watch::Sender<bool>,
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
    pub(crate) async fn start(config: &Config, inits: Vec<Initializer>) -> Result<Arc<Pool>> {
        let min = config.min_workers();
        let pool = Arc::new(Pool {
            max: config.max_concurrent,
            queue: config.queue,
            min,
            idle_timeout: config.idle_timeout,
            inits: inits.into(),
            permits: Semaphore::new(0),
            idle: Mutex::new(VecDeque::with_capacity(config.max_concurrent.min(1024))),
            scale: Mutex::new(Scale {
                total: 0,
                starting: 0,
                waiting: 0,
                free_ids: BinaryHeap::new(),
                next_id: 0,
            }),
            closed: AtomicBool::new(false),
            closed_tx: watch::Sender::new(false),
            counters: Counters::new(),
        });

        let mut starting = JoinSet::new();
        for _ in 0..min {
            let id = lock(&pool.scale).reserve();
            let inits = Arc::clone(&pool.inits);
            starting.spawn(async move { (id, init::run_all(&inits, id).await) });
        }
        while let Some(joined) = starting.join_next().await {
            let (id, result) = joined.expect("initializer tasks catch their panics");
            match result {
                Ok(resources) => pool.ready(id, resources.into()),
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
    pub(crate) async fn acquire(self: &Arc<Self>, deadline: Instant) -> Result<Lease, Rejected> {
        if let Ok(permit) = self.permits.try_acquire() {
            permit.forget();
            return Ok(self.lease());
        }
        self.enqueue()?;
        let _waiting = Waiting(self);
        match tokio::time::timeout_at(deadline, self.permits.acquire()).await {
            Ok(Ok(permit)) => {
                permit.forget();
                Ok(self.lease())
            }
            Ok(Err(_closed)) => Err(Rejected::Closed),
            Err(_elapsed) => Err(Rejected::Expired),
        }
    }

    /// Admits a request to the queue, or sheds it; starts a worker if one may be added.
    fn enqueue(self: &Arc<Self>) -> Result<(), Rejected> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Rejected::Closed);
        }
        let mut scale = lock(&self.scale);
        // This request would wait: give it a worker of its own if the pool may grow.
        if scale.starting <= scale.waiting && scale.total < self.max {
            let id = scale.reserve();
            tokio::spawn(start_worker(Arc::clone(self), id));
        }
        // Requests waiting for a worker that is starting for them do not take queue places.
        if scale.waiting >= self.queue + scale.starting {
            return Err(Rejected::Shed);
        }
        scale.waiting += 1;
        Ok(())
    }

    fn lease(self: &Arc<Self>) -> Lease {
        let worker = lock(&self.idle)
            .pop_back()
            .expect("a permit always has an idle worker behind it");
        Lease {
            pool: Arc::clone(self),
            worker: Some(worker),
            poisoned: false,
        }
    }

    /// A started worker joins the idle stack (or is dropped if the pool closed meanwhile).
    fn ready(&self, id: WorkerId, resources: Arc<crate::resources::Resources>) {
        let worker = Worker {
            context: WorkerContext { id, resources },
            idle_since: Instant::now(),
        };
        let mut scale = lock(&self.scale);
        scale.starting -= 1;
        if self.closed.load(Ordering::Acquire) {
            scale.forget_worker(id);
            drop(scale);
            drop_off_thread(vec![worker]);
            return;
        }
        lock(&self.idle).push_back(worker);
        drop(scale);
        self.permits.add_permits(1);
        tracing::debug!(worker = %id, "worker ready");
    }

    fn release(&self, worker: Worker) {
        let mut idle = lock(&self.idle);
        if self.closed.load(Ordering::Acquire) {
            drop(idle);
            lock(&self.scale).forget_worker(worker.context.id);
            drop_off_thread(vec![worker]);
            return;
        }
        idle.push_back(worker);
        drop(idle);
        self.permits.add_permits(1);
    }

    /// A worker whose request panicked: drop its resources and initialise new ones.
    fn reinitialize(self: &Arc<Self>, worker: Worker) {
        let id = worker.context.id;
        if self.closed.load(Ordering::Acquire) {
            lock(&self.scale).forget_worker(id);
        } else {
            lock(&self.scale).starting += 1;
            tokio::spawn(start_worker(Arc::clone(self), id));
        }
        drop_off_thread(vec![worker]);
    }

    /// Stops the pool: waiting requests are refused, idle workers dropped now and busy ones when
    /// they are released. Waits until the idle workers' resources are dropped.
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.closed_tx.send_replace(true);
        self.permits.close();
        let workers: Vec<Worker> = lock(&self.idle).drain(..).collect();
        {
            let mut scale = lock(&self.scale);
            for worker in &workers {
                scale.forget_worker(worker.context.id);
            }
        }
        if let Some(dropping) = drop_off_thread(workers) {
            let _ = dropping.await;
        }
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
                let expires = oldest.idle_since + self.idle_timeout;
                if scale.total <= self.min {
                    break now + self.idle_timeout;
                }
                if expires > now {
                    break expires;
                }
                // Take its permit first: the invariant says one is there unless a request
                // is about to lease it, in which case the worker is not idle after all.
                let Ok(permit) = self.permits.try_acquire() else {
                    break now + self.idle_timeout / 4;
                };
                permit.forget();
                let worker = idle.pop_front().expect("checked above");
                scale.forget_worker(worker.context.id);
                tracing::debug!(worker = %worker.context.id, "worker retired after idling");
                retired.push(worker);
            }
        };
        drop_off_thread(retired);
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
}

/// Drops workers (and so the user's resources, e.g. database connections, whose `Drop` may block)
/// on the blocking pool.
fn drop_off_thread(workers: Vec<Worker>) -> Option<tokio::task::JoinHandle<()>> {
    if workers.is_empty() {
        return None;
    }
    Some(tokio::task::spawn_blocking(move || drop(workers)))
}

/// Counts a request as waiting for as long as it exists.
struct Waiting<'a>(&'a Pool);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(&self.0.scale).waiting -= 1;
    }
}

/// A worker, leased to one request. Dropping it gives the worker back.
pub(crate) struct Lease {
    pool: Arc<Pool>,
    worker: Option<Worker>,
    poisoned: bool,
}

impl Lease {
    pub(crate) fn context(&self) -> &WorkerContext {
        &self.worker.as_ref().expect("present until drop").context
    }

    pub(crate) fn id(&self) -> WorkerId {
        self.context().id
    }

    /// The request panicked: the worker's resources may be mid-operation, so they are replaced.
    pub(crate) fn poison(&mut self) {
        self.poisoned = true;
    }

    /// Gives the worker back, idle since `now` (saves reading the clock again).
    pub(crate) fn release_at(mut self, now: Instant) {
        self.give_back(now);
    }

    fn give_back(&mut self, now: Instant) {
        if let Some(mut worker) = self.worker.take() {
            if self.poisoned {
                self.pool.reinitialize(worker);
            } else {
                worker.idle_since = now;
                self.pool.release(worker);
            }
        }
    }
}

impl Drop for Lease {
    /// A request cancelled before `release_at` (its connection closed or was aborted).
    fn drop(&mut self) {
        if self.worker.is_some() {
            self.give_back(Instant::now());
        }
    }
}

/// Starts one worker off the request path, retrying a failing initializer with backoff.
async fn start_worker(pool: Arc<Pool>, id: WorkerId) {
    let mut backoff = Duration::from_millis(100);
    let mut closed = pool.closed_tx.subscribe();
    loop {
        match init::run_all(&pool.inits, id).await {
            Ok(resources) => return pool.ready(id, resources.into()),
            Err(err) => {
                pool.counters.init_failed();
                tracing::error!(
                    worker = %id,
                    initializer = err.initializer,
                    error = %err.source,
                    retry_in = ?backoff,
                    "worker failed to start"
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = closed.wait_for(|closed| *closed) => {
                let mut scale = lock(&pool.scale);
                scale.starting -= 1;
                scale.forget_worker(id);
                return;
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
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
