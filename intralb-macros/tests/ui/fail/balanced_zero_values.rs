// `max_concurrent = 0` and a zero `timeout` would serve nothing.
use axum::Router;

#[intralb::balanced(max_concurrent = 0, timeout = "0s")]
fn app() -> Router {
    Router::new()
}

fn main() {}
