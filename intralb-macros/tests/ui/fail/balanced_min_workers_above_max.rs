// `min_workers` cannot exceed `max_concurrent`, whether given or the default (100).
use axum::Router;

#[intralb::balanced(max_concurrent = 4, min_workers = 8)]
fn app() -> Router {
    Router::new()
}

#[intralb::balanced(min_workers = 101, serve = serve_default)]
fn default_limit() -> Router {
    Router::new()
}

fn main() {}
