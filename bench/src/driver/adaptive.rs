//! Scenario adaptive (issue 11): the overload scenario's service (16 backend slots held 20 ms:
//! 800 req/s) behind intralb with a plausible guess, `max_concurrent = 256, queue = 64`, with
//! and without `adaptive`, under `bench load` (open loop, latency corrected, 300 connections):
//!
//! - sustained 1× and 3× capacity;
//! - 1× of the full capacity while the backend's slots halve (16 → 8) a third of the way in and
//!   come back two thirds of the way in (`bench server --slots-schedule`);
//! - hello world (closed loop, `oha`), with and without `adaptive`.
//!
//! The limit is read from `/metrics` (`intralb_concurrency_limit`) every 100 ms while the load
//! runs, for the table of the limit over time.
//!
//! Targets (issue 11): at 3×, goodput ≥ 0.95× capacity and p99 of the 200s ≤ 60 ms; at 1×, p99
//! ≤ 60 ms; when the capacity halves and comes back, the limit follows within 2 s each way and
//! the p99 stays ≤ 60 ms; hello world: adaptive costs ≤ 2 % rps.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::oha::Load;
use super::process::http_get;
use super::report::{ms, num, verdict, Table};
use super::{secs, Bench, Result};
use crate::cli::{Opponent, ServerOptions};
use crate::load::LoadReport;

const SLOTS: usize = 16;
const HALVED: usize = 8;
const HOLD_MS: u64 = 20;
const MAX_CONCURRENT: usize = 256;
const QUEUE: usize = 64;
const CAPACITY: f64 = SLOTS as f64 * 1000.0 / HOLD_MS as f64;
const CONNECTIONS: usize = 300;
/// When a run is taken as settled (the limit found, from `max_concurrent`).
const SETTLE_S: f64 = 2.0;
/// How often the limit is read.
const POLL: Duration = Duration::from_millis(100);

/// The loads on the slow service, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Shape {
    Sustained1,
    Sustained3,
    /// 1× of the full capacity; the slots halve and come back.
    Halving,
}

