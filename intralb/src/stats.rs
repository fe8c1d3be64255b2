//! [`Stats`]: the public snapshot of the balancer (filled in by `counters.rs` and the pool).

use std::time::Duration;

use crate::histogram::Counts;
use crate::priority::Priority;

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
    /// Most requests that may run at once now: `max_concurrent`, or with `adaptive`, the limit
    /// it found (between a floor and `max_concurrent`).
    pub concurrency_limit: usize,
    /// Requests answered by the router (any status the router chose).
    pub served: u64,
    /// Requests answered `503` by admission: every worker busy and no queue place for them (see
    /// [`Priority`] for who may take which), or they waited more than twice `queue_target` in a
    /// standing queue, or a critical request took their place.
    pub shed: u64,
    /// Requests answered `503` because their deadline passed while they waited in the queue.
    pub expired_in_queue: u64,
    /// Requests answered `503` at once because no worker existed and every worker start was
    /// failing (an initializer's database is down, say), instead of waiting for their deadline.
    pub unavailable: u64,
    /// Requests answered `503` + `Connection: close` because the server was shutting down:
    /// refused during the drain, still queued at its deadline, or cancelled by it.
    pub shutting_down: u64,
    /// Requests answered `408` because the client did not send the body within `body_timeout`.
    pub body_timed_out: u64,
    /// Requests answered `400` because their body could not be read.
    pub body_failed: u64,
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
    /// By [`Priority::rank`]; read with [`Stats::priority`].
    pub(crate) by_priority: [PriorityStats; Priority::ALL.len()],
}

/// The requests of one [`Priority`]: see [`Stats::priority`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PriorityStats {
    /// Answered by the router.
    pub served: u64,
    /// Answered `503` by admission: no queue place for them, they waited too long in a standing
    /// queue, or a critical request took their place.
    pub shed: u64,
    /// Answered `503` because their deadline passed in the queue.
    pub expired_in_queue: u64,
    /// Waiting for a worker now.
    pub queued: usize,
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
    pub(crate) fn of(h: &Counts) -> Self {
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

impl Stats {
    /// The requests of one priority (see [`Priority`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(server: intralb::Server) {
    /// use intralb::Priority;
    ///
    /// let stats = server.stats();
    /// let critical = stats.priority(Priority::Critical);
    /// println!("critical: {} served, {} shed", critical.served, critical.shed);
    /// # }
    /// ```
    pub fn priority(&self, priority: Priority) -> PriorityStats {
        self.by_priority[priority.rank()]
    }

    pub(crate) fn empty() -> Self {
        Stats {
            workers: 0,
            busy: 0,
            idle: 0,
            starting: 0,
            queued: 0,
            concurrency_limit: 0,
            served: 0,
            shed: 0,
            expired_in_queue: 0,
            unavailable: 0,
            shutting_down: 0,
            body_timed_out: 0,
            body_failed: 0,
            timed_out: 0,
            panicked: 0,
            failed: 0,
            init_failures: 0,
            queue_wait: Percentiles::default(),
            service_time: Percentiles::default(),
            by_priority: Default::default(),
        }
    }
}
