//! The adaptive concurrency limit (`adaptive = true`): how many requests may run at once, found
//! from measured service times instead of trusted to `max_concurrent`.
//!
//! Plain data, driven by the pool under its lock: every finished request is a sample
//! ([`Controller::observe`]), and the limit moves once per *window*: at least [`WINDOW`] long,
//! and with enough samples to tell a rise past the tolerance from the service's own noise (at
//! least [`MIN_SAMPLES`]; see *Noise* below). The first window is its first [`MIN_SAMPLES`],
//! which finished before any queue could form, and the next counts only requests that started
//! after it. Time is passed in, so tests drive it on tokio's paused clock.
//!
//! # The algorithm
//!
//! A delay-based controller in the family of TCP Vegas, as Netflix's concurrency-limits
//! (`VegasLimit`, `Gradient2Limit`) and Envoy's adaptive concurrency filter (its gradient
//! controller) apply it to servers, and like Breakwater (Cho et al., OSDI '20), which drives
//! admission by the server-side queueing delay rather than by a fixed count:
//!
//! - Each window's **service time** is the mean of its samples, leaving out the slowest one in
//!   a hundred ([`TRIM`]; none in a window of fewer than a hundred): what Netflix's
//!   `Gradient2Limit` is fed by default, and what Little's law is about (see *Why the mean* below).
//! - The **baseline** is the lowest service time of any window since it was last
//!   reset, raised by [`LUCK`] of that window's standard errors (the service's noise over the
//!   root of its samples; see *Noise*): what the service takes when nothing queues in it. It
//!   falls at once when the service gets faster, and is reset (see below) only when cutting the
//!   limit stops helping.
//! - A window is **congested** when its service time exceeds `baseline ×` [`TOLERANCE`] `+`
//!   [`SLACK`] (the slack keeps microsecond-scale jitter of a CPU-bound handler from counting
//!   as queueing). If it does so by less than [`CONFIDENCE`] standard errors of the noise, it is
//!   *unclear*: with the limit binding, the window goes on collecting samples until it is clear
//!   either way (at most until [`LONGEST_WINDOW`], then it counts as congested); with the limit
//!   not binding, it cuts nothing. Then, if the limit bound during the window, it goes to the concurrency that
//!   would have had no queue — by Little's law, the concurrency used × `baseline / service time`
//!   (Gradient2's gradient) — times [`BACKOFF`], cutting at most half of the concurrency used per
//!   window; a limit that did not bind goes only to the concurrency used (see the second failure
//!   mode below). (The concurrency used is the most requests a sample of the window saw running;
//!   the limit bound if that reached it.)
//! - Otherwise, if the limit bound during the window (requests used all of it), it grows by
//!   `log10(limit)`, at least 1 (Vegas's default increase): slowly, because a backend's queue
//!   builds over more than one window, and a larger step overshoots before it shows.
//! - It **starts** at [`INITIAL`] (20, at most `max_concurrent`), in **slow start** as TCP's window
//!   does: each window that it bound, it grows by half (× [`SLOW_START_GROWTH`]) instead, until a
//!   window's service time passes `baseline ×` [`SLOW_START_TOLERANCE`] `+` [`SLACK`] — the
//!   service time rising with the concurrency, the backend beginning to queue: HyStart++'s exit
//!   (RFC 9406) — and from then on grows by `log10(limit)`. (The first window only seeds the
//!   baseline: it cannot be congested against itself, so it does not grow the limit.)
//! - Between [`FLOOR`] and `max_concurrent`.
//!
//! Why it does not start at `max_concurrent`: the first window then admits every request that
//! comes, and they wait in the backend's own queue (at 3× of a backend of 16 slots behind
//! `max_concurrent = 256`, two hundred requests: a first second with a p99 of 279 ms in the
//! harness) before any window can show it. Starting at 20 (Netflix's `VegasLimit` and
//! `Gradient2Limit` start there too) costs a backend that takes many more a few windows — 20, 30,
//! 45, … 256 in seven, about 0.7 s, where the fixed limit would have run them at once — and nothing
//! to the others. A CPU-bound handler (hello world) rarely has more than a few requests running at
//! once: a request holds its worker only while its handler runs, and the runtime has a thread a
//! core, so 20 does not bind it, and jitter of a few microseconds is within the slack; when a stall
//! piles requests up, the limit grows by half a window, to 200 in half a second. By half rather
//! than doubling because a window barely shows a backend a little past its capacity (most of its
//! requests start at once), so the step after the last that passed can land well past it, and half
//! of that overshoot is less. (With the median as the signal, 20 running on 16 slots passed for
//! unqueued, a median of 22 ms against 20, and at 3× doubling to 40 gave a first second's p99 of
//! 58 ms in the simulation, `tests.rs`, against 40 ms going to 30; the mean shows those 16 slots at
//! once, 25 ms against 20, and slow start ends at 20.)
//!
//! Once the limit moved, samples of requests that started before are ignored (as Envoy came to
//! ignore samples from before a minRTT window, envoyproxy/envoy#11579): they measure the old
//! limit, and would cut again for a queue that is already gone, or grow again on a latency
//! the new limit has not had time to raise.
//!
//! # Why the mean
//!
//! The signal was first the window's median (Envoy's `sample_aggregate_percentile` is p50 by
//! default), which a few slow requests do not move. But congestion need not slow the typical
//! request. SQLite writers contend for one write lock, and a connection that finds it taken
//! sleeps in its busy handler's steps (1, 2, 5, 10, … ms, then 100 ms a try,
//! `sqliteDefaultBusyCallback`) and tries again; nothing queues for the lock, so a write that
//! tries just after a commit takes it at once, and those asleep sleep longer at each try.
//! Measured from outside (a scratch crate: 48 clients posting writes that hold the lock 2 ms,
//! `max_concurrent = 64, queue = 64`, 10 s), with the median the limit sawed between 20 and 46
//! (at times down to 4), the median write took 2.8–3.2 ms and the p99 was 1.0–1.9 s. The mean
//! sees it: Little's law, on which the
//! gradient `used × baseline / service time` rests, is about means (the requests running are the
//! throughput times the *mean* service time), so each request held up adds to it in proportion
//! to how long; and the mean is what Netflix's `Gradient2Limit` is given by default
//! (`WindowedLimit` and its `AverageSampleWindow`). With it the same scratch crate's limit goes to
//! 2–5 and the p99 to 0.33 s (the fixed limit's: 1.6–1.9 s), for 16–20 % fewer writes than the
//! fixed limit (a lock handed from writer to writer through the balancer idles a little between
//! them; 48 writers contending keep it busier, the slowest of them asleep for seconds). The
//! simulation reproduces both (`contend` in `tests.rs`): with the mean the limit averages 3.5 and
//! the p99 of the last five seconds is 0.18 s (0.1–0.33 s over fifteen seeds), with the median
//! the limit averages 36 and the p99 is 1.9 s (1.7–2.1 s).
//!
//! A higher percentile (Netflix's `PercentileSampleWindow`, Envoy's setting) sees the tail too,
//! but also the ordinary waits of a backend at its capacity, and takes them for congestion: with
//! the p75 four of the simulation's tests failed (the limit settling at the capacity at 3×,
//! following its halving, start-up, a slower service) and on SQLite the limit still averaged 23;
//! with the p90 six failed, and it averaged 9. And the mean is steadier than the median on noise
//! that is not skewed: the mean of 16 samples that vary by ±30 % varies a third as much as their
//! median (see [`FLAT`]); across thirty noise seeds of the simulation the controller failed at
//! least one of its tests at eighteen with the median, at none with the mean (and the rule for a
//! limit that did not bind, below).
//!
//! The slowest one in a hundred is left out ([`TRIM`]) so that a straggler in a busy window does
//! not halve the limit: one request stuck 5 s among a thousand of 1 ms makes their mean 6 ms. A
//! tail that grows with the concurrency is wider than that, and a window of fewer than a hundred
//! samples (under a thousand requests a second) trims nothing.
//!
//! What the mean costs: slow requests move it whether they queued or not, so a service whose
//! requests are of two kinds, the slower one common and several times slower, reads as noisier
//! than with the median (which sits in the faster kind); *Noise* below is how that noise is
//! told from a queue. And a window
//! counts only requests that started since the limit last moved (above), so a tail longer than
//! the time between moves shows only in part: on the SQLite lock, the waits of up to a window or
//! two, which is enough.
//!
//! # Noise
//!
//! A service whose requests take very different times (a tenth five times slower, say, or
//! log-normal) was cut even at half load, where nothing queues, and requests waited in front of
//! the limit: with a tenth five times slower 31 % of them, with log-normal service times of
//! σ = 0.5 66 %, and 21 % were refused (`at_half_load_a_mix_of_service_times_is_not_taken_for_congestion`
//! in `tests.rs`). The lowest window was far below the typical one, for two reasons:
//!
//! - **Luck:** of many windows of a few dozen requests, some have none of the slow ones.
//! - **Truncation:** the first window, and every window after a move (which counts only requests
//!   that started since), hold the requests that *finished* soonest: the fast ones, while the
//!   slow ones that started with them still run. In the 5× mix, windows right after a move often
//!   had a mean of exactly the fast requests' 20 ms, the others mostly 22–40 ms.
//!
//! So the controller measures the service's **noise**, its coefficient of variation (standard
//! deviation over mean), in `noise.rs`, and uses it three ways:
//!
//! - **The baseline is corrected for luck:** each window among the lowest is raised by [`LUCK`]
//!   standard errors (`noise / √samples`), so a window of few lucky samples does not set it; a
//!   window of many, little. Every window that no other is both lower and larger than is kept,
//!   so the correction applies afresh when the noise is measured again.
//! - **Windows are long enough to tell:** a window holds `(CONFIDENCE × noise / (TOLERANCE − 1))²`
//!   samples (at least [`MIN_SAMPLES`], at most half of what it keeps), so that a rise past the
//!   tolerance is [`CONFIDENCE`] standard errors; after [`LONGEST_WINDOW`], [`MIN_SAMPLES`] do.
//! - **Only a clear excess cuts:** an unclear window (above) cuts nothing, or goes on collecting.
//!
//! The noise must be the service's own, not a queue's: a backend that queues varies too (its
//! waits), and taking that for luck would raise the baseline with the queue, the drift below. So
//! it is measured over *spans* of requests by when they **started**, each counted a span after
//! its end (so it is not truncated), and only over spans in which the limit bound for at most
//! one sample in ten (when the limit binds, more come than it lets run, and a backend behind it
//! may be queueing). Under overload, where the limit binds, the noise is not measured, and the
//! controller is what it was without it (the noise of the last spans that did not bind, or none).
//! Until the first span is measured, the noise of the last window in which the limit did not bind
//! stands in for it, for the luck correction only: a truncated first window (the fast requests of
//! a mix) would otherwise set a baseline that every later window passes.
//!
//! Measured in the simulation (`tests.rs`) over 32 noise seeds (`LIMIT_SEED=0` to `31`), at half
//! load: with a tenth of the requests five times slower, at most 0.57 % of them wait in front of
//! the limit (0.08 % on average); with log-normal service times, at most 0.16 %; none is refused,
//! and the limit never falls below what runs (before: 31 % and 66 % waited, and 21 % of the
//! log-normal's were refused). Of the other tests, over the same seeds, the halving at 1×
//! misses its bound "at most 12 while halved" at two (13 and 14: the halving lands in the
//! window that makes a cut, and the flat band below takes the queue for a slower service), and
//! `at_exactly_its_capacity…` fails at one; without the noise, the first passed at all 32 and the
//! second failed at the same one. Both are about when a change lands in a window, not the noise.
//! (Making a cut again from the first window after it, when that window was clearly above the
//! cut's, fixed one of the two seeds; it was reverted, as it did not show in the harness.)
//!
//! What it costs: the sample also goes to the meter, about 130 instructions a sample
//! (callgrind on the harness's hello world with `adaptive`: 14,151 a request against 14,024
//! before; the fixed limit, 13,740). And above [`SAMPLED`] samples a window (10,240 requests a
//! second), only one finished request in several is a sample ([`Moved::stride`]): the others
//! skip the pool's lock and the controller (with a stride of about ten, 13,785 a request).
//!
//! # The two failure modes it avoids
//!
//! - **The limit drifting upward under modest overload** (Netflix/concurrency-limits#134: with
//!   Gradient2 at a gradient near 0.8, the limit grows indefinitely). Gradient2's baseline is an
//!   exponential average of *all* samples, so under sustained overload it follows the inflated
//!   latency upward, and it adds `queueSize` at every update whatever the gradient. Here the
//!   baseline is a *minimum*, which inflated windows cannot raise (a decaying window would let a
//!   slow overload ramp carry it up, window after window), and which is only ever reset after a cut
//!   failed to move the service time (below), never to one still rising; the limit grows only
//!   while the service time is within the tolerance of it and the limit is in use. Under overload
//!   the limit saws between about `BACKOFF ×` and `TOLERANCE ×` the capacity, never past it. And
//!   every cut lands [`BACKOFF`] below the estimated capacity, so each cycle also measures the
//!   service a little below it: a baseline measured too high (inflated at start-up) comes down
//!   cycle after cycle.
//! - **A periodic minRTT probe that pins concurrency low and sheds** (envoyproxy/envoy#8337,
//!   #18152: Envoy drops the limit to `min_concurrency` for each minRTT measurement, and 503s
//!   follow). There is no probe: the baseline comes from the windows the server runs anyway, at
//!   whatever concurrency they ran. A stale baseline shows itself instead: when the latency rose
//!   for a reason the limit does not control (the backend is slower at any concurrency), cutting
//!   does not move the service time. So after a cut below the concurrency used, no further cut is
//!   made while the service time stays within a quarter of the cut window's (a queue still
//!   draining, or growing again, takes it out of that band, and the limit is cut again), and
//!   after [`STALLED`] such windows the baseline is reset to the lowest of theirs and the limit to
//!   what it was before the congested windows began (Envoy re-measures after 5 windows at its
//!   minimum, envoyproxy/envoy#10647, but by pinning concurrency low): such a mistaken cut costs
//!   a few windows, not a minRTT interval. Two guards keep this from re-baselining on a queue. Only a cut
//!   below the concurrency used counts: a congested window that cut nothing (a limit not in use,
//!   below [`UNUSED_TOLERANCE`]) or only to what runs tested nothing, and a backend queue that
//!   grows slowly (at exactly its capacity it is a random walk; a fraction of a millisecond a
//!   window) looks flat from one window to the next: counting such windows took the baseline up
//!   with the queue and never cut (at 1× in the simulation, with the median, from 20 to over 60 ms
//!   in 20 s): the drift above, by another way. And a service time that rose at every window since
//!   the cut is a queue still growing, however slowly: it is not taken for the baseline, and the
//!   controller waits until it leaves the band (and cuts) or stops rising.
//!
//!   And a limit that did not bind in a congested window (fewer ran than it allows) did not make
//!   that queue: it is cut only to the concurrency used, and the next congested window, the limit
//!   binding, cuts by the gradient and awaits the effect. A gradient cut below what ran would test
//!   nothing the limit did, and would pin a service that is merely slower: three times slower at a
//!   fifth of its capacity, the first window over the tolerance (the slower requests beginning to
//!   show, 10 running under 20) cut the mean-driven limit to 7, the next to 3, where a window of
//!   [`MIN_SAMPLES`] takes a third of a second to fill, so the [`STALLED`] windows that give the
//!   limit back took 1.4 s (now it goes to 10, then 5, and is given back within 0.7 s, as it was
//!   with the median). And while a limit is not in use (fewer than half of it busy: Gradient2's and
//!   Vegas's guard), only a service time past [`UNUSED_TOLERANCE`] × the baseline calls for even
//!   that cut, not noise: a server at low load keeps its limit, but one whose backend lost capacity
//!   under a limit that never bound (one that grew to `max_concurrent`, then the load fell) is
//!   brought to what runs as soon as a queue shows, and from there cut by the gradient.
//!
//! # References
//!
//! - Netflix/concurrency-limits, `concurrency-limits-core/src/main/java/com/netflix/`
//!   `concurrency/limits/limit/Gradient2Limit.java` and `VegasLimit.java` (both builders'
//!   `initialLimit = 20`); the drift: <https://github.com/Netflix/concurrency-limits/pull/134>.
//!   The window's signal: `limit/WindowedLimit.java` (its builder's `sampleWindowFactory` is
//!   `AverageSampleWindowFactory` unless set), `limit/window/ImmutableAverageSampleWindow.java`
//!   (`sum / sampleCount`) and `ImmutablePercentileSampleWindow.java` (the alternative).
//! - Envoy's adaptive concurrency filter (gradient controller): the probe's 503s,
//!   <https://github.com/envoyproxy/envoy/issues/8337>,
//!   <https://github.com/envoyproxy/envoy/issues/18152>; the fixes it took,
//!   <https://github.com/envoyproxy/envoy/pull/9007> (probe concurrency 1 → 3),
//!   <https://github.com/envoyproxy/envoy/pull/10647>,
//!   <https://github.com/envoyproxy/envoy/pull/11579>. The window's signal:
//!   `api/envoy/extensions/filters/http/adaptive_concurrency/v3/adaptive_concurrency.proto`,
//!   `sample_aggregate_percentile` ("The percentile to use when summarizing aggregated samples.
//!   Defaults to p50.").
//! - SQLite's busy handler, `sqliteDefaultBusyCallback` in `src/main.c` (as bundled by
//!   `libsqlite3-sys`: `delays[] = { 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 }` ms, the last
//!   repeated until the `busy_timeout`), what `contend` in `tests.rs` simulates.
//! - Little's law (Little, *A Proof for the Queuing Formula: L = λW*, Operations Research 9(3),
//!   1961): the mean number in a system is the arrival rate times the *mean* time in it.
//! - Cho et al., *Overload Control for µs-scale RPCs with Breakwater*, OSDI '20,
//!   <https://www.usenix.org/conference/osdi20/presentation/cho>: queueing delay, not a count,
//!   as the signal, and delay-based AQM behind it (here, the queue's CoDel).
//! - Balasubramanian et al., *HyStart++: Modified Slow Start for TCP*, RFC 9406,
//!   <https://www.rfc-editor.org/rfc/rfc9406>: slow start left when the round's delay rises by an
//!   eighth of the minimum (clamped to 4–16 ms), before loss.

