//! The `lease` opponent: plain `axum::serve`, with in front of the `Router` only what any
//! balancer that gives each request one worker's resources has to do per request, as cheaply as
//! it can be done: take the most recently used idle worker from a stack under a lock (`503` if
//! there is none), put its id and a hold on it in the request's extensions, and give it back when
//! the response head is ready and the last hold is dropped.
//!
//! No queue, no deadline, no panic isolation, no counters, no latency histograms, no connection
//! watchdog, no drain: it is the floor under intralb's fast path, so that the fast path's cost
//! over plain axum splits into what the contract costs (this, against `axum`) and what intralb
//! adds to it (`intralb` against this).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::Service;

/// A worker's id, as a handler would read it from the request's extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Id(#[allow(dead_code)] usize);

/// The idle workers, most recently used last.
pub(crate) struct Workers {
    idle: Mutex<Vec<Arc<Worker>>>,
}

struct Worker {
    id: Id,
    holds: AtomicUsize,
    /// Where the worker goes back to: no reference count to touch on the way back.
    home: &'static Workers,
}

impl Workers {
    /// `n` idle workers, for the life of the process (a benchmark server runs until SIGTERM).
    pub(crate) fn new(n: usize) -> &'static Workers {
        let workers: &'static Workers = Box::leak(Box::new(Workers {
            idle: Mutex::new(Vec::with_capacity(n)),
        }));
        let all = (0..n)
            .map(|i| {
                Arc::new(Worker {
                    id: Id(i),
                    holds: AtomicUsize::new(0),
                    home: workers,
                })
            })
            .collect();
        *workers.idle.lock().unwrap_or_else(PoisonError::into_inner) = all;
        workers
    }

    fn lease(&self) -> Option<Hold> {
        let worker = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()?;
        worker.holds.store(1, Ordering::Relaxed);
        Some(Hold(Some(worker)))
    }
}

/// Keeps a worker busy; the last one dropped gives it back (as intralb's `Hold`).
struct Hold(Option<Arc<Worker>>);

impl Clone for Hold {
    fn clone(&self) -> Self {
        let worker = self.0.as_ref().expect("present until dropped");
        worker.holds.fetch_add(1, Ordering::Relaxed);
        Hold(Some(Arc::clone(worker)))
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let Some(worker) = self.0.take() else { return };
        if worker.holds.fetch_sub(1, Ordering::AcqRel) == 1 {
            let home = worker.home;
            home.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(worker);
        }
    }
}

/// The `Router` behind the lease.
#[derive(Clone)]
pub(crate) struct Leased<S> {
    pub(crate) inner: S,
    pub(crate) workers: &'static Workers,
}

impl<S> Service<Request<Body>> for Leased<S>
where
    S: Service<Request<Body>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Serving<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let Some(hold) = self.workers.lease() else {
            return Serving::Refused;
        };
        let id = hold.0.as_ref().expect("present until dropped").id;
        req.extensions_mut().insert(id);
        req.extensions_mut().insert(hold.clone());
        Serving::Running {
            future: self.inner.call(req),
            hold: Some(hold),
        }
    }
}

pin_project_lite::pin_project! {
    /// The router's future, holding the worker until the response head is ready.
    #[project = ServingProj]
    pub(crate) enum Serving<F> {
        Running { #[pin] future: F, hold: Option<Hold> },
        Refused,
    }
}

impl<F, E> Future for Serving<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ServingProj::Running { future, hold } => {
                let response = std::task::ready!(future.poll(cx));
                drop(hold.take());
                Poll::Ready(response)
            }
            ServingProj::Refused => {
                Poll::Ready(Ok(StatusCode::SERVICE_UNAVAILABLE.into_response()))
            }
        }
    }
}
