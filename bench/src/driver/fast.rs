//! Scenario 1, the fast path: `GET /` (hello world) over 64 keep-alive connections, closed loop,
//! server and load generator pinned to separate cores. Every opponent runs `repeats` times,
//! interleaved, and the table shows medians.
//!
//! Target: intralb ≥ 0.95× bare hyper's rps, and its p99 ≤ 1.2× bare hyper's.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::oha::{Load, LoadResult};
use super::report::{label, median, ms, num, percent, ratio, verdict, Table};
use super::{secs, Bench, Result};
use crate::cli::{Opponent, ServerOptions};

const OPPONENTS: [Opponent; 3] = [Opponent::Hyper, Opponent::Tower, Opponent::Intralb];
const CONNECTIONS: usize = 64;
const RPS_TARGET: f64 = 0.95;
const P99_TARGET: f64 = 1.2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Fast {
    pub(crate) runs: Vec<Run>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Run {
    pub(crate) opponent: String,
    pub(crate) repeat: usize,
    pub(crate) result: LoadResult,
}

pub(crate) fn run(bench: &Bench) -> Result<Fast> {
    let mut runs = Vec::new();
    for repeat in 0..bench.plan.repeats {
        for opponent in OPPONENTS {
            let server = bench.start(ServerOptions::new(opponent), true)?;
            bench.warm_up(&server, "/", true)?;
            let load = Load::closed(server.url("/"), CONNECTIONS, secs(bench.plan.fast_s));
            let result = bench.measure(&server, &load, true)?;
            server.stop()?;
            eprintln!(
                "fast: {opponent:>8} #{}: {} rps, p50 {} ms, p99 {} ms, server CPU {}",
                repeat + 1,
                num(result.rps()),
                ms(result.latency.map(|l| l.p50_ms)),
                ms(result.latency.map(|l| l.p99_ms)),
                percent(result.server_cpu),
            );
            runs.push(Run {
                opponent: opponent.to_string(),
                repeat,
                result,
            });
        }
    }
    Ok(Fast { runs })
}

/// Medians over the repeats of one opponent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) cpu: f64,
    /// Server CPU time per response, in microseconds: the cost of a request even when the
    /// load generator, not the server, limits the rate.
    pub(crate) cpu_us: f64,
    pub(crate) errors: u64,
}

/// Medians of `runs` of `opponent`, closed-loop throughput runs of any scenario.
pub(crate) fn summarize<'a>(runs: impl Iterator<Item = &'a LoadResult>) -> Summary {
    let runs: Vec<&LoadResult> = runs.collect();
    let of =
        |f: &dyn Fn(&LoadResult) -> Option<f64>| median(runs.iter().filter_map(|r| f(r)).collect());
    Summary {
        rps: of(&|r| Some(r.rps())),
        p50_ms: of(&|r| r.latency.map(|l| l.p50_ms)),
        p99_ms: of(&|r| r.latency.map(|l| l.p99_ms)),
        cpu: of(&|r| r.server_cpu),
        cpu_us: of(&|r| Some(r.server_cpu? * r.seconds * 1e6 / r.responses() as f64)),
        errors: runs
            .iter()
            .map(|r| r.client_errors() + r.responses() - r.count(200))
            .sum(),
    }
}

impl Fast {
    fn summary(&self, opponent: Opponent) -> Summary {
        summarize(
            self.runs
                .iter()
                .filter(|r| r.opponent == opponent.name())
                .map(|r| &r.result),
        )
    }

    pub(crate) fn report(&self, out: &mut String) {
        let repeats = self.runs.iter().map(|r| r.repeat + 1).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "## 1. Fast path\n\n`GET /` (hello world), {CONNECTIONS} keep-alive connections, closed \
             loop; medians of {repeats} interleaved runs per server.\n"
        );
        let bare = self.summary(Opponent::Hyper);
        let mut table = Table::new(&[
            "server",
            "rps",
            "p50 (ms)",
            "p99 (ms)",
            "server CPU",
            "CPU per request (µs)",
            "non-200 + errors",
            "rps vs bare",
            "p99 vs bare",
            "CPU per request vs bare",
        ]);
        for opponent in OPPONENTS {
            let s = self.summary(opponent);
            table.row(vec![
                label(opponent.name()).to_owned(),
                num(s.rps),
                ms(Some(s.p50_ms)),
                ms(Some(s.p99_ms)),
                percent(Some(s.cpu)),
                format!("{:.2}", s.cpu_us),
                s.errors.to_string(),
                ratio(s.rps / bare.rps),
                ratio(s.p99_ms / bare.p99_ms),
                ratio(s.cpu_us / bare.cpu_us),
            ]);
        }
        table.render(out);
        let intralb = self.summary(Opponent::Intralb);
        let rps_ratio = intralb.rps / bare.rps;
        let p99_ratio = intralb.p99_ms / bare.p99_ms;
        let mut targets = Table::new(&["target", "measured", ""]);
        targets.row(vec![
            format!("intralb rps ≥ {RPS_TARGET}× bare hyper"),
            ratio(rps_ratio),
            verdict(rps_ratio >= RPS_TARGET).to_owned(),
        ]);
        targets.row(vec![
            format!("intralb p99 ≤ {P99_TARGET}× bare hyper"),
            ratio(p99_ratio),
            verdict(p99_ratio <= P99_TARGET).to_owned(),
        ]);
        targets.render(out);
        if bare.cpu < 0.9 {
            out.push_str(
                "Note: bare hyper used less than 90 % of a core, so the load generator, not the \
                 server, set the pace: the rps ratio understates any difference, and CPU per \
                 request is the better measure of what intralb costs.\n\n",
            );
        }
    }
}
