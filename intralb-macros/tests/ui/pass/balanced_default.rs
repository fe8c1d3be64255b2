//! `#[balanced]` with no arguments on a sync router function: `serve` is generated next to it.
use axum::{routing::get, Router};
use intralb::balanced;

#[balanced]
fn app() -> Router {
    Router::new().route("/", get(|| async { "hello" }))
}

#[allow(dead_code)]
async fn run() -> intralb::Result<()> {
    serve().await
}

fn main() {
    // The router function stays callable.
    let _router: Router = app();
}
