//! Outer layers: tower middleware in front of admission ([`Builder::layer`](crate::Builder::layer),
//! `#[balanced(layer = ...)]`), so that it also wraps intralb's own answers (`503`, `504`) and
//! can refuse a request before it takes a queue place.
//!
//! A request's path with outer layers: intralb reads the body (as without them), then the outer
//! layers run, outermost first, then [`Admission`]: a queue place, a worker, the router under
//! the deadline. Without any outer layer none of this exists: the connection calls admission
//! directly, with nothing boxed.
//!
//! The layers see axum's request and response types (`axum::body::Body` both ways), so that
//! axum's own middleware (`from_fn`, `map_response`) works there as well as tower-http's. The
//! request body is the [`RequestBody`] intralb read, in axum's box; the router gets it back in
//! a [`RequestBody`] (boxed once more, which only the layered path pays).
//!
//! Every layer boundary is type-erased: the service a layer wraps is an [`Admission`], whatever
//! came before it, and what the layer makes of it is erased into an [`Admission`] again. The
//! erased service is cloned for each request (as axum's `Router` does with its routes), so a
//! layer's service needs `Clone + Send + Sync`.

use std::convert::Infallible;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::RequestBody;
use crate::cast::cast;
use crate::error::BoxError;
use crate::outcome::Outcome;
use crate::response::{answer, AdmissionBody};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Call = dyn Fn(Request<LayerBody>) -> BoxFuture<Response<AdmissionBody>> + Send + Sync;

/// The request body outer layers see: axum's, so that axum's middleware works there.
type LayerBody = axum_core::body::Body;

/// The service an outer layer wraps: intralb's admission (a queue place, a worker, the
/// deadline) in front of the router, with the outer layers added before this one.
///
/// It takes a `Request` of any [`http_body::Body`](https://docs.rs/http-body/1/http_body/trait.Body.html) of [`Bytes`](https://docs.rs/bytes/1/bytes/struct.Bytes.html) (the outermost layer is given
/// axum's `Request`, an `axum::body::Body` holding the body intralb already read), and the
/// router receives it as a [`RequestBody`]. It answers with axum's `Response` (an
/// `axum::body::Body`), intralb's own `503`/`504` included, and never fails: an error of an
/// outer layer is answered `500` and logged.
///
/// You never build one; you name it in the bounds of a layer (`impl Layer<Admission>`).
///
/// # Examples
///
/// A layer that answers `401` before a request may take a queue place:
///
/// ```
/// use axum::extract::Request;
/// use axum::http::StatusCode;
/// use axum::middleware::{from_fn, Next};
/// use axum::response::{IntoResponse, Response};
///
/// async fn require_token(req: Request, next: Next) -> Response {
///     if req.headers().contains_key("x-token") {
///         next.run(req).await // admission, then the router
///     } else {
///         StatusCode::UNAUTHORIZED.into_response()
///     }
/// }
///
/// let builder = intralb::Balancer::builder().layer(from_fn(require_token));
/// # drop(builder);
/// ```
#[derive(Clone)]
pub struct Admission {
    call: Arc<Call>,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission").finish_non_exhaustive()
    }
}

impl Admission {
    /// Admission itself: `call` takes a worker and runs the router.
    pub(crate) fn new<F, Fut>(call: F) -> Self
    where
        F: Fn(Request<RequestBody>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<AdmissionBody>> + Send + 'static,
    {
        Admission::erased(move |req: Request<LayerBody>| call(req.map(RequestBody::from_body)))
    }

    fn erased<F, Fut>(call: F) -> Self
    where
        F: Fn(Request<LayerBody>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<AdmissionBody>> + Send + 'static,
    {
        Admission {
            call: Arc::new(move |req| Box::pin(call(req))),
        }
    }

    /// A layer's service, erased: cloned for each request, made ready, called; its error is
    /// answered `500`.
    fn erase<T, B>(service: T) -> Self
    where
        T: Service<Request<LayerBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
        T::Future: Send + 'static,
        T::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Admission::erased(move |req| {
            let mut service = service.clone();
            async move {
                let ready: Result<(), BoxError> =
                    poll_fn(|cx| service.poll_ready(cx).map_err(Into::into)).await;
                let response = match ready {
                    Ok(()) => service.call(req).await.map_err(Into::into),
                    Err(error) => Err(error),
                };
                match response {
                    Ok(response) => response.map(AdmissionBody::new),
                    Err(error) => {
                        let error: BoxError = error;
                        tracing::error!(%error, "an outer layer returned an error");
                        answer::<http_body_util::Empty<Bytes>>(Outcome::Failed)
                            .map(AdmissionBody::new)
                    }
                }
            }
        })
    }

    /// Runs the request through what this admission stands for.
    pub(crate) fn run(&self, req: Request<RequestBody>) -> BoxFuture<Response<AdmissionBody>> {
        (self.call)(req.map(LayerBody::new))
    }
}

impl<B> Service<Request<B>> for Admission
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<AdmissionBody>;
    type Error = Infallible;
    type Future = AdmissionFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Admission waits for a worker inside the call, under the request's deadline.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> AdmissionFuture {
        // Not boxed again if it is axum's body already.
        AdmissionFuture((self.call)(req.map(LayerBody::new)))
    }
}