impl Shape {
    const ALL: [Shape; 3] = [Shape::Sustained1, Shape::Sustained3, Shape::Halving];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Shape::Sustained1 => "1×",
            Shape::Sustained3 => "3×",
            Shape::Halving => "1×, slots 16 → 8 → 16",
        }
    }

    fn multiple(self) -> f64 {
        match self {
            Shape::Sustained3 => 3.0,
            Shape::Sustained1 | Shape::Halving => 1.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Adaptive {
    pub(crate) capacity_rps: f64,
    pub(crate) runs: Vec<Run>,
    pub(crate) hello: Vec<Hello>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Run {
    pub(crate) adaptive: bool,
    pub(crate) shape: Shape,
    pub(crate) report: LoadReport,
    /// (seconds since the load started, the limit).
    pub(crate) limits: Vec<(f64, usize)>,
    /// When the slots halved and came back, in seconds since the load started (about: the
    /// schedule counts from the server's start).
    pub(crate) halved_at_s: Option<(f64, f64)>,
}

/// Hello world, closed loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) adaptive: bool,
    pub(crate) rps: f64,
    pub(crate) p99_ms: Option<f64>,
    /// The limit when the load ended.
    pub(crate) limit: Option<usize>,
}

impl Run {
    fn goodput(&self) -> f64 {
        self.report.normal.ok as f64 / self.report.seconds
    }

    fn shed_per_s(&self) -> f64 {
        self.report.normal.shed as f64 / self.report.seconds
    }

    /// How long after `from` the limit first satisfied `within`.
    fn follows(&self, from: f64, within: impl Fn(usize) -> bool) -> Option<f64> {
        self.limits
            .iter()
            .find(|(t, limit)| *t >= from && within(*limit))
            .map(|(t, _)| t - from)
    }

    /// The p99 of the 200s sent in `[from, to)` seconds, if `bench load` was asked for that
    /// window (see [`windows`]); else an upper bound of it: the largest p99 of its seconds (none
    /// of them has more than 1 % above it, so neither has their union).
    fn p99_between(&self, from: f64, to: f64) -> Option<f64> {
        let asked = self
            .report
            .normal_ok_p99_windows
            .iter()
            .find(|window| window.from == from && window.to == to);
        if let Some(window) = asked {
            return window.p99_ms;
        }
        self.report
            .normal_ok_p99_by_second
            .iter()
            .enumerate()
            .filter(|(second, _)| *second as f64 >= from && ((*second + 1) as f64) <= to)
            .filter_map(|(_, p99)| *p99)
            .reduce(f64::max)
    }

    /// The median limit over the second half of the run.
    fn settled_limit(&self) -> Option<usize> {
        let half = self.report.seconds / 2.0;
        let mut late: Vec<usize> = self
            .limits
            .iter()
            .filter(|(t, _)| *t >= half)
            .map(|(_, l)| *l)
            .collect();
        late.sort_unstable();
        late.get(late.len() / 2).copied()
    }
}

fn options(adaptive: bool) -> ServerOptions {
    let mut options = ServerOptions::new(Opponent::Intralb);
    options.limit = MAX_CONCURRENT;
    options.queue = QUEUE;
    options.min_workers = Some(SLOTS);
    options.slots = SLOTS;
    options.hold = Duration::from_millis(HOLD_MS);
    options.adaptive = adaptive;
    options.metrics = true;
    options
}

/// The limit `/metrics` reports.
fn read_limit(port: u16) -> Option<usize> {
    let (_, body) = http_get(port, "/metrics").ok()?;
    body.lines().find_map(|line| {
        let value = line.strip_prefix("intralb_concurrency_limit ")?;
        value.trim().parse::<f64>().ok().map(|v| v as usize)
    })
}

/// Reads the limit every [`POLL`] until `stop`; (seconds since `start`, limit).
fn poll_limit(port: u16, start: Instant, stop: Arc<AtomicBool>) -> Vec<(f64, usize)> {
    let mut limits = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some(limit) = read_limit(port) {
            limits.push((start.elapsed().as_secs_f64(), limit));
        }
        thread::sleep(POLL);
    }
    limits
}

/// The windows (seconds into the run) whose p99 the targets judge: from [`SETTLE_S`] on, and
/// the 10 s after each change of capacity.
fn windows(seconds: f64, halved: Option<(f64, f64)>) -> Vec<(f64, f64)> {
    let mut windows = vec![(SETTLE_S, seconds)];
    if let Some((down, up)) = halved {
        windows.extend([
            (down.floor(), down.floor() + 10.0),
            (up.floor(), up.floor() + 10.0),
        ]);
    }
    windows
}

fn measure(bench: &Bench, adaptive: bool, shape: Shape) -> Result<Run> {
    let seconds = match shape {
        Shape::Halving => bench.plan.overload_s * 2.0,
        _ => bench.plan.overload_s,
    };
    let mut options = options(adaptive);
    let halved = (shape == Shape::Halving).then(|| (seconds / 3.0, seconds * 2.0 / 3.0));
    if let Some((down, up)) = halved {
        options.slots_schedule = vec![(secs(down), HALVED), (secs(up), SLOTS)];
    }
    let server = bench.start(options, true)?;
    let windows: Vec<String> = windows(seconds, halved)
        .iter()
        .map(|(from, to)| format!("{from}-{to}"))
        .collect();
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (port, stop) = (server.port(), Arc::clone(&stop));
        thread::spawn(move || poll_limit(port, start, stop))
    };
    let report = bench.open_loop(
        &server,
        [
            "--seconds".to_owned(),
            seconds.to_string(),
            "--rate".to_owned(),
            (CAPACITY * shape.multiple()).to_string(),
            "--connections".to_owned(),
            CONNECTIONS.to_string(),
            "--windows".to_owned(),
            windows.join(","),
        ],
    );
    stop.store(true, Ordering::Relaxed);
    let limits = poller.join().map_err(|_| "the limit poller panicked")?;
    server.stop()?;
    let report = report?;
    let run = Run {
        adaptive,
        shape,
        report,
        limits,
        halved_at_s: halved,
    };
    eprintln!(
        "adaptive: {:<5} {:<24} goodput {}/s, p99 200 {} ms, 503/s {}, limit {}",
        adaptive,
        shape.label(),
        num(run.goodput()),
        ms(run.report.normal.ok_p99_ms),
        num(run.shed_per_s()),
        run.settled_limit()
            .map_or("–".to_owned(), |l| l.to_string()),
    );
    Ok(run)
}

