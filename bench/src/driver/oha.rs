//! The load generator: `oha`, run as a child process, its JSON summary parsed.
//!
//! Closed loop (`-c N` connections, each sending its next request when the last one is
//! answered) for throughput; open loop (`-q RATE --latency-correction`: requests are due at a
//! fixed rate whatever the server does, and a request's latency counts from when it was due,
//! which corrects coordinated omission) for overload. `-w` waits for the requests still running
//! at the end, so none is counted as an error for being cut short.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::process::pinned;
use super::{Context, Result};

/// The error oha reports for a request cut short by the end of the run (not a server failure).
const DEADLINE_ERROR: &str = "aborted due to deadline";

/// One run of the load generator.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub(crate) url: String,
    pub(crate) connections: usize,
    pub(crate) duration: Duration,
    /// Open loop at this many requests per second.
    pub(crate) rate: Option<u32>,
    /// `POST` this JSON body instead of `GET`.
    pub(crate) post_json: Option<String>,
    /// The URL is a regular expression; each request gets a random match.
    pub(crate) rand_regex: bool,
}

impl Load {
    pub(crate) fn closed(url: String, connections: usize, duration: Duration) -> Load {
        Load {
            url,
            connections,
            duration,
            rate: None,
            post_json: None,
            rand_regex: false,
        }
    }
}

/// Latency percentiles of a set of responses, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Latency {
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p99_9_ms: f64,
}

/// What one run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LoadResult {
    /// Wall time of the run, the wait for the last requests included.
    pub(crate) seconds: f64,
    /// Responses, by status code.
    pub(crate) status: BTreeMap<String, u64>,
    /// Requests that got no response, by oha's error message.
    pub(crate) errors: BTreeMap<String, u64>,
    /// Every response.
    pub(crate) latency: Option<Latency>,
    /// The 2xx responses.
    pub(crate) ok_latency: Option<Latency>,
    /// The other responses.
    pub(crate) failed_latency: Option<Latency>,
    /// The server's CPU use during the run, in cores (1.0 = one core busy all the time).
    pub(crate) server_cpu: Option<f64>,
}

impl LoadResult {
    pub(crate) fn responses(&self) -> u64 {
        self.status.values().sum()
    }

    pub(crate) fn count(&self, status: u16) -> u64 {
        self.status.get(&status.to_string()).copied().unwrap_or(0)
    }

    /// Responses per second.
    pub(crate) fn rps(&self) -> f64 {
        per_second(self.responses(), self.seconds)
    }

    /// `status` responses per second.
    pub(crate) fn rate_of(&self, status: u16) -> f64 {
        per_second(self.count(status), self.seconds)
    }

    /// Requests that got no response, not counting those cut short by the end of the run.
    pub(crate) fn client_errors(&self) -> u64 {
        self.errors
            .iter()
            .filter(|(message, _)| message.as_str() != DEADLINE_ERROR)
            .map(|(_, n)| n)
            .sum()
    }
}

