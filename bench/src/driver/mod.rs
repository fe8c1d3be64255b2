//! The driver: runs the scenarios, one fresh server process per measurement, and writes
//! `results.json`, `report.md` and `overload.svg` after every scenario (so an interrupted run
//! keeps what it measured).
//!
//! Each scenario is a module with a `run` that measures and a `report` that renders its table:
//! [`fast`], [`overload`], [`admission`], [`adaptive`], [`notes`], [`scale`], [`drain`].

mod adaptive;
mod admission;
mod chart;
mod drain;
mod fast;
mod machine;
mod notes;
mod oha;
mod overload;
mod process;
mod report;
mod scale;

use std::cell::Cell;
use std::fmt::Display;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cli::{RunOptions, Scenario, ServerOptions};
use machine::Machine;
use oha::{Load, LoadResult, Oha};
use process::ServerProcess;

pub(crate) type Result<T, E = String> = std::result::Result<T, E>;

/// `anyhow`-style context for the driver's string errors.
pub(crate) trait Context<T> {
    fn context(self, what: impl Display) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|error| format!("{what}: {error}"))
    }
}

/// How long each part runs: `--quick` proves the harness works, the full plan measures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Plan {
    pub(crate) quick: bool,
    /// Closed-loop warm-up before each throughput measurement (not recorded).
    pub(crate) warmup_s: f64,
    pub(crate) fast_s: f64,
    /// The fast path runs every opponent this many times, interleaved: its rounds spread by
    /// ±10 % on a shared 2-core machine, so it takes more of them than the rest.
    #[serde(default = "three")]
    pub(crate) fast_rounds: usize,
    /// Scale and adaptive run every opponent this many times, interleaved; tables show medians.
    pub(crate) repeats: usize,
    pub(crate) overload_s: f64,
    /// The check that `Router::layer(ConcurrencyLimitLayer)` bounds nothing.
    pub(crate) probe_s: f64,
    pub(crate) notes_s: f64,
    pub(crate) scale_s: f64,
    pub(crate) drain_requests: usize,
    pub(crate) drain_longest_ms: u64,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                warmup_s: 0.5,
                fast_s: 2.0,
                fast_rounds: 1,
                repeats: 1,
                overload_s: 3.0,
                probe_s: 2.0,
                notes_s: 3.0,
                scale_s: 2.0,
                drain_requests: 8,
                drain_longest_ms: 400,
            }
        } else {
            Plan {
                quick,
                warmup_s: 2.0,
                fast_s: 10.0,
                fast_rounds: 5,
                repeats: 3,
                overload_s: 15.0,
                probe_s: 5.0,
                notes_s: 15.0,
                scale_s: 8.0,
                drain_requests: 32,
                drain_longest_ms: 1000,
            }
        }
    }
}

/// Results from before `fast_rounds` ran the fast path `repeats` (3) times.
fn three() -> usize {
    3
}