fn hello(bench: &Bench, adaptive: bool) -> Result<Hello> {
    let mut options = options(adaptive);
    options.limit = 100;
    options.queue = 100;
    options.min_workers = None;
    let server = bench.start(options, true)?;
    bench.warm_up(&server, "/", true)?;
    let load = Load::closed(server.url("/"), 64, secs(bench.plan.fast_s));
    let result = bench.measure(&server, &load, true)?;
    let limit = read_limit(server.port());
    server.stop()?;
    let hello = Hello {
        adaptive,
        rps: result.rate_of(200),
        p99_ms: result.latency.as_ref().map(|l| l.p99_ms),
        limit,
    };
    eprintln!(
        "adaptive: {:<5} hello world {} rps, limit {:?}",
        adaptive,
        num(hello.rps),
        hello.limit
    );
    Ok(hello)
}

pub(crate) fn run(bench: &Bench) -> Result<Adaptive> {
    let mut runs = Vec::new();
    for shape in Shape::ALL {
        for adaptive in [false, true] {
            runs.push(measure(bench, adaptive, shape)?);
        }
    }
    let mut hellos = Vec::new();
    for _ in 0..bench.plan.repeats {
        for adaptive in [false, true] {
            hellos.push(hello(bench, adaptive)?);
        }
    }
    Ok(Adaptive {
        capacity_rps: CAPACITY,
        runs,
        hello: hellos,
    })
}

