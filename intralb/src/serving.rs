//! [`Serving`]: a request on its worker. The router runs under the deadline (`504`), the
//! shutdown deadline (`503`) and the panic guard (`500`, and the worker's resources are
//! replaced); then the outcome is counted, the latency recorded and the worker given back.
//!
//! A hand-written future rather than an `async` block, because it is the fast path: hyper keeps
//! it inline (no allocation), its size is copied once per request, a router that is ready at
//! once (an axum `Router` always is) is called as the future is made, so the request moves
//! straight into the router's future, and it arms the timer and the shutdown signal only if the
//! router does not answer on its first poll (most requests then never touch the timer wheel).

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use http::{Request, Response};
use tokio::time::{Instant, Sleep};
use tracing::Span;

use crate::activity::Running;
use crate::body::RequestBody;
use crate::catch_unwind::panic_message;
use crate::error::BoxError;
use crate::outcome::Outcome;
use crate::priority::Priority;
use crate::response::{answer, ResponseBody};
use crate::router::RouterService;
use crate::send::{Sending, Watched};
use crate::shared::Shared;
use crate::worker::Hold;

/// What is known of a request once its head is in.
pub(crate) struct Arrived {
    /// HTTP/1 (told `Connection: close` while draining), not HTTP/2.
    pub(crate) http1: bool,
    pub(crate) priority: Priority,
    /// Counts the request as running on its connection (with outer layers, their answer
    /// does instead).
    pub(crate) running: Option<Running>,
}

/// A request's worker, and its times. (Its deadline, `arrival` plus the timeout, is computed
/// only if the router has to be waited for: most requests never need it.)
pub(crate) struct Lease {
    hold: Hold,
    arrived: Arrived,
    arrival: Instant,
    started: Instant,
}

impl Lease {
    /// `arrival`: when the request (body included) was in; `started`: when it got `hold`.
    pub(crate) fn new(hold: Hold, arrived: Arrived, arrival: Instant, started: Instant) -> Self {
        Lease {
            hold,
            arrived,
            arrival,
            started,
        }
    }
}

pin_project_lite::pin_project! {
    /// The router's work on a request, on a leased worker (see the module docs).
    pub(crate) struct Serving<S>
    where
        S: RouterService,
    {
        #[pin]
        stage: Stage<S>,
        // The deadline and the shutdown signal, once the router has to be waited for.
        armed: Option<Armed>,
        // Taken when the request ends.
        lease: Option<Lease>,
        shared: Arc<Shared>,
        span: Span,
    }
}

pin_project_lite::pin_project! {
    #[project = StageProj]
    enum Stage<S>
    where
        S: RouterService,
    {
        // Until the router is ready to take the request.
        Ready { router: S, req: Option<Request<RequestBody>> },
        // The router's future.
        Called { #[pin] future: S::Future },
        // The router failed before there was a future to poll (it refused the request, or
        // panicked taking it): told on the first poll.
        Early { ended: Option<Early> },
        // Ended; the router's future is dropped.
        Done,
    }
}

/// How the router failed while [`Serving::new`] called it.
enum Early {
    Failed(BoxError),
    Panicked(Box<dyn Any + Send>),
}

/// The timer and the shutdown signal of a request the router did not answer at once.
struct Armed {
    timer: Pin<Box<Sleep>>,
    cut: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// How the router's work ended.
enum Ended<B> {
    Answered(Response<B>),
    Failed(BoxError),
    Panicked(Box<dyn Any + Send>),
    TimedOut,
    /// The shutdown deadline.
    Cut,
}

impl<S: RouterService> Serving<S> {
    /// The router's work on `req`; the request holds its worker too (its extensions carry a
    /// [`Hold`]), so whatever keeps it, and so can reach the worker's resources, keeps the worker
    /// busy.
    #[inline(always)]
    pub(crate) fn new(
        shared: Arc<Shared>,
        router: S,
        mut req: Request<RequestBody>,
        lease: Lease,
    ) -> Self {
        let worker = lease.hold.id();
        let span = tracing::info_span!(
            "request",
            %worker,
            method = %req.method(),
            path = req.uri().path(),
            queue_wait_us = (lease.started - lease.arrival).as_micros() as u64,
            status = tracing::field::Empty,
        );
        req.extensions_mut().insert(worker);
        req.extensions_mut().insert(lease.hold.clone());
        let stage = call_now(router, req, &span);
        Serving {
            stage,
            armed: None,
            lease: Some(lease),
            shared,
            span,
        }
    }
}

impl<S: RouterService> Future for Serving<S> {
    type Output = Result<Response<ResponseBody<S::Body>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let entered = (!this.span.is_disabled()).then(|| this.span.enter());
        // The future is dropped, never polled again, after a panic: no broken invariant is
        // observed.
        let step = catch_unwind(AssertUnwindSafe(|| loop {
            match this.stage.as_mut().project() {
                StageProj::Ready { router, req } => match router.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        let req = req.take().expect("called once");
                        let future = router.call(req);
                        this.stage.set(Stage::Called { future });
                    }
                    Poll::Ready(Err(error)) => break Poll::Ready(Err(error.into())),
                    Poll::Pending => break Poll::Pending,
                },
                StageProj::Called { future } => {
                    break future.poll(cx).map(|result| result.map_err(Into::into));
                }
                StageProj::Early { ended } => match ended.take().expect("told once") {
                    Early::Failed(error) => break Poll::Ready(Err(error)),
                    // Caught below, as if it had happened here.
                    Early::Panicked(panic) => std::panic::resume_unwind(panic),
                },
                StageProj::Done => unreachable!("not polled after it ended"),
            }
        }));
        let ended = match step {
            Ok(Poll::Ready(Ok(response))) => Ended::Answered(response),
            Ok(Poll::Ready(Err(error))) => Ended::Failed(error),
            Err(panic) => Ended::Panicked(panic),
            Ok(Poll::Pending) => {
                let (lease, shared) = (&*this.lease, &*this.shared);
                let armed = this.armed.get_or_insert_with(|| {
                    // Only once, when the router first has to be waited for.
                    let deadline = lease.as_ref().expect("not ended").arrival + shared.timeout;
                    let shared = Arc::clone(shared);
                    Armed {
                        timer: Box::pin(tokio::time::sleep_until(deadline)),
                        cut: Box::pin(async move { shared.cut.fired().await }),
                    }
                });
                if armed.timer.as_mut().poll(cx).is_ready() {
                    Ended::TimedOut
                } else if armed.cut.as_mut().poll(cx).is_ready() {
                    Ended::Cut
                } else {
                    return Poll::Pending;
                }
            }
        };
        drop(entered);
        // The router's future is dropped (cancelled, if it had not ended) before the worker is
        // given back; a `Drop` of the handler's that panics costs only this request.
        if catch_unwind(AssertUnwindSafe(|| this.stage.set(Stage::Done))).is_err() {
            tracing::error!("dropping the handler's future panicked");
        }
        let lease = this.lease.take().expect("not polled after it ended");
        Poll::Ready(Ok(finish(this.shared, lease, this.span, ended)))
    }
}