pub(crate) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Everything a run measured: `results.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Results {
    pub(crate) machine: Machine,
    pub(crate) plan: Plan,
    pub(crate) fast: Option<fast::Fast>,
    pub(crate) overload: Option<overload::Overload>,
    #[serde(default)]
    pub(crate) admission: Option<admission::Admission>,
    #[serde(default)]
    pub(crate) adaptive: Option<adaptive::Adaptive>,
    pub(crate) notes: Option<notes::Notes>,
    pub(crate) scale: Option<scale::Scale>,
    pub(crate) drain: Option<drain::Drain>,
    /// Scenarios that could not be measured, and why.
    pub(crate) failures: Vec<String>,
}

/// What the scenarios share: where the servers and the load generator come from, and where
/// they run.
pub(crate) struct Bench {
    exe: PathBuf,
    pub(crate) oha: Oha,
    pub(crate) plan: Plan,
    pin: bool,
    logs: PathBuf,
    /// Scratch space (the notes databases).
    pub(crate) scratch: PathBuf,
    started: Cell<usize>,
}

impl Bench {
    /// The core servers run on when pinned (the load generator gets core 0).
    pub(crate) fn core(&self, pinned: bool, core: usize) -> Option<usize> {
        (pinned && self.pin).then_some(core)
    }

    /// Starts a server; `pinned` puts it on core 1 (when pinning is on).
    pub(crate) fn start(&self, options: ServerOptions, pinned: bool) -> Result<ServerProcess> {
        let n = self.started.get() + 1;
        self.started.set(n);
        let label = format!("{n:03}-{}", options.opponent);
        ServerProcess::start(&self.exe, options, self.core(pinned, 1), &self.logs, &label)
    }

    /// Runs `load` against `server` (from core 0 when `pinned`) and records the server's CPU use.
    pub(crate) fn measure(
        &self,
        server: &ServerProcess,
        load: &Load,
        pinned: bool,
    ) -> Result<LoadResult> {
        let cpu_before = server.cpu_seconds()?;
        let started = Instant::now();
        let mut result = self.oha.run(load, self.core(pinned, 0))?;
        let cpu = server.cpu_seconds()? - cpu_before;
        result.server_cpu = Some(cpu / started.elapsed().as_secs_f64());
        Ok(result)
    }

    /// Runs `bench load` (this executable's open-loop generator) against `server` from core 0
    /// (when pinning is on), with `args` after `--port`, and parses its report.
    pub(crate) fn open_loop(
        &self,
        server: &ServerProcess,
        args: impl IntoIterator<Item = String>,
    ) -> Result<crate::load::LoadReport> {
        let output = process::pinned(self.core(true, 0), &self.exe)
            .arg("load")
            .args(["--port", &server.port().to_string()])
            .args(args)
            .output()
            .context("running `bench load`")?;
        if !output.status.success() {
            return Err(format!(
                "`bench load` failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        serde_json::from_slice(&output.stdout).context("parsing `bench load`'s report")
    }

    /// Closed-loop load on `path` for the warm-up time; the result is thrown away.
    pub(crate) fn warm_up(&self, server: &ServerProcess, path: &str, pinned: bool) -> Result<()> {
        let load = Load::closed(server.url(path), 64, secs(self.plan.warmup_s));
        self.oha.run(&load, self.core(pinned, 0)).map(drop)
    }
}

pub(crate) fn main(options: RunOptions) -> ExitCode {
    match run(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `bench report`: renders `report.md` and the chart again from `results.json`.
pub(crate) fn rerender(out: &Path) -> ExitCode {
    let rendered = fs::read_to_string(out.join("results.json"))
        .context("reading results.json")
        .and_then(|json| serde_json::from_str::<Results>(&json).context("parsing results.json"))
        .and_then(|results| write_all(out, &results));
    match rendered {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench report: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the scenarios; `Ok(false)` if one of them failed.
fn run(options: &RunOptions) -> Result<bool> {
    let oha = Oha::locate(&options.oha)?;
    let exe = std::env::current_exe().context("finding this executable")?;
    let logs = options.out.join("logs");
    let scratch = options.out.join("scratch");
    for dir in [&logs, &scratch] {
        fs::create_dir_all(dir).context(format_args!("creating {}", dir.display()))?;
    }
    // The servers' logs are for debugging a run, not for committing with its results.
    fs::write(logs.join(".gitignore"), "*\n").context("writing logs/.gitignore")?;
    let pin = options.pin && can_pin();
    let pinning = if pin {
        "server pinned to CPU 1, load generator to CPU 0 (taskset); notes and drain unpinned"
    } else {
        "none: server and load generator share every CPU"
    };
    let plan = Plan::new(options.quick);
    let mut results = Results {
        machine: Machine::detect(&oha.version, pinning.to_owned()),
        plan: plan.clone(),
        fast: None,
        overload: None,
        admission: None,
        adaptive: None,
        notes: None,
        scale: None,
        drain: None,
        failures: Vec::new(),
    };
    let bench = Bench {
        exe,
        oha,
        plan,
        pin,
        logs,
        scratch,
        started: Cell::new(0),
    };
    eprintln!(
        "bench: {} on {} ({} CPUs); pinning: {pinning}",
        if options.quick {
            "quick run"
        } else {
            "full run"
        },
        results.machine.cpu_model,
        results.machine.cpus,
    );
    for &scenario in &options.scenarios {
        eprintln!("== {}", scenario.name());
        let outcome = match scenario {
            Scenario::Fast => fast::run(&bench).map(|r| results.fast = Some(r)),
            Scenario::Overload => overload::run(&bench).map(|r| results.overload = Some(r)),
            Scenario::Admission => admission::run(&bench).map(|r| results.admission = Some(r)),
            Scenario::Adaptive => adaptive::run(&bench).map(|r| results.adaptive = Some(r)),
            Scenario::Notes => notes::run(&bench).map(|r| results.notes = Some(r)),
            Scenario::Scale => scale::run(&bench).map(|r| results.scale = Some(r)),
            Scenario::Drain => drain::run(&bench).map(|r| results.drain = Some(r)),
        };
        if let Err(error) = outcome {
            eprintln!("{} failed: {error}", scenario.name());
            results
                .failures
                .push(format!("{}: {error}", scenario.name()));
        }
        results.machine.load_average_after = machine::load_average();
        write_all(&options.out, &results)?;
    }
    let _ = fs::remove_dir_all(&bench.scratch);
    eprintln!(
        "bench: wrote {0}/results.json and {0}/report.md{1}",
        options.out.display(),
        if results.overload.is_some() {
            " and the chart, overload.svg"
        } else {
            ""
        },
    );
    Ok(results.failures.is_empty())
}

/// Pinning needs two CPUs and `taskset`.
fn can_pin() -> bool {
    machine::available_cpus() >= 2
        && Command::new("taskset")
            .args(["-c", "0", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

fn write_all(out: &Path, results: &Results) -> Result<()> {
    let json = serde_json::to_string_pretty(results).context("serialising the results")?;
    fs::write(out.join("results.json"), json).context("writing results.json")?;
    fs::write(out.join("report.md"), report::render(results)).context("writing report.md")?;
    if let Some(overload) = &results.overload {
        chart::draw(overload, &out.join("overload.svg"))?;
    }
    if let Some(admission) = &results.admission {
        chart::draw_admission(admission, &out.join("admission.svg"))?;
    }
    if let Some(adaptive) = &results.adaptive {
        chart::draw_adaptive(adaptive, &out.join("adaptive.svg"))?;
    }
    Ok(())
}
