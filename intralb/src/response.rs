//! The answers intralb gives on its own, without the router.

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};

/// The router's body, or one of intralb's own short text answers.
pub(crate) type ResponseBody<B> = Either<B, Full<Bytes>>;

/// Why intralb answered a request itself.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Answer {
    /// Every worker busy, the queue full: `503` at once.
    Shed,
    /// The deadline passed in the queue: `503`; the handler never ran.
    ExpiredInQueue,
    /// Shutting down: `503`, and the connection closes.
    ShuttingDown,
    /// The deadline passed while the handler ran: `504`; the handler was cancelled.
    TimedOut,
    /// The handler panicked or the router failed: `500`.
    Failed,
}

impl Answer {
    pub(crate) fn into_response<B>(self) -> Response<ResponseBody<B>> {
        let (status, message): (StatusCode, &'static str) = match self {
            Answer::Shed => (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded: every worker is busy and the queue is full; retry later\n",
            ),
            Answer::ExpiredInQueue => (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded: the request waited in the queue past its deadline; retry later\n",
            ),
            Answer::ShuttingDown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting down; retry on another instance\n",
            ),
            Answer::TimedOut => (
                StatusCode::GATEWAY_TIMEOUT,
                "the request did not finish before its deadline\n",
            ),
            Answer::Failed => (StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n"),
        };
        let mut response = text(status, Bytes::from_static(message.as_bytes()));
        let headers = response.headers_mut();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if matches!(self, Answer::ShuttingDown) {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// A short plain-text answer.
pub(crate) fn text<B>(status: StatusCode, body: Bytes) -> Response<ResponseBody<B>> {
    let mut response = Response::new(Either::Right(Full::new(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
