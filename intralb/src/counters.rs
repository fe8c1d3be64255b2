//! The live counters and latency histograms every connection updates, and the warning logged
//! while shedding goes on; [`Stats`] is built from them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::histogram::{Counts, Histogram};
use crate::metrics::Metrics;
use crate::outcome::Outcome;
use crate::priority::Priority;
use crate::stats::{Percentiles, Stats};

/// The live counters, shared by every connection: for [`Stats`], and for the `metrics` facade.
pub(crate) struct Counters {
    init_failures: AtomicU64,
    /// One per thread (round robin), so that threads counting at once do not pass cache lines
    /// between their cores; summed for [`Stats`]. A power of two, so that a thread finds its
    /// own with a mask rather than a division.
    shards: Box<[Shard]>,
    pub(crate) metrics: Metrics,
    start: Instant,
    last_shed_warning_ms: AtomicU64,
    shed_at_last_warning: AtomicU64,
}

/// A thread's counts, on cache lines of their own (the histograms' buckets are on the heap).
#[repr(align(128))]
struct Shard {
    /// By priority, then outcome.
    outcomes: [[AtomicU64; Outcome::ALL.len()]; Priority::ALL.len()],
    queue_wait: Histogram,
    service_time: Histogram,
}

/// This thread's shard, of `shards` (a power of two).
fn shard(shards: usize) -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Relaxed);
    }
    SHARD.with(|shard| *shard & (shards - 1))
}

/// How many shards: one per core, rounded up to a power of two, at most 64.
fn shards() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().min(64))
        .next_power_of_two()
}

/// Without `Duration::as_micros`'s 128-bit arithmetic (the histograms count 0 as 1).
fn micros(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
}

impl Counters {
    /// Registers the metrics handles: call it after any recorder is installed.
    pub(crate) fn new() -> Self {
        Counters {
            init_failures: AtomicU64::new(0),
            shards: (0..shards())
                .map(|_| Shard {
                    outcomes: Default::default(),
                    queue_wait: Histogram::new(),
                    service_time: Histogram::new(),
                })
                .collect(),
            metrics: Metrics::register(),
            start: Instant::now(),
            last_shed_warning_ms: AtomicU64::new(0),
            shed_at_last_warning: AtomicU64::new(0),
        }
    }

    /// Counts one answered request.
    pub(crate) fn count(&self, outcome: Outcome, priority: Priority) {
        self.count_in(self.shard(), outcome, priority);
        if outcome == Outcome::Shed {
            self.warn_while_shedding();
        }
    }

    pub(crate) fn init_failed(&self) {
        self.init_failures.fetch_add(1, Relaxed);
        self.metrics.init_failures.increment(1);
    }

    /// Records one request that a worker ran, which ended as `outcome`: its count (as
    /// [`count`](Self::count), in the same look-up of the thread's shard) and its times. Never
    /// `Shed` (a shed request ran on no worker), so no shedding warning is due here.
    pub(crate) fn record(
        &self,
        outcome: Outcome,
        priority: Priority,
        queue_wait: Duration,
        service_time: Duration,
    ) {
        debug_assert_ne!(
            outcome,
            Outcome::Shed,
            "a shed request is counted, not recorded"
        );
        self.metrics.queue_wait.record(queue_wait);
        self.metrics.service_time.record(service_time);
        let shard = self.shard();
        self.count_in(shard, outcome, priority);
        shard.queue_wait.record(micros(queue_wait));
        shard.service_time.record(micros(service_time));
    }

    /// Counts one answered request in `shard` (this thread's) and in the metrics.
    fn count_in(&self, shard: &Shard, outcome: Outcome, priority: Priority) {
        shard.outcomes[priority.rank()][outcome as usize].fetch_add(1, Relaxed);
        self.metrics.outcome(outcome, priority).increment(1);
    }

    /// Warns at most once a second while shedding goes on.
    fn warn_while_shedding(&self) {
        let total = self.get(Outcome::Shed);
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_shed_warning_ms.load(Relaxed);
        if (last == 0 || now >= last + 1000)
            && self
                .last_shed_warning_ms
                .compare_exchange(last, now.max(1), Relaxed, Relaxed)
                .is_ok()
        {
            let before = self.shed_at_last_warning.swap(total, Relaxed);
            tracing::warn!(
                shed = total - before,
                "shedding load: every worker is busy and the queue is full; answering 503"
            );
        }
    }

    fn get(&self, outcome: Outcome) -> u64 {
        Priority::ALL
            .iter()
            .map(|priority| self.get_of(outcome, *priority))
            .sum()
    }

    fn get_of(&self, outcome: Outcome, priority: Priority) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.outcomes[priority.rank()][outcome as usize].load(Relaxed))
            .sum()
    }

    /// This thread's shard.
    fn shard(&self) -> &Shard {
        &self.shards[shard(self.shards.len())]
    }

    /// Requests answered so far, by anyone.
    pub(crate) fn answered(&self) -> u64 {
        Outcome::ALL.iter().map(|o| self.get(*o)).sum()
    }

    pub(crate) fn snapshot(&self, stats: &mut Stats) {
        stats.served = self.get(Outcome::Served);
        stats.shed = self.get(Outcome::Shed);
        stats.expired_in_queue = self.get(Outcome::ExpiredInQueue);
        stats.unavailable = self.get(Outcome::Unavailable);
        stats.shutting_down = self.get(Outcome::ShuttingDown);
        stats.body_timed_out = self.get(Outcome::BodyTimedOut);
        stats.body_failed = self.get(Outcome::BodyFailed);
        stats.timed_out = self.get(Outcome::TimedOut);
        stats.panicked = self.get(Outcome::Panicked);
        stats.failed = self.get(Outcome::Failed);
        stats.init_failures = self.init_failures.load(Relaxed);
        for priority in Priority::ALL {
            let of = &mut stats.by_priority[priority.rank()];
            of.served = self.get_of(Outcome::Served, priority);
            of.shed = self.get_of(Outcome::Shed, priority);
            of.expired_in_queue = self.get_of(Outcome::ExpiredInQueue, priority);
        }
        let (mut queue_wait, mut service_time) = (Counts::new(), Counts::new());
        for shard in &self.shards {
            shard.queue_wait.add_to(&mut queue_wait);
            shard.service_time.add_to(&mut service_time);
        }
        stats.queue_wait = Percentiles::of(&queue_wait);
        stats.service_time = Percentiles::of(&service_time);
    }
}
