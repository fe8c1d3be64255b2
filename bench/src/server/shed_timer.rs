//! `--time-503s` (intralb): how long each `503` took at the server, from the moment intralb's
//! outer layers got the request (its head and body read) to the moment admission answered it.
//! The admission scenario's target ("503s answered within 2 × `queue_target` + 1 ms") is about
//! this time; at the client every answer also carries the load generator's own delay (about
//! 3 ms on this machine, the p99 of tower's immediate `503`s).
//!
//! `GET` [`PATH`] answers `COUNT P50_US P90_US P99_US MAX_US` of the `503`s timed since the last
//! such request, and forgets them.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Where the times are read.
pub(crate) const PATH: &str = "/bench/503s";

/// Microseconds each `503` took.
pub(crate) type Times = Arc<Mutex<Vec<u64>>>;

/// Times the `503`s, as the outer layer `from_fn_with_state(Times::default(), time)`.
pub(crate) async fn time(State(times): State<Times>, req: Request, next: Next) -> Response {
    if req.uri().path() == PATH {
        return report(&times).into_response();
    }
    let start = Instant::now();
    let response = next.run(req).await;
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        lock(&times).push(micros);
    }
    response
}

/// `COUNT P50_US P90_US P99_US MAX_US`, and the times forgotten.
fn report(times: &Times) -> String {
    let mut times = std::mem::take(&mut *lock(times));
    times.sort_unstable();
    let at = |per_mille: usize| match times.len() {
        0 => 0,
        n => times[(n * per_mille / 1000).min(n - 1)],
    };
    format!(
        "{} {} {} {} {}",
        times.len(),
        at(500),
        at(900),
        at(990),
        at(1000)
    )
}

fn lock(times: &Times) -> std::sync::MutexGuard<'_, Vec<u64>> {
    times.lock().unwrap_or_else(PoisonError::into_inner)
}