use std::time::Duration;

use tokio::time::Instant;

/// The lowest the limit goes.
pub(crate) const FLOOR: usize = 2;
/// Where the limit starts (at most `max_concurrent`): Netflix's `VegasLimit` and
/// `Gradient2Limit` start at 20 too. Enough for a CPU-bound handler, which rarely has more than
/// a few requests running at once; a backend that takes more is found in a few windows.
pub(crate) const INITIAL: usize = 20;
/// In slow start, a window whose service time exceeds the baseline by this factor (plus [`SLACK`])
/// ends it: HyStart++'s delay threshold (RFC 9406: an eighth of the minimum RTT).
pub(crate) const SLOW_START_TOLERANCE: f64 = 1.125;
/// In slow start, the limit is multiplied by this at each window that it bound.
pub(crate) const SLOW_START_GROWTH: f64 = 1.5;
/// The shortest window.
pub(crate) const WINDOW: Duration = Duration::from_millis(100);
/// Samples a [`WINDOW`] that are enough: above this rate (10,240 a second), one finished
/// request in several is a sample, which spares the others the pool's lock (a window keeps
/// [`KEPT`] anyway).
pub(crate) const SAMPLED: usize = 1024;
/// The fewest samples in a window.
pub(crate) const MIN_SAMPLES: usize = 16;
/// The most samples a window keeps (the latest): its service time is taken over these.
const KEPT: usize = 1024;
/// A window's service time leaves out its slowest samples, one in this many (rounded down:
/// none in a window of fewer), so that a straggler in a busy window does not halve the limit.
const TRIM: usize = 100;
/// A window whose service time exceeds the baseline by this factor (plus [`SLACK`]) is
/// congested.
pub(crate) const TOLERANCE: f64 = 1.25;
/// While fewer than half the limit run, a window is congested only past this factor.
pub(crate) const UNUSED_TOLERANCE: f64 = 1.5;
/// Added to the tolerated service time, so that a handler of a few microseconds is not congested by
/// scheduling jitter.
pub(crate) const SLACK: Duration = Duration::from_micros(200);
/// A cut lands this far below the concurrency that would have had no queue.
pub(crate) const BACKOFF: f64 = 0.9;
/// A window cuts at most this share of the concurrency used.
const MOST_CUT: f64 = 0.5;
/// Congested windows after a cut whose service time stayed within `1 / FLAT` of the cut's (and
/// did not rise window after window): cutting did not help, the latency is not the queue's, so the
/// baseline is reset to it and the limit to what it was before.
pub(crate) const STALLED: u32 = 3;
/// See [`STALLED`]: a quarter. The means of two windows of [`MIN_SAMPLES`] service times that
/// vary by ±30 % differ by more than that about once in 8,000, by more than a sixth once in 130
/// (their medians, the signal before the mean: once in 76 and once in 11, so that with a sixth a
/// wait after a cut, the cut's window against three after it, often ended in a second cut on
/// noise alone).
const FLAT: f64 = 4.0;

