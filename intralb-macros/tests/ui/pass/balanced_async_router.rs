//! An `async` router function, and an empty argument list.
use axum::{routing::get, Router};

#[intralb::balanced()]
async fn app() -> Router {
    tokio::task::yield_now().await;
    Router::new().route("/", get(|| async { "hello" }))
}

#[allow(dead_code)]
async fn run() -> intralb::Result<()> {
    serve().await
}

#[tokio::main]
async fn main() {
    let _router: Router = app().await;
}
