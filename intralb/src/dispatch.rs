//! One request's way through the balancer, up to its worker: probes, the body, the priority,
//! admission. Running it on the worker is `serving.rs`.
//!
//! The fast path (a request without a body, and an idle worker) builds no `async` state
//! machine and allocates no future: it leases the worker and hands hyper a [`Serving`] future,
//! inline in a [`Dispatched`] (hyper keeps one per connection). Everything else (reading a
//! body, waiting in the queue) runs in a boxed `async` block that ends in the same [`Serving`].
//! With outer layers (`layer.rs`), the body is read, then the layers run, then admission
//! ([`admit`]) inside them.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{Request, Response, Version};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::activity::{Activity, Running};
use crate::body::RequestBody;
use crate::catch_unwind::panic_message;
use crate::layer::Admission;
use crate::outcome::Outcome;
use crate::pool::Rejected;
use crate::priority::{Priority, PriorityFn};
use crate::response::{answer, layered, refuse, ResponseBody};
use crate::router::RouterService;
use crate::serving::{Arrived, Lease, Serving};
use crate::shared::Shared;

/// The hyper service each connection runs: the balancer in front of a clone of the router.
pub(crate) struct Dispatch<S> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) router: S,
    /// What the connection's watchdog sees of its requests.
    pub(crate) activity: Arc<Activity>,
    /// The outer layers around admission, if any were given (see `layer.rs`).
    pub(crate) outer: Option<Admission>,
}

type Answer<S> = Response<ResponseBody<<S as RouterService>::Body>>;

/// Any way but the fast path, boxed.
type Boxed<S> = Pin<Box<dyn Future<Output = Result<Answer<S>, Infallible>> + Send>>;

pin_project_lite::pin_project! {
    /// What [`Dispatch`] hands hyper for a request: the fast path inline, the rest boxed.
    #[project = DispatchedProj]
    pub(crate) enum Dispatched<S>
    where
        S: RouterService,
    {
        Fast { #[pin] serving: Serving<S> },
        Slow { future: Boxed<S> },
        Answered { answer: Option<Answer<S>> },
    }
}

impl<S: RouterService> Future for Dispatched<S> {
    type Output = Result<Answer<S>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            DispatchedProj::Fast { serving } => serving.poll(cx),
            DispatchedProj::Slow { future } => future.as_mut().poll(cx),
            DispatchedProj::Answered { answer } => {
                Poll::Ready(Ok(answer.take().expect("not polled after it ended")))
            }
        }
    }
}

impl<S: RouterService> Dispatched<S> {
    fn slow(future: impl Future<Output = Result<Answer<S>, Infallible>> + Send + 'static) -> Self {
        Dispatched::Slow {
            future: Box::pin(future),
        }
    }

    fn answered(answer: Answer<S>) -> Self {
        Dispatched::Answered {
            answer: Some(answer),
        }
    }
}

impl<S: RouterService> hyper::service::Service<Request<Incoming>> for Dispatch<S> {
    type Response = Answer<S>;
    type Error = Infallible;
    type Future = Dispatched<S>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        // Counted as running until its response is sent (or intralb's own answer is ready).
        let running = self.activity.start(req.version());
        let shared = &self.shared;
        if let Some(answer) = shared.probes.answer(&shared.pool, req.uri().path()) {
            return Dispatched::answered(answer);
        }
        if let Some(outer) = &self.outer {
            return Dispatched::slow(through_layers(
                Arc::clone(shared),
                outer.clone(),
                req,
                running,
            ));
        }
        let (parts, body) = req.into_parts();
        let arrived = arrived(shared, &parts, Some(running));
        let router = self.router.clone();
        if !http_body::Body::is_end_stream(&body) {
            // A body is read whole (up to `buffer_body`) before admission.
            return Dispatched::slow(slow(Arc::clone(shared), router, parts, Some(body), arrived));
        }
        let now = Instant::now();
        match shared.pool.acquire_now(arrived.priority, now) {
            Ok(Some(hold)) => {
                let req = Request::from_parts(parts, RequestBody::empty());
                let lease = Lease::new(hold, arrived, now, now);
                Dispatched::Fast {
                    serving: Serving::new(Arc::clone(shared), router, req, lease),
                }
            }
            Ok(None) => Dispatched::slow(slow(Arc::clone(shared), router, parts, None, arrived)),
            Err(rejected) => Dispatched::answered(refused(shared, &arrived, rejected)),
        }
    }
}