/// A window's mean is taken as this many of its standard errors higher for the baseline (the
/// lowest window of many is low partly by luck; see *Noise* in the module docs).
pub(crate) const LUCK: f64 = 2.0;
/// A window holds enough samples that a rise past the tolerance is this many standard errors
/// (of the service's own noise, as `noise.rs` measures it): at least [`MIN_SAMPLES`].
pub(crate) const CONFIDENCE: f64 = 3.0;
/// A window closes after this long with [`MIN_SAMPLES`], however noisy the service.
pub(crate) const LONGEST_WINDOW: Duration = Duration::from_millis(500);

/// A window's service time: the mean of its samples (trimmed of the slowest, [`TRIM`]), and how
/// much they vary.
#[derive(Debug, Clone, Copy)]
struct Estimate {
    mean: Duration,
    /// The samples' coefficient of variation (standard deviation over mean).
    variation: f64,
    samples: usize,
}

/// What a window changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Moved {
    pub(crate) from: usize,
    pub(crate) to: usize,
    /// The limit moved by more than a quarter since it was last logged.
    pub(crate) log: bool,
    /// The window's service time (its mean, trimmed of the slowest: [`TRIM`]).
    pub(crate) mean: Duration,
    pub(crate) baseline: Duration,
    /// Of the requests that finish, one in this many should be a sample ([`SAMPLED`]).
    pub(crate) stride: usize,
}

