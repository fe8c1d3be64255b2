//! [`Outcome`]: how a request was answered, the one fact that the counters, the metrics' labels
//! and intralb's own responses all derive from.

use http::StatusCode;

/// How intralb answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The router answered (any status it chose).
    Served,
    /// Every worker busy, the queue full: `503` at once.
    Shed,
    /// The deadline passed in the queue: `503`; the handler never ran.
    ExpiredInQueue,
    /// No worker exists and every one starting is failing: `503` at once.
    Unavailable,
    /// The deadline passed while the handler ran: `504`; the handler was cancelled.
    TimedOut,
    /// The handler panicked: `500`.
    Panicked,
    /// The router returned an error: `500`.
    Failed,
    /// Refused (or cancelled at the deadline) because the server is shutting down: `503`, and
    /// the connection closes.
    ShuttingDown,
    /// The client did not send its body within `body_timeout`: `408`, and the connection closes.
    BodyTimedOut,
    /// The body could not be read (the client reset it, or sent invalid framing): `400`, and
    /// the connection closes.
    BodyFailed,
}

impl Outcome {
    pub(crate) const ALL: [Outcome; 10] = [
        Outcome::Served,
        Outcome::Shed,
        Outcome::ExpiredInQueue,
        Outcome::Unavailable,
        Outcome::TimedOut,
        Outcome::Panicked,
        Outcome::Failed,
        Outcome::ShuttingDown,
        Outcome::BodyTimedOut,
        Outcome::BodyFailed,
    ];

    /// The metrics label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Served => "served",
            Outcome::Shed => "shed",
            Outcome::ExpiredInQueue => "expired_in_queue",
            Outcome::Unavailable => "unavailable",
            Outcome::TimedOut => "timed_out",
            Outcome::Panicked => "panicked",
            Outcome::Failed => "failed",
            Outcome::ShuttingDown => "shutting_down",
            Outcome::BodyTimedOut => "body_timed_out",
            Outcome::BodyFailed => "body_failed",
        }
    }

    /// Whether the connection closes after this answer.
    pub(crate) fn closes_connection(self) -> bool {
        matches!(
            self,
            Outcome::ShuttingDown | Outcome::BodyTimedOut | Outcome::BodyFailed
        )
    }

    /// The status and body of intralb's own answer (`Served` is the router's).
    pub(crate) fn answer(self) -> (StatusCode, &'static str) {
        match self {
            Outcome::Served => (StatusCode::OK, ""),
            Outcome::Shed => (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded: every worker is busy and the queue is full; retry later\n",
            ),
            Outcome::ExpiredInQueue => (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded: the request waited in the queue past its deadline; retry later\n",
            ),
            Outcome::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable: no worker could start (its resources failed to initialise); retry later\n",
            ),
            Outcome::ShuttingDown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting down; retry on another instance\n",
            ),
            Outcome::TimedOut => (
                StatusCode::GATEWAY_TIMEOUT,
                "the request did not finish before its deadline\n",
            ),
            Outcome::BodyTimedOut => (
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive within body_timeout\n",
            ),
            Outcome::BodyFailed => (StatusCode::BAD_REQUEST, "the request body could not be read\n"),
            Outcome::Panicked | Outcome::Failed => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n")
            }
        }
    }
}
