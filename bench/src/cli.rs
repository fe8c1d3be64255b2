//! Command-line arguments: `bench [SCENARIO…] [--quick] …` runs the harness, `bench server …`
//! is one server the harness starts (or that you start by hand, to profile it).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub(crate) const USAGE: &str = "\
usage: bench [SCENARIO…] [--quick] [--out DIR] [--no-pin] [--oha PATH]
       bench report [--out DIR]
       bench server --opponent NAME --port PORT [server options]
       bench load --port PORT --seconds S --rate R [load options]

Runs the scenarios (default: all) against every opponent and writes DIR/results.json,
DIR/report.md and DIR/overload.svg (DIR defaults to bench-results). `bench report` renders
report.md and the chart again from DIR/results.json.

scenarios: all, fast, overload, admission, adaptive, notes, scale, drain
  --quick        short runs: proves the harness works; the numbers are noisy
  --out DIR      where results go (default bench-results)
  --no-pin       do not pin the server and the load generator to separate cores
  --oha PATH     the load generator (default: oha on PATH)

server options (one server in the foreground until SIGTERM or Ctrl-C):
  --opponent     hyper | axum | tower | intralb | naive-limit | naive-limit-eager | mutex | pool
  --port         port on 127.0.0.1
  --limit N      max_concurrent (intralb), concurrency limit (tower), pool size (pool) [100]
  --queue N      intralb's queue [100]
  --min-workers N  intralb's min_workers [intralb's default]
  --timeout-ms N request deadline, intralb and tower [10000]
  --slots N      the slow handler's backend slots [16]
  --hold-ms N    how long the slow handler holds a slot [20]
  --slots-schedule N@MS,…  set the backend slots to N, MS milliseconds after start
  --adaptive     intralb's adaptive concurrency limit
  --metrics      intralb's Prometheus endpoint on /metrics
  --time-503s    intralb: time each 503 at the server; GET /bench/503s reports them
  --queue-target-ms N  intralb's queue_target [its default, 5]; 0: a plain FIFO
  --db PATH      serve the notes workload on this SQLite file instead of the basic routes

load options (open loop on /slow and /critical; prints a JSON summary):
  --burst-rate R --burst-ms L --every-ms P   R req/s for L ms every P ms (else --rate)
  --critical F   the share of requests sent to /critical [0]
  --connections N  most connections open [300]
  --windows A-B,…  also report the p99 of the 200s sent from A to B seconds into the run
";

/// What the binary was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    Run(RunOptions),
    Report(PathBuf),
    Server(ServerOptions),
    Load(crate::load::LoadOptions),
    Help,
}

/// A benchmark scenario of the issue, in the order `all` runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    Fast,
    Overload,
    Admission,
    Adaptive,
    Notes,
    Scale,
    Drain,
}

impl Scenario {
    pub(crate) const ALL: [Scenario; 7] = [
        Scenario::Fast,
        Scenario::Overload,
        Scenario::Admission,
        Scenario::Adaptive,
        Scenario::Notes,
        Scenario::Scale,
        Scenario::Drain,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Fast => "fast",
            Scenario::Overload => "overload",
            Scenario::Admission => "admission",
            Scenario::Adaptive => "adaptive",
            Scenario::Notes => "notes",
            Scenario::Scale => "scale",
            Scenario::Drain => "drain",
        }
    }
}

/// Options of a harness run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunOptions {
    pub(crate) scenarios: Vec<Scenario>,
    pub(crate) quick: bool,
    pub(crate) out: PathBuf,
    pub(crate) pin: bool,
    pub(crate) oha: PathBuf,
}

