//! Scenario 3, a real database: the notes workload on SQLite (WAL, `busy_timeout`), 70 % reads
//! (`GET /notes/{random id}`) and 30 % writes (`POST /notes`), as two oha processes sharing the
//! 64 connections 45 / 19, closed loop, on a freshly seeded database per server.
//!
//! intralb with a connection per worker (8 workers) against axum with one `Mutex<Connection>`
//! and axum with an r2d2 pool of 8. Unpinned: SQLite work runs on the runtime's threads, so
//! with one core every opponent would run one query at a time and the comparison would be moot.

use std::fmt::Write;
use std::fs;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::oha::{self, Load, LoadResult};
use super::report::{label, ms, num, percent, ratio, Table};
use super::{secs, Bench, Context, Result};
use crate::cli::{Opponent, ServerOptions};

const OPPONENTS: [Opponent; 3] = [Opponent::Mutex, Opponent::Pool, Opponent::Intralb];
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
    fn rps(&self) -> f64 {
        self.reads.rps() + self.writes.rps()
    }

    fn failures(&self) -> u64 {
        let r = &self.reads;
        let w = &self.writes;
        (r.responses() - r.count(200))
            + (w.responses() - w.count(201))
            + r.client_errors()
            + w.client_errors()
    }
}

pub(crate) fn run(bench: &Bench) -> Result<Notes> {
    let mut runs = Vec::new();
    for opponent in OPPONENTS {
        let db = bench.scratch.join(format!("notes-{opponent}.db"));
        for suffix in ["", "-wal", "-shm"] {
            let _ = fs::remove_file(format!("{}{suffix}", db.display()));
        }
        let mut options = ServerOptions::new(opponent);
        options.limit = CONNECTIONS;
        options.queue = 256;
        options.min_workers = Some(CONNECTIONS);
        options.db = Some(db);
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
        let run = Run {
            opponent: opponent.to_string(),
            reads,
            writes,
            server_cpu,
        };
        eprintln!(
            "notes: {opponent:>8}: {} rps, read p99 {} ms, write p99 {} ms, failures {}",
            num(run.rps()),
            ms(run.reads.latency.map(|l| l.p99_ms)),
            ms(run.writes.latency.map(|l| l.p99_ms)),
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
             {CONNECTIONS} connections (intralb workers or pool size), unpinned.\n"
        );
        let intralb = self.runs.iter().find(|r| r.opponent == "intralb");
        let mut table = Table::new(&[
            "server",
            "rps",
            "reads/s",
            "writes/s",
            "read p50 / p99 (ms)",
            "write p50 / p99 (ms)",
            "failures",
            "server CPU",
            "intralb rps vs this",
        ]);
        for run in &self.runs {
            let p = |r: &LoadResult| {
                format!(
                    "{} / {}",
                    ms(r.latency.map(|l| l.p50_ms)),
                    ms(r.latency.map(|l| l.p99_ms))
                )
            };
            table.row(vec![
                label(&run.opponent).to_owned(),
                num(run.rps()),
                num(run.reads.rps()),
                num(run.writes.rps()),
                p(&run.reads),
                p(&run.writes),
                run.failures().to_string(),
                percent(Some(run.server_cpu)),
                intralb.map_or("–".to_owned(), |i| ratio(i.rps() / run.rps())),
            ]);
        }
        table.render(out);
    }
}
