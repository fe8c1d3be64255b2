//! Scenario 3, admission: the service of the overload scenario (16 backend slots held 20 ms:
//! 800 req/s), intralb with `max_concurrent = 16, queue = 64` and its default `queue_target`
//! (5 ms), against plain `axum::serve`, axum + tower (global limit 16 + load shed) and bare
//! hyper, under four loads made by `bench load` (open loop, latency corrected, 300
//! connections):
//!
//! - sustained 1× and 3× capacity;
//! - bursts: 3× for 30 ms every 150 ms, 150 req/s between (0.75× on average);
//! - 3× of which `/critical` (intralb: `Priority::Critical`) is 0.5× capacity.
//!
//! Targets for intralb (issue 10): goodput ≥ 0.97× capacity and p99 of the 200s ≤ 40 ms at 1×
//! and ≤ 35 ms at 3×, 503s answered within 2 × `queue_target` + 1 ms; no 503 in the bursts;
//! `Critical` success ≥ 99.5 % with its p99 ≤ 35 ms.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::report::{label, ms, num, verdict, Table};
use super::{Bench, Result};
use crate::cli::{Opponent, ServerOptions};
use crate::load::LoadReport;

pub(crate) const OPPONENTS: [Opponent; 4] = [
    Opponent::Intralb,
    Opponent::Axum,
    Opponent::Tower,
    Opponent::Hyper,
];
const SLOTS: usize = 16;
const HOLD_MS: u64 = 20;
const QUEUE: usize = 64;
const CAPACITY: f64 = SLOTS as f64 * 1000.0 / HOLD_MS as f64;
const CONNECTIONS: usize = 300;
/// intralb's default `queue_target`.
const QUEUE_TARGET_MS: f64 = 5.0;

/// The loads, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Shape {
    Sustained1,
    Sustained3,
    Bursts,
    Critical,
}

impl Shape {
    pub(crate) const ALL: [Shape; 4] = [
        Shape::Sustained1,
        Shape::Sustained3,
        Shape::Bursts,
        Shape::Critical,
    ];

