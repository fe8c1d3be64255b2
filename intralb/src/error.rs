//! The crate's error type: why `serve` could not start or had to stop.

use std::error::Error as StdError;
use std::fmt;
use std::net::SocketAddr;

/// A boxed error, the currency of initializers and routers.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// `Result<T, intralb::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the balancer could not start, or why it stopped.
///
/// `Debug` prints the same sentence as `Display`, followed by the chain of causes, so
/// `fn main() -> intralb::Result<()>` reports a failure the way a user reads it:
///
/// ```text
/// Error: INTRALB_MAX_CONCURRENT="abc" is not a valid max_concurrent: invalid digit found in string
/// ```
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<BoxError>,
}

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A configuration value (from code or from an `INTRALB_*` variable) is invalid.
    Config,
    /// The listening address could not be bound.
    Bind,
    /// A `#[db_init]` initializer failed while the first workers were starting.
    Init,
    /// A `#[setup]` step (or one given to `Builder::setup`) failed or panicked.
    Setup,
    /// Two initializers produce the same type, so `Db<T>` would be ambiguous.
    DuplicateInit,
    /// An I/O error while serving.
    Io,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    pub(crate) fn bind(addr: SocketAddr, source: std::io::Error) -> Self {
        Error::new(ErrorKind::Bind, format!("could not listen on {addr}")).with_source(source)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        let mut source = self
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static));
        while let Some(cause) = source {
            write!(f, "\n  caused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_reads_as_a_sentence_with_its_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        let err = Error::bind(([127, 0, 0, 1], 80).into(), io);
        assert_eq!(
            format!("{err:?}"),
            "could not listen on 127.0.0.1:80\n  caused by: address in use"
        );
        assert_eq!(err.to_string(), "could not listen on 127.0.0.1:80");
        assert_eq!(err.kind(), ErrorKind::Bind);
    }
}
