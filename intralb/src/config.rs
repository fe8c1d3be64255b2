//! Configuration: the keys of `#[balanced]`, their defaults, and `INTRALB_*` overrides.

use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};

/// The balancer's settings. Built through [`Builder`](crate::Builder); every key can be
/// overridden at run time by an `INTRALB_<KEY>` environment variable.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) max_concurrent: usize,
    pub(crate) queue: usize,
    pub(crate) min_workers: Option<usize>,
    pub(crate) timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) header_read_timeout: Duration,
    pub(crate) addr: SocketAddr,
    pub(crate) log: bool,
    pub(crate) metrics: Option<String>,
    pub(crate) health: Option<String>,
    pub(crate) ready: Option<String>,
    pub(crate) drain_delay: Duration,
    pub(crate) reuse_port: bool,
    pub(crate) origins: Origins,
}

/// The keys whose value came from the environment (key, variable, value as written), so an
/// error can point at where the user set it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins(Vec<(&'static str, &'static str, String)>);

impl Origins {
    fn set(&mut self, key: &'static str, var: &'static str, value: String) {
        self.0.retain(|(k, _, _)| *k != key);
        self.0.push((key, var, value));
    }

    /// `key` as the user wrote it: `INTRALB_KEY="value"` from the environment, else `code`.
    fn describe(&self, key: &str, code: &str) -> String {
        self.0.iter().find(|(k, _, _)| *k == key).map_or_else(
            || code.to_owned(),
            |(_, var, value)| format!("{var}={value:?}"),
        )
    }
}

