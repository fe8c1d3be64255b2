//! The machine a run happened on, and what `/proc` says about a server process.

use std::fs;
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::{Context, Result};

/// Recorded with every result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Machine {
    pub(crate) cpu_model: String,
    /// Logical CPUs the kernel has.
    pub(crate) cpus: usize,
    /// CPUs this process may run on.
    pub(crate) available_cpus: usize,
    pub(crate) memory_gib: f64,
    pub(crate) kernel: String,
    pub(crate) load_average_before: String,
    pub(crate) load_average_after: String,
    pub(crate) rustc: String,
    pub(crate) oha: String,
    /// How the server and the load generator shared the cores.
    pub(crate) pinning: String,
}

impl Machine {
    pub(crate) fn detect(oha: &str, pinning: String) -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or("unknown".to_owned(), |(_, model)| model.trim().to_owned());
        let cpus = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let memory_kib = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| status_field(&m, "MemTotal:"))
            .unwrap_or(0);
        Machine {
            cpu_model,
            cpus,
            available_cpus: available_cpus(),
            memory_gib: memory_kib as f64 / (1024.0 * 1024.0),
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or("unknown".to_owned(), |k| k.trim().to_owned()),
            load_average_before: load_average(),
            load_average_after: String::new(),
            rustc: command_line("rustc", &["--version"]),
            oha: oha.to_owned(),
            pinning,
        }
    }
}

pub(crate) fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The 1, 5 and 15 minute load averages: a busy machine shows here.
pub(crate) fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map_or("unknown".to_owned(), |out| {
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        })
}

/// A `Key:   1234 kB` line of `/proc/*/status` or `/proc/meminfo`, in KiB.
fn status_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The resident set of a process, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).context("reading VmRSS")?;
    status_field(&status, "VmRSS:").ok_or_else(|| format!("no VmRSS for process {pid}"))
}

/// CPU time (user + system, all threads) a process has used, in seconds.
///
/// `/proc/PID/stat` counts in clock ticks of `USER_HZ`, which Linux fixes at 100 for user space.
pub(crate) fn cpu_seconds(pid: u32) -> Result<f64> {
    const USER_HZ: f64 = 100.0;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).context("reading CPU time")?;
    // The command name may contain spaces: count fields after its closing parenthesis.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of proc(5); field 3 (state) is fields[0].
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok((user + system) as f64 / USER_HZ),
        _ => Err(format!("cannot read the CPU time of process {pid}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_rss_and_cpu_time() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\tbench\nVmRSS:\t   5124 kB\nThreads:\t3\n";
        assert_eq!(status_field(status, "VmRSS:"), Some(5124));
        assert_eq!(status_field(status, "VmSwap:"), None);
    }
}
