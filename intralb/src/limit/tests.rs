//! The controller on tokio's paused clock, against a scripted backend: `slots` requests are
//! served at once, each in `base` (times a deterministic noise); the others wait for a slot in
//! the backend, first come first served (a semaphore in front of a database, say). Requests
//! arrive open loop; those beyond the limit wait in front of it (at most [`QUEUE`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use tokio::time::Instant;

use super::{Controller, FLOOR};

const BASE: Duration = Duration::from_millis(20);
const TICK: Duration = Duration::from_millis(1);
/// Requests waiting for the limit, at most; more are refused.
const QUEUE: usize = 64;

/// What the backend and its load are like from a moment on.
#[derive(Clone, Copy)]
struct Backend {
    slots: usize,
    base: Duration,
    /// Arrivals per second.
    arrivals: f64,
    /// Each service time is scaled by a factor drawn from `[1 - noise, 1 + noise]`.
    noise: f64,
}

/// `slots` of [`BASE`] each, at `load` times their capacity.
fn backend(slots: usize, load: f64) -> Backend {
    Backend {
        slots,
        base: BASE,
        arrivals: load * slots as f64 / BASE.as_secs_f64(),
        noise: 0.0,
    }
}

/// A linear congruential generator: the same noise every run.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The limit at each tick, as (seconds since start, limit).
struct Trace(Vec<(f64, usize)>);

impl Trace {
    fn between(&self, from: f64, to: f64) -> impl Iterator<Item = usize> + '_ {
        self.0
            .iter()
            .filter(move |(t, _)| *t >= from && *t < to)
            .map(|(_, limit)| *limit)
    }

    fn range(&self, from: f64, to: f64) -> (usize, usize) {
        let min = self.between(from, to).min().unwrap();
        let max = self.between(from, to).max().unwrap();
        (min, max)
    }

    fn mean(&self, from: f64, to: f64) -> f64 {
        let (sum, n) = self
            .between(from, to)
            .fold((0, 0), |(sum, n), limit| (sum + limit, n + 1));
        sum as f64 / n as f64
    }

    /// How long after `from` the limit is first within `range`.
    fn first_within(&self, from: f64, range: std::ops::RangeInclusive<usize>) -> Option<f64> {
        self.0
            .iter()
            .find(|(t, limit)| *t >= from && range.contains(limit))
            .map(|(t, _)| *t - from)
    }
}

/// Runs `controller` against the backend `script` describes (each phase for its duration), a
/// tick at a time.
async fn run(controller: &mut Controller, script: &[(Duration, Backend)]) -> Trace {
    let start = Instant::now();
    let mut noise = Noise(7);
    let mut due = 0.0;
    let mut waiting = 0;
    // When each slot is next free.
    let mut slots: Vec<Instant> = Vec::new();
    // Running requests: (end, start).
    let mut running = BinaryHeap::new();
    let mut trace = Vec::new();
    for (length, backend) in script {
        slots.sort();
        slots.reverse();
        slots.truncate(backend.slots);
        slots.resize(backend.slots, Instant::now());
        let until = Instant::now() + *length;
        while Instant::now() < until {
            tokio::time::advance(TICK).await;
            let now = Instant::now();
            while let Some(Reverse((end, started))) = running.peek().copied() {
                if end > now {
                    break;
                }
                let busy = running.len();
                running.pop();
                controller.observe(started, now, busy);
            }
            due += backend.arrivals * TICK.as_secs_f64();
            while due >= 1.0 {
                due -= 1.0;
                waiting = (waiting + 1).min(QUEUE);
            }
            while waiting > 0 && running.len() < controller.limit() {
                waiting -= 1;
                let slot = slots.iter_mut().min().expect("at least one slot");
                let jitter = 1.0 + backend.noise * (2.0 * noise.next() - 1.0);
                let end = (*slot).max(now) + backend.base.mul_f64(jitter);
                *slot = end;
                running.push(Reverse((end, now)));
            }
            trace.push(((now - start).as_secs_f64(), controller.limit()));
        }
    }
    Trace(trace)
}

