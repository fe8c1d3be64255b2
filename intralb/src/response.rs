//! The answers intralb gives on its own, without the router.

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};

use crate::outcome::Outcome;
use crate::queue::jitter;
use crate::send::Watched;

/// The router's body (watched for `send_timeout`), or one of intralb's own short text answers.
pub(crate) type ResponseBody<B> = Either<Watched<B>, Full<Bytes>>;

/// intralb's own answer for `outcome`: `Retry-After` on every `503`, `Connection: close` when
/// shutting down or when the body could not be read.
pub(crate) fn answer<B>(outcome: Outcome) -> Response<ResponseBody<B>> {
    refuse(outcome, None)
}

/// [`answer`], with the `Retry-After` of a `503` in seconds; without one, one or two seconds at
/// random, so that clients refused together do not all come back together.
pub(crate) fn refuse<B>(outcome: Outcome, retry_after: Option<u64>) -> Response<ResponseBody<B>> {
    let (status, message) = outcome.answer();
    let mut response = text(status, Bytes::from_static(message.as_bytes()));
    let headers = response.headers_mut();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let seconds = retry_after.unwrap_or_else(|| 1 + jitter(1));
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    if outcome.closes_connection() {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
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