/// The controller (see the module docs).
#[derive(Debug)]
pub(crate) struct Controller {
    max: usize,
    floor: usize,
    limit: usize,
    window: Window,
    /// The lowest window service times since the last reset, with their samples: those that no
    /// other is both lower and larger than (the baseline is the lowest of them, each raised by
    /// [`LUCK`] standard errors); empty before the first window.
    lows: Vec<(Duration, usize)>,
    /// The service's noise.
    noise: noise::Meter,
    /// One finished request in this many is a sample (see [`Moved::stride`]).
    stride: usize,
    /// The longest service time the noise counts: [`noise::OUTLIER`] times the baseline when
    /// the last window closed (`None` before the first).
    outlier: Option<Duration>,
    /// The last window's noise, which stands in for the service's until it is measured.
    unmeasured: f64,
    /// Samples of requests that started before this are ignored (the limit moved then).
    epoch: Instant,
    /// The limit before the congested windows in a row began; `None` outside them.
    before: Option<usize>,
    /// The last cut below the concurrency used, within these congested windows.
    cut: Option<Cut>,
    /// The limit when it was last logged.
    logged: usize,
    /// The first window has closed.
    seeded: bool,
    /// The limit grows by half a window while it binds (no window has yet been past
    /// [`SLOW_START_TOLERANCE`]).
    slow_start: bool,
}