/// Who serves: the three opponents of the issue, two hand-made mistakes, and the two
/// non-intralb ways to share a SQLite database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opponent {
    /// hyper-util's auto builder serving the axum `Router`: the floor.
    Hyper,
    /// Plain `axum::serve` with the same `Router`: what users have before intralb.
    Axum,
    /// The same, behind `LoadShed` + `GlobalConcurrencyLimitLayer` + `Timeout`.
    Tower,
    /// intralb's `Builder::serve`.
    Intralb,
    /// Plain `axum::serve`, the `Router` behind the least a per-worker lease costs (see
    /// `server/lease.rs`): the floor under intralb's fast path.
    Lease,
    /// `Router::layer(ConcurrencyLimitLayer)`, the `Router` served as it is.
    NaiveLimit,
    /// The same after `Router::with_state(())`, as `axum::serve` does.
    NaiveLimitEager,
    /// Notes on one `Mutex<Connection>`, served by bare hyper.
    Mutex,
    /// Notes on an r2d2 pool, served by bare hyper.
    Pool,
}

impl Opponent {
    const NAMES: [(Opponent, &'static str); 9] = [
        (Opponent::Hyper, "hyper"),
        (Opponent::Axum, "axum"),
        (Opponent::Tower, "tower"),
        (Opponent::Intralb, "intralb"),
        (Opponent::Lease, "lease"),
        (Opponent::NaiveLimit, "naive-limit"),
        (Opponent::NaiveLimitEager, "naive-limit-eager"),
        (Opponent::Mutex, "mutex"),
        (Opponent::Pool, "pool"),
    ];

    pub(crate) fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(o, _)| *o == self)
            .map(|(_, name)| *name)
            .expect("every opponent has a name")
    }
}

impl fmt::Display for Opponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Opponent {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::NAMES
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(o, _)| *o)
            .ok_or_else(|| {
                let names: Vec<_> = Self::NAMES.iter().map(|(_, n)| *n).collect();
                format!(
                    "unknown opponent `{s}` (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// Options of `bench server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerOptions {
    pub(crate) opponent: Opponent,
    pub(crate) port: u16,
    pub(crate) limit: usize,
    pub(crate) queue: usize,
    pub(crate) min_workers: Option<usize>,
    pub(crate) timeout: Duration,
    pub(crate) slots: usize,
    pub(crate) hold: Duration,
    /// The backend's slots from a moment (since start) on.
    pub(crate) slots_schedule: Vec<(Duration, usize)>,
    pub(crate) adaptive: bool,
    pub(crate) metrics: bool,
    /// intralb: an outer layer times each `503` (`server/shed_timer.rs`).
    pub(crate) time_503s: bool,
    pub(crate) db: Option<PathBuf>,
    /// intralb's `queue_target` (its default if `None`; zero: a plain FIFO).
    pub(crate) queue_target: Option<Duration>,
}

impl ServerOptions {
    pub(crate) fn new(opponent: Opponent) -> Self {
        ServerOptions {
            opponent,
            port: 0,
            limit: 100,
            queue: 100,
            min_workers: None,
            timeout: Duration::from_secs(10),
            slots: 16,
            hold: Duration::from_millis(20),
            slots_schedule: Vec::new(),
            adaptive: false,
            metrics: false,
            time_503s: false,
            db: None,
            queue_target: None,
        }
    }

    /// The arguments that make `bench server` run with these options.
    pub(crate) fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "server".to_owned(),
            "--opponent".to_owned(),
            self.opponent.to_string(),
            "--port".to_owned(),
            self.port.to_string(),
            "--limit".to_owned(),
            self.limit.to_string(),
            "--queue".to_owned(),
            self.queue.to_string(),
            "--timeout-ms".to_owned(),
            self.timeout.as_millis().to_string(),
            "--slots".to_owned(),
            self.slots.to_string(),
            "--hold-ms".to_owned(),
            self.hold.as_millis().to_string(),
        ];
        if let Some(n) = self.min_workers {
            args.extend(["--min-workers".to_owned(), n.to_string()]);
        }
        if let Some(db) = &self.db {
            args.extend(["--db".to_owned(), db.display().to_string()]);
        }
        if let Some(target) = self.queue_target {
            args.extend([
                "--queue-target-ms".to_owned(),
                target.as_millis().to_string(),
            ]);
        }
        if !self.slots_schedule.is_empty() {
            let schedule: Vec<String> = self
                .slots_schedule
                .iter()
                .map(|(at, slots)| format!("{slots}@{}", at.as_millis()))
                .collect();
            args.extend(["--slots-schedule".to_owned(), schedule.join(",")]);
        }
        for (on, flag) in [
            (self.adaptive, "--adaptive"),
            (self.metrics, "--metrics"),
            (self.time_503s, "--time-503s"),
        ] {
            if on {
                args.push(flag.to_owned());
            }
        }
        args
    }
}

