//! Scenario 2, overload: `GET /slow` holds one of 16 backend slots for 20 ms, so capacity is
//! 16 / 20 ms = 800 req/s. intralb runs with `max_concurrent = 16, queue = 64`, tower with a
//! global limit of 16 (tower has no bounded queue to pair with it), bare hyper with nothing.
//! oha offers 1×, 2× and 3× capacity open loop with coordinated-omission correction, over 256
//! connections, each load on a fresh server process.
//!
//! Targets at 3× for intralb: goodput ≥ 0.97× capacity, p99 of the 200s ≤ 20 ms +
//! queue / capacity + 10 ms (= 110 ms), no client errors. (Issue 1 also asked for the 503s'
//! p99 ≤ 1 ms, for a FIFO queue that sheds only when full. Since issue 10 intralb's queue is
//! CoDel's, which answers 503 after 2 × `queue_target` in a standing queue on purpose; the
//! `admission` scenario judges that bound, timed at the server.)
//!
//! The probe then checks the claim that `Router::layer(ConcurrencyLimitLayer)` bounds nothing,
//! by reading how many `/slow` handlers ever ran at once.

use std::fmt::Write;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::oha::{Load, LoadResult};
use super::report::{label, ms, num, percent, ratio, verdict, Table};
use super::{secs, Bench, Result};
use crate::cli::{Opponent, ServerOptions};

pub(crate) const OPPONENTS: [Opponent; 3] = [Opponent::Hyper, Opponent::Tower, Opponent::Intralb];
const PROBED: [Opponent; 2] = [Opponent::NaiveLimit, Opponent::NaiveLimitEager];
const SLOTS: usize = 16;
const HOLD_MS: u64 = 20;
const QUEUE: usize = 64;
pub(crate) const CAPACITY: f64 = SLOTS as f64 * 1000.0 / HOLD_MS as f64;
const MULTIPLES: [u32; 3] = [1, 2, 3];
const CONNECTIONS: usize = 256;
const GOODPUT_TARGET: f64 = 0.97;