/// A cut below the concurrency used, and the congested windows since that stayed flat to it.
#[derive(Debug, Clone, Copy)]
struct Cut {
    /// The service time of the window that made the cut.
    mean: Duration,
    /// Windows since whose service time stayed within `1 / FLAT` of it.
    flat: u32,
    /// Of those, how many in a row rose over the window before (the first, over the cut's).
    rising: u32,
    /// The last window's service time.
    last: Duration,
    /// The lowest service time of the cut's window and the flat windows since, and its
    /// samples.
    lowest: Duration,
    samples: usize,
}

impl Cut {
    fn new(mean: Duration, samples: usize) -> Self {
        Cut {
            mean,
            flat: 0,
            rising: 0,
            last: mean,
            lowest: mean,
            samples,
        }
    }
}

/// The limit a pool starts with: `max`, or with `adaptive`, where the controller starts
/// ([`INITIAL`], at most `max`).
pub(crate) fn starting_limit(max: usize, adaptive: bool) -> usize {
    if adaptive {
        INITIAL.min(max)
    } else {
        max
    }
}

#[derive(Debug)]
struct Window {
    start: Instant,
    /// Service times in microseconds, at most [`KEPT`] (then the oldest are overwritten).
    samples: Vec<u32>,
    seen: usize,
    /// The most requests running at once that a sample saw.
    peak: usize,
}

