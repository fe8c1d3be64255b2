//! One request's way through the balancer, up to its worker: probes, the body, the priority,
//! admission. Running it on the worker is `serving.rs`.
//!
//! The fast path (a request without a body, and an idle worker) builds no `async` state
//! machine: it leases the worker and hands hyper a [`Serving`] future, boxed once. Everything
//! else (reading a body, waiting in the queue) runs in an `async` block that ends in the same
//! [`Serving`].

use std::convert::Infallible;
use std::future::{ready, Future};
use std::pin::Pin;
use std::sync::Arc;

use http::request::Parts;
use http::{Request, Response, Version};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::activity::Activity;
use crate::body::RequestBody;
use crate::catch_unwind::panic_message;
use crate::outcome::Outcome;
use crate::pool::Rejected;
use crate::priority::{Priority, PriorityFn};
use crate::response::{answer, refuse, ResponseBody};
use crate::router::RouterService;
use crate::serving::{Arrived, Lease, Serving};
use crate::shared::Shared;

/// The hyper service each connection runs: the balancer in front of a clone of the router.
pub(crate) struct Dispatch<S> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) router: S,
    /// What the connection's watchdog sees of its requests.
    pub(crate) activity: Arc<Activity>,
}

type Answer<S> = Response<ResponseBody<<S as RouterService>::Body>>;

impl<S: RouterService> hyper::service::Service<Request<Incoming>> for Dispatch<S> {
    type Response = Answer<S>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        // Counted as running until its response is sent (or intralb's own answer is ready).
        let running = self.activity.start(req.version());
        let shared = &self.shared;
        if let Some(answer) = shared.probes.answer(&shared.pool, req.uri().path()) {
            return Box::pin(ready(Ok(answer)));
        }
        let (parts, body) = req.into_parts();
        let arrived = Arrived {
            http1: parts.version < Version::HTTP_2,
            priority: shared
                .priority
                .map_or(Priority::Normal, |priority| priority_of(priority, &parts)),
            running,
        };
        let router = self.router.clone();
        if !http_body::Body::is_end_stream(&body) {
            // A body is read whole (up to `buffer_body`) before admission.
            return Box::pin(slow(Arc::clone(shared), router, parts, Some(body), arrived));
        }
        let now = Instant::now();
        match shared.pool.acquire_now(arrived.priority, now) {
            Ok(Some(hold)) => {
                let req = Request::from_parts(parts, RequestBody::empty());
                let lease = Lease::new(hold, arrived, now, now, now + shared.timeout);
                Box::pin(Serving::new(Arc::clone(shared), router, req, lease))
            }
            Ok(None) => Box::pin(slow(Arc::clone(shared), router, parts, None, arrived)),
            Err(rejected) => Box::pin(ready(Ok(refused(shared, &arrived, rejected)))),
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
    let req = Request::from_parts(parts, body);
    // The request has arrived: its deadline starts.
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
            let lease = Lease::new(hold, arrived, arrival, started, deadline);
            Serving::new(shared, router, req, lease).await
        }
        Err(rejected) => Ok(refused(&shared, &arrived, rejected)),
    }
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
