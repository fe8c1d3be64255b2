// `serve` takes a plain identifier that is not the router function's own name; `crate` takes
// a path.
use axum::Router;

#[intralb::balanced(serve = app)]
fn app() -> Router {
    Router::new()
}

#[intralb::balanced(serve = other::name)]
fn pathy() -> Router {
    Router::new()
}

#[intralb::balanced(serve = serve_bad_crate, crate = "not a path")]
fn bad_crate() -> Router {
    Router::new()
}

fn main() {}
