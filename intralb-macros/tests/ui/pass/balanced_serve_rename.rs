//! `serve = name`: two routers in one module, served side by side.
use axum::{routing::get, Router};
use intralb::balanced;

#[balanced(addr = "0.0.0.0:8080")]
fn public() -> Router {
    Router::new().route("/", get(|| async { "hello" }))
}

#[balanced(serve = serve_admin, addr = "127.0.0.1:9090", max_concurrent = 4)]
async fn admin() -> Router {
    Router::new().route("/health", get(|| async { "ok" }))
}

#[allow(dead_code)]
async fn run() -> intralb::Result<()> {
    tokio::try_join!(serve(), serve_admin())?;
    Ok(())
}

fn main() {}
