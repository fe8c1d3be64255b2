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
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::Instrument;

use crate::body::{Bodies, RequestBody};
use crate::catch_unwind::{panic_message, CatchUnwind};
use crate::connection::Activity;
use crate::layer::Admission;
use crate::outcome::Outcome;
use crate::pool::{Pool, Rejected};
use crate::probes::Probes;
use crate::response::{answer, layered, ResponseBody};
use crate::router::RouterService;
use crate::send::{Sending, Watched};

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) pool: Arc<Pool>,
    pub(crate) timeout: Duration,
    pub(crate) probes: Probes,
    /// Fired at the shutdown deadline: requests still running are answered `503`.
    pub(crate) cut: Cut,
    /// Reads request bodies before admission.
    pub(crate) bodies: Bodies,
}

impl Shared {
    /// Set when a shutdown begins: readiness answers 503 and connections are asked to close.
    pub(crate) fn is_draining(&self) -> bool {
        self.pool.is_draining()
    }
}

/// The shutdown deadline, as a signal every running request waits on.
#[derive(Default)]
pub(crate) struct Cut {
    fired: AtomicBool,
    notify: Notify,
}

impl Cut {
    pub(crate) fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Resolves once fired. Registers only when polled, so a request that finishes on its first
    /// poll never touches the shared list.
    async fn fired(&self) {
        // Created before the check: a `fire` in between still wakes it.
        let notified = self.notify.notified();
        if self.fired.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}

/// The hyper service each connection runs: the balancer in front of a clone of the router.
pub(crate) struct Dispatch<S> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) router: S,
    /// What the connection's watchdog sees of its requests.
    pub(crate) activity: Arc<Activity>,
    /// The outer layers around admission, if any were given (see `layer.rs`).
    pub(crate) outer: Option<Admission>,
}

impl<S: RouterService> hyper::service::Service<Request<Incoming>> for Dispatch<S> {
    type Response = Response<ResponseBody<S::Body>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let router = self.router.clone();
        let running = self.activity.start();
        let outer = self.outer.clone();
        Box::pin(async move {
            let response = dispatch(&shared, router, outer, req).await;
            drop(running);
            Ok(response)
        })
    }
}

