//! `bench server`: one opponent serving the benchmark routes on `127.0.0.1:PORT` until SIGTERM
//! (or Ctrl-C), then draining gracefully.
//!
//! Every opponent serves the same `Router` ([`routes::router`] or [`notes::router`]), on a
//! multi-threaded tokio runtime with one worker thread per core the process may use (so one when
//! pinned); the hand-made ones on hyper-util's auto builder (HTTP/1.1 and h2c, `TCP_NODELAY`):
//!
//! | opponent | what serves the `Router` |
//! |---|---|
//! | `hyper` | hyper-util, nothing else: the floor |
//! | `axum` | plain `axum::serve`: what users have before intralb |
//! | `tower` | hyper-util, the `Router` behind `HandleError` + `LoadShed` + `GlobalConcurrencyLimit` + `Timeout` |
//! | `lease` | `axum::serve`, the `Router` behind the least a per-worker lease costs ([`lease`]) |
//! | `intralb` | `intralb::Balancer::builder()…serve(router)`, signals and drain included |
//! | `naive-limit` | hyper-util, `Router::layer(ConcurrencyLimitLayer)`, the `Router` served as it is |
//! | `naive-limit-eager` | the same after `Router::with_state(())` (what `axum::serve` does) |
//! | `mutex`, `pool` | hyper-util, the notes `Router` on one `Mutex<Connection>` or an r2d2 pool |

mod lease;
mod notes;
mod routes;
pub(crate) mod shed_timer;

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::process::ExitCode;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::limit::{ConcurrencyLimitLayer, GlobalConcurrencyLimitLayer};
use tower::{BoxError, Service, ServiceBuilder};

use crate::cli::{Opponent, ServerOptions};

/// How long the hand-made servers wait for in-flight requests after SIGTERM (intralb's own
/// `shutdown_timeout` defaults to the same).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn main(options: ServerOptions) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bench server: cannot start tokio: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench server: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: ServerOptions) -> Result<(), BoxError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, options.port));
    let router = match &options.db {
        Some(db) => notes::router(options.opponent, db, options.limit)?,
        None => routes::router(options.slots, options.hold, &options.slots_schedule),
    };
    match options.opponent {
        Opponent::Intralb => {
            let mut builder = intralb::Balancer::builder()
                .max_concurrent(options.limit)
                .queue(options.queue)
                .timeout(options.timeout)
                .priority(routes::priority)
                .adaptive(options.adaptive)
                .addr(addr);
            if options.metrics {
                builder = builder.metrics("/metrics");
            }
            if options.time_503s {
                builder = builder.layer(axum::middleware::from_fn_with_state(
                    shed_timer::Times::default(),
                    shed_timer::time,
                ));
            }
            if let Some(n) = options.min_workers {
                builder = builder.min_workers(n);
            }
            if let Some(target) = options.queue_target {
                builder = builder.queue_target(target);
            }
            if let Some(db) = options.db.clone() {
                builder = builder.db_init(move |_worker| notes::open(&db));
            }
            builder.serve(router.with_state(())).await?;
        }
        Opponent::Hyper | Opponent::Mutex | Opponent::Pool => {
            serve(addr, router.with_state(())).await?;
        }
        Opponent::Axum => {
            let listener = TcpListener::bind(addr).await?;
            axum::serve(listener, router.with_state(()))
                .with_graceful_shutdown(terminated())
                .await?;
        }
        Opponent::Lease => {
            use axum::ServiceExt;
            let listener = TcpListener::bind(addr).await?;
            let leased = lease::Leased {
                inner: router.with_state(()),
                workers: lease::Workers::new(options.limit),
            };
            axum::serve(listener, leased.into_make_service())
                .with_graceful_shutdown(terminated())
                .await?;
        }
        Opponent::Tower => {
            let service = ServiceBuilder::new()
                .layer(HandleErrorLayer::new(tower_error))
                .load_shed()
                .layer(GlobalConcurrencyLimitLayer::new(options.limit))
                .timeout(options.timeout)
                .service(router.with_state(()));
            serve(addr, service).await?;
        }
        Opponent::NaiveLimit => {
            serve(
                addr,
                router.layer(ConcurrencyLimitLayer::new(options.limit)),
            )
            .await?;
        }
        Opponent::NaiveLimitEager => {
            let router = router.layer(ConcurrencyLimitLayer::new(options.limit));
            serve(addr, router.with_state(())).await?;
        }
    }
    Ok(())
}

/// What a careful user answers for tower's errors: `503` when shed (with `Retry-After`, as
/// intralb does), `504` at the deadline.
async fn tower_error(error: BoxError) -> Response {
    if error.is::<tower::load_shed::error::Overloaded>() {
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, "overloaded\n").into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    } else if error.is::<tower::timeout::error::Elapsed>() {
        (StatusCode::GATEWAY_TIMEOUT, "timed out\n").into_response()
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response()
    }
}

/// Serves `service` with hyper-util's auto builder until SIGTERM or Ctrl-C, then stops accepting
/// and lets the connections finish their requests (for up to [`SHUTDOWN_TIMEOUT`]).
async fn serve<S>(addr: SocketAddr, service: S) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    let http = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(terminated());
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(service.clone());
        let conn = http.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, graceful.shutdown()).await;
    Ok(())
}

async fn terminated() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a tokio runtime can listen for SIGTERM");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
