// An address must be an IP address and a port; host names are not resolved.
use axum::Router;

#[intralb::balanced(addr = "localhost:8080")]
fn app() -> Router {
    Router::new()
}

#[intralb::balanced(addr = "127.0.0.1", serve = serve_no_port)]
fn no_port() -> Router {
    Router::new()
}

fn main() {}