async fn dispatch<S: RouterService>(
    shared: &Shared,
    router: S,
    outer: Option<Admission>,
    req: Request<Incoming>,
) -> Response<ResponseBody<S::Body>> {
    if let Some(answer) = shared.probes.answer(&shared.pool, req.uri().path()) {
        return answer;
    }
    let http1 = req.version() < Version::HTTP_2;
    let mut response = match outer {
        None => run(shared, router, req).await,
        // The body is read first, as without layers; admission runs inside the layers.
        Some(outer) => match read_body(shared, req).await {
            Ok(req) => layered(outer.run(req).await),
            Err(answer) => answer,
        },
    };
    // While draining, HTTP/1 clients are told to reconnect (elsewhere); HTTP/2 gets GOAWAY.
    if http1 && shared.is_draining() {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The body read, then admission.
async fn run<S: RouterService>(
    shared: &Shared,
    router: S,
    req: Request<Incoming>,
) -> Response<ResponseBody<S::Body>> {
    match read_body(shared, req).await {
        Ok(req) => admit(shared, router, req).await,
        Err(answer) => answer,
    }
}

/// A small body read whole before the request may take a queue place or a worker; `Err` with
/// the answer when it cannot be.
async fn read_body<B>(
    shared: &Shared,
    req: Request<Incoming>,
) -> Result<Request<RequestBody>, Response<ResponseBody<B>>> {
    let pool = &shared.pool;
    let counters = &pool.counters;
    let (parts, body) = req.into_parts();
    // A request still sending its body when the drain begins has not arrived: refused.
    let body = if http_body::Body::is_end_stream(&body) {
        // No body (a GET): nothing to read, no future to build.
        Ok(RequestBody::empty())
    } else {
        let mut draining = pool.draining();
        tokio::select! {
            biased;
            body = shared.bodies.read(body) => body,
            _ = draining.wait_for(|draining| *draining) => Err(Outcome::ShuttingDown),
        }
    };
    match body {
        Ok(body) => Ok(Request::from_parts(parts, body)),
        Err(outcome) => {
            counters.count(outcome);
            Err(answer(outcome))
        }
    }
}

/// Admission, a worker, and the router under the deadline and the panic guard.
pub(crate) async fn admit<S: RouterService>(
    shared: &Shared,
    mut router: S,
    mut req: Request<RequestBody>,
) -> Response<ResponseBody<S::Body>> {
    let pool = &shared.pool;
    let counters = &pool.counters;
    // The request has arrived: its deadline starts.
    let arrival = Instant::now();
    let deadline = arrival + shared.timeout;

    let hold = match pool.acquire(deadline).await {
        Ok(hold) => hold,
        Err(rejected) => {
            let outcome = match rejected {
                Rejected::Shed => Outcome::Shed,
                Rejected::Expired => Outcome::ExpiredInQueue,
                Rejected::Closed => Outcome::ShuttingDown,
                Rejected::Unavailable => Outcome::Unavailable,
            };
            counters.count(outcome);
            return answer(outcome);
        }
    };
    let started = Instant::now();
    let queue_wait = started - arrival;
    let worker = hold.id();
    let span = tracing::info_span!(
        "request",
        %worker,
        method = %req.method(),
        path = req.uri().path(),
        queue_wait_us = queue_wait.as_micros() as u64,
        status = tracing::field::Empty,
    );
    req.extensions_mut().insert(worker);
    // The request holds its worker too: whatever keeps it (and so can reach the worker's
    // resources) keeps the worker busy.
    req.extensions_mut().insert(hold.clone());

    let run = async move {
        poll_fn(|cx| router.poll_ready(cx)).await?;
        router.call(req).await
    };
    // The router's future is dropped (cancelled) at the deadline, or at the shutdown deadline.
    let guarded = tokio::time::timeout_at(deadline, CatchUnwind::new(run));
    let guarded = async {
        tokio::select! {
            biased;
            outcome = guarded => Some(outcome),
            () = shared.cut.fired() => None,
        }
    };
    // Without a subscriber that wants the span, skip the wrapper: one move less of a large future.
    let outcome = if span.is_disabled() {
        guarded.await
    } else {
        guarded.instrument(span.clone()).await
    };
    let finished = Instant::now();
    let service_time = finished - started;
    let response = match outcome {
        None => {
            counters.count(Outcome::ShuttingDown);
            tracing::debug!(parent: &span, "shutdown deadline passed while running; handler cancelled");
            answer(Outcome::ShuttingDown)
        }
        Some(Ok(Ok(Ok(response)))) => {
            counters.count(Outcome::Served);
            // On HTTP/2, watched by its stream's task; HTTP/1 is watched at the socket.
            let sending = Sending::stream();
            response.map(|body| ResponseBody::Left(Watched::new(body, sending)))
        }
        Some(Ok(Ok(Err(error)))) => {
            counters.count(Outcome::Failed);
            let error = error.into();
            tracing::error!(parent: &span, %worker, %error, "the router returned an error");
            answer(Outcome::Failed)
        }
        Some(Ok(Err(panic))) => {
            counters.count(Outcome::Panicked);
            hold.worker().poison();
            tracing::error!(
                parent: &span,
                %worker,
                panic = panic_message(&*panic),
                "handler panicked; answering 500 and re-initialising the worker's resources"
            );
            answer(Outcome::Panicked)
        }
        Some(Err(_deadline)) => {
            counters.count(Outcome::TimedOut);
            tracing::debug!(parent: &span, "deadline passed while running; handler cancelled");
            answer(Outcome::TimedOut)
        }
    };
    hold.release_at(finished);
    counters.record(queue_wait, service_time);
    span.record("status", response.status().as_u16());
    response
}
