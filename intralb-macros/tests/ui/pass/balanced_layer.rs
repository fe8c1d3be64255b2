//! `layer = PATH`: a function returning a layer, boxed (`OuterLayer`) or of a nameable type;
//! the generated builder is usable as a `Builder`.
use axum::middleware::{from_fn, Next};
use axum::response::Response;
use axum::Router;
use intralb::{balanced, OuterLayer};

async fn pass(req: axum::extract::Request, next: Next) -> Response {
    next.run(req).await
}

fn outer() -> OuterLayer {
    OuterLayer::new(from_fn(pass))
}

mod layers {
    pub(crate) fn identity() -> tower_layer::Identity {
        tower_layer::Identity::new()
    }
}

#[balanced(layer = outer, queue = 5)]
fn app() -> Router {
    Router::new()
}

#[balanced(serve = serve_admin, layer = layers::identity)]
async fn admin() -> Router {
    Router::new()
}

#[allow(dead_code)]
async fn run() -> intralb::Result<()> {
    let server = app_builder().max_concurrent(2).start(app()).await?;
    server.stop().await?;
    let _ = admin_builder();
    tokio::try_join!(serve(), serve_admin())?;
    Ok(())
}

fn main() {}
