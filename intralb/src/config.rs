//! Configuration, generated from the one declaration of the settings (`intralb-settings`):
//! a struct per group of settings, their defaults, and `INTRALB_<KEY>` overrides. The `Builder`
//! setters come from the same declaration (`builder.rs`), and so do the keys of `#[balanced]`.

use std::fmt::{Debug, Display};
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};

/// How each sort of setting is stored, defaulted and parsed from the environment.
pub(crate) mod kinds {
    use super::*;

    /// A sort of setting value.
    pub(crate) trait Kind {
        /// What the configuration stores.
        type Value: Clone + Debug;
        /// What the declaration's default is written as.
        type Default;
        /// What the value is called in an error (`None`: the key's name).
        const WHAT: Option<&'static str> = None;

        fn default(written: Self::Default) -> Self::Value;
        fn parse(value: &str) -> std::result::Result<Self::Value, String>;
    }

    fn from_str<T: FromStr>(value: &str) -> std::result::Result<T, String>
    where
        T::Err: Display,
    {
        value.parse().map_err(|e: T::Err| e.to_string())
    }

    fn duration(value: &str) -> std::result::Result<std::time::Duration, String> {
        humantime::parse_duration(value)
            .map_err(|e| format!("{e} (write it like \"250ms\", \"5s\" or \"1m\")"))
    }

    pub(crate) struct Count;
    impl Kind for Count {
        type Value = usize;
        type Default = usize;
        fn default(written: usize) -> usize {
            written
        }
        fn parse(value: &str) -> std::result::Result<usize, String> {
            from_str(value)
        }
    }

    /// A count whose default is computed from other settings when unset.
    pub(crate) struct OptCount;
    impl Kind for OptCount {
        type Value = Option<usize>;
        type Default = Option<usize>;
        fn default(written: Option<usize>) -> Option<usize> {
            written
        }
        fn parse(value: &str) -> std::result::Result<Option<usize>, String> {
            from_str(value).map(Some)
        }
    }

    pub(crate) struct Duration;
    impl Kind for Duration {
        type Value = std::time::Duration;
        type Default = &'static str;
        fn default(written: &'static str) -> std::time::Duration {
            duration(written).expect("the declared default is a valid duration")
        }
        fn parse(value: &str) -> std::result::Result<std::time::Duration, String> {
            duration(value)
        }
    }

    pub(crate) struct Addr;
    impl Kind for Addr {
        type Value = SocketAddr;
        type Default = &'static str;
        const WHAT: Option<&'static str> = Some("addr (e.g. 127.0.0.1:8080)");
        fn default(written: &'static str) -> SocketAddr {
            written
                .parse()
                .expect("the declared default is a valid address")
        }
        fn parse(value: &str) -> std::result::Result<SocketAddr, String> {
            from_str(value)
        }
    }

    pub(crate) struct Flag;
    impl Kind for Flag {
        type Value = bool;
        type Default = bool;
        const WHAT: Option<&'static str> = Some("flag");
        fn default(written: bool) -> bool {
            written
        }
        fn parse(value: &str) -> std::result::Result<bool, String> {
            match value.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err("expected true or false".into()),
            }
        }
    }

    /// A flag whose absence is a third choice.
    pub(crate) struct OptFlag;
    impl Kind for OptFlag {
        type Value = Option<bool>;
        type Default = Option<bool>;
        const WHAT: Option<&'static str> = Some("flag");
        fn default(written: Option<bool>) -> Option<bool> {
            written
        }
        fn parse(value: &str) -> std::result::Result<Option<bool>, String> {
            Flag::parse(value).map(Some)
        }
    }

    /// A URL path, off unless given.
    pub(crate) struct OptPath;
    impl Kind for OptPath {
        type Value = Option<String>;
        type Default = Option<&'static str>;
        const WHAT: Option<&'static str> = Some("path");
        fn default(written: Option<&'static str>) -> Option<String> {
            written.map(str::to_owned)
        }
        fn parse(value: &str) -> std::result::Result<Option<String>, String> {
            if value.starts_with('/') && !value.contains(char::is_whitespace) {
                Ok(Some(value.to_owned()))
            } else {
                Err(
                    "expected one that starts with `/` and has no spaces, such as \"/metrics\""
                        .into(),
                )
            }
        }
    }
}

use kinds::Kind;

/// The environment variable that overrides `key`: `INTRALB_` and the key in capitals.
pub(crate) fn env_var(key: &str) -> String {
    format!("INTRALB_{}", key.to_ascii_uppercase())
}