/// Parses the arguments after the program name.
pub(crate) fn parse(args: &[String]) -> Result<Command, String> {
    if args
        .iter()
        .any(|a| a == "-h" || a == "--help" || a == "help")
    {
        return Ok(Command::Help);
    }
    match args.first().map(String::as_str) {
        Some("server") => parse_server(&args[1..]).map(Command::Server),
        Some("load") => parse_load(&args[1..]).map(Command::Load),
        Some("report") => match &args[1..] {
            [] => Ok(Command::Report(PathBuf::from("bench-results"))),
            [flag, dir] if flag == "--out" => Ok(Command::Report(dir.into())),
            _ => Err("`bench report` takes only --out DIR".to_owned()),
        },
        _ => parse_run(args).map(Command::Run),
    }
}

fn parse_run(args: &[String]) -> Result<RunOptions, String> {
    let mut options = RunOptions {
        scenarios: Vec::new(),
        quick: false,
        out: PathBuf::from("bench-results"),
        pin: true,
        oha: PathBuf::from("oha"),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--no-pin" => options.pin = false,
            "--out" => options.out = value(&mut args, arg)?.into(),
            "--oha" => options.oha = value(&mut args, arg)?.into(),
            "all" => options.scenarios.extend(Scenario::ALL),
            name => {
                let scenario = Scenario::ALL
                    .into_iter()
                    .find(|s| s.name() == name)
                    .ok_or_else(|| format!("unknown scenario or option `{name}`"))?;
                options.scenarios.push(scenario);
            }
        }
    }
    if options.scenarios.is_empty() {
        options.scenarios.extend(Scenario::ALL);
    }
    // Run each once, in the canonical order.
    options.scenarios = Scenario::ALL
        .into_iter()
        .filter(|s| options.scenarios.contains(s))
        .collect();
    Ok(options)
}

fn parse_server(args: &[String]) -> Result<ServerOptions, String> {
    let mut options = ServerOptions::new(Opponent::Hyper);
    let mut opponent = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--adaptive" => {
                options.adaptive = true;
                continue;
            }
            "--metrics" => {
                options.metrics = true;
                continue;
            }
            "--time-503s" => {
                options.time_503s = true;
                continue;
            }
            _ => {}
        }
        let v = value(&mut args, arg)?;
        match arg.as_str() {
            "--opponent" => opponent = Some(v.parse()?),
            "--port" => options.port = number(arg, v)?,
            "--limit" => options.limit = number(arg, v)?,
            "--queue" => options.queue = number(arg, v)?,
            "--min-workers" => options.min_workers = Some(number(arg, v)?),
            "--timeout-ms" => options.timeout = Duration::from_millis(number(arg, v)?),
            "--slots" => options.slots = number(arg, v)?,
            "--hold-ms" => options.hold = Duration::from_millis(number(arg, v)?),
            "--db" => options.db = Some(v.into()),
            "--queue-target-ms" => {
                options.queue_target = Some(Duration::from_millis(number(arg, v)?));
            }
            "--slots-schedule" => options.slots_schedule = schedule(arg, v)?,
            _ => return Err(format!("unknown server option `{arg}`")),
        }
    }
    options.opponent = opponent.ok_or("`bench server` needs --opponent")?;
    Ok(options)
}