impl Window {
    fn new(start: Instant) -> Self {
        Window {
            start,
            samples: Vec::with_capacity(KEPT),
            seen: 0,
            peak: 0,
        }
    }

    fn push(&mut self, service_time: Duration, busy: usize) {
        let micros = u32::try_from(service_time.as_micros()).unwrap_or(u32::MAX);
        if self.samples.len() < KEPT {
            self.samples.push(micros);
        } else {
            self.samples[self.seen % KEPT] = micros;
        }
        self.seen += 1;
        self.peak = self.peak.max(busy);
    }

    /// The mean of the samples kept, without the slowest one in [`TRIM`].
    fn mean(&mut self) -> Estimate {
        let kept = self.samples.len() - self.samples.len() / TRIM;
        if kept < self.samples.len() {
            // The `kept` fastest first, in no order.
            self.samples.select_nth_unstable(kept);
        }
        let mut sums = noise::Sums::default();
        for &micros in &self.samples[..kept] {
            sums.add(f64::from(micros));
        }
        Estimate {
            mean: Duration::from_micros(sums.mean() as u64),
            variation: sums.variation(),
            samples: kept,
        }
    }

    fn restart(&mut self, now: Instant) {
        self.start = now;
        self.samples.clear();
        self.seen = 0;
        self.peak = 0;
    }
}

