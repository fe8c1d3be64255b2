//! What intralb can serve: any tower `Service` over `http::Request`, such as `axum::Router`.

use std::future::Future;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::body::RequestBody;
use crate::error::BoxError;

/// A router intralb can put workers in front of.
///
/// Implemented for every `Clone + Send` tower [`Service`](https://docs.rs/tower-service/0.3/tower_service/trait.Service.html) over `Request<`[`RequestBody`]`>`
/// whose response body is an [`http_body::Body`](https://docs.rs/http-body/1/http_body/trait.Body.html) of [`Bytes`](https://docs.rs/bytes/1/bytes/struct.Bytes.html): `axum::Router` as it is, and
/// anything built with `tower::ServiceBuilder` or `Router::layer`. Its middleware runs inside
/// the worker, with the worker's resources available. You never implement it yourself.
///
/// A request is handed to the service once it has its worker. If the service is not ready
/// then (its `poll_ready` is pending: a `tower::buffer::Buffer` that is full, a
/// `ConcurrencyLimit` inside the router), the request waits for it on that worker, under its
/// deadline; an error from `poll_ready` is answered `500`, as an error from the service.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a router intralb can serve",
    label = "not a tower `Service` over `Request<RequestBody>` (a `Router<S>` still needs `.with_state(...)`)",
    note = "an axum `Router<S>` with a state must be given it first: return `Router` (that is, `Router<()>`) and end the function with `.with_state(state)`",
    note = "intralb serves any `Clone + Send + 'static` tower `Service<http::Request<intralb::RequestBody>>` whose response body is an `http_body::Body<Data = Bytes>`"
)]
pub trait RouterService: Clone + Send + 'static {
    /// The response body.
    type Body: Body<Data = Bytes, Error = Self::BodyError> + Send + 'static;
    /// The response body's error.
    type BodyError: Into<BoxError>;
    /// The service's error (answered `500` and logged).
    type Error: Into<BoxError>;
    /// The service's future.
    type Future: Future<Output = Result<Response<Self::Body>, Self::Error>> + Send + 'static;

    #[doc(hidden)]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>>;

    #[doc(hidden)]
    fn call(&mut self, req: Request<RequestBody>) -> Self::Future;
}

impl<S, B> RouterService for S
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Body = B;
    type BodyError = B::Error;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::poll_ready(self, cx)
    }

    fn call(&mut self, req: Request<RequestBody>) -> Self::Future {
        Service::call(self, req)
    }
}