fn parse_load(args: &[String]) -> Result<crate::load::LoadOptions, String> {
    let mut options = crate::load::LoadOptions {
        port: 0,
        seconds: 10.0,
        rate: 0.0,
        burst_rate: None,
        burst_ms: 0,
        every_ms: 1,
        critical: 0.0,
        connections: 300,
        windows: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let v = value(&mut args, arg)?;
        match arg.as_str() {
            "--port" => options.port = number(arg, v)?,
            "--seconds" => options.seconds = number(arg, v)?,
            "--rate" => options.rate = number(arg, v)?,
            "--burst-rate" => options.burst_rate = Some(number(arg, v)?),
            "--burst-ms" => options.burst_ms = number(arg, v)?,
            "--every-ms" => options.every_ms = number::<u64>(arg, v)?.max(1),
            "--critical" => options.critical = number(arg, v)?,
            "--connections" => options.connections = number::<usize>(arg, v)?.max(1),
            "--windows" => options.windows = windows(arg, v)?,
            _ => return Err(format!("unknown load option `{arg}`")),
        }
    }
    if options.port == 0 || options.rate <= 0.0 {
        return Err("`bench load` needs --port and --rate".to_owned());
    }
    Ok(options)
}

/// `N@MS,…`: `N` slots from `MS` milliseconds on.
fn schedule(flag: &str, v: &str) -> Result<Vec<(Duration, usize)>, String> {
    pairs(flag, v, '@', "N@MS")?
        .into_iter()
        .map(|(slots, at): (usize, u64)| Ok((Duration::from_millis(at), slots)))
        .collect()
}

/// `FROM-TO,…`: windows of the run, in seconds since its start.
fn windows(flag: &str, v: &str) -> Result<Vec<(f64, f64)>, String> {
    pairs(flag, v, '-', "FROM-TO")
}

/// `A<separator>B,…`, as `form` says.
fn pairs<A: FromStr, B: FromStr>(
    flag: &str,
    v: &str,
    separator: char,
    form: &str,
) -> Result<Vec<(A, B)>, String> {
    v.split(',')
        .map(|pair| {
            let (a, b) = pair
                .split_once(separator)
                .ok_or_else(|| format!("`{flag}` expects {form},…, got `{v}`"))?;
            Ok((number(flag, a)?, number(flag, b)?))
        })
        .collect()
}

fn value<'a>(args: &mut std::slice::Iter<'a, String>, flag: &str) -> Result<&'a str, String> {
    args.next()
        .map(String::as_str)
        .ok_or_else(|| format!("`{flag}` needs a value"))
}

fn number<T: FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("`{flag}` expects a number, got `{v}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn no_scenario_means_all() {
        let Command::Run(run) = parse(&[]).unwrap() else {
            panic!()
        };
        assert_eq!(run.scenarios, Scenario::ALL);
        assert!(run.pin && !run.quick);
    }

    #[test]
    fn scenarios_run_once_in_canonical_order() {
        let Command::Run(run) = parse(&args("drain fast --quick drain")).unwrap() else {
            panic!()
        };
        assert_eq!(run.scenarios, [Scenario::Fast, Scenario::Drain]);
        assert!(run.quick);
    }

    #[test]
    fn server_options_round_trip_through_their_arguments() {
        let mut options = ServerOptions::new(Opponent::NaiveLimitEager);
        options.port = 4321;
        options.min_workers = Some(16);
        options.db = Some("/tmp/notes.db".into());
        options.slots_schedule = vec![(Duration::from_secs(5), 8), (Duration::from_secs(10), 16)];
        options.adaptive = true;
        options.metrics = true;
        options.time_503s = true;
        options.queue_target = Some(Duration::ZERO);
        assert_eq!(parse(&options.to_args()), Ok(Command::Server(options)));
    }

    #[test]
    fn unknown_opponent_lists_the_known_ones() {
        let error = parse(&args("server --opponent nginx")).unwrap_err();
        assert!(error.contains("hyper, axum, tower, intralb"), "{error}");
    }
}