/// The longest duration any setting accepts: longer ones overflow the clock's arithmetic and
/// mean "never" anyway.
const LONGEST: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The most workers a pool may have (worker ids are `u32`, and the idle stack is preallocated
/// up to 1,024).
const MOST_WORKERS: usize = 1 << 20;

impl Default for Config {
    fn default() -> Self {
        Config {
            max_concurrent: 100,
            queue: 100,
            min_workers: None,
            timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            log: false,
            metrics: None,
            health: None,
            ready: None,
            drain_delay: Duration::ZERO,
            reuse_port: false,
            origins: Origins::default(),
        }
    }
}

impl Config {
    /// Applies every `INTRALB_*` variable that `lookup` finds. An empty value counts as unset.
    pub(crate) fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<()> {
        let get = |var: &'static str| lookup(var).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("INTRALB_MAX_CONCURRENT") {
            self.max_concurrent = parse("INTRALB_MAX_CONCURRENT", "max_concurrent", &v)?;
            self.origins
                .set("max_concurrent", "INTRALB_MAX_CONCURRENT", v);
        }
        if let Some(v) = get("INTRALB_QUEUE") {
            self.queue = parse("INTRALB_QUEUE", "queue", &v)?;
            self.origins.set("queue", "INTRALB_QUEUE", v);
        }
        if let Some(v) = get("INTRALB_MIN_WORKERS") {
            self.min_workers = Some(parse("INTRALB_MIN_WORKERS", "min_workers", &v)?);
            self.origins.set("min_workers", "INTRALB_MIN_WORKERS", v);
        }
        if let Some(v) = get("INTRALB_TIMEOUT") {
            self.timeout = parse_duration("INTRALB_TIMEOUT", "timeout", &v)?;
            self.origins.set("timeout", "INTRALB_TIMEOUT", v);
        }
        if let Some(v) = get("INTRALB_SHUTDOWN_TIMEOUT") {
            self.shutdown_timeout =
                parse_duration("INTRALB_SHUTDOWN_TIMEOUT", "shutdown_timeout", &v)?;
            self.origins
                .set("shutdown_timeout", "INTRALB_SHUTDOWN_TIMEOUT", v);
        }
        if let Some(v) = get("INTRALB_IDLE_TIMEOUT") {
            self.idle_timeout = parse_duration("INTRALB_IDLE_TIMEOUT", "idle_timeout", &v)?;
            self.origins.set("idle_timeout", "INTRALB_IDLE_TIMEOUT", v);
        }
        if let Some(v) = get("INTRALB_ADDR") {
            self.addr = parse("INTRALB_ADDR", "addr (e.g. 127.0.0.1:8080)", &v)?;
        }
        if let Some(v) = get("INTRALB_LOG") {
            self.log = parse_bool("INTRALB_LOG", &v)?;
        }
        if let Some(v) = get("INTRALB_METRICS") {
            self.metrics = Some(parse_path("INTRALB_METRICS", &v)?);
        }
        if let Some(v) = get("INTRALB_HEALTH") {
            self.health = Some(parse_path("INTRALB_HEALTH", &v)?);
        }
        if let Some(v) = get("INTRALB_READY") {
            self.ready = Some(parse_path("INTRALB_READY", &v)?);
        }
        if let Some(v) = get("INTRALB_DRAIN_DELAY") {
            self.drain_delay = parse_duration("INTRALB_DRAIN_DELAY", "drain_delay", &v)?;
            self.origins.set("drain_delay", "INTRALB_DRAIN_DELAY", v);
        }
        if let Some(v) = get("INTRALB_REUSE_PORT") {
            self.reuse_port = parse_bool("INTRALB_REUSE_PORT", &v)?;
        }
        Ok(())
    }

    /// Checks every value and the combinations; called before anything starts.
    pub(crate) fn validate(&self) -> Result<()> {
        let origin = |key: &str, code: &str| self.origins.describe(key, code);
        if self.max_concurrent == 0 {
            return Err(Error::config(format!(
                "{} must be at least 1",
                origin("max_concurrent", "max_concurrent = 0")
            )));
        }
        if self.max_concurrent > MOST_WORKERS {
            return Err(Error::config(format!(
                "{} is too large: at most {MOST_WORKERS} workers",
                origin(
                    "max_concurrent",
                    &format!("max_concurrent = {}", self.max_concurrent)
                )
            )));
        }
        if let Some(min) = self.min_workers {
            if min > self.max_concurrent {
                return Err(Error::config(format!(
                    "min_workers ({}) is greater than max_concurrent ({}): {} vs {}",
                    min,
                    self.max_concurrent,
                    origin("min_workers", "min_workers"),
                    origin("max_concurrent", "max_concurrent"),
                )));
            }
        }
        let durations = [
            ("timeout", self.timeout),
            ("shutdown_timeout", self.shutdown_timeout),
            ("idle_timeout", self.idle_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("drain_delay", self.drain_delay),
        ];
        for (key, value) in durations {
            if value > LONGEST {
                return Err(Error::config(format!(
                    "{} is too long: at most 365 days",
                    origin(key, &format!("{key} = {value:?}"))
                )));
            }
        }
        for (key, value) in [
            ("timeout", self.timeout),
            ("idle_timeout", self.idle_timeout),
            ("header_read_timeout", self.header_read_timeout),
        ] {
            if value.is_zero() {
                return Err(Error::config(format!(
                    "{}: the {key} must be longer than zero",
                    origin(key, &format!("{key} = 0"))
                )));
            }
        }
        Ok(())
    }

    /// `min_workers`, or its default: one per CPU, at most `max_concurrent`.
    pub(crate) fn min_workers(&self) -> usize {
        self.min_workers.unwrap_or_else(|| {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            cpus.min(self.max_concurrent)
        })
    }
}

fn parse<T: FromStr>(var: &str, what: &str, value: &str) -> Result<T>
where
    T::Err: Display,
{
    value
        .trim()
        .parse()
        .map_err(|e| Error::config(format!("{var}={value:?} is not a valid {what}: {e}")))
}

fn parse_duration(var: &str, what: &str, value: &str) -> Result<Duration> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        Error::config(format!(
            "{var}={value:?} is not a valid {what}: {e} (write it like \"250ms\", \"5s\" or \"1m\")"
        ))
    })
}

fn parse_path(var: &str, value: &str) -> Result<String> {
    let path = value.trim();
    if path.starts_with('/') && !path.contains(char::is_whitespace) {
        Ok(path.to_owned())
    } else {
        Err(Error::config(format!(
            "{var}={value:?} is not a valid path: expected one that starts with `/` and has no spaces, such as \"/metrics\""
        )))
    }
}

