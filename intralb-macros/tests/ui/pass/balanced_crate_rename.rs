//! `crate = "..."`: generated code names the runtime through the path given, a crate name or a
//! path inside the crate.
extern crate intralb as my_intralb;

use axum::Router;

mod deps {
    pub use ::intralb as lb;
}

#[my_intralb::balanced(crate = "my_intralb", queue = 1)]
fn app() -> Router {
    Router::new()
}

#[deps::lb::balanced(crate = "crate::deps::lb", serve = serve_reexported, addr = "127.0.0.1:0")]
fn reexported() -> Router {
    Router::new()
}

#[allow(dead_code)]
async fn run() -> my_intralb::Result<()> {
    serve().await?;
    serve_reexported().await
}

fn main() {}