/// The router takes the request now if it is ready to (an axum `Router` always is): the
/// request is moved once more, into the router's future, instead of waiting in the stage for
/// the first poll. Runs in the request's span and under the panic guard, as the first poll
/// would.
#[inline(always)]
fn call_now<S: RouterService>(mut router: S, req: Request<RequestBody>, span: &Span) -> Stage<S> {
    let _entered = (!span.is_disabled()).then(|| span.enter());
    let mut cx = Context::from_waker(noop_waker());
    let early = |ended| Stage::Early { ended: Some(ended) };
    match catch_unwind(AssertUnwindSafe(|| router.poll_ready(&mut cx))) {
        Ok(Poll::Ready(Ok(()))) => match catch_unwind(AssertUnwindSafe(|| router.call(req))) {
            Ok(future) => Stage::Called { future },
            Err(panic) => early(Early::Panicked(panic)),
        },
        Ok(Poll::Ready(Err(error))) => early(Early::Failed(error.into())),
        // Asked again, with the real waker, on the first poll.
        Ok(Poll::Pending) => Stage::Ready {
            router,
            req: Some(req),
        },
        Err(panic) => early(Early::Panicked(panic)),
    }
}

/// A waker that does nothing, to ask a router whether it is ready outside of a poll.
fn noop_waker() -> &'static Waker {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    static NOOP: OnceLock<Waker> = OnceLock::new();
    NOOP.get_or_init(|| Waker::from(Arc::new(Noop)))
}

/// Counts how the request ended, answers, gives the worker back.
#[inline]
fn finish<B>(
    shared: &Shared,
    lease: Lease,
    span: &Span,
    ended: Ended<B>,
) -> Response<ResponseBody<B>> {
    let Lease {
        hold,
        arrived,
        arrival,
        started,
    } = lease;
    let priority = arrived.priority;
    let worker = hold.id();
    let finished = Instant::now();
    let outcome;
    let mut response = match ended {
        Ended::Answered(response) => {
            // On HTTP/2, watched by its stream's task; HTTP/1 is watched at the socket.
            let sending = Sending::stream();
            let running = arrived.running;
            outcome = Outcome::Served;
            response.map(|body| ResponseBody::Left(Watched::new(body, sending, running)))
        }
        Ended::Failed(error) => {
            tracing::error!(parent: span, %worker, %error, "the router returned an error");
            outcome = Outcome::Failed;
            answer(outcome)
        }
        Ended::Panicked(panic) => {
            hold.worker().poison();
            tracing::error!(
                parent: span,
                %worker,
                panic = panic_message(&*panic),
                "handler panicked; answering 500 and re-initialising the worker's resources"
            );
            outcome = Outcome::Panicked;
            answer(outcome)
        }
        Ended::TimedOut => {
            tracing::debug!(parent: span, "deadline passed while running; handler cancelled");
            outcome = Outcome::TimedOut;
            answer(outcome)
        }
        Ended::Cut => {
            tracing::debug!(parent: span, "shutdown deadline passed while running; handler cancelled");
            outcome = Outcome::ShuttingDown;
            answer(outcome)
        }
    };
    if shared.pool.adaptive && shared.pool.sampled() {
        // Before the worker is given back, so that it counts among those running.
        shared.pool.observe(started, finished);
    }
    // Most requests got their worker at once: no need for the subtraction then.
    let queue_wait = if started == arrival {
        Duration::ZERO
    } else {
        started - arrival
    };
    // Counted while the worker is still held: whoever sees it idle sees this request counted.
    shared
        .pool
        .counters
        .record(outcome, priority, queue_wait, finished - started);
    hold.release_at(finished);
    span.record("status", response.status().as_u16());
    shared.conclude_in_place(arrived.http1, &mut response);
    response
}
