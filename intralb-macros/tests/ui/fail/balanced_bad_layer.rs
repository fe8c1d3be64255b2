// `layer` is the path of a function returning a tower layer.
use axum::Router;

fn not_a_layer() -> u32 {
    7
}

#[intralb::balanced(layer = "outer")]
fn app() -> Router {
    Router::new()
}

#[intralb::balanced(serve = serve_other, layer = not_a_layer)]
fn other() -> Router {
    Router::new()
}

fn main() {}
