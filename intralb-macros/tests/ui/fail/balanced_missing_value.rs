// A key without a value shows what one looks like.
use axum::Router;

#[intralb::balanced(log, timeout)]
fn app() -> Router {
    Router::new()
}

fn main() {}
