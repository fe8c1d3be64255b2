//! The answers intralb gives on its own, without the router.

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};

use crate::activity::Running;
use crate::error::BoxError;
use crate::outcome::Outcome;
use crate::queue::jitter;
use crate::send::{Sending, Watched};

/// The response body of [`Admission`](crate::Admission), and of every response that passed an
/// outer layer: axum's body, which boxes any other.
pub(crate) type AdmissionBody = axum_core::body::Body;

/// The router's body (watched for `send_timeout`), one of intralb's own short text answers, or,
/// with outer layers, what they answered (boxed, and watched too).
pub(crate) type ResponseBody<B> = Either<Watched<B>, Either<Full<Bytes>, Watched<AdmissionBody>>>;

/// A response as an [`Admission`](crate::Admission) answers it: the body boxed.
pub(crate) fn boxed<B>(response: Response<ResponseBody<B>>) -> Response<AdmissionBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    response.map(AdmissionBody::new)
}

/// A response that went through the outer layers; `running` counts its request as in flight
/// on its connection until the body is sent.
pub(crate) fn layered<B>(
    response: Response<AdmissionBody>,
    running: Running,
) -> Response<ResponseBody<B>> {
    let sending = Sending::stream();
    response.map(|body| Either::Right(Either::Right(Watched::new(body, sending, Some(running)))))
}

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
    let mut response = Response::new(Either::Right(Either::Left(Full::new(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
