//! `log = true`: a default tracing subscriber, for programs that have none.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs a `fmt` subscriber filtered by `RUST_LOG` (`target=level,...`; default `info`).
/// Does nothing if the program already installed one.
pub(crate) fn install() {
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match spec.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(error) => (info(), Some((spec, error))),
        },
        _ => (info(), None),
    };
    let installed = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_ansi(ansi()))
        .with(filter)
        .try_init()
        .is_ok();
    if let (true, Some((spec, error))) = (installed, bad) {
        tracing::warn!(RUST_LOG = %spec, %error, "ignoring an invalid RUST_LOG; logging at info");
    }
}

fn info() -> Targets {
    Targets::new().with_default(LevelFilter::INFO)
}

/// Colours only on a terminal, and never with `NO_COLOR` set.
fn ansi() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
