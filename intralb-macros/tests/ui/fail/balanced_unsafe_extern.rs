// The router function cannot be `unsafe` or `extern`.
use axum::Router;

#[intralb::balanced]
unsafe fn app() -> Router {
    Router::new()
}

#[intralb::balanced(serve = serve_extern)]
extern "Rust" fn ext() -> Router {
    Router::new()
}

fn main() {}
