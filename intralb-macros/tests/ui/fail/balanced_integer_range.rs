// Integers must fit in `usize`, carry no suffix other than `usize`, and not be negative.
use axum::Router;

#[intralb::balanced(queue = 99999999999999999999999, max_concurrent = 8u8, min_workers = -1)]
fn app() -> Router {
    Router::new()
}

fn main() {}
