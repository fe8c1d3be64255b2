// A value of the wrong type says what the key expects.
use axum::Router;

#[intralb::balanced(
    queue = "100",
    max_concurrent = 1.5,
    timeout = 5,
    addr = 8080,
    log = "true",
    min_workers = MIN,
)]
fn app() -> Router {
    Router::new()
}

const MIN: usize = 1;

#[intralb::balanced(serve = "serve_admin", crate = intralb)]
fn admin() -> Router {
    Router::new()
}

fn main() {
    let _ = serve();
}
