// Two `#[balanced]` in one module without `serve = ...`: the error names the fix.
use axum::Router;

#[intralb::balanced]
fn public() -> Router {
    Router::new()
}

#[intralb::balanced(addr = "127.0.0.1:9090")]
fn admin() -> Router {
    Router::new()
}

fn main() {}
