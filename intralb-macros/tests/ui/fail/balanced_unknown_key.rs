// An unknown key lists the valid ones; a close misspelling or a guessed name gets a hint.
use axum::Router;

#[intralb::balanced(colour = "blue")]
fn app() -> Router {
    Router::new()
}

#[intralb::balanced(serve = serve_typo, max_concurency = 5, concurrency = 5, port = 8080)]
fn typo() -> Router {
    Router::new()
}

fn main() {
    // The stubs keep these calls free of "cannot find function" errors.
    let _ = serve();
    let _ = serve_typo();
}
