// `priority` is the path of a `fn(&http::request::Parts) -> intralb::Priority`.
use axum::Router;

fn by_path(path: &str) -> u8 {
    path.len() as u8
}

#[intralb::balanced(priority = "by_path")]
fn app() -> Router {
    Router::new()
}

#[intralb::balanced(serve = serve_other, priority = by_path)]
fn other() -> Router {
    Router::new()
}

fn main() {}
