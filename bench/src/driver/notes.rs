//! Scenario 3, a real database: the notes workload on SQLite (WAL, `busy_timeout`), 70 % reads
//! (`GET /notes/{random id}`) and 30 % writes (`POST /notes`), as two oha processes sharing the
//! 64 connections 45 / 19, closed loop, on a freshly seeded database per server.
//!
//! intralb with a connection per worker (8 workers) against axum with one `Mutex<Connection>`
//! and axum with an r2d2 pool of 8. Unpinned: SQLite work runs on the runtime's threads, so
//! with one core every opponent would run one query at a time and the comparison would be moot.
//!
//! 64 clients that never pause, on 8 connections, keep 56 requests waiting at all times: a
//! standing queue by construction. intralb at its defaults (CoDel, `queue_target` 5 ms)
//! answers `503` to those that wait past twice the target, so its rows count `503`s apart
//! from failures, and the latencies are of the `200`s and `201`s. A second intralb row runs
//! with `queue_target = "0s"` (a plain FIFO queue, no `503` short of a full queue), as the
//! others queue: the database access alone.

use std::fmt::Write;
use std::fs;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::oha::{self, Load, LoadResult};
use super::report::{label, ms, num, percent, ratio, Table};
use super::{secs, Bench, Context, Result};
use crate::cli::{Opponent, ServerOptions};

/// Each opponent, and intralb's `queue_target` (`None`: its default).
const OPPONENTS: [(Opponent, Option<Duration>); 4] = [
    (Opponent::Mutex, None),
    (Opponent::Pool, None),
    (Opponent::Intralb, None),
    (Opponent::Intralb, Some(Duration::ZERO)),
];
/// How the intralb row without CoDel is named.
const FIFO: &str = "intralb, `queue_target = \"0s\"` (a FIFO queue)";
const CONNECTIONS: usize = 8;
const READERS: usize = 45;
const WRITERS: usize = 19;
const NOTE: &str = r#"{"body":"a note written by the benchmark"}"#;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Notes {
    pub(crate) runs: Vec<Run>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Run {
    pub(crate) opponent: String,
    pub(crate) reads: LoadResult,
    pub(crate) writes: LoadResult,
    /// In cores.
    pub(crate) server_cpu: f64,
}

impl Run {
    /// Reads and writes answered `200` and `201` a second.
    fn goodput(&self) -> f64 {
        self.reads.rate_of(200) + self.writes.rate_of(201)
    }

    /// `503`s a second: intralb's CoDel queue sheds here (see the module docs).
    fn shed(&self) -> f64 {
        self.reads.rate_of(503) + self.writes.rate_of(503)
    }

    /// Any other answer, and client errors.
    fn failures(&self) -> u64 {
        let other = |r: &LoadResult, ok| r.responses() - r.count(ok) - r.count(503);
        other(&self.reads, 200)
            + other(&self.writes, 201)
            + self.reads.client_errors()
            + self.writes.client_errors()
    }
}

pub(crate) fn run(bench: &Bench) -> Result<Notes> {
    let mut runs = Vec::new();
    for (i, (opponent, queue_target)) in OPPONENTS.into_iter().enumerate() {
        let db = bench.scratch.join(format!("notes-{i}-{opponent}.db"));
        for suffix in ["", "-wal", "-shm"] {
            let _ = fs::remove_file(format!("{}{suffix}", db.display()));
        }
        let mut options = ServerOptions::new(opponent);
        options.limit = CONNECTIONS;
        options.queue = 256;
        options.min_workers = Some(CONNECTIONS);
        options.db = Some(db);
        options.queue_target = queue_target;
        let server = bench.start(options, false)?;
        let read_url = server.url("/notes/[1-9][0-9]{0,2}");
        let reads = Load {
            rand_regex: true,
            ..Load::closed(read_url, READERS, secs(bench.plan.notes_s))
        };
        let writes = Load {
            post_json: Some(NOTE.to_owned()),
            ..Load::closed(server.url("/notes"), WRITERS, secs(bench.plan.notes_s))
        };
        bench.oha.run(
            &Load {
                duration: secs(bench.plan.warmup_s),
                ..reads.clone()
            },
            None,
        )?;
        let cpu_before = server.cpu_seconds()?;
        let started = Instant::now();
        let readers = bench.oha.spawn(&reads, None)?;
        let writers = bench.oha.spawn(&writes, None)?;
        let reads = oha::finish(readers).context("the readers")?;
        let writes = oha::finish(writers).context("the writers")?;
        let server_cpu = (server.cpu_seconds()? - cpu_before) / started.elapsed().as_secs_f64();
        server.stop()?;
        let name = match queue_target {
            Some(_) => FIFO.to_owned(),
            None => opponent.to_string(),
        };
        let run = Run {
            opponent: name,
            reads,
            writes,
            server_cpu,
        };
        eprintln!(
            "notes: {:>8}: {} answered/s, read p99 {} ms, write p99 {} ms, 503/s {}, \
             failures {}",
            run.opponent,
            num(run.goodput()),
            ms(run.reads.ok_latency.map(|l| l.p99_ms)),
            ms(run.writes.ok_latency.map(|l| l.p99_ms)),
            num(run.shed()),
            run.failures(),
        );
        runs.push(run);
    }
    Ok(Notes { runs })
}

impl Notes {
    pub(crate) fn report(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## 3. Real database (SQLite notes)\n\n70 % `GET /notes/{{id}}` ({READERS} \
             connections), 30 % `POST /notes` ({WRITERS} connections), closed loop, WAL, \
             {CONNECTIONS} connections (intralb workers or pool size), unpinned. intralb at its \
             defaults, so with CoDel: 64 clients that never pause keep 56 requests waiting, a \
             standing queue, and those waiting past 2 × `queue_target` are answered `503` \
             (counted apart; the latencies are of the `200`s and `201`s). The last row is \
             intralb with `queue_target = \"0s\"`, a FIFO queue that waits as the others do.\n"
        );
        let intralb = self.runs.iter().find(|r| r.opponent == "intralb");
        let mut table = Table::new(&[
            "server",
            "answered/s (200, 201)",
            "reads/s",
            "writes/s",
            "read p50 / p99 (ms)",
            "write p50 / p99 (ms)",
            "503/s",
            "failures",
            "server CPU",
            "intralb answered vs this",
        ]);
        for run in &self.runs {
            let p = |r: &LoadResult| {
                format!(
                    "{} / {}",
                    ms(r.ok_latency.map(|l| l.p50_ms)),
                    ms(r.ok_latency.map(|l| l.p99_ms))
                )
            };
            table.row(vec![
                label(&run.opponent).to_owned(),
                num(run.goodput()),
                num(run.reads.rate_of(200)),
                num(run.writes.rate_of(201)),
                p(&run.reads),
                p(&run.writes),
                num(run.shed()),
                run.failures().to_string(),
                percent(Some(run.server_cpu)),
                intralb.map_or("–".to_owned(), |i| ratio(i.goodput() / run.goodput())),
            ]);
        }
        table.render(out);
    }
}