fn parse_bool(var: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::config(format!(
            "{var}={value:?} is not a valid flag: expected true or false"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_env(vars: &[(&str, &str)]) -> Result<Config> {
        let mut config = Config::default();
        config.apply_env(|key| {
            vars.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        })?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn every_key_is_overridden_by_its_variable() {
        let config = with_env(&[
            ("INTRALB_MAX_CONCURRENT", "7"),
            ("INTRALB_QUEUE", "0"),
            ("INTRALB_MIN_WORKERS", "3"),
            ("INTRALB_TIMEOUT", "250ms"),
            ("INTRALB_SHUTDOWN_TIMEOUT", "5s"),
            ("INTRALB_IDLE_TIMEOUT", "1m"),
            ("INTRALB_ADDR", "0.0.0.0:9000"),
            ("INTRALB_LOG", "true"),
            ("INTRALB_METRICS", "/metrics"),
            ("INTRALB_HEALTH", "/healthz"),
            ("INTRALB_READY", "/readyz"),
            ("INTRALB_DRAIN_DELAY", "2s"),
            ("INTRALB_REUSE_PORT", "1"),
        ])
        .unwrap();
        assert_eq!(config.max_concurrent, 7);
        assert_eq!(config.queue, 0);
        assert_eq!(config.min_workers(), 3);
        assert_eq!(config.timeout, Duration::from_millis(250));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.addr, "0.0.0.0:9000".parse().unwrap());
        assert!(config.log);
        assert_eq!(config.metrics.as_deref(), Some("/metrics"));
        assert_eq!(config.health.as_deref(), Some("/healthz"));
        assert_eq!(config.ready.as_deref(), Some("/readyz"));
        assert_eq!(config.drain_delay, Duration::from_secs(2));
        assert!(config.reuse_port);
    }

    #[test]
    fn a_path_must_start_with_a_slash() {
        let err = with_env(&[("INTRALB_READY", "readyz")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("INTRALB_READY=\"readyz\" is not a valid path"),
            "{err}"
        );
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let config = with_env(&[("INTRALB_QUEUE", " ")]).unwrap();
        assert_eq!(config.queue, 100);
    }

    #[test]
    fn a_bad_number_names_the_variable_and_value() {
        let err = with_env(&[("INTRALB_MAX_CONCURRENT", "abc")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "INTRALB_MAX_CONCURRENT=\"abc\" is not a valid max_concurrent: invalid digit found in string"
        );
    }

    #[test]
    fn zero_max_concurrent_from_env_is_rejected() {
        let err = with_env(&[("INTRALB_MAX_CONCURRENT", "0")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "INTRALB_MAX_CONCURRENT=\"0\" must be at least 1"
        );
    }

    #[test]
    fn min_workers_above_max_concurrent_is_rejected() {
        let err = with_env(&[("INTRALB_MIN_WORKERS", "200")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("min_workers (200) is greater than max_concurrent (100)"),
            "{err}"
        );
        assert!(
            err.to_string().contains("INTRALB_MIN_WORKERS=\"200\""),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_duration_unit_is_rejected() {
        let err = with_env(&[("INTRALB_TIMEOUT", "5 fortnights")]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("INTRALB_TIMEOUT=\"5 fortnights\" is not a valid timeout: "),
            "{msg}"
        );
        assert!(msg.contains("\"250ms\""), "{msg}");
        let err = with_env(&[("INTRALB_IDLE_TIMEOUT", "30")]).unwrap_err();
        assert!(
            err.to_string().starts_with("INTRALB_IDLE_TIMEOUT=\"30\""),
            "{err}"
        );
    }

    #[test]
    fn absurd_values_are_rejected_at_startup_naming_the_variable() {
        let err = with_env(&[("INTRALB_TIMEOUT", "300000000000y")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "INTRALB_TIMEOUT=\"300000000000y\" is too long: at most 365 days"
        );
        let err = with_env(&[("INTRALB_IDLE_TIMEOUT", "300000000000y")]).unwrap_err();
        assert!(
            err.to_string().starts_with("INTRALB_IDLE_TIMEOUT="),
            "{err}"
        );
        let err = with_env(&[("INTRALB_IDLE_TIMEOUT", "0s")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "INTRALB_IDLE_TIMEOUT=\"0s\": the idle_timeout must be longer than zero"
        );
        let err = with_env(&[("INTRALB_MAX_CONCURRENT", &usize::MAX.to_string())]).unwrap_err();
        assert!(err.to_string().contains("is too large"), "{err}");
        let err = Config {
            shutdown_timeout: Duration::MAX,
            ..Config::default()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().starts_with("shutdown_timeout = "), "{err}");
    }

    #[test]
    fn the_largest_queue_is_accepted() {
        let config = with_env(&[("INTRALB_QUEUE", &usize::MAX.to_string())]).unwrap();
        assert_eq!(config.queue, usize::MAX);
    }

    #[test]
    fn a_zero_timeout_is_rejected() {
        let err = with_env(&[("INTRALB_TIMEOUT", "0s")]).unwrap_err();
        assert!(err.to_string().contains("longer than zero"), "{err}");
    }

    #[test]
    fn bad_addr_and_log_values_are_rejected() {
        let err = with_env(&[("INTRALB_ADDR", "localhost")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("INTRALB_ADDR=\"localhost\" is not a valid addr"),
            "{err}"
        );
        let err = with_env(&[("INTRALB_LOG", "maybe")]).unwrap_err();
        assert!(err.to_string().contains("expected true or false"), "{err}");
    }

    #[test]
    fn min_workers_defaults_to_cpus_capped_by_max_concurrent() {
        let config = Config {
            max_concurrent: 1,
            ..Config::default()
        };
        assert_eq!(config.min_workers(), 1);
    }
}
