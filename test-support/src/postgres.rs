//! A real PostgreSQL server for the tests: a throwaway cluster in a fresh temporary directory,
//! listening on a free port of 127.0.0.1, with trust authentication, run by an unprivileged user.
//!
//! The server binaries are Debian's (`/usr/lib/postgresql/<version>/bin`, the newest version
//! wins), or `initdb` and `pg_ctl` found together on `PATH`. PostgreSQL refuses to run as root,
//! so as root every server command runs as the `postgres` system user (created by Debian's
//! package) through `runuser`; otherwise the binaries run directly. `pg_ctl -w` waits until the
//! server accepts connections (or is gone), so nothing here sleeps.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::process::free_port;
use crate::tempdir::TempDir;

/// The user that runs the server when the tests run as root.
const SYSTEM_USER: &str = "postgres";

/// A running (or stopped) PostgreSQL cluster of its own. Dropping it stops the server
/// (immediate shutdown) and removes its directory.
///
/// ```ignore
/// let pg = match PgServer::try_new() {
///     Ok(pg) => pg,
///     Err(reason) => {
///         eprintln!("SKIPPED: {reason}");
///         return;
///     }
/// };
/// let (client, connection) = tokio_postgres::connect(&pg.connection_string(), NoTls).await?;
/// ```
pub struct PgServer {
    /// Where `initdb` and `pg_ctl` are.
    bin: PathBuf,
    /// The temporary directory: `data/` (the cluster), the Unix socket, and `log`. Removed after
    /// `drop` has stopped the server.
    dir: TempDir,
    port: u16,
    /// `Some(user)`: run the server commands as `user` through `runuser` (we are root).
    run_as: Option<String>,
    running: bool,
}

impl PgServer {
    /// Creates a cluster and starts it. `Err(reason)` where PostgreSQL is not available here (the
    /// caller prints `SKIPPED: {reason}` and returns); panics, with the server's output, where it
    /// is installed but fails to initialise or start.
    pub fn try_new() -> Result<PgServer, String> {
        let bin = find_bin()?;
        let run_as = if is_root() {
            if !command_works(Command::new("runuser").arg("--help")) {
                return Err(
                    "running as root, and there is no `runuser` to run PostgreSQL as \
                            another user (PostgreSQL refuses to run as root)"
                        .into(),
                );
            }
            Some(SYSTEM_USER.to_owned())
        } else {
            None
        };
        let owner = match &run_as {
            Some(user) => Some(user_ids(user).ok_or_else(|| {
                format!(
                    "running as root, and there is no `{user}` user to run PostgreSQL as \
                     (PostgreSQL refuses to run as root; Debian's `postgresql` package creates it)"
                )
            })?),
            None => None,
        };

        // For another user, under `/tmp`, which every user may enter.
        let base = match run_as {
            Some(_) => PathBuf::from("/tmp"),
            None => std::env::temp_dir(),
        };
        let dir = TempDir::new_in(&base, "pg");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {} to {SYSTEM_USER}: {e}", dir.path().display()));
        }
        let mut pg = PgServer {
            bin,
            dir,
            port: 0,
            run_as,
            running: false,
        };

        let data = pg.data_dir();
        let initdb = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"])
            // The cluster is thrown away: no need to wait for its files to reach the disk.
            .arg("--no-sync")
            .output();
        pg.check("initdb", initdb);

        // A free port may be taken by someone else before the server binds it: try a few.
        for attempt in 1.. {
            pg.port = free_port().expect("a free port");
            match pg.try_start() {
                Ok(()) => break,
                Err(e) if attempt < 5 && pg.log().contains("could not bind") => {
                    eprintln!("port {} was taken, trying another: {e}", pg.port);
                }
                Err(e) => panic!("{e}"),
            }
        }
        Ok(pg)
    }

    /// `host=127.0.0.1 port=… user=postgres dbname=postgres`, for `tokio_postgres::connect`.
    pub fn connection_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// The port it listens on (the same across [`stop`](Self::stop) and
    /// [`start`](Self::start)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether it runs: started, and not stopped since.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Stops the server with a fast shutdown and waits until it is gone: every client session is
    /// terminated (clients get `FATAL: terminating connection due to administrator command`,
    /// then the connection closes), and new connections are refused.
    pub fn stop(&mut self) {
        assert!(self.running, "PostgreSQL is not running");
        let out = self.pg_ctl_stop("fast");
        self.check("pg_ctl stop -m fast", out);
        self.running = false;
    }

    /// Starts the server again, on the same port with the same data, and waits until it accepts
    /// connections.
    pub fn start(&mut self) {
        assert!(!self.running, "PostgreSQL is already running");
        if let Err(e) = self.try_start() {
            panic!("{e}");
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn try_start(&mut self) -> Result<(), String> {
        let dir = self
            .dir
            .path()
            .to_str()
            .expect("temporary directory is UTF-8");
        // pg_ctl hands these to a shell: quote the socket directory.
        assert!(!dir.contains('\''), "no quote in {dir}");
        let options = format!("-p {} -k '{dir}' -c listen_addresses=127.0.0.1", self.port);
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output();
        match out {
            Ok(out) if out.status.success() => {
                self.running = true;
                Ok(())
            }
            out => Err(self.failure("pg_ctl start", out)),
        }
    }

    fn pg_ctl_stop(&self, mode: &str) -> std::io::Result<Output> {
        self.command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", mode, "-w", "-t", "60", "stop"])
            .output()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// One of the server binaries, as the user that runs the server, in our directory (not the
    /// test's, which that user may not be allowed to enter), with no input.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(path);
                cmd
            }
            None => Command::new(path),
        };
        cmd.current_dir(self.dir.path())
            .stdin(Stdio::null())
            // Settings of some other cluster must not leak into this one.
            .env_remove("PGDATA")
            .env_remove("PGPORT")
            .env_remove("PGHOST")
            .env_remove("PGOPTIONS");
        cmd
    }

    fn check(&self, what: &str, out: std::io::Result<Output>) {
        match out {
            Ok(out) if out.status.success() => {}
            out => panic!("{}", self.failure(what, out)),
        }
    }

    fn failure(&self, what: &str, out: std::io::Result<Output>) -> String {
        let outcome = match out {
            Ok(out) => format!(
                "{}\n--- stdout\n{}\n--- stderr\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => format!("could not run it: {e}"),
        };
        format!(
            "{what} failed (PostgreSQL in {}, port {}): {outcome}\n--- server log\n{}",
            self.dir.path().display(),
            self.port,
            self.log()
        )
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            match self.pg_ctl_stop("immediate") {
                Ok(out) if out.status.success() => {}
                out => eprintln!("{}", self.failure("pg_ctl stop -m immediate", out)),
            }
        }
        // Then `dir` removes the cluster.
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with both `initdb` and `pg_ctl`, else a `PATH`
/// directory with both.
fn find_bin() -> Result<PathBuf, String> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let debian = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|n| n.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .max();
    if let Some((_, bin)) = debian {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| has_both(dir))
        .ok_or_else(|| {
            "PostgreSQL is not installed: no initdb and pg_ctl in /usr/lib/postgresql/*/bin or on \
             PATH (apt-get install postgresql)"
                .into()
        })
}

fn is_root() -> bool {
    command_output(Command::new("id").arg("-u")).is_some_and(|uid| uid == "0")
}

/// `user`'s uid and gid.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let uid = command_output(Command::new("id").args(["-u", user]))?;
    let gid = command_output(Command::new("id").args(["-g", user]))?;
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

fn command_works(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What `cmd` printed, trimmed, if it succeeded.
fn command_output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stdin(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
