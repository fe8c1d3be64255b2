//! Counters and latency histograms, and the [`Stats`] snapshot built from them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::metrics::Metrics;
use crate::outcome::Outcome;

/// A point-in-time view of the balancer.
///
/// Counters count since start; gauges (`workers`, `busy`, …) are what was true at the moment
/// of the snapshot. Read it from [`Server::stats`](crate::Server::stats).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Workers that exist and can run requests (busy + idle).
    pub workers: usize,
    /// Workers running a request.
    pub busy: usize,
    /// Workers waiting for a request.
    pub idle: usize,
    /// Workers whose initializers are running (new, or re-initialising after a panic).
    pub starting: usize,
    /// Requests waiting for a worker.
    pub queued: usize,
    /// Requests answered by the router (any status the router chose).
    pub served: u64,
    /// Requests answered `503` at once because every worker was busy and the queue was full.
    pub shed: u64,
    /// Requests answered `503` because their deadline passed while they waited in the queue.
    pub expired_in_queue: u64,
    /// Requests answered `503` at once because no worker existed and every worker start was
    /// failing (an initializer's database is down, say), instead of waiting for their deadline.
    pub unavailable: u64,
    /// Requests answered `503` + `Connection: close` because the server was shutting down:
    /// refused during the drain, still queued at its deadline, or cancelled by it.
    pub shutting_down: u64,
    /// Requests answered `504` because their deadline passed while a worker ran them.
    pub timed_out: u64,
    /// Requests whose handler panicked (answered `500`).
    pub panicked: u64,
    /// Requests whose router returned an error (answered `500`).
    pub failed: u64,
    /// Initializer runs that failed or panicked.
    pub init_failures: u64,
    /// Time from arrival until a worker took the request.
    pub queue_wait: Percentiles,
    /// Time a worker spent on a request, until its response head.
    pub service_time: Percentiles,
}

/// Latency percentiles, with microsecond resolution and two significant digits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Percentiles {
    /// How many samples.
    pub count: u64,
    /// The median.
    pub p50: Duration,
    /// The 90th percentile.
    pub p90: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The largest sample.
    pub max: Duration,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        let at = |q| Duration::from_micros(h.value_at_quantile(q));
        Percentiles {
            count: h.len(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: Duration::from_micros(h.max()),
        }
    }
}

/// The live counters, shared by every connection: for [`Stats`], and for the `metrics` facade.
pub(crate) struct Counters {
    outcomes: [AtomicU64; Outcome::ALL.len()],
    init_failures: AtomicU64,
    latency: Mutex<Latency>,
    pub(crate) metrics: Metrics,
    start: Instant,
    last_shed_warning_ms: AtomicU64,
    shed_at_last_warning: AtomicU64,
}

struct Latency {
    queue_wait: Histogram<u64>,
    service_time: Histogram<u64>,
}

/// One hour, in microseconds: longer samples are recorded as one hour.
const HIGHEST_MICROS: u64 = 3_600_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, 2).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl Counters {
    /// Registers the metrics handles: call it after any recorder is installed.
    pub(crate) fn new() -> Self {
        Counters {
            outcomes: Default::default(),
            init_failures: AtomicU64::new(0),
            latency: Mutex::new(Latency {
                queue_wait: histogram(),
                service_time: histogram(),
            }),
            metrics: Metrics::register(),
            start: Instant::now(),
            last_shed_warning_ms: AtomicU64::new(0),
            shed_at_last_warning: AtomicU64::new(0),
        }
    }

    /// Counts one answered request.
    pub(crate) fn count(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].fetch_add(1, Relaxed);
        self.metrics.outcome(outcome).increment(1);
        if outcome == Outcome::Shed {
            self.warn_while_shedding();
        }
    }

    pub(crate) fn init_failed(&self) {
        self.init_failures.fetch_add(1, Relaxed);
        self.metrics.init_failures.increment(1);
    }

    /// Records one request that a worker ran.
    pub(crate) fn record(&self, queue_wait: Duration, service_time: Duration) {
        self.metrics.queue_wait.record(queue_wait);
        self.metrics.service_time.record(service_time);
        let mut latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        latency.queue_wait.saturating_record(micros(queue_wait));
        latency.service_time.saturating_record(micros(service_time));
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
        self.outcomes[outcome as usize].load(Relaxed)
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
        stats.timed_out = self.get(Outcome::TimedOut);
        stats.panicked = self.get(Outcome::Panicked);
        stats.failed = self.get(Outcome::Failed);
        stats.init_failures = self.init_failures.load(Relaxed);
        let latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        stats.queue_wait = Percentiles::of(&latency.queue_wait);
        stats.service_time = Percentiles::of(&latency.service_time);
    }
}

impl Stats {
    pub(crate) fn empty() -> Self {
        Stats {
            workers: 0,
            busy: 0,
            idle: 0,
            starting: 0,
            queued: 0,
            served: 0,
            shed: 0,
            expired_in_queue: 0,
            unavailable: 0,
            shutting_down: 0,
            timed_out: 0,
            panicked: 0,
            failed: 0,
            init_failures: 0,
            queue_wait: Percentiles::default(),
            service_time: Percentiles::default(),
        }
    }
}
