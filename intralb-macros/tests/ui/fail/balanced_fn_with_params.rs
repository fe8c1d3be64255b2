// The router function is called with no arguments.
use axum::Router;

#[intralb::balanced]
fn app(prefix: &str, port: u16) -> Router {
    let _ = (prefix, port);
    Router::new()
}

fn main() {
    let _ = app("/", 80);
}
