//! How much the service's times vary: what tells a window that is slow by luck from one that is
//! slow because requests queue (see *Noise* in the module docs of `limit.rs`).
//!
//! Measured over *spans* of requests by when they **started**, each counted once the span is
//! [`SPAN`] past its end: a window counted by when requests *ended* holds, right after the limit
//! moved, the requests that finished soonest (the fast ones), and would take a service whose
//! requests vary for a steady one.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The requests that started within a span this long are measured together, once as long again
/// has passed.
pub(super) const SPAN: Duration = Duration::from_millis(250);
/// A measurement needs this many samples; a span with fewer is pooled with the next.
pub(super) const SAMPLES: usize = 64;
/// A span in which more than one sample in this many ended with the limit bound is not
/// measured.
const BOUND: usize = 10;
/// The noise is the median of this many measurements, the latest.
const KEPT: usize = 8;
/// A sample counts at most this many times the baseline: a straggler of seconds among
/// milliseconds would make the noise of a whole span.
pub(super) const OUTLIER: u32 = 10;

/// Sums of service times in microseconds, and how many (a span's here, a window's in
/// `limit.rs`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sums {
    sum: f64,
    squares: f64,
    samples: usize,
    /// How many of these ended with the limit bound.
    bound: usize,
}

impl Sums {
    pub(super) fn add(&mut self, micros: f64) {
        self.sum += micros;
        self.squares += micros * micros;
        self.samples += 1;
    }

    /// The mean, in microseconds (0 with no samples).
    pub(super) fn mean(&self) -> f64 {
        self.sum / self.samples.max(1) as f64
    }

    /// The coefficient of variation: the standard deviation over the mean.
    pub(super) fn variation(&self) -> f64 {
        let n = self.samples as f64;
        let mean = self.mean();
        let deviation = ((self.squares - self.sum * mean) / (n - 1.0).max(1.0))
            .max(0.0)
            .sqrt();
        deviation / mean.max(1.0)
    }
}

/// The meter (see the module docs).
#[derive(Debug)]
pub(super) struct Meter {
    /// Where the current span begins; the previous one ended there.
    start: Instant,
    /// Where the current span ends (`start + SPAN`).
    end: Instant,
    current: Sums,
    previous: Sums,
    /// The latest measurements: coefficients of variation.
    measured: VecDeque<f64>,
    /// Their median.
    median: Option<f64>,
}

impl Meter {
    pub(super) fn new(now: Instant) -> Self {
        Meter {
            start: now,
            end: now + SPAN,
            current: Sums::default(),
            previous: Sums::default(),
            measured: VecDeque::with_capacity(KEPT),
            median: None,
        }
    }

    /// A request that `started` ended at `now`; `bound` if the limit bound then (as many ran
    /// as it allows). A span in which the limit bound is not measured: the limit binds when
    /// more come than it lets run, and then the backend may be queueing, and its waits are not
    /// the service's noise. `service_time` is `now - started`; at most `outlier` of it counts
    /// (all of it if `None`).
    pub(super) fn add(
        &mut self,
        started: Instant,
        now: Instant,
        service_time: Duration,
        bound: bool,
        outlier: Option<Duration>,
    ) {
        if now >= self.end {
            if now >= self.end + SPAN * 2 {
                // Idle for a while: what ran before has all ended.
                self.start = now;
                self.end = now + SPAN;
                self.current = Sums::default();
                self.previous = Sums::default();
            }
            while now >= self.end {
                self.roll();
            }
        }
        let span = if started >= self.start {
            &mut self.current
        } else if started + SPAN >= self.start {
            &mut self.previous
        } else {
            return;
        };
        let counted = outlier.map_or(service_time, |outlier| service_time.min(outlier));
        let micros = counted.as_secs_f64() * 1e6;
        span.add(micros);
        span.bound += usize::from(bound);
    }

    /// The previous span has had its [`SPAN`] to finish: measured (or, with too few samples,
    /// pooled into the next), and the current one becomes the previous.
    fn roll(&mut self) {
        let previous = std::mem::take(&mut self.previous);
        if previous.bound * BOUND > previous.samples {
            // Not measured: see `add`.
            self.previous = self.current;
        } else if previous.samples >= SAMPLES {
            if self.measured.len() == KEPT {
                self.measured.pop_front();
            }
            self.measured.push_back(previous.variation());
            let mut sorted = [0.0; KEPT];
            let sorted = &mut sorted[..self.measured.len()];
            for (slot, measured) in sorted.iter_mut().zip(&self.measured) {
                *slot = *measured;
            }
            sorted.sort_by(f64::total_cmp);
            self.median = Some(sorted[sorted.len() / 2]);
            self.previous = self.current;
        } else {
            self.previous = Sums {
                sum: previous.sum + self.current.sum,
                squares: previous.squares + self.current.squares,
                samples: previous.samples + self.current.samples,
                bound: previous.bound + self.current.bound,
            };
        }
        self.current = Sums::default();
        self.start = self.end;
        self.end += SPAN;
    }

    /// The service times' coefficient of variation: the median of the latest measurements;
    /// `None` before the first.
    pub(super) fn variation(&self) -> Option<f64> {
        self.median
    }
}
