//! Runs the examples as a user would: a real process, configured by environment variables,
//! listening on a port it picks, stopped with a signal.
#![allow(dead_code, unreachable_pub)]

#[path = "../../intralb/tests/common/client.rs"]
mod client;
pub use client::*;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The example's binary, built (or found up to date) by cargo in this test's profile.
pub fn example_binary(name: &str) -> PathBuf {
    // target/<profile>/deps/<this test> → target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "--example", name]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building example {name} failed");
    profile_dir.join("examples").join(name)
}

/// A running example process.
pub struct Example {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    /// Copy the process's stdout and stderr into `log`; they end when the process does.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Example {
    /// Starts `name` on 127.0.0.1:0 with `env`, and waits until it logs its address.
    pub fn start(name: &str, env: &[(&str, &str)]) -> Example {
        let mut command = Command::new(example_binary(name));
        command
            .env("INTRALB_ADDR", "127.0.0.1:0")
            .envs(env.iter().copied());
        Example::run(name, command)
    }

    /// Runs `command` (which execs an example) and waits until it logs its address.
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
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (log, lines_tx) = (log.clone(), lines_tx.clone());
            readers.push(std::thread::spawn(move || {
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
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(wait).unwrap_or_else(|_| {
                // Timed out, or the process closed its output (it exited).
                panic!(
                    "{name} did not log its address; output:\n{}",
                    example.output()
                )
            });
            if let Some(rest) = line.split("listening on http://").nth(1) {
                example.addr = rest.split_whitespace().next().unwrap().parse().unwrap();
                return example;
            }
        }
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until the process has printed `text`.
    pub fn wait_for_output(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.output().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        wait_exit(&mut self.child)
    }

    /// SIGTERM, then waits for the exit.
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

pub fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the process did not exit within 30s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads the notes database file directly: every acknowledged id must be there, once.
pub fn assert_notes_stored(db: &str, acknowledged: &[i64]) {
    let conn = rusqlite::Connection::open(db).unwrap();
    for id in acknowledged {
        let found: i64 = conn
            .query_row("SELECT count(*) FROM notes WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(found, 1, "acknowledged note {id} is not in the database");
    }
}

/// A fresh directory under the system's temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("intralb-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
