//! One request's way through the balancer: admission, a worker, the deadline, panic isolation.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, CONNECTION};
use http::{Request, Response, Version};
use hyper::body::Incoming;
use tokio::time::Instant;
use tracing::Instrument;

use crate::catch_unwind::{panic_message, CatchUnwind};
use crate::pool::{Pool, Rejected};
use crate::probes::Probes;
use crate::response::{Answer, ResponseBody};
use crate::router::RouterService;
use crate::stats::Outcome;

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) pool: Arc<Pool>,
    pub(crate) timeout: Duration,
    pub(crate) probes: Probes,
    /// Set when a shutdown begins: readiness answers 503 and connections are asked to close.
    pub(crate) draining: AtomicBool,
}

impl Shared {
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// The hyper service each connection runs: the balancer in front of a clone of the router.
pub(crate) struct Dispatch<S> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) router: S,
}

impl<S: RouterService> hyper::service::Service<Request<Incoming>> for Dispatch<S> {
    type Response = Response<ResponseBody<S::Body>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let router = self.router.clone();
        Box::pin(async move { Ok(dispatch(&shared, router, req).await) })
    }
}

async fn dispatch<S: RouterService>(
    shared: &Shared,
    router: S,
    req: Request<Incoming>,
) -> Response<ResponseBody<S::Body>> {
    if let Some(answer) = shared.probes.answer(shared, req.uri().path()) {
        return answer;
    }
    let http1 = req.version() < Version::HTTP_2;
    let mut response = run(shared, router, req).await;
    // While draining, HTTP/1 clients are told to reconnect (elsewhere); HTTP/2 gets GOAWAY.
    if http1 && shared.is_draining() {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Admission, a worker, and the router under the deadline and the panic guard.
async fn run<S: RouterService>(
    shared: &Shared,
    mut router: S,
    mut req: Request<Incoming>,
) -> Response<ResponseBody<S::Body>> {
    let arrival = Instant::now();
    let deadline = arrival + shared.timeout;
    let pool = &shared.pool;
    let counters = &pool.counters;

    let mut lease = match pool.acquire(deadline).await {
        Ok(lease) => lease,
        Err(Rejected::Shed) => {
            counters.count(Outcome::Shed);
            return Answer::Shed.into_response();
        }
        Err(Rejected::Expired) => {
            counters.count(Outcome::ExpiredInQueue);
            return Answer::ExpiredInQueue.into_response();
        }
        Err(Rejected::Closed) => return Answer::ShuttingDown.into_response(),
    };
    let started = Instant::now();
    let queue_wait = started - arrival;
    let worker = lease.id();
    let span = tracing::info_span!(
        "request",
        %worker,
        method = %req.method(),
        path = req.uri().path(),
        queue_wait_us = queue_wait.as_micros() as u64,
        status = tracing::field::Empty,
    );
    req.extensions_mut().insert(worker);
    req.extensions_mut().insert(lease.context().clone());

    let run = async move {
        poll_fn(|cx| router.poll_ready(cx)).await?;
        router.call(req).await
    };
    // The router's future is dropped (cancelled) at the deadline, and always before the worker
    // is given back, so its `Db<T>`s are released first.
    let guarded = tokio::time::timeout_at(deadline, CatchUnwind::new(run));
    // Without a subscriber that wants the span, skip the wrapper: one move less of a large future.
    let outcome = if span.is_disabled() {
        guarded.await
    } else {
        guarded.instrument(span.clone()).await
    };
    let finished = Instant::now();
    let service_time = finished - started;
    let response = match outcome {
        Ok(Ok(Ok(response))) => {
            counters.count(Outcome::Served);
            response.map(ResponseBody::Left)
        }
        Ok(Ok(Err(error))) => {
            counters.count(Outcome::Failed);
            let error = error.into();
            tracing::error!(parent: &span, %worker, %error, "the router returned an error");
            Answer::Failed.into_response()
        }
        Ok(Err(panic)) => {
            counters.count(Outcome::Panicked);
            lease.poison();
            tracing::error!(
                parent: &span,
                %worker,
                panic = panic_message(&*panic),
                "handler panicked; answering 500 and re-initialising the worker's resources"
            );
            Answer::Failed.into_response()
        }
        Err(_deadline) => {
            counters.count(Outcome::TimedOut);
            tracing::debug!(parent: &span, "deadline passed while running; handler cancelled");
            Answer::TimedOut.into_response()
        }
    };
    lease.release_at(finished);
    counters.record(queue_wait, service_time);
    span.record("status", response.status().as_u16());
    response
}
