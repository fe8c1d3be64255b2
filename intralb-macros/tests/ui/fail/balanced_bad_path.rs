//! Endpoint paths are strings that start with `/`.
use axum::Router;

#[intralb::balanced(metrics = "metrics", health = 200, ready = "/ready z")]
fn app() -> Router {
    Router::new()
}

fn main() {}