impl Adaptive {
    pub(crate) fn report(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## 2b. Adaptive concurrency (issue 11)\n\nThe overload scenario's service (capacity {} req/s) \
             behind intralb with `max_concurrent = {MAX_CONCURRENT}, queue = {QUEUE}`, with and \
             without `adaptive`. `bench load`, open loop with latency correction, {CONNECTIONS} \
             connections. \"limit\": the median `intralb_concurrency_limit` over the second \
             half of the run.\n",
            num(self.capacity_rps)
        );
        let mut table = Table::new(&[
            "load",
            "adaptive",
            "goodput (200/s)",
            "p50 200 (ms)",
            "p99 200 (ms)",
            "503/s",
            "limit",
        ]);
        for run in &self.runs {
            let normal = &run.report.normal;
            table.row(vec![
                run.shape.label().to_owned(),
                run.adaptive.to_string(),
                num(run.goodput()),
                ms(normal.ok_p50_ms),
                ms(normal.ok_p99_ms),
                num(run.shed_per_s()),
                run.settled_limit()
                    .map_or("–".to_owned(), |l| l.to_string()),
            ]);
        }
        table.render(out);
        let mut hello = Table::new(&["hello world", "rps", "p99 (ms)", "limit at the end"]);
        for run in &self.hello {
            hello.row(vec![
                format!("adaptive = {}", run.adaptive),
                num(run.rps),
                ms(run.p99_ms),
                run.limit.map_or("–".to_owned(), |l| l.to_string()),
            ]);
        }
        hello.render(out);
        self.report_targets(out);
        out.push_str(
            "![the concurrency limit and the p99 of the 200s over time, per load](adaptive.svg)\n\n",
        );
        self.report_limits(out);
    }

    fn adaptive(&self, shape: Shape) -> Option<&Run> {
        self.runs.iter().find(|r| r.adaptive && r.shape == shape)
    }

    fn report_targets(&self, out: &mut String) {
        let mut table = Table::new(&["adaptive target", "measured", "verdict"]);
        let p99_within = |run: &Run| run.report.normal.ok_p99_ms.is_some_and(|p| p <= 60.0);
        if let Some(run) = self.adaptive(Shape::Sustained3) {
            let goodput = run.goodput() / self.capacity_rps;
            table.row(vec![
                "3×: goodput ≥ 0.95× capacity".to_owned(),
                format!("{goodput:.3}×"),
                verdict(goodput >= 0.95).to_owned(),
            ]);
        }
        for shape in Shape::ALL {
            if let Some(run) = self.adaptive(shape) {
                table.row(vec![
                    format!("{}: p99 of the 200s ≤ 60 ms (whole run)", shape.label()),
                    ms(run.report.normal.ok_p99_ms),
                    verdict(p99_within(run)).to_owned(),
                ]);
                // After the limit came down from max_concurrent.
                let settled = run.p99_between(SETTLE_S, run.report.seconds);
                table.row(vec![
                    format!(
                        "{}: p99 of the 200s ≤ 60 ms, from {SETTLE_S} s on",
                        shape.label()
                    ),
                    ms(settled),
                    verdict(settled.is_some_and(|p| p <= 60.0)).to_owned(),
                ]);
            }
        }
        if let Some(run) = self.adaptive(Shape::Halving) {
            if let Some((down, up)) = run.halved_at_s {
                let tolerated = (HALVED as f64 * 1.5) as usize;
                for (what, from, within) in [
                    (
                        format!("halved: limit ≤ {tolerated} within 2 s"),
                        down,
                        Box::new(move |l: usize| l <= tolerated) as Box<dyn Fn(usize) -> bool>,
                    ),
                    (
                        format!("restored: limit ≥ {} within 2 s", SLOTS - 2),
                        up,
                        Box::new(|l: usize| l >= SLOTS - 2),
                    ),
                ] {
                    let after = run.follows(from, within);
                    table.row(vec![
                        what,
                        after.map_or("never".to_owned(), |s| format!("{s:.1} s")),
                        verdict(after.is_some_and(|s| s <= 2.0)).to_owned(),
                    ]);
                    let p99 = run.p99_between(from.floor(), from.floor() + 10.0);
                    table.row(vec![
                        format!("p99 of the 200s ≤ 60 ms for 10 s from {from:.0} s"),
                        ms(p99),
                        verdict(p99.is_some_and(|p| p <= 60.0)).to_owned(),
                    ]);
                }
            }
        }
        let mean = |adaptive: bool| {
            let rps: Vec<f64> = self
                .hello
                .iter()
                .filter(|h| h.adaptive == adaptive)
                .map(|h| h.rps)
                .collect();
            (!rps.is_empty()).then(|| rps.iter().sum::<f64>() / rps.len() as f64)
        };
        if let (Some(fixed), Some(adaptive)) = (mean(false), mean(true)) {
            let cost = 1.0 - adaptive / fixed;
            table.row(vec![
                "hello world: adaptive costs ≤ 2 % rps".to_owned(),
                format!("{:.1} %", cost * 100.0),
                verdict(cost <= 0.02).to_owned(),
            ]);
        }
        table.render(out);
    }

    /// The limit over time, every half second, for a chart.
    fn report_limits(&self, out: &mut String) {
        out.push_str("The limit over time (every 0.5 s since the load started):\n\n");
        let mut table = Table::new(&[
            "load",
            "adaptive",
            "limit",
            "p99 of the 200s by second (ms)",
        ]);
        for run in &self.runs {
            let mut next = 0.0;
            let mut points = Vec::new();
            for (t, limit) in &run.limits {
                if *t >= next {
                    points.push(limit.to_string());
                    next += 0.5;
                }
            }
            let p99s: Vec<String> = run
                .report
                .normal_ok_p99_by_second
                .iter()
                .map(|p99| ms(*p99))
                .collect();
            table.row(vec![
                run.shape.label().to_owned(),
                run.adaptive.to_string(),
                points.join(" "),
                p99s.join(" "),
            ]);
        }
        table.render(out);
    }
}