/// The future of [`Admission`]'s answer, which never fails: what a hand-written outer layer's
/// service gets from its inner service.
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use std::task::{Context, Poll};
///
/// use axum::extract::Request;
/// use intralb::{Admission, AdmissionFuture};
/// use tower_service::Service;
///
/// /// Counts the requests that reach admission.
/// #[derive(Clone)]
/// struct Counted(Admission, std::sync::Arc<std::sync::atomic::AtomicU64>);
///
/// impl Service<Request> for Counted {
///     type Response = <Admission as Service<Request>>::Response;
///     type Error = Infallible;
///     type Future = AdmissionFuture;
///
///     fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
///         Service::<Request>::poll_ready(&mut self.0, cx)
///     }
///
///     fn call(&mut self, req: Request) -> AdmissionFuture {
///         self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         self.0.call(req)
///     }
/// }
/// ```
pub struct AdmissionFuture(BoxFuture<Response<AdmissionBody>>);

impl fmt::Debug for AdmissionFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmissionFuture").finish_non_exhaustive()
    }
}

impl Future for AdmissionFuture {
    type Output = Result<Response<AdmissionBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx).map(Ok)
    }
}

type Wrap = dyn Fn(Admission) -> Admission + Send + Sync;

/// The outer layers given to a [`Builder`](crate::Builder), first given innermost.
#[derive(Clone, Default)]
pub(crate) struct Layers(Vec<Arc<Wrap>>);

impl fmt::Debug for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} outer layer(s)", self.0.len())
    }
}

impl Layers {
    pub(crate) fn push<L, B>(&mut self, layer: L)
    where
        L: Layer<Admission> + Send + Sync + 'static,
        L::Service:
            Service<Request<LayerBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request<LayerBody>>>::Future: Send + 'static,
        <L::Service as Service<Request<LayerBody>>>::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // Already boxed: not boxed again.
        let wrap = match cast::<L, OuterLayer>(layer) {
            Ok(outer) => outer.wrap,
            Err(layer) => Arc::new(move |inner| Admission::erase(layer.layer(inner))),
        };
        self.0.push(wrap);
    }

    /// The outermost service, or `None` without outer layers (admission is then called
    /// directly).
    pub(crate) fn wrap(&self, admission: impl FnOnce() -> Admission) -> Option<Admission> {
        if self.0.is_empty() {
            return None;
        }
        Some(self.0.iter().fold(admission(), |inner, wrap| wrap(inner)))
    }
}

/// An outer layer, boxed: for a `#[balanced(layer = PATH)]` function whose layer's type cannot
/// be written (a `ServiceBuilder` stack, `middleware::from_fn` of an `async fn`).
///
/// It accepts what [`Builder::layer`](crate::Builder::layer) accepts.
///
/// # Examples
///
/// ```
/// use axum::extract::Request;
/// use axum::middleware::{from_fn, Next};
/// use axum::response::Response;
/// use intralb::OuterLayer;
///
/// async fn request_id(mut req: Request, next: Next) -> Response {
///     req.headers_mut().insert("x-request-id", "42".parse().unwrap());
///     next.run(req).await
/// }
///
/// fn outer() -> OuterLayer {
///     OuterLayer::new(from_fn(request_id))
/// }
///
/// #[intralb::balanced(layer = outer)]
/// fn app() -> axum::Router {
///     axum::Router::new()
/// }
/// ```
#[derive(Clone)]
pub struct OuterLayer {
    wrap: Arc<Wrap>,
}

impl fmt::Debug for OuterLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OuterLayer").finish_non_exhaustive()
    }
}

impl OuterLayer {
    /// Boxes `layer`.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::http::HeaderValue;
    /// use axum::middleware::map_response;
    /// use axum::response::Response;
    /// use intralb::OuterLayer;
    ///
    /// async fn stamp(mut res: Response) -> Response {
    ///     res.headers_mut().insert("server", HeaderValue::from_static("intralb"));
    ///     res
    /// }
    ///
    /// let layer = OuterLayer::new(map_response(stamp));
    /// let builder = intralb::Balancer::builder().layer(layer);
    /// # drop(builder);
    /// ```
    pub fn new<L, B>(layer: L) -> Self
    where
        L: Layer<Admission> + Send + Sync + 'static,
        L::Service:
            Service<Request<LayerBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request<LayerBody>>>::Future: Send + 'static,
        <L::Service as Service<Request<LayerBody>>>::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        OuterLayer {
            wrap: Arc::new(move |inner| Admission::erase(layer.layer(inner))),
        }
    }
}

impl Layer<Admission> for OuterLayer {
    type Service = Admission;

    fn layer(&self, inner: Admission) -> Admission {
        (self.wrap)(inner)
    }
}
