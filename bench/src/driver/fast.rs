//! Scenario 1, the fast path: `GET /` (hello world) over 64 keep-alive connections, closed loop,
//! in two set-ups: pinned (server and load generator on separate cores) and unpinned (sharing
//! both). Every opponent runs `fast_rounds` times, interleaved, and the tables show medians.
//!
//! Targets (issue 10), against plain `axum::serve` with the same `Router` (what a user has before
//! intralb): intralb ≥ 0.97× its rps and ≤ 1.05× its CPU per request, unpinned; and its p99
//! ≤ 1.2× bare hyper's. The ratios are paired: intralb against the `axum::serve` run of the same
//! round, then the median and the range over the rounds (the range is this machine's noise).
//!
//! The `lease` opponent is plain `axum::serve` plus only what a per-worker lease must cost
//! (`server/lease.rs`): it splits intralb's cost over plain axum into the contract's and intralb's
//! own.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::oha::{Load, LoadResult};
use super::report::{label, median, ms, num, percent, ratio, verdict, Table};
use super::{secs, Bench, Result};
use crate::cli::{Opponent, ServerOptions};

const OPPONENTS: [Opponent; 5] = [
    Opponent::Hyper,
    Opponent::Axum,
    Opponent::Tower,
    Opponent::Lease,
    Opponent::Intralb,
];
const CONNECTIONS: usize = 64;
const RPS_TARGET: f64 = 0.97;
const CPU_TARGET: f64 = 1.05;
const P99_TARGET: f64 = 1.2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Fast {
    pub(crate) runs: Vec<Run>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Run {
    pub(crate) opponent: String,
    pub(crate) repeat: usize,
    /// Server and load generator on separate cores (older results: always).
    #[serde(default = "pinned_by_default")]
    pub(crate) pinned: bool,
    pub(crate) result: LoadResult,
}

fn pinned_by_default() -> bool {
    true
}

pub(crate) fn run(bench: &Bench) -> Result<Fast> {
    let mut runs = Vec::new();
    for repeat in 0..bench.plan.fast_rounds {
        for (pinned, opponent) in [true, false]
            .into_iter()
            .flat_map(|pinned| OPPONENTS.map(|opponent| (pinned, opponent)))
        {
            let server = bench.start(ServerOptions::new(opponent), pinned)?;
            bench.warm_up(&server, "/", pinned)?;
            let load = Load::closed(server.url("/"), CONNECTIONS, secs(bench.plan.fast_s));
            let result = bench.measure(&server, &load, pinned)?;
            server.stop()?;
            eprintln!(
                "fast: {opponent:>8} {} #{}: {} rps, p50 {} ms, p99 {} ms, server CPU {}",
                if pinned { "pinned  " } else { "unpinned" },
                repeat + 1,
                num(result.rps()),
                ms(result.latency.map(|l| l.p50_ms)),
                ms(result.latency.map(|l| l.p99_ms)),
                percent(result.server_cpu),
            );
            runs.push(Run {
                opponent: opponent.to_string(),
                repeat,
                pinned,
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
    fn summary(&self, opponent: Opponent, pinned: bool) -> Option<Summary> {
        let mut runs = self
            .runs
            .iter()
            .filter(|r| r.opponent == opponent.name() && r.pinned == pinned)
            .map(|r| &r.result)
            .peekable();
        runs.peek()?;
        Some(summarize(runs))
    }

    /// `of(a) / of(b)` in each round where both ran, set-up `pinned`.
    fn paired(
        &self,
        a: Opponent,
        b: Opponent,
        pinned: bool,
        of: impl Fn(&Summary) -> f64,
    ) -> Vec<f64> {
        let run = |opponent: Opponent, repeat: usize| {
            self.runs
                .iter()
                .find(|r| r.opponent == opponent.name() && r.pinned == pinned && r.repeat == repeat)
                .map(|r| summarize(std::iter::once(&r.result)))
        };
        (0..self.rounds())
            .filter_map(|repeat| Some(of(&run(a, repeat)?) / of(&run(b, repeat)?)))
            .filter(|ratio| ratio.is_finite())
            .collect()
    }

    /// Rounds run (the most any opponent ran).
    fn rounds(&self) -> usize {
        self.runs.iter().map(|r| r.repeat + 1).max().unwrap_or(0)
    }

    pub(crate) fn report(&self, out: &mut String) {
        let repeats = self.rounds();
        let _ = writeln!(
            out,
            "## 1. Fast path\n\n`GET /` (hello world), {CONNECTIONS} keep-alive connections, closed \
             loop; medians of {repeats} interleaved runs per server, pinned (server on CPU 1, oha \
             on CPU 0) and unpinned (both sharing every CPU).\n"
        );
        let mut targets = Table::new(&["target", "measured", ""]);
        for pinned in [true, false] {
            let setup = if pinned { "pinned" } else { "unpinned" };
            let (Some(bare), Some(axum), Some(intralb)) = (
                self.summary(Opponent::Hyper, pinned),
                self.summary(Opponent::Axum, pinned),
                self.summary(Opponent::Intralb, pinned),
            ) else {
                continue;
            };
            let _ = writeln!(out, "{setup}:\n");
            let mut table = Table::new(&[
                "server",
                "rps",
                "p50 (ms)",
                "p99 (ms)",
                "server CPU",
                "CPU per request (µs)",
                "non-200 + errors",
                "rps vs axum",
                "CPU per request vs axum",
                "p99 vs bare",
            ]);
            for opponent in OPPONENTS {
                let Some(s) = self.summary(opponent, pinned) else {
                    continue;
                };
                table.row(vec![
                    label(opponent.name()).to_owned(),
                    num(s.rps),
                    ms(Some(s.p50_ms)),
                    ms(Some(s.p99_ms)),
                    percent(Some(s.cpu)),
                    format!("{:.2}", s.cpu_us),
                    s.errors.to_string(),
                    ratio(s.rps / axum.rps),
                    ratio(s.cpu_us / axum.cpu_us),
                    ratio(s.p99_ms / bare.p99_ms),
                ]);
            }
            table.render(out);
            let rps = self.paired(Opponent::Intralb, Opponent::Axum, pinned, |s| s.rps);
            let cpu = self.paired(Opponent::Intralb, Opponent::Axum, pinned, |s| s.cpu_us);
            let (rps_ratio, cpu_ratio) = (median(rps.clone()), median(cpu.clone()));
            let p99_ratio = intralb.p99_ms / bare.p99_ms;
            targets.row(vec![
                format!("{setup}: intralb rps ≥ {RPS_TARGET}× plain axum"),
                spread(rps_ratio, &rps),
                verdict(rps_ratio >= RPS_TARGET).to_owned(),
            ]);
            targets.row(vec![
                format!("{setup}: intralb CPU per request ≤ {CPU_TARGET}× plain axum"),
                spread(cpu_ratio, &cpu),
                verdict(cpu_ratio <= CPU_TARGET).to_owned(),
            ]);
            let lease = self.paired(Opponent::Lease, Opponent::Axum, pinned, |s| s.cpu_us);
            if !lease.is_empty() {
                targets.row(vec![
                    format!("{setup}: (reference) the lease alone, CPU per request vs plain axum"),
                    spread(median(lease.clone()), &lease),
                    String::new(),
                ]);
            }
            targets.row(vec![
                format!("{setup}: intralb p99 ≤ {P99_TARGET}× bare hyper"),
                ratio(p99_ratio),
                verdict(p99_ratio <= P99_TARGET).to_owned(),
            ]);
        }
        targets.render(out);
        out.push_str(
            "The targets' ratios are paired (intralb against plain axum in the same round), as \
             medians over the rounds, with their range in brackets: how far the rounds spread is \
             this machine's noise. The issue's targets are the unpinned ones; pinned, the load \
             generator's one core often sets the pace, and CPU per request is the better measure \
             of what intralb costs. `lease` is plain `axum::serve` with only what a per-worker \
             lease must do per request (an idle stack under a lock, the worker's id and a hold \
             in the extensions, given back at the response head): the contract's share of \
             intralb's cost.\n\n",
        );
    }
}

/// `median` and the range of `all`, as ratios.
fn spread(median: f64, all: &[f64]) -> String {
    if all.len() < 2 {
        return ratio(median);
    }
    let (min, max) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
            (lo.min(*r), hi.max(*r))
        });
    format!("{} ({}–{})", ratio(median), ratio(min), ratio(max))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn run(opponent: Opponent, repeat: usize, responses: u64, cpu: f64) -> Run {
        Run {
            opponent: opponent.to_string(),
            repeat,
            pinned: false,
            result: LoadResult {
                seconds: 1.0,
                status: BTreeMap::from([("200".to_owned(), responses)]),
                errors: BTreeMap::new(),
                latency: None,
                ok_latency: None,
                failed_latency: None,
                server_cpu: Some(cpu),
            },
        }
    }

    #[test]
    fn ratios_pair_each_round_and_skip_rounds_one_side_missed() {
        let fast = Fast {
            runs: vec![
                run(Opponent::Axum, 0, 100, 1.0),
                run(Opponent::Intralb, 0, 50, 1.0),
                run(Opponent::Axum, 1, 200, 1.0),
                run(Opponent::Intralb, 1, 200, 1.1),
                // Round 2: intralb only.
                run(Opponent::Intralb, 2, 10, 1.0),
            ],
        };
        let rps = fast.paired(Opponent::Intralb, Opponent::Axum, false, |s| s.rps);
        assert_eq!(rps, vec![0.5, 1.0]);
        let cpu = fast.paired(Opponent::Intralb, Opponent::Axum, false, |s| s.cpu_us);
        assert_eq!(cpu.len(), 2);
        assert!(
            (cpu[0] - 2.0).abs() < 1e-9 && (cpu[1] - 1.1).abs() < 1e-9,
            "{cpu:?}"
        );
        assert!(fast
            .paired(Opponent::Intralb, Opponent::Axum, true, |s| s.rps)
            .is_empty());
    }

    #[test]
    fn the_spread_shows_the_range_of_the_rounds() {
        assert_eq!(spread(1.08, &[0.93, 1.08, 1.17]), "1.08× (0.93×–1.17×)");
        assert_eq!(spread(1.0, &[1.0]), "1.00×");
    }
}