impl Controller {
    /// A limit between [`FLOOR`] and `max` (at most `max`), starting at [`starting_limit`].
    pub(crate) fn new(max: usize, now: Instant) -> Self {
        let limit = starting_limit(max, true);
        Controller {
            max,
            floor: FLOOR.min(max),
            limit,
            window: Window::new(now),
            lows: Vec::new(),
            noise: noise::Meter::new(now),
            stride: 1,
            outlier: None,
            unmeasured: 0.0,
            epoch: now,
            before: None,
            cut: None,
            logged: limit,
            seeded: false,
            slow_start: true,
        }
    }

    /// The current limit.
    #[cfg(test)]
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// A request that `started` on a worker ended at `now`, with `busy` requests running
    /// (itself included). Returns what changed if a window closed.
    pub(crate) fn observe(&mut self, started: Instant, now: Instant, busy: usize) -> Option<Moved> {
        let service_time = now.saturating_duration_since(started);
        self.noise
            .add(started, now, service_time, busy >= self.limit, self.outlier);
        if started < self.epoch {
            return None;
        }
        self.window.push(service_time, busy);
        // The first window closes at its first samples: the first requests to finish ran
        // before any queue could form, so they seed the baseline.
        let length = now.saturating_duration_since(self.window.start);
        if self.seeded && length < WINDOW || self.window.seen < MIN_SAMPLES {
            return None;
        }
        // A noisy service's windows hold more (until the longest).
        if self.seeded && length < LONGEST_WINDOW && self.window.seen < self.samples() {
            return None;
        }
        // The first window only seeds the baseline: it cannot be congested against itself, so
        // it is no sign that more would fit.
        let seeding = !self.seeded;
        let estimate = self.window.mean();
        if !seeding {
            // Requests finished a window (samples times the stride): one in as many as make
            // [`SAMPLED`] a window is enough. (Not from the first window, which may be a few
            // requests that finished together.)
            let finished = self.window.seen as f64 * self.stride as f64;
            let rate = finished * WINDOW.as_secs_f64() / length.as_secs_f64();
            self.stride = ((rate / SAMPLED as f64) as usize).max(1);
        }
        let mean = estimate.mean;
        let used = self.window.peak.min(self.limit).max(1);
        // Until the noise is measured, the last window's own stands in for it, if the limit did
        // not bind (then requests may queue, as the meter knows: see `noise.rs`).
        if used < self.limit {
            self.unmeasured = estimate.variation;
        }
        if !seeding && used >= self.limit && length < LONGEST_WINDOW {
            // Past the tolerance by less than the service's noise, with the limit binding:
            // unclear. The window goes on, up to the longest, until it is clear either way.
            let tolerated = self.baseline().mul_f64(TOLERANCE) + SLACK;
            if mean > tolerated && !self.clear(mean, tolerated, estimate.samples) {
                return None;
            }
        }
        self.seeded = true;
        self.window.restart(now);
        self.low(mean, estimate.samples);
        let baseline = self.baseline();
        self.outlier = Some(baseline.saturating_mul(noise::OUTLIER));
        let from = self.limit;
        if mean > baseline.mul_f64(SLOW_START_TOLERANCE) + SLACK {
            // The service time rose with the concurrency: the backend begins to queue, and
            // the next step by half would overshoot (HyStart++).
            self.slow_start = false;
        }
        let tolerated = baseline.mul_f64(TOLERANCE) + SLACK;
        if mean > tolerated {
            let clear = self.clear(mean, tolerated, estimate.samples);
            self.congested(mean, baseline, clear, used, estimate.samples);
        } else {
            self.before = None;
            self.cut = None;
            if used >= self.limit && !seeding {
                let grown = if self.slow_start {
                    ((self.limit as f64 * SLOW_START_GROWTH).ceil() as usize).max(self.limit + 1)
                } else {
                    self.limit + (self.limit as f64).log10().max(1.0) as usize
                };
                self.limit = grown.min(self.max);
            }
        }
        if self.limit != from || seeding {
            // Requests that started before measure the old limit (or, after the first window,
            // the start, before the backend filled).
            self.epoch = now;
        }
        let to = self.limit;
        let log = to.abs_diff(self.logged) * 4 > self.logged;
        if log {
            self.logged = to;
        }
        Some(Moved {
            from,
            to,
            log,
            mean,
            baseline,
            stride: self.stride,
        })
    }