/// Parses `value` of `var` as a `K`, with an error naming both.
fn parse_env<K: Kind>(key: &str, var: &str, value: &str) -> Result<K::Value> {
    K::parse(value.trim()).map_err(|e| {
        let what = K::WHAT.unwrap_or(key);
        Error::config(format!("{var}={value:?} is not a valid {what}: {e}"))
    })
}

/// One setting, as declared (for the check of the documentation tables).
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    pub(crate) name: &'static str,
    /// The default as the documentation tables write it.
    pub(crate) default: &'static str,
    /// The one line the documentation tables show.
    pub(crate) doc: &'static str,
}

macro_rules! declare_config {
    ($(
        [$group:ident: $Group:ident] {
            $(
                #[doc = $doc:literal]
                $(#[doc = $more:literal])*
                $name:ident: $kind:ident = $default:tt, $default_doc:literal;
            )*
        }
    )*) => {
        $(
            #[doc = concat!("The `", stringify!($group), "` settings.")]
            #[derive(Debug, Clone)]
            pub(crate) struct $Group {
                $(
                    #[doc = $doc]
                    pub(crate) $name: <kinds::$kind as Kind>::Value,
                )*
            }

            impl Default for $Group {
                fn default() -> Self {
                    $Group {
                        $( $name: <kinds::$kind as Kind>::default($default), )*
                    }
                }
            }
        )*

        /// The balancer's settings, grouped by the part that uses them. Built through
        /// [`Builder`](crate::Builder); every key can be overridden at run time by its
        /// `INTRALB_<KEY>` environment variable.
        #[derive(Debug, Clone, Default)]
        pub(crate) struct Config {
            $( pub(crate) $group: $Group, )*
            pub(crate) origins: Origins,
        }

        /// Every setting, in the declaration's order.
        #[cfg(test)]
        pub(crate) const KEYS: &[Key] = &[
            $($(
                Key {
                    name: stringify!($name),
                    default: $default_doc,
                    doc: $doc,
                },
            )*)*
        ];

        impl Config {
            /// Applies every `INTRALB_*` variable that `lookup` finds. An empty value counts as
            /// unset.
            pub(crate) fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<()> {
                $($(
                    let key = stringify!($name);
                    let var = env_var(key);
                    if let Some(value) = lookup(&var).filter(|v| !v.trim().is_empty()) {
                        self.$group.$name = parse_env::<kinds::$kind>(key, &var, &value)?;
                        self.origins.set(key, var, value);
                    }
                )*)*
                Ok(())
            }
        }
    };
}

intralb_settings::settings!(declare_config);

/// The keys whose value came from the environment (key, variable, value as written), so an
/// error can point at where the user set it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins(Vec<(&'static str, String, String)>);

impl Origins {
    fn set(&mut self, key: &'static str, var: String, value: String) {
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

/// The largest body read whole before admission.
const MOST_BUFFERED: usize = 1 << 30;

/// The most workers a pool may have.
const MOST_WORKERS: usize = 1 << 20;

impl Config {
    /// Checks every value and the combinations; called before anything starts.
    pub(crate) fn validate(&self) -> Result<()> {
        let origin = |key: &str, code: &str| self.origins.describe(key, code);
        let pool = &self.pool;
        if pool.max_concurrent == 0 {
            return Err(Error::config(format!(
                "{} must be at least 1",
                origin("max_concurrent", "max_concurrent = 0")
            )));
        }
        if pool.max_concurrent > MOST_WORKERS {
            return Err(Error::config(format!(
                "{} is too large: at most {MOST_WORKERS} workers",
                origin(
                    "max_concurrent",
                    &format!("max_concurrent = {}", pool.max_concurrent)
                )
            )));
        }
        if let Some(min) = pool.min_workers {
            if min > pool.max_concurrent {
                return Err(Error::config(format!(
                    "min_workers ({}) is greater than max_concurrent ({}): {} vs {}",
                    min,
                    pool.max_concurrent,
                    origin("min_workers", "min_workers"),
                    origin("max_concurrent", "max_concurrent"),
                )));
            }
        }
        for (key, value) in self.durations() {
            if value > LONGEST {
                return Err(Error::config(format!(
                    "{} is too long: at most 365 days",
                    origin(key, &format!("{key} = {value:?}"))
                )));
            }
        }
        let connections = &self.connections;
        if connections.buffer_body > MOST_BUFFERED {
            return Err(Error::config(format!(
                "{} is too large: at most {MOST_BUFFERED} bytes (1 GiB); larger bodies stream",
                origin(
                    "buffer_body",
                    &format!("buffer_body = {}", connections.buffer_body)
                )
            )));
        }
        if connections.max_connections == Some(0) {
            return Err(Error::config(format!(
                "{} must be at least 1",
                origin("max_connections", "max_connections = 0")
            )));
        }
        for (key, value) in [
            ("timeout", pool.timeout),
            ("idle_timeout", pool.idle_timeout),
            ("header_read_timeout", connections.header_read_timeout),
            ("body_timeout", connections.body_timeout),
            (
                "connection_idle_timeout",
                connections.connection_idle_timeout,
            ),
            ("send_timeout", connections.send_timeout),
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

    /// Every duration setting, by key.
    fn durations(&self) -> [(&'static str, Duration); 9] {
        [
            ("timeout", self.pool.timeout),
            ("queue_target", self.pool.queue_target),
            ("idle_timeout", self.pool.idle_timeout),
            ("shutdown_timeout", self.drain.shutdown_timeout),
            ("drain_delay", self.drain.drain_delay),
            ("header_read_timeout", self.connections.header_read_timeout),
            ("body_timeout", self.connections.body_timeout),
            (
                "connection_idle_timeout",
                self.connections.connection_idle_timeout,
            ),
            ("send_timeout", self.connections.send_timeout),
        ]
    }
}

impl Pool {
    /// `min_workers`, or its default: one per CPU, at most `max_concurrent`.
    pub(crate) fn min_workers(&self) -> usize {
        self.min_workers.unwrap_or_else(|| {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            cpus.min(self.max_concurrent)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_env(vars: &[(&str, &str)]) -> Result<Config> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut config = Config::default();
        config.apply_env(|key| vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration table as the README, the crate docs and the macro docs must show it.
    fn documentation_table() -> String {
        let mut table =
            String::from("| key | default | environment | meaning |\n|---|---|---|---|\n");
        for key in KEYS {
            table.push_str(&format!(
                "| `{}` | {} | `{}` | {} |\n",
                key.name,
                key.default,
                env_var(key.name),
                key.doc.trim()
            ));
        }
        table
    }

    #[test]
    fn the_documentation_tables_list_every_setting_as_declared() {
        let table = documentation_table();
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        for (file, prefix) in [
            ("README.md", ""),
            ("intralb/src/lib.rs", "//! "),
            ("intralb-macros/src/lib.rs", "/// "),
        ] {
            let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
            let expected: String = table
                .lines()
                .map(|line| format!("{prefix}{line}\n"))
                .collect();
            assert!(
                text.contains(&expected),
                "{file} must contain the configuration table as declared in \
                 intralb-settings; replace its table with:\n\n{expected}"
            );
        }
    }

    #[test]
    fn every_setting_has_a_variable_and_a_default() {
        let config = Config::default();
        assert!(config.validate().is_ok());
        let mut seen = Vec::new();
        for key in KEYS {
            assert!(!seen.contains(&key.name), "{} declared twice", key.name);
            seen.push(key.name);
        }
        // Each variable is read: a bad value for any of them is an error naming it.
        for key in KEYS {
            let var = env_var(key.name);
            let err = with_env(&[(&var, "\u{1}not a value")]).unwrap_err();
            assert!(err.to_string().starts_with(&var), "{err}");
        }
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
            ("INTRALB_HEADER_READ_TIMEOUT", "3s"),
        ])
        .unwrap();
        assert_eq!(
            config.connections.header_read_timeout,
            Duration::from_secs(3)
        );
        assert_eq!(config.pool.max_concurrent, 7);
        assert_eq!(config.pool.queue, 0);
        assert_eq!(config.pool.min_workers(), 3);
        assert_eq!(config.pool.timeout, Duration::from_millis(250));
        assert_eq!(config.drain.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(config.pool.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.listener.addr, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(config.process.log, Some(true));
        assert_eq!(config.probes.metrics.as_deref(), Some("/metrics"));
        assert_eq!(config.probes.health.as_deref(), Some("/healthz"));
        assert_eq!(config.probes.ready.as_deref(), Some("/readyz"));
        assert_eq!(config.drain.drain_delay, Duration::from_secs(2));
        assert!(config.listener.reuse_port);
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
        assert_eq!(config.pool.queue, 100);
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
        let mut config = Config::default();
        config.drain.shutdown_timeout = Duration::MAX;
        let err = config.validate().unwrap_err();
        assert!(err.to_string().starts_with("shutdown_timeout = "), "{err}");
    }

    #[test]
    fn the_largest_queue_is_accepted() {
        let config = with_env(&[("INTRALB_QUEUE", &usize::MAX.to_string())]).unwrap();
        assert_eq!(config.pool.queue, usize::MAX);
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
        let mut config = Config::default();
        config.pool.max_concurrent = 1;
        assert_eq!(config.pool.min_workers(), 1);
    }
}
