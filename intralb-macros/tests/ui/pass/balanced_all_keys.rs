//! Every runtime key at once, in any order, with a trailing comma.
use axum::Router;
use intralb::balanced;

#[balanced(
    max_concurrent = 64,
    queue = 0,
    min_workers = 64,
    timeout = "250ms",
    shutdown_timeout = "1m 30s",
    idle_timeout = "2m",
    addr = "0.0.0.0:8080",
    log = true,
    metrics = "/metrics",
    health = "/healthz",
    ready = "/readyz",
    drain_delay = "5s",
    reuse_port = true,
)]
fn app() -> Router {
    Router::new()
}

#[allow(dead_code)]
async fn run() -> intralb::Result<()> {
    serve().await
}

fn main() {}
