//! The default tracing subscriber, for programs that have none: warnings and errors unless
//! `log = true` (from info) or `log = false` (none).

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The level of the default subscriber for the `log` setting: `None` for none.
pub(crate) fn default_level(log: Option<bool>) -> Option<LevelFilter> {
    match log {
        None => Some(LevelFilter::WARN),
        Some(true) => Some(LevelFilter::INFO),
        Some(false) => None,
    }
}

/// Installs a `fmt` subscriber filtered by `RUST_LOG` (`target=level,...`; default `level`).
/// Does nothing if the program already installed one.
pub(crate) fn install(level: LevelFilter) {
    let default = || Targets::new().with_default(level);
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match spec.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(error) => (default(), Some((spec, error))),
        },
        _ => (default(), None),
    };
    let installed = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_ansi(ansi()))
        .with(filter)
        .try_init()
        .is_ok();
    if let (true, Some((spec, error))) = (installed, bad) {
        tracing::warn!(RUST_LOG = %spec, %error, %level, "ignoring an invalid RUST_LOG");
    }
}

/// Colours only on a terminal, and never with `NO_COLOR` set.
fn ansi() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_reach_stderr_unless_logging_is_turned_off() {
        assert_eq!(default_level(None), Some(LevelFilter::WARN));
        assert_eq!(default_level(Some(true)), Some(LevelFilter::INFO));
        assert_eq!(default_level(Some(false)), None);
    }
}
