// A duration that humantime cannot parse quotes humantime's message and an example.
use axum::Router;

#[intralb::balanced(timeout = "5 parsecs", idle_timeout = "soon", shutdown_timeout = "30")]
fn app() -> Router {
    Router::new()
}

fn main() {}
