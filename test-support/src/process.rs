//! Programs run as a user runs them: a real process, configured by environment variables,
//! listening on a port it picks, stopped with a signal. And the two things every runner of
//! processes needs: a free port, and a bounded wait for an exit.

use std::io::{self, BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long [`Example::run`] waits for the address in the log.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);
/// How long [`Example::wait_for_output`] waits for its text.
const OUTPUT_LIMIT: Duration = Duration::from_secs(30);
/// How long [`wait_exit`] waits.
const EXIT_LIMIT: Duration = Duration::from_secs(30);
/// What intralb logs once it listens, followed by the address.
const LISTENING: &str = "listening on http://";

/// A port of 127.0.0.1 that nothing listens on right now. Someone else may take it before the
/// caller's server binds it; where that matters, try again with another.
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Waits up to `limit` for `child` to exit, checking every millisecond (so the moment of the
/// exit is known to a millisecond). `Ok(None)` if it is still running then; the caller decides
/// whether to kill it.
pub fn wait_exit_within(child: &mut Child, limit: Duration) -> io::Result<Option<ExitStatus>> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if started.elapsed() > limit {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Waits for `child` to exit; panics if it has not within 30 s.
pub fn wait_exit(child: &mut Child) -> ExitStatus {
    wait_exit_within(child, EXIT_LIMIT)
        .expect("waiting for the process")
        .unwrap_or_else(|| panic!("the process did not exit within {}s", EXIT_LIMIT.as_secs()))
}

/// The example `name` of the package under test, built (or found up to date) by cargo in this
/// test's profile; panics if it does not build.
///
/// Cargo runs a package's tests in the package's directory, with `CARGO` and
/// `CARGO_MANIFEST_DIR` set: the example is built there, into the test's own target directory.
pub fn example_binary(name: &str) -> PathBuf {
    // target/<profile>/deps/<this test> → target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "--example", name]);
    if let Some(package) = std::env::var_os("CARGO_MANIFEST_DIR") {
        build.current_dir(package);
    }
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building example {name} failed");
    profile_dir.join("examples").join(name)
}

/// A running example (or any program that logs intralb's `listening on http://ADDR` line), its
/// output captured. Dropping it kills and reaps the process.
pub struct Example {
    child: Child,
    /// Where it listens, read from its log.
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    /// Copy the process's stdout and stderr into `log`; they end when the process does.
    readers: Vec<thread::JoinHandle<()>>,
}

impl Example {
    /// Starts the example `name` ([`example_binary`]) on 127.0.0.1:0 with `env`, and waits until
    /// it logs its address.
    pub fn start(name: &str, env: &[(&str, &str)]) -> Example {
        let mut command = Command::new(example_binary(name));
        command
            .env("INTRALB_ADDR", "127.0.0.1:0")
            .envs(env.iter().copied());
        Example::run(name, command)
    }

    /// Runs `command` (which execs the program `name`, named in failures) and waits until it
    /// logs its address; panics with its output if it exits or has not within 60 s.
    pub fn run(name: &str, mut command: Command) -> Example {
        let mut child = command
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("example starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (lines_tx, lines) = mpsc::channel();
        let mut readers = Vec::new();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (log, lines_tx) = (log.clone(), lines_tx.clone());
            readers.push(thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push_str(&format!("{line}\n"));
                    let _ = lines_tx.send(line);
                }
            }));
        }
        // Only the readers hold senders now: the channel closes when the process's output does.
        drop(lines_tx);
        // From here on, `Drop` kills and reaps the process whatever happens.
        let mut example = Example {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            log,
            readers,
        };
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(wait).unwrap_or_else(|_| {
                // Timed out, or the process closed its output (it exited).
                panic!(
                    "{name} did not log its address; output:\n{}",
                    example.output()
                )
            });
            if let Some(rest) = line.split(LISTENING).nth(1) {
                example.addr = rest.split_whitespace().next().unwrap().parse().unwrap();
                return example;
            }
        }
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (30 s at most) until the process has printed `text`; panics with the output if not.
    pub fn wait_for_output(&self, text: &str) {
        let deadline = Instant::now() + OUTPUT_LIMIT;
        while !self.output().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in:\n{}",
                self.output()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends the process `signal` (a name `kill` knows: `TERM`, `INT`, `HUP`…).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit; panics if it has not within 30 s.
    pub fn wait(&mut self) -> ExitStatus {
        wait_exit(&mut self.child)
    }

    /// SIGTERM, then waits for the exit; the exit status and everything the process printed.
    pub fn stop(mut self) -> (ExitStatus, String) {
        self.signal("TERM");
        let status = self.wait();
        // The process has exited: its pipes close, and the readers finish with the last lines.
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        (status, self.output())
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_exit_within_returns_none_while_the_process_runs() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let waited = wait_exit_within(&mut child, Duration::from_millis(20)).unwrap();
        assert!(waited.is_none(), "still running");
        child.kill().unwrap();
        assert!(!wait_exit(&mut child).success());
    }
}