    fn label(self) -> &'static str {
        match self {
            Shape::Sustained1 => "1×",
            Shape::Sustained3 => "3×",
            Shape::Bursts => "bursts (3× for 30 ms every 150 ms)",
            Shape::Critical => "3×, critical 0.5×",
        }
    }

    /// For the chart's axis.
    pub(crate) fn short_label(self) -> &'static str {
        match self {
            Shape::Sustained1 => "1×",
            Shape::Sustained3 => "3×",
            Shape::Bursts => "bursts",
            Shape::Critical => "3×, critical",
        }
    }

    /// The `bench load` options after `--port` and `--seconds`.
    fn args(self) -> Vec<String> {
        let rate = |multiple: f64| (CAPACITY * multiple).to_string();
        let mut args = match self {
            Shape::Sustained1 => vec!["--rate".to_owned(), rate(1.0)],
            Shape::Sustained3 | Shape::Critical => vec!["--rate".to_owned(), rate(3.0)],
            Shape::Bursts => vec![
                "--rate".to_owned(),
                "150".to_owned(),
                "--burst-rate".to_owned(),
                rate(3.0),
                "--burst-ms".to_owned(),
                "30".to_owned(),
                "--every-ms".to_owned(),
                "150".to_owned(),
            ],
        };
        if self == Shape::Critical {
            // 0.5× of 3×.
            args.extend(["--critical".to_owned(), (0.5 / 3.0).to_string()]);
        }
        args.extend(["--connections".to_owned(), CONNECTIONS.to_string()]);
        args
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Admission {
    pub(crate) capacity_rps: f64,
    pub(crate) runs: Vec<Run>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Run {
    pub(crate) opponent: String,
    pub(crate) shape: Shape,
    pub(crate) report: LoadReport,
    /// intralb: its `503`s as timed at the server (`--time-503s`).
    #[serde(default)]
    pub(crate) server_503s: Option<ServerSheds>,
}

/// The `503`s as timed at the server, from its outer layer in to the answer
/// (`server/shed_timer.rs`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct ServerSheds {
    pub(crate) count: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

impl ServerSheds {
    /// From `COUNT P50_US P90_US P99_US MAX_US`.
    fn parse(body: &str) -> Option<Self> {
        let fields: Vec<u64> = body
            .split_whitespace()
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()
            .ok()?;
        let &[count, p50, p90, p99, max] = fields.as_slice() else {
            return None;
        };
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(ServerSheds {
            count,
            p50_ms: ms(p50),
            p90_ms: ms(p90),
            p99_ms: ms(p99),
            max_ms: ms(max),
        })
    }
}

impl Run {
    fn goodput(&self) -> f64 {
        (self.report.normal.ok + self.report.critical.ok) as f64 / self.report.seconds
    }

    pub(crate) fn shed_per_s(&self) -> f64 {
        (self.report.normal.shed + self.report.critical.shed) as f64 / self.report.seconds
    }

    fn critical_success(&self) -> Option<f64> {
        let critical = &self.report.critical;
        (critical.sent > 0).then(|| critical.ok as f64 / critical.sent as f64)
    }
}

fn options(opponent: Opponent) -> ServerOptions {
    let mut options = ServerOptions::new(opponent);
    options.limit = SLOTS;
    options.queue = QUEUE;
    options.min_workers = Some(SLOTS);
    options.slots = SLOTS;
    options.hold = std::time::Duration::from_millis(HOLD_MS);
    options.time_503s = opponent == Opponent::Intralb;
    options
}

fn measure(bench: &Bench, opponent: Opponent, shape: Shape) -> Result<Run> {
    let server = bench.start(options(opponent), true)?;
    let mut args = vec!["--seconds".to_owned(), bench.plan.overload_s.to_string()];
    args.extend(shape.args());
    let report = bench.open_loop(&server, args);
    let server_503s = if opponent == Opponent::Intralb {
        server
            .get(crate::server::shed_timer::PATH)
            .ok()
            .and_then(|(_, body)| ServerSheds::parse(&body))
    } else {
        None
    };
    server.stop()?;
    let report = report?;
    let run = Run {
        opponent: opponent.to_string(),
        shape,
        report,
        server_503s,
    };
    eprintln!(
        "admission: {opponent:>8} {:<36} goodput {}/s, p99 200 {} ms, 503/s {}, max 503 {} ms, \
         critical ok {}",
        shape.label(),
        num(run.goodput()),
        ms(run.report.normal.ok_p99_ms),
        num(run.shed_per_s()),
        ms(run.report.normal.shed_max_ms),
        run.critical_success()
            .map_or("–".to_owned(), |s| format!("{:.2} %", s * 100.0)),
    );
    Ok(run)
}

pub(crate) fn run(bench: &Bench) -> Result<Admission> {
    let mut runs = Vec::new();
    for shape in Shape::ALL {
        for opponent in OPPONENTS {
            runs.push(measure(bench, opponent, shape)?);
        }
    }
    Ok(Admission {
        capacity_rps: CAPACITY,
        runs,
    })
}

impl Admission {
    pub(crate) fn report(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## 2a. Admission (issue 10)\n\nThe overload scenario's service (capacity {} req/s). intralb: \
             `max_concurrent = {SLOTS}, queue = {QUEUE}`, `queue_target` at its default \
             ({QUEUE_TARGET_MS} ms), `/critical` is `Priority::Critical`; tower: global limit \
             {SLOTS} and load shed; plain `axum::serve` and bare hyper: no limit. `bench load`, \
             open loop with latency correction, {CONNECTIONS} connections; requests not answered \
             5 s after the end of a run are counted unanswered. intralb's `503`s are also timed \
             at the server, from its outer layer in to the answer (`--time-503s`, one \
             `middleware::from_fn` layer): the client's times add the load generator's own delay, \
             which tower's immediate `503`s show.\n",
            num(self.capacity_rps)
        );
        let mut table = Table::new(&[
            "load",
            "server",
            "goodput (200/s)",
            "p50 200 (ms)",
            "p99 200 (ms)",
            "503/s",
            "p99 503 (ms)",
            "max 503 (ms)",
            "503 at the server: p50 / p90 / p99 / max (ms)",
            "Retry-After (s)",
            "critical: 200s",
            "critical: p99 (ms)",
            "other",
            "unanswered",
        ]);
        for run in &self.runs {
            let normal = &run.report.normal;
            let critical = &run.report.critical;
            table.row(vec![
                run.shape.label().to_owned(),
                label(&run.opponent).to_owned(),
                num(run.goodput()),
                ms(normal.ok_p50_ms),
                ms(normal.ok_p99_ms),
                num(run.shed_per_s()),
                ms(normal.shed_p99_ms),
                ms(normal.shed_max_ms),
                run.server_503s
                    .filter(|sheds| sheds.count > 0)
                    .map_or("–".to_owned(), |sheds| {
                        [sheds.p50_ms, sheds.p90_ms, sheds.p99_ms, sheds.max_ms]
                            .map(|value| ms(Some(value)))
                            .join(" / ")
                    }),
                normal
                    .retry_after
                    .map_or("–".to_owned(), |(lo, hi)| format!("{lo}–{hi}")),
                run.critical_success()
                    .map_or("–".to_owned(), |s| format!("{:.2} %", s * 100.0)),
                ms(critical.ok_p99_ms),
                num((normal.other + critical.other) as f64),
                num((normal.unanswered + critical.unanswered) as f64),
            ]);
        }
        table.render(out);
        out.push_str(
            "![p99 of the 200s and 503s per second, per load and server](admission.svg)\n\n",
        );
        self.report_targets(out);
    }

    fn intralb(&self, shape: Shape) -> Option<&Run> {
        self.run(Opponent::Intralb, shape)
    }

    /// The run of `opponent` under `shape`, if it was measured.
    pub(crate) fn run(&self, opponent: Opponent, shape: Shape) -> Option<&Run> {
        self.runs
            .iter()
            .find(|r| r.opponent == opponent.name() && r.shape == shape)
    }

    fn report_targets(&self, out: &mut String) {
        let mut table = Table::new(&["intralb target", "measured", "verdict"]);
        let shed_bound = 2.0 * QUEUE_TARGET_MS + 1.0;
        for (shape, p99_bound) in [(Shape::Sustained1, 40.0), (Shape::Sustained3, 35.0)] {
            let Some(run) = self.intralb(shape) else {
                continue;
            };
            let goodput = run.goodput() / self.capacity_rps;
            let offered: f64 = if shape == Shape::Sustained1 { 1.0 } else { 3.0 };
            // At 1× the goodput cannot exceed what is offered.
            let goodput_target = 0.97 * offered.min(1.0);
            table.row(vec![
                format!("{}: goodput ≥ {goodput_target:.2}× capacity", shape.label()),
                format!("{goodput:.3}×"),
                verdict(goodput >= goodput_target).to_owned(),
            ]);
            let p99 = run.report.normal.ok_p99_ms;
            table.row(vec![
                format!("{}: p99 of the 200s ≤ {p99_bound} ms", shape.label()),
                ms(p99),
                verdict(p99.is_some_and(|p| p <= p99_bound)).to_owned(),
            ]);
            let shed = run.report.normal.shed_p99_ms;
            table.row(vec![
                format!(
                    "{}: 503s answered within {shed_bound} ms (p99), at the client",
                    shape.label()
                ),
                ms(shed),
                verdict(shed.is_none_or(|s| s <= shed_bound)).to_owned(),
            ]);
            if let Some(sheds) = run.server_503s {
                let p99 = (sheds.count > 0).then_some(sheds.p99_ms);
                table.row(vec![
                    format!(
                        "{}: 503s answered within {shed_bound} ms (p99), at the server",
                        shape.label()
                    ),
                    format!("{} ({} 503s)", ms(p99), sheds.count),
                    verdict(p99.is_none_or(|p| p <= shed_bound)).to_owned(),
                ]);
            }
        }
        if let Some(run) = self.intralb(Shape::Bursts) {
            let shed = run.report.normal.shed;
            table.row(vec![
                "bursts: no 503".to_owned(),
                format!("{shed} 503s"),
                verdict(shed == 0).to_owned(),
            ]);
        }
        if let Some(run) = self.intralb(Shape::Critical) {
            let success = run.critical_success().unwrap_or(0.0);
            table.row(vec![
                "critical: success ≥ 99.5 %".to_owned(),
                format!("{:.2} %", success * 100.0),
                verdict(success >= 0.995).to_owned(),
            ]);
            let p99 = run.report.critical.ok_p99_ms;
            table.row(vec![
                "critical: p99 ≤ 35 ms".to_owned(),
                ms(p99),
                verdict(p99.is_some_and(|p| p <= 35.0)).to_owned(),
            ]);
        }
        table.render(out);
    }
}

#[cfg(test)]
mod tests {
    use super::ServerSheds;

    #[test]
    fn the_servers_503_times_are_read_in_milliseconds() {
        let sheds = ServerSheds::parse("24078 10600 11000 11300 27100\n").expect("five numbers");
        assert_eq!(sheds.count, 24078);
        assert_eq!(
            [sheds.p50_ms, sheds.p90_ms, sheds.p99_ms, sheds.max_ms],
            [10.6, 11.0, 11.3, 27.1]
        );
        assert!(ServerSheds::parse("24078 10600 11000").is_none());
        assert!(ServerSheds::parse("not found").is_none());
    }
}
