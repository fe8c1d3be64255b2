//! Scenario 4, scale: the fast path against intralb with `max_concurrent = min_workers = N`
//! for N = 10 … 10,000 (all workers started, no initializers), and the server's idle RSS.
//!
//! Memory per idle worker = (RSS at N − RSS at N = 1) / (N − 1), read from `/proc/PID/status`
//! once the server accepts and before any load. Targets: rps at 10,000 ≥ 0.9× rps at 10, and
//! ≤ 2 KiB per idle worker (at 10,000, where the delta is far above page-size noise).

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::fast::summarize;
use super::oha::{Load, LoadResult};
use super::report::{ms, num, percent, ratio, verdict, Table};
use super::{secs, Bench, Result};
use crate::cli::{Opponent, ServerOptions};

const WORKERS: [usize; 4] = [10, 100, 1_000, 10_000];
const CONNECTIONS: usize = 64;
const RPS_TARGET: f64 = 0.90;
const BYTES_PER_WORKER_TARGET: f64 = 2048.0;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Scale {
    /// Idle RSS with one worker.
    pub(crate) baseline_rss_kib: u64,
    pub(crate) runs: Vec<Run>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Run {
    pub(crate) workers: usize,
    pub(crate) repeat: usize,
    pub(crate) idle_rss_kib: u64,
    pub(crate) result: LoadResult,
}

fn options(workers: usize) -> ServerOptions {
    let mut options = ServerOptions::new(Opponent::Intralb);
    options.limit = workers;
    options.min_workers = Some(workers);
    options
}

pub(crate) fn run(bench: &Bench) -> Result<Scale> {
    let baseline = bench.start(options(1), true)?;
    let baseline_rss_kib = baseline.rss_kib()?;
    baseline.stop()?;
    let mut runs = Vec::new();
    for repeat in 0..bench.plan.repeats {
        for workers in WORKERS {
            let server = bench.start(options(workers), true)?;
            let idle_rss_kib = server.rss_kib()?;
            bench.warm_up(&server, "/", true)?;
            let load = Load::closed(server.url("/"), CONNECTIONS, secs(bench.plan.scale_s));
            let result = bench.measure(&server, &load, true)?;
            server.stop()?;
            eprintln!(
                "scale: {workers:>6} workers #{}: {} rps, p99 {} ms, idle RSS {} KiB",
                repeat + 1,
                num(result.rps()),
                ms(result.latency.map(|l| l.p99_ms)),
                num(idle_rss_kib as f64),
            );
            runs.push(Run {
                workers,
                repeat,
                idle_rss_kib,
                result,
            });
        }
    }
    Ok(Scale {
        baseline_rss_kib,
        runs,
    })
}

impl Scale {
    fn bytes_per_worker(&self, workers: usize) -> f64 {
        let rss = super::report::median(
            self.runs
                .iter()
                .filter(|r| r.workers == workers)
                .map(|r| r.idle_rss_kib as f64)
                .collect(),
        );
        (rss - self.baseline_rss_kib as f64) * 1024.0 / (workers - 1) as f64
    }

    pub(crate) fn report(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## 4. Scale\n\nintralb, `max_concurrent = min_workers = N`, fast path as in 1; \
             idle RSS read before any load; per worker = (RSS − {} KiB at N = 1) / (N − 1).\n",
            num(self.baseline_rss_kib as f64)
        );
        let summary = |workers: usize| {
            summarize(
                self.runs
                    .iter()
                    .filter(|r| r.workers == workers)
                    .map(|r| &r.result),
            )
        };
        let first = summary(WORKERS[0]);
        let mut table = Table::new(&[
            "max_concurrent",
            "rps",
            "p99 (ms)",
            "server CPU",
            "CPU per request (µs)",
            "rps vs 10",
            "idle RSS (KiB)",
            "bytes per idle worker",
        ]);
        for workers in WORKERS {
            let s = summary(workers);
            let rss = self.runs.iter().find(|r| r.workers == workers);
            table.row(vec![
                num(workers as f64),
                num(s.rps),
                ms(Some(s.p99_ms)),
                percent(Some(s.cpu)),
                format!("{:.2}", s.cpu_us),
                ratio(s.rps / first.rps),
                rss.map_or("–".to_owned(), |r| num(r.idle_rss_kib as f64)),
                num(self.bytes_per_worker(workers)),
            ]);
        }
        table.render(out);
        let last = *WORKERS.last().expect("not empty");
        let drop = summary(last).rps / first.rps;
        let bytes = self.bytes_per_worker(last);
        let mut targets = Table::new(&["target", "measured", ""]);
        targets.row(vec![
            format!(
                "rps at {} ≥ {RPS_TARGET}× rps at {}",
                num(last as f64),
                WORKERS[0]
            ),
            ratio(drop),
            verdict(drop >= RPS_TARGET).to_owned(),
        ]);
        targets.row(vec![
            format!(
                "idle worker ≤ {} bytes (at {})",
                num(BYTES_PER_WORKER_TARGET),
                num(last as f64)
            ),
            format!("{} bytes", num(bytes)),
            verdict(bytes <= BYTES_PER_WORKER_TARGET).to_owned(),
        ]);
        targets.render(out);
    }
}