fn per_second(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

/// A located `oha`.
pub(crate) struct Oha {
    path: PathBuf,
    pub(crate) version: String,
}

impl Oha {
    /// Checks that `path` runs.
    pub(crate) fn locate(path: &Path) -> Result<Oha> {
        let output = Command::new(path).arg("--version").output();
        match output {
            Ok(output) if output.status.success() => Ok(Oha {
                path: path.to_owned(),
                version: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            }),
            _ => Err(format!(
                "the load generator `{}` does not run; install it with \
                 `bench/install-oha.sh` (cargo install oha --locked), or pass --oha PATH",
                path.display()
            )),
        }
    }

    /// Starts a run (on `core`, if given); [`finish`] collects it. Two runs may overlap.
    pub(crate) fn spawn(&self, load: &Load, core: Option<usize>) -> Result<Child> {
        let mut command = pinned(core, &self.path);
        command.args([
            "--no-tui",
            "--output-format",
            "json",
            "--stats-success-breakdown",
            "-w",
        ]);
        command
            .arg("-z")
            .arg(format!("{}ms", load.duration.as_millis()));
        command.arg("-c").arg(load.connections.to_string());
        if core.is_some() {
            // One core: one runtime thread (oha defaults to the physical cores of the machine).
            command.args(["--worker-threads", "1"]);
        }
        if let Some(rate) = load.rate {
            command
                .arg("-q")
                .arg(rate.to_string())
                .arg("--latency-correction");
        }
        if let Some(body) = &load.post_json {
            command.args(["-m", "POST", "-T", "application/json", "-d", body]);
        }
        if load.rand_regex {
            command.arg("--rand-regex-url");
        }
        command.arg(&load.url);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting oha")
    }

    /// One run, start to end.
    pub(crate) fn run(&self, load: &Load, core: Option<usize>) -> Result<LoadResult> {
        finish(self.spawn(load, core)?)
    }
}

/// Waits for a run started with [`Oha::spawn`] and parses its summary.
pub(crate) fn finish(child: Child) -> Result<LoadResult> {
    let output = child.wait_with_output().context("waiting for oha")?;
    if !output.status.success() {
        return Err(format!(
            "oha failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    parse(&String::from_utf8_lossy(&output.stdout))
}

/// Reads oha's `--output-format json --stats-success-breakdown` summary.
pub(crate) fn parse(json: &str) -> Result<LoadResult> {
    let summary: Value = serde_json::from_str(json).context("parsing oha's JSON")?;
    let counts = |key: &str| -> BTreeMap<String, u64> {
        summary[key]
            .as_object()
            .map(|map| {
                map.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(LoadResult {
        seconds: summary["summary"]["total"]
            .as_f64()
            .ok_or("oha's JSON has no summary.total")?,
        status: counts("statusCodeDistribution"),
        errors: counts("errorDistribution"),
        latency: latency(&summary["latencyPercentiles"]),
        ok_latency: latency(&summary["latencyPercentilesSuccessful"]),
        failed_latency: latency(&summary["latencyPercentilesNotSuccessful"]),
        server_cpu: None,
    })
}

/// Percentiles in seconds (`null` when there were no samples) as milliseconds.
fn latency(percentiles: &Value) -> Option<Latency> {
    let ms = |key: &str| percentiles[key].as_f64().map(|s| s * 1000.0);
    Some(Latency {
        p50_ms: ms("p50")?,
        p90_ms: ms("p90")?,
        p99_ms: ms("p99")?,
        p99_9_ms: ms("p99.9")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "summary": {"successRate": 1.0, "total": 2.0, "requestsPerSec": 2003.5},
      "latencyPercentiles": {"p10": 0.0001, "p50": 0.001, "p90": 0.02, "p99": 0.1, "p99.9": 0.2},
      "latencyPercentilesSuccessful": {"p50": 0.021, "p90": 0.05, "p99": 0.1, "p99.9": 0.2},
      "latencyPercentilesNotSuccessful": {"p50": 0.0002, "p90": 0.0003, "p99": 0.0004, "p99.9": 0.0009},
      "statusCodeDistribution": {"200": 1600, "503": 2400},
      "errorDistribution": {"aborted due to deadline": 3, "connection closed": 1}
    }"#;

    #[test]
    fn oha_summary_is_read_in_milliseconds_and_counts() {
        let result = parse(SAMPLE).unwrap();
        assert_eq!(result.responses(), 4000);
        assert_eq!(result.rate_of(200), 800.0);
        assert_eq!(result.rps(), 2000.0);
        assert_eq!(result.ok_latency.unwrap().p50_ms, 21.0);
        assert!((result.failed_latency.unwrap().p99_ms - 0.4).abs() < 1e-9);
    }

    #[test]
    fn requests_cut_short_by_the_end_of_the_run_are_not_client_errors() {
        assert_eq!(parse(SAMPLE).unwrap().client_errors(), 1);
    }

    #[test]
    fn percentiles_without_samples_are_none() {
        let json = r#"{"summary": {"total": 1.0},
            "latencyPercentilesNotSuccessful": {"p50": null, "p90": null, "p99": null, "p99.9": null}}"#;
        let result = parse(json).unwrap();
        assert_eq!(result.failed_latency, None);
        assert_eq!(result.latency, None);
    }
}
