//! Server processes: start `bench server …` (pinned to a core), wait until it accepts, read its
//! RSS and CPU time, ask it small things over HTTP/1.1, stop it with SIGTERM.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use intralb_test_support::{free_port, wait_exit_within};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{machine, Context, Result};
use crate::cli::ServerOptions;

/// How long a server may take to start accepting (10,000 workers included).
const STARTUP_LIMIT: Duration = Duration::from_secs(60);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(15);

/// A command for `program`, pinned to `core` with `taskset` when one is given. `taskset`
/// execs the program, so the child's pid is the program's.
pub(crate) fn pinned(core: Option<usize>, program: &Path) -> Command {
    match core {
        Some(core) => {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(core.to_string()).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// A running `bench server`.
pub(crate) struct ServerProcess {
    child: Child,
    port: u16,
    label: String,
}

impl ServerProcess {
    /// Starts a server on a free port and waits until it accepts connections. Its output goes
    /// to `LOG_DIR/<label>.log`.
    pub(crate) fn start(
        exe: &Path,
        mut options: ServerOptions,
        core: Option<usize>,
        log_dir: &Path,
        label: &str,
    ) -> Result<ServerProcess> {
        options.port = free_port().context("finding a free port")?;
        let log_path = log_dir.join(format!("{label}.log"));
        let log =
            File::create(&log_path).context(format_args!("creating {}", log_path.display()))?;
        let mut command = pinned(core, exe);
        command
            .args(options.to_args())
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating the log file")?)
            .stderr(log);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("INTRALB_") {
                command.env_remove(key);
            }
        }
        let child = command.spawn().context(format_args!("starting {label}"))?;
        let mut server = ServerProcess {
            child,
            port: options.port,
            label: label.to_owned(),
        };
        server.wait_until_accepting()?;
        Ok(server)
    }

    fn wait_until_accepting(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("waiting for the server")? {
                return Err(format!(
                    "{} exited ({status}) before accepting connections; see its log",
                    self.label
                ));
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return Ok(());
            }
            if started.elapsed() > STARTUP_LIMIT {
                return Err(format!("{} did not accept connections in time", self.label));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn rss_kib(&self) -> Result<u64> {
        machine::rss_kib(self.child.id())
    }

    pub(crate) fn cpu_seconds(&self) -> Result<f64> {
        machine::cpu_seconds(self.child.id())
    }

    /// `GET path`; the status and the body.
    pub(crate) fn get(&self, path: &str) -> Result<(u16, String)> {
        http_get(self.port, path)
    }

    /// Sends SIGTERM.
    pub(crate) fn terminate(&self) -> Result<()> {
        let pid = i32::try_from(self.child.id()).context("pid")?;
        kill(Pid::from_raw(pid), Signal::SIGTERM).context("sending SIGTERM")
    }

    /// Waits up to `limit` for the process to exit (checking every millisecond), then kills it.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus> {
        match wait_exit_within(&mut self.child, limit).context("waiting for the server")? {
            Some(status) => Ok(status),
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                Err(format!(
                    "{} did not exit in time and was killed",
                    self.label
                ))
            }
        }
    }

    /// SIGTERM, and waits for the exit.
    pub(crate) fn stop(mut self) -> Result<ExitStatus> {
        self.terminate()?;
        self.wait_exit(STOP_LIMIT)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.terminate();
            let _ = self.wait_exit(STOP_LIMIT);
        }
    }
}

/// A one-shot `GET` with `Connection: close`; the status and the body.
pub(crate) fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).context("connecting")?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .context("setting a read timeout")?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .context("sending a request")?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .context("reading a response")?;
    parse_response(&String::from_utf8_lossy(&response))
}

pub(crate) fn parse_response(response: &str) -> Result<(u16, String)> {
    let status = response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP/1.1 response: {:?}", response.get(..40)))?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_gives_its_status_and_body() {
        let response = "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\r\nbusy";
        assert_eq!(parse_response(response), Ok((503, "busy".to_owned())));
    }

    #[test]
    fn an_empty_response_is_an_error() {
        assert!(parse_response("").is_err());
    }
}
