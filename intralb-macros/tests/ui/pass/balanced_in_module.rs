//! The generated `serve` is `pub` and documented: it is reachable from outside its module,
//! passes `missing_docs`, and does not trip `unreachable_pub` in a private module.
#![deny(missing_docs, unreachable_pub)]

/// The public API.
pub mod api {
    use axum::Router;

    /// Builds the API.
    #[intralb::balanced(timeout = "5s")]
    pub fn app() -> Router {
        Router::new()
    }
}

mod internal {
    use axum::Router;

    #[intralb::balanced(serve = serve_internal)]
    pub(crate) fn app() -> Router {
        Router::new()
    }
}

#[allow(dead_code)]
async fn run() -> intralb::Result<()> {
    api::serve().await?;
    internal::serve_internal().await
}

#[tokio::main]
async fn main() {
    // Built but not served: the futures are never awaited here.
    let _serve = api::serve();
    let _internal = internal::serve_internal();
}