/// `HOLD + queue / capacity + 10 ms`.
const fn ok_p99_target_ms() -> f64 {
    HOLD_MS as f64 + QUEUE as f64 / CAPACITY * 1000.0 + 10.0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Overload {
    pub(crate) capacity_rps: f64,
    pub(crate) runs: Vec<Run>,
    pub(crate) probes: Vec<Run>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Run {
    pub(crate) opponent: String,
    pub(crate) multiple: u32,
    pub(crate) offered_rps: u32,
    pub(crate) result: LoadResult,
    /// The most `/slow` handlers running at once, waiting for a slot included.
    pub(crate) peak_running: Option<u64>,
    /// How long a backend slot was held on average (the nominal hold is 20 ms).
    pub(crate) mean_hold_ms: Option<f64>,
}

impl Run {
    pub(crate) fn goodput(&self) -> f64 {
        self.result.rate_of(200)
    }

    pub(crate) fn ok_p99_ms(&self) -> Option<f64> {
        self.result.ok_latency.map(|l| l.p99_ms)
    }
}

fn options(opponent: Opponent) -> ServerOptions {
    let mut options = ServerOptions::new(opponent);
    options.limit = SLOTS;
    options.queue = QUEUE;
    options.min_workers = Some(SLOTS);
    options.slots = SLOTS;
    options.hold = Duration::from_millis(HOLD_MS);
    options
}

fn measure(bench: &Bench, opponent: Opponent, multiple: u32, seconds: f64) -> Result<Run> {
    let server = bench.start(options(opponent), true)?;
    let offered_rps = (CAPACITY * f64::from(multiple)).round() as u32;
    let load = Load {
        rate: Some(offered_rps),
        ..Load::closed(server.url("/slow"), CONNECTIONS, secs(seconds))
    };
    let result = bench.measure(&server, &load, true)?;
    let stats = server
        .get("/stats")
        .map(|(_, body)| body)
        .unwrap_or_default();
    let mut stats = stats.split_whitespace().map(str::parse::<u64>);
    let peak_running = stats.next().and_then(|n| n.ok());
    let mean_hold_ms = stats
        .next()
        .and_then(|n| n.ok())
        .map(|us| us as f64 / 1000.0);
    server.stop()?;
    let run = Run {
        opponent: opponent.to_string(),
        multiple,
        offered_rps,
        result,
        peak_running,
        mean_hold_ms,
    };
    eprintln!(
        "overload: {opponent:>8} at {multiple}×: goodput {}/s, p99 200 {} ms, p99 503 {} ms, \
         errors {}, peak running {}",
        num(run.goodput()),
        ms(run.ok_p99_ms()),
        ms(run.result.failed_latency.map(|l| l.p99_ms)),
        run.result.client_errors(),
        run.peak_running.map_or("?".to_owned(), |p| p.to_string()),
    );
    Ok(run)
}

pub(crate) fn run(bench: &Bench) -> Result<Overload> {
    let mut runs = Vec::new();
    for multiple in MULTIPLES {
        for opponent in OPPONENTS {
            runs.push(measure(bench, opponent, multiple, bench.plan.overload_s)?);
        }
    }
    let mut probes = Vec::new();
    for opponent in PROBED {
        probes.push(measure(bench, opponent, 3, bench.plan.probe_s)?);
    }
    Ok(Overload {
        capacity_rps: CAPACITY,
        runs,
        probes,
    })
}

impl Overload {
    /// The target for the p99 of the 200s at 3×.
    pub(crate) fn ok_p99_target_ms(&self) -> f64 {
        ok_p99_target_ms()
    }

    /// The runs of one opponent, by offered load.
    pub(crate) fn series(&self, opponent: Opponent) -> Vec<&Run> {
        let mut runs: Vec<&Run> = self
            .runs
            .iter()
            .filter(|r| r.opponent == opponent.name())
            .collect();
        runs.sort_by_key(|r| r.multiple);
        runs
    }

    pub(crate) fn report(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## 2. Overload\n\n`GET /slow` holds one of {SLOTS} backend slots for {HOLD_MS} ms: \
             capacity {} req/s. intralb: `max_concurrent = {SLOTS}, queue = {QUEUE}`; tower: \
             global limit {SLOTS}, no queue; bare hyper: no limit (requests wait for a slot). \
             Open loop with latency correction, {CONNECTIONS} connections.\n",
            num(self.capacity_rps)
        );
        let mut table = Table::new(&[
            "server",
            "offered (req/s)",
            "goodput (200/s)",
            "p50 200 (ms)",
            "p99 200 (ms)",
            "503/s",
            "p99 503 (ms)",
            "other responses",
            "client errors",
            "peak running",
            "mean hold (ms)",
            "server CPU",
        ]);
        for multiple in MULTIPLES {
            for run in self.runs.iter().filter(|r| r.multiple == multiple) {
                table.row(row(run));
            }
        }
        table.render(out);
        out.push_str(
            "Mean hold is how long a backend slot was really held (capacity = 16 / mean hold; \
             the handler corrects for tokio's millisecond timer, see `bench/src/server/routes.rs`). \
             Peak running counts `/slow` handlers running at once, waiting for a slot included.\n\n\
             ![p99 latency and goodput against offered load](overload.svg)\n\n",
        );
        self.report_targets(out);
        self.report_probe(out);
    }

    fn report_targets(&self, out: &mut String) {
        let at_3x: Vec<&Run> = OPPONENTS
            .iter()
            .filter_map(|o| self.series(*o).into_iter().find(|r| r.multiple == 3))
            .collect();
        if at_3x.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "Targets at 3× capacity (intralb's are the issue's; the others for comparison):\n"
        );
        let mut header = vec!["target".to_owned()];
        header.extend(at_3x.iter().map(|r| label(&r.opponent).to_owned()));
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let mut table = Table::new(&header);
        let capacity = self.capacity_rps;
        let target = ok_p99_target_ms();
        let mut line = |name: String, cell: &dyn Fn(&Run) -> String| {
            let mut cells = vec![name];
            cells.extend(at_3x.iter().map(|r| cell(r)));
            table.row(cells);
        };
        line(format!("goodput ≥ {GOODPUT_TARGET}× capacity"), &|r| {
            let x = r.goodput() / capacity;
            format!("{} {}", ratio(x), verdict(x >= GOODPUT_TARGET))
        });
        line(format!("p99 of 200s ≤ {} ms", ms(Some(target))), &|r| {
            let p99 = r.ok_p99_ms();
            format!(
                "{} ms {}",
                ms(p99),
                verdict(p99.is_some_and(|p| p <= target))
            )
        });
        line("zero client errors".to_owned(), &|r| {
            let errors = r.result.client_errors();
            format!("{errors} {}", verdict(errors == 0))
        });
        table.render(out);
        out.push_str(
            "intralb's `503`s come from its CoDel queue, after 2 × `queue_target` (10 ms) in a \
             standing queue, on purpose (issue 1's target, p99 ≤ 1 ms, was for a FIFO queue that \
             shed only when full); the admission scenario judges them against 2 × \
             `queue_target` + 1 ms, timed at the server.\n\n",
        );
    }

    fn report_probe(&self, out: &mut String) {
        if self.probes.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "Does `Router::layer(ConcurrencyLimitLayer::new({SLOTS}))` bound concurrency? At 3×, \
             the most `/slow` handlers running at once (a bound of {SLOTS} shows as ≤ {SLOTS}):\n"
        );
        let mut table = Table::new(&[
            "how",
            "peak running",
            "goodput (200/s)",
            "p99 200 (ms)",
            "client errors",
        ]);
        for run in self.probes.iter().chain(
            self.runs
                .iter()
                .filter(|r| r.multiple == 3 && r.opponent != "hyper"),
        ) {
            table.row(vec![
                label(&run.opponent).to_owned(),
                run.peak_running.map_or("?".to_owned(), |p| p.to_string()),
                num(run.goodput()),
                ms(run.ok_p99_ms()),
                run.result.client_errors().to_string(),
            ]);
        }
        table.render(out);
    }
}

fn row(run: &Run) -> Vec<String> {
    let r = &run.result;
    let other = r.responses() - r.count(200) - r.count(503);
    vec![
        label(&run.opponent).to_owned(),
        format!("{} ({}×)", num(f64::from(run.offered_rps)), run.multiple),
        num(run.goodput()),
        ms(r.ok_latency.map(|l| l.p50_ms)),
        ms(run.ok_p99_ms()),
        num(r.rate_of(503)),
        ms(r.failed_latency.map(|l| l.p99_ms)),
        other.to_string(),
        r.client_errors().to_string(),
        run.peak_running.map_or("?".to_owned(), |p| p.to_string()),
        ms(run.mean_hold_ms),
        percent(r.server_cpu),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_and_latency_target_follow_from_the_settings() {
        assert_eq!(CAPACITY, 800.0);
        assert_eq!(ok_p99_target_ms(), 110.0);
    }
}