    /// A window's service time, among the lowest if no other is both lower and larger.
    fn low(&mut self, mean: Duration, samples: usize) {
        if self
            .lows
            .iter()
            .any(|&(low, n)| low <= mean && n >= samples)
        {
            return;
        }
        self.lows.retain(|&(low, n)| !(low >= mean && n <= samples));
        self.lows.push((mean, samples));
    }

    /// The lowest window service time, each raised by [`LUCK`] standard errors of the
    /// service's noise ([`Controller::variation`]).
    fn baseline(&self) -> Duration {
        let variation = self.variation();
        self.lows
            .iter()
            .map(|&(low, n)| low.mul_f64(1.0 + LUCK * variation / (n.max(1) as f64).sqrt()))
            .min()
            .unwrap_or_default()
    }

    /// The service's noise (coefficient of variation), or until it is measured, that of the
    /// last window.
    fn variation(&self) -> f64 {
        self.noise.variation().unwrap_or(self.unmeasured)
    }

    /// Whether a window's service time `mean` over `samples` is past `tolerated` by more than
    /// [`CONFIDENCE`] standard errors of the service's noise.
    fn clear(&self, mean: Duration, tolerated: Duration, samples: usize) -> bool {
        let error = self.noise.variation().unwrap_or(0.0) / (samples.max(1) as f64).sqrt();
        mean > tolerated.mul_f64(1.0 + CONFIDENCE * error)
    }

    /// How many samples a window holds: enough that a rise past the tolerance is
    /// [`CONFIDENCE`] standard errors of the service's noise.
    fn samples(&self) -> usize {
        let Some(variation) = self.noise.variation() else {
            return MIN_SAMPLES;
        };
        let needed = (CONFIDENCE * variation / (TOLERANCE - 1.0)).powi(2);
        (needed.ceil() as usize).clamp(MIN_SAMPLES, KEPT / 2)
    }

    fn congested(
        &mut self,
        mean: Duration,
        baseline: Duration,
        clear: bool,
        used: usize,
        samples: usize,
    ) {
        let before = *self.before.get_or_insert(self.limit);
        if let Some(cut) = self.cut.as_mut() {
            // Flat: within a quarter of the service time of the window that made the cut.
            let change = mean.max(cut.mean) - mean.min(cut.mean);
            if change.mul_f64(FLAT) <= cut.mean {
                cut.flat += 1;
                cut.rising = if mean > cut.last { cut.rising + 1 } else { 0 };
                cut.last = mean;
                if mean < cut.lowest {
                    cut.lowest = mean;
                    cut.samples = samples;
                }
                // A service time that rose at every window since the cut is a queue still
                // growing, however slowly: never a baseline. Wait until it leaves the flat
                // band (and is cut again) or stops rising.
                if cut.flat >= STALLED && cut.rising < cut.flat {
                    // Cutting does not help: the service is slower, not queued. Measure from
                    // here, with the limit it had.
                    self.lows = vec![(cut.lowest, cut.samples)];
                    self.limit = self.limit.max(before);
                    self.before = None;
                    self.cut = None;
                }
                // Otherwise the cut has not shown yet, or did not help: wait and see.
                return;
            }
            // The service time moved since the cut: a queue still draining, or growing again.
            self.cut = None;
        }
        if used < self.limit {
            // The limit did not bind: it did not make this queue, so it is cut only to what
            // runs. That does not lower the concurrency, so it is not a cut whose effect is
            // awaited: the next congested window, with the limit binding, cuts by the
            // gradient. And while it is not in use (fewer than half of it ran), only a clear
            // queue (not noise) calls for even that.
            if (used * 2 >= self.limit && clear) || mean >= baseline.mul_f64(UNUSED_TOLERANCE) {
                self.limit = used.max(self.floor);
            }
            return;
        }
        let gradient = baseline.as_secs_f64() / mean.as_secs_f64();
        let target = (used as f64 * gradient * BACKOFF).max(used as f64 * MOST_CUT);
        let cut = (target as usize)
            .clamp(self.floor, self.max)
            .min(self.limit);
        self.limit = cut;
        self.cut = Some(Cut::new(mean, samples));
    }
}

mod noise;
#[cfg(test)]
mod tests;
