use axum::{routing::get, Router};

#[intralb::balanced(max_concurrent = 100, queue = 100, log = true)]
fn app() -> Router {
    Router::new().route("/", get(|| async { "Hello World" }))
}

#[tokio::main]
async fn main() -> intralb::Result<()> {
    serve().await
}
