//! intralb's metrics, through the `metrics` facade, and the Prometheus endpoint.
//!
//! Handles are registered once, when the pool starts, so the request path only does atomic
//! updates. They go to whatever recorder the program installed; with `metrics = "/metrics"` and
//! none installed, intralb installs a Prometheus one and serves its text format.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `intralb_requests_total` | counter | `outcome`: served, shed, expired_in_queue, unavailable, timed_out, panicked, failed, shutting_down, body_timed_out, body_failed; `priority`: critical, normal, sheddable |
//! | `intralb_worker_init_failures_total` | counter | |
//! | `intralb_workers` | gauge | `state`: busy, idle, starting |
//! | `intralb_queue_depth` | gauge | |
//! | `intralb_in_flight` | gauge | |
//! | `intralb_concurrency_limit` | gauge | |
//! | `intralb_queue_wait_seconds` | histogram | |
//! | `intralb_service_time_seconds` | histogram | |

use metrics::{Counter, Gauge, Histogram, Unit};

use crate::outcome::Outcome;
use crate::priority::Priority;
use crate::stats::Stats;

const REQUESTS: &str = "intralb_requests_total";
const INIT_FAILURES: &str = "intralb_worker_init_failures_total";
const WORKERS: &str = "intralb_workers";
const QUEUE_DEPTH: &str = "intralb_queue_depth";
const IN_FLIGHT: &str = "intralb_in_flight";
const CONCURRENCY_LIMIT: &str = "intralb_concurrency_limit";
const QUEUE_WAIT: &str = "intralb_queue_wait_seconds";
const SERVICE_TIME: &str = "intralb_service_time_seconds";

/// Registered handles.
pub(crate) struct Metrics {
    /// By priority, then outcome.
    outcomes: [[Counter; Outcome::ALL.len()]; Priority::ALL.len()],
    pub(crate) init_failures: Counter,
    pub(crate) queue_wait: Histogram,
    pub(crate) service_time: Histogram,
    busy: Gauge,
    idle: Gauge,
    starting: Gauge,
    queue_depth: Gauge,
    in_flight: Gauge,
    concurrency_limit: Gauge,
}

impl Metrics {
    pub(crate) fn register() -> Self {
        metrics::describe_counter!(REQUESTS, "Requests answered, by outcome.");
        metrics::describe_counter!(
            INIT_FAILURES,
            "Worker initializer runs that failed or panicked."
        );
        metrics::describe_gauge!(WORKERS, "Workers, by state.");
        metrics::describe_gauge!(QUEUE_DEPTH, "Requests waiting for a worker.");
        metrics::describe_gauge!(IN_FLIGHT, "Requests running or waiting.");
        metrics::describe_gauge!(
            CONCURRENCY_LIMIT,
            "Most requests that may run at once (adaptive: the limit found)."
        );
        metrics::describe_histogram!(QUEUE_WAIT, Unit::Seconds, "Time from arrival to a worker.");
        metrics::describe_histogram!(
            SERVICE_TIME,
            Unit::Seconds,
            "Time a worker spent on a request."
        );
        let workers = |state: &'static str| metrics::gauge!(WORKERS, "state" => state);
        Metrics {
            outcomes: Priority::ALL.map(|p| {
                Outcome::ALL.map(|o| {
                    metrics::counter!(REQUESTS, "outcome" => o.label(), "priority" => p.label())
                })
            }),
            init_failures: metrics::counter!(INIT_FAILURES),
            queue_wait: metrics::histogram!(QUEUE_WAIT),
            service_time: metrics::histogram!(SERVICE_TIME),
            busy: workers("busy"),
            idle: workers("idle"),
            starting: workers("starting"),
            queue_depth: metrics::gauge!(QUEUE_DEPTH),
            in_flight: metrics::gauge!(IN_FLIGHT),
            concurrency_limit: metrics::gauge!(CONCURRENCY_LIMIT),
        }
    }

    pub(crate) fn outcome(&self, outcome: Outcome, priority: Priority) -> &Counter {
        &self.outcomes[priority.rank()][outcome as usize]
    }

    /// Gauges are sampled (every second, and before each scrape), not updated per request.
    pub(crate) fn set_gauges(&self, stats: &Stats) {
        self.busy.set(stats.busy as f64);
        self.idle.set(stats.idle as f64);
        self.starting.set(stats.starting as f64);
        self.queue_depth.set(stats.queued as f64);
        self.in_flight.set((stats.busy + stats.queued) as f64);
        self.concurrency_limit.set(stats.concurrency_limit as f64);
    }
}

/// The Prometheus recorder intralb installed, if it did.
#[cfg(feature = "prometheus")]
pub(crate) mod prometheus {
    use std::sync::OnceLock;

    use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

    /// Seconds: from 100 µs (a shed or a fast handler) to a minute (a long deadline).
    const BUCKETS: &[f64] = &[
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0, 30.0, 60.0,
    ];

    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

    /// Installs the recorder once per process; `None` if the program has its own.
    pub(crate) fn install() -> Option<&'static PrometheusHandle> {
        HANDLE
            .get_or_init(|| {
                let installed = PrometheusBuilder::new()
                    .set_buckets(BUCKETS)
                    .and_then(PrometheusBuilder::install_recorder);
                installed
                    .map_err(|error| {
                        tracing::warn!(
                            %error,
                            "a metrics recorder is already installed: intralb's metrics go to it, \
                             and the metrics endpoint answers 501"
                        );
                    })
                    .ok()
            })
            .as_ref()
    }

    /// The recorder, if [`install`] installed it.
    pub(crate) fn handle() -> Option<&'static PrometheusHandle> {
        HANDLE.get().and_then(Option::as_ref)
    }
}
