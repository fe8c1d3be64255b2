//! Scenario 5, drain: N requests of known length (`GET /sleep/{ms}`, from a quarter of the
//! longest to the longest, one connection each) are running when the server gets SIGTERM. The
//! time from SIGTERM to the process's exit is compared with the time the longest of them still
//! had to run.
//!
//! Target: exit ≤ longest in-flight remainder + 50 ms, and every request answered `200`.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::process::parse_response;
use super::report::{label, ms, verdict, Table};
use super::{Bench, Context, Result};
use crate::cli::{Opponent, ServerOptions};

const OPPONENTS: [Opponent; 3] = [Opponent::Hyper, Opponent::Tower, Opponent::Intralb];
/// How long after the last request was sent SIGTERM goes out (so every request is running).
const SETTLE: Duration = Duration::from_millis(50);
const OVERSHOOT_TARGET_MS: f64 = 50.0;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Drain {
    pub(crate) runs: Vec<Run>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Run {
    pub(crate) opponent: String,
    pub(crate) requests: usize,
    pub(crate) longest_ms: u64,
    /// From SIGTERM to the end of the request that ends last, by the requests' lengths.
    pub(crate) remaining_ms: f64,
    /// From SIGTERM to the process's exit.
    pub(crate) exit_ms: f64,
    pub(crate) ok: usize,
    pub(crate) failed: usize,
    pub(crate) exit_status: String,
}

impl Run {
    fn overshoot_ms(&self) -> f64 {
        self.exit_ms - self.remaining_ms
    }

    fn passed(&self) -> bool {
        self.overshoot_ms() <= OVERSHOOT_TARGET_MS && self.failed == 0
    }
}

/// The lengths: evenly from `longest / 4` to `longest`.
fn lengths(requests: usize, longest: u64) -> Vec<u64> {
    let shortest = longest / 4;
    (0..requests)
        .map(|i| shortest + (longest - shortest) * i as u64 / (requests.max(2) - 1) as u64)
        .collect()
}

pub(crate) fn run(bench: &Bench) -> Result<Drain> {
    let mut runs = Vec::new();
    for opponent in OPPONENTS {
        let run = measure(bench, opponent)?;
        eprintln!(
            "drain: {opponent:>8}: exit {} ms after SIGTERM, longest remaining {} ms, \
             {} ok, {} failed, {}",
            ms(Some(run.exit_ms)),
            ms(Some(run.remaining_ms)),
            run.ok,
            run.failed,
            run.exit_status,
        );
        runs.push(run);
    }
    Ok(Drain { runs })
}

fn measure(bench: &Bench, opponent: Opponent) -> Result<Run> {
    let requests = bench.plan.drain_requests;
    let longest = bench.plan.drain_longest_ms;
    let mut server = bench.start(ServerOptions::new(opponent), false)?;
    let port = server.port();
    let (sent_tx, sent_rx) = mpsc::channel();
    let clients: Vec<_> = lengths(requests, longest)
        .into_iter()
        .map(|length| {
            let sent_tx = sent_tx.clone();
            thread::spawn(move || request(port, length, &sent_tx))
        })
        .collect();
    drop(sent_tx);
    // When each request will have run its length.
    let mut ends = Vec::new();
    for _ in 0..requests {
        let end = sent_rx
            .recv_timeout(Duration::from_secs(10))
            .context("waiting for the requests to be sent")?;
        ends.push(end);
    }
    thread::sleep(SETTLE);
    let signalled = Instant::now();
    server.terminate()?;
    let status = server.wait_exit(Duration::from_millis(longest) + Duration::from_secs(15));
    let exit_ms = signalled.elapsed().as_secs_f64() * 1000.0;
    let status = status?;
    let ok = clients
        .into_iter()
        .map(thread::JoinHandle::join)
        .filter(|answer| matches!(answer, Ok(Ok(200))))
        .count();
    let last_end = ends.into_iter().max().unwrap_or(signalled);
    Ok(Run {
        opponent: opponent.to_string(),
        requests,
        longest_ms: longest,
        remaining_ms: last_end.saturating_duration_since(signalled).as_secs_f64() * 1000.0,
        exit_ms,
        ok,
        failed: requests - ok,
        exit_status: status
            .code()
            .map_or_else(|| status.to_string(), |code| code.to_string()),
    })
}

/// Sends `GET /sleep/{length}`, reports when it will have run its length, then reads the status.
fn request(port: u16, length: u64, sent: &mpsc::Sender<Instant>) -> Result<u16> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).context("connecting")?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .context("setting a timeout")?;
    write!(
        stream,
        "GET /sleep/{length} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .context("sending")?;
    let _ = sent.send(Instant::now() + Duration::from_millis(length));
    let mut response = Vec::new();
    stream.read_to_end(&mut response).context("reading")?;
    parse_response(&String::from_utf8_lossy(&response)).map(|(status, _)| status)
}

impl Drain {
    pub(crate) fn report(&self, out: &mut String) {
        let Some(first) = self.runs.first() else {
            return;
        };
        let _ = writeln!(
            out,
            "## 5. Drain\n\n{} requests of {}–{} ms, one connection each, all running when the \
             server gets SIGTERM.\n",
            first.requests,
            first.longest_ms / 4,
            first.longest_ms
        );
        let mut table = Table::new(&[
            "server",
            "SIGTERM → exit (ms)",
            "longest remaining (ms)",
            "overshoot (ms)",
            "answered 200",
            "failed",
            "exit code",
            &format!("≤ +{OVERSHOOT_TARGET_MS} ms, 0 failed"),
        ]);
        for run in &self.runs {
            table.row(vec![
                label(&run.opponent).to_owned(),
                ms(Some(run.exit_ms)),
                ms(Some(run.remaining_ms)),
                ms(Some(run.overshoot_ms())),
                run.ok.to_string(),
                run.failed.to_string(),
                run.exit_status.clone(),
                verdict(run.passed()).to_owned(),
            ]);
        }
        table.render(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_spread_from_a_quarter_to_the_longest() {
        assert_eq!(lengths(4, 400), [100, 200, 300, 400]);
        assert_eq!(lengths(1, 400), [100]);
    }
}