/// The slow path: reads the body if there is one, then waits for a worker, then serves.
async fn slow<S: RouterService>(
    shared: Arc<Shared>,
    router: S,
    parts: Parts,
    body: Option<Incoming>,
    arrived: Arrived,
) -> Result<Answer<S>, Infallible> {
    let body = match body {
        None => RequestBody::empty(),
        Some(body) => match read_body(&shared, body).await {
            Ok(body) => body,
            Err(outcome) => {
                shared.pool.counters.count(outcome, arrived.priority);
                return Ok(shared.conclude(arrived.http1, answer(outcome)));
            }
        },
    };
    Ok(admitted(shared, router, Request::from_parts(parts, body), arrived).await)
}

/// Admission, for the outer layers: the request (body read) takes a queue place and a worker,
/// and the router answers.
pub(crate) async fn admit<S: RouterService>(
    shared: Arc<Shared>,
    router: S,
    req: Request<RequestBody>,
) -> Answer<S> {
    let (parts, body) = req.into_parts();
    // The connection counts the request as running until the layers' answer is sent.
    let arrived = arrived(&shared, &parts, None);
    admitted(shared, router, Request::from_parts(parts, body), arrived).await
}

/// The request has arrived (its body read): its deadline starts; it waits for a worker if it
/// must, then the router runs.
async fn admitted<S: RouterService>(
    shared: Arc<Shared>,
    router: S,
    req: Request<RequestBody>,
    arrived: Arrived,
) -> Answer<S> {
    let arrival = Instant::now();
    let deadline = arrival + shared.timeout;
    let leased = match shared.pool.acquire_now(arrived.priority, arrival) {
        Ok(Some(hold)) => Ok((hold, arrival)),
        Ok(None) => shared
            .pool
            .wait(arrived.priority, arrival, deadline)
            .await
            .map(|hold| (hold, Instant::now())),
        Err(rejected) => Err(rejected),
    };
    match leased {
        Ok((hold, started)) => {
            let lease = Lease::new(hold, arrived, arrival, started);
            match Serving::new(shared, router, req, lease).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
        Err(rejected) => refused(&shared, &arrived, rejected),
    }
}

/// With outer layers: the body is read (as without them, so that a slow client holds no
/// queue place), then the layers run, and admission inside them.
async fn through_layers<B>(
    shared: Arc<Shared>,
    outer: Admission,
    req: Request<Incoming>,
    running: Running,
) -> Result<Response<ResponseBody<B>>, Infallible> {
    let http1 = req.version() < Version::HTTP_2;
    let (parts, body) = req.into_parts();
    let body = if http_body::Body::is_end_stream(&body) {
        RequestBody::empty()
    } else {
        match read_body(&shared, body).await {
            Ok(body) => body,
            Err(outcome) => {
                shared
                    .pool
                    .counters
                    .count(outcome, priority(&shared, &parts));
                return Ok(shared.conclude(http1, answer(outcome)));
            }
        }
    };
    let response = outer.run(Request::from_parts(parts, body)).await;
    Ok(shared.conclude(http1, layered(response, running)))
}

/// Reads a request's body before admission: a request still sending its body when the drain
/// begins has not arrived, and is refused.
async fn read_body(shared: &Shared, body: Incoming) -> Result<RequestBody, Outcome> {
    let mut draining = shared.pool.draining();
    tokio::select! {
        biased;
        body = shared.bodies.read(body) => body,
        _ = draining.wait_for(|draining| *draining) => Err(Outcome::ShuttingDown),
    }
}

/// The answer to a request that got no worker.
fn refused<B>(shared: &Shared, arrived: &Arrived, rejected: Rejected) -> Response<ResponseBody<B>> {
    let (outcome, retry_after) = match rejected {
        Rejected::Shed { retry_after } => (Outcome::Shed, Some(retry_after)),
        Rejected::Expired => (Outcome::ExpiredInQueue, None),
        Rejected::Closed => (Outcome::ShuttingDown, None),
        Rejected::Unavailable => (Outcome::Unavailable, None),
    };
    shared.pool.counters.count(outcome, arrived.priority);
    shared.conclude(arrived.http1, refuse(outcome, retry_after))
}

/// What is known of a request once its head is in.
#[inline]
fn arrived(shared: &Shared, parts: &Parts, running: Option<Running>) -> Arrived {
    Arrived {
        http1: parts.version < Version::HTTP_2,
        priority: priority(shared, parts),
        running,
    }
}

/// The request's priority: `Normal` without a priority function.
#[inline]
fn priority(shared: &Shared, parts: &Parts) -> Priority {
    shared
        .priority
        .map_or(Priority::Normal, |priority| priority_of(priority, parts))
}

/// The user's priority function, which must not take the connection down if it panics.
fn priority_of(priority: PriorityFn, parts: &Parts) -> Priority {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| priority(parts))).unwrap_or_else(
        |panic| {
            tracing::error!(
                panic = panic_message(&*panic),
                "the priority function panicked; the request is Normal"
            );
            Priority::Normal
        },
    )
}
