// A key given twice is reported at the second one.
use axum::Router;

#[intralb::balanced(queue = 1, timeout = "1s", queue = 2, serve = a, serve = b)]
fn app() -> Router {
    Router::new()
}

fn main() {}
