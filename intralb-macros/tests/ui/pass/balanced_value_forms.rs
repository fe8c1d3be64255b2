//! Value spellings that are accepted: a `usize` suffix, an IPv6 address, `log = false`, a
//! `min_workers` of 0, and a `min_workers` equal to the default `max_concurrent`.
use axum::Router;

#[intralb::balanced(max_concurrent = 8usize, addr = "[::1]:3000", log = false, min_workers = 0)]
fn v6() -> Router {
    Router::new()
}

#[intralb::balanced(serve = serve_default_limit, min_workers = 100, timeout = "1ns")]
fn default_limit() -> Router {
    Router::new()
}

#[allow(dead_code)]
async fn run() -> intralb::Result<()> {
    serve().await?;
    serve_default_limit().await
}

fn main() {}