fn seconds(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn at_three_times_its_capacity_the_limit_settles_near_the_capacity() {
    let mut controller = Controller::new(256, Instant::now());
    let trace = run(&mut controller, &[(seconds(20), backend(16, 3.0))]).await;
    let settled = trace.first_within(0.0, 12..=26).expect("settles");
    assert!(settled < 3.0, "settled after {settled} s");
    // It saws between the cut below the capacity and the tolerance above it.
    let (low, high) = trace.range(5.0, 20.0);
    assert!(low >= 12 && high <= 26, "{low}..={high}");
    let mean = trace.mean(5.0, 20.0);
    assert!((15.0..=21.0).contains(&mean), "{mean}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_limit_follows_capacity_halving_and_coming_back_within_two_seconds() {
    let mut controller = Controller::new(256, Instant::now());
    let script = [
        (seconds(10), backend(16, 3.0)),
        (seconds(10), backend(8, 3.0)),
        (seconds(10), backend(16, 3.0)),
    ];
    let trace = run(&mut controller, &script).await;
    let down = trace.first_within(10.0, 0..=12).expect("follows down");
    assert!(down < 2.0, "followed the halving after {down} s");
    let (low, high) = trace.range(12.0, 20.0);
    assert!(low >= 6 && high <= 12, "{low}..={high}");
    let up = trace.first_within(20.0, 14..=256).expect("follows up");
    assert!(up < 2.0, "followed the recovery after {up} s");
    let (low, high) = trace.range(22.0, 30.0);
    assert!(low >= 12 && high <= 26, "{low}..={high}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn noisy_service_times_do_not_make_the_limit_drift() {
    let mut controller = Controller::new(256, Instant::now());
    let noisy = Backend {
        noise: 0.3,
        ..backend(16, 3.0)
    };
    let trace = run(&mut controller, &[(seconds(60), noisy)]).await;
    let (low, high) = trace.range(5.0, 60.0);
    assert!(low >= 10 && high <= 26, "{low}..={high}");
    let (early, late) = (trace.mean(5.0, 30.0), trace.mean(30.0, 60.0));
    assert!(
        (early - late).abs() <= 2.0,
        "drifted from {early} to {late}"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn under_light_load_noise_leaves_the_limit_alone_and_a_slower_service_does_not_pin_it() {
    let mut controller = Controller::new(256, Instant::now());
    let light = Backend {
        noise: 0.3,
        ..backend(16, 0.2)
    };
    let slower = Backend {
        base: BASE * 3,
        ..light
    };
    let trace = run(
        &mut controller,
        &[(seconds(5), light), (seconds(5), slower)],
    )
    .await;
    assert_eq!(trace.range(0.0, 5.0), (256, 256));
    // Three times slower at a fifth of the capacity (about ten running): the limit is not
    // what slows it. It comes down to what runs, and cuts below that, which do not move the
    // median, are given back: it is not pinned at the floor (as a minRTT probe would pin it).
    let pinned = trace.between(5.0, 10.0).filter(|limit| *limit <= 4).count();
    assert!(pinned < 2500, "at the floor for {pinned} ms");
    let (low, _) = trace.range(9.0, 10.0);
    assert!(low >= 10, "held at {low}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_service_slower_at_any_concurrency_does_not_pin_the_limit_low() {
    let mut controller = Controller::new(256, Instant::now());
    let slower = Backend {
        base: BASE * 2,
        ..backend(16, 3.0)
    };
    let faster = Backend {
        base: BASE / 2,
        ..backend(16, 3.0)
    };
    let script = [
        (seconds(10), backend(16, 3.0)),
        (seconds(10), slower),
        (seconds(10), faster),
    ];
    let trace = run(&mut controller, &script).await;
    // Twice as slow with the same 16 slots: cutting does not help, so the baseline follows
    // instead of the limit sitting at the floor (Envoy's pinned minRTT probe).
    let low = trace
        .between(10.0, 20.0)
        .filter(|limit| *limit <= 2 * FLOOR)
        .count();
    assert!(low < 500, "pinned low for {low} ms");
    let back = trace
        .first_within(10.0, 12..=26)
        .expect("back near the capacity");
    let (low, high) = trace.range(10.0 + back + 1.0, 20.0);
    assert!(
        back < 3.0 && low >= 10 && high <= 26,
        "{back}: {low}..={high}"
    );
    // And it grows again: once re-measured, the baseline no longer calls every window
    // congested.
    assert!(high >= 18, "stuck at {high} or below");
    // Twice as fast: the baseline follows down at once; the capacity is still 16.
    let (low, high) = trace.range(22.0, 30.0);
    assert!(low >= 12 && high <= 26, "{low}..={high}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_move_by_more_than_a_quarter_is_logged_once() {
    let start = Instant::now();
    let mut controller = Controller::new(256, start);
    let mut moves = Vec::new();
    let mut now = start + BASE * 16;
    // Sixteen slots: the first requests take 20 ms, then with 256 running, 320 ms.
    for sample in 0..200 {
        now += Duration::from_millis(5);
        let service = if sample < 16 { BASE } else { BASE * 16 };
        if let Some(moved) = controller.observe(now - service, now, 256) {
            moves.push(moved);
        }
    }
    let cut = moves
        .iter()
        .find(|moved| moved.to < moved.from)
        .expect("cut");
    assert!(cut.log && cut.to <= 128, "{cut:?}");
    assert!(moves
        .iter()
        .filter(|moved| moved.from == moved.to)
        .all(|moved| !moved.log));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_backend_losing_capacity_under_a_limit_that_never_bound_is_caught_at_once() {
    let mut controller = Controller::new(256, Instant::now());
    // 1× of sixteen slots: about sixteen run, the limit (256) never binds, nothing moves it.
    let halved = Backend {
        slots: 8,
        ..backend(16, 1.0)
    };
    let script = [(seconds(5), backend(16, 1.0)), (seconds(5), halved)];
    let trace = run(&mut controller, &script).await;
    assert_eq!(trace.range(0.0, 5.0), (256, 256));
    // Half the slots: a queue forms in the backend. The limit comes down to what runs as
    // soon as it shows, before hundreds pile up in the backend.
    let caught = trace.first_within(5.0, 0..=32).expect("caught");
    assert!(caught < 0.5, "caught after {caught} s");
    let (low, high) = trace.range(7.0, 10.0);
    assert!(low >= 4 && high <= 13, "{low}..={high}");
}
