//! A microservice gateway: `/users` and `/products` routers behind request logging, CORS and a
//! bearer-token check, each worker with its own upstream client.
//!
//! The logging, CORS and the token check are *outer* layers (`layer = outer`): they run before a
//! request takes a queue place, so a request without the token is refused even when every
//! worker is busy and the queue is full, and a shed `503` still carries its CORS headers.
//!
//! ```text
//! GATEWAY_TOKEN=s3cret cargo run --example gateway
//! curl -H 'authorization: Bearer s3cret' localhost:8080/users/7
//! ```

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use intralb::{Db, OuterLayer, WorkerId};
use serde_json::{json, Value};
use tower::ServiceBuilder;
use tower_http::cors::{Any, CorsLayer};
use tower_http::trace::TraceLayer;

/// Stands in for a per-worker client of a backend service (a connection, a cache, ...).
struct Upstream {
    worker: WorkerId,
    calls: u64,
}

impl Upstream {
    fn call(&mut self, what: Value) -> Json<Value> {
        self.calls += 1;
        Json(json!({ "data": what, "worker": self.worker.get(), "worker_calls": self.calls }))
    }
}

#[intralb::db_init]
fn upstream(worker: WorkerId) -> Upstream {
    Upstream { worker, calls: 0 }
}

fn users() -> Router {
    Router::new()
        .route(
            "/",
            get(|mut up: Db<Upstream>| async move { up.call(json!(["ada", "grace"])) }),
        )
        .route(
            "/{id}",
            get(|mut up: Db<Upstream>, Path(id): Path<u32>| async move {
                up.call(json!({ "id": id, "name": format!("user {id}") }))
            }),
        )
}

fn products() -> Router {
    Router::new().route(
        "/",
        get(|mut up: Db<Upstream>| async move { up.call(json!(["tea"])) }),
    )
}

/// Answers 401 unless the request carries `Authorization: Bearer <token>`.
async fn require_bearer(State(token): State<Arc<str>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if given == Some(&*token) {
        return next.run(req).await;
    }
    let challenge = [(header::WWW_AUTHENTICATE, "Bearer")];
    (
        StatusCode::UNAUTHORIZED,
        challenge,
        "missing or wrong bearer token\n",
    )
        .into_response()
}

/// In front of admission: request logging (intralb's own `503`s included), CORS (preflights
/// answered without a worker), then the token check.
fn outer() -> OuterLayer {
    let token: Arc<str> = std::env::var("GATEWAY_TOKEN")
        .unwrap_or_else(|_| "demo-token".into())
        .into();
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET])
        .allow_headers([header::AUTHORIZATION]);
    OuterLayer::new(
        ServiceBuilder::new()
            .layer(TraceLayer::new_for_http())
            .layer(cors)
            .layer(middleware::from_fn_with_state(token, require_bearer)),
    )
}

#[intralb::balanced(max_concurrent = 64, queue = 128, timeout = "5s", log = true, layer = outer)]
pub(crate) fn gateway() -> Router {
    Router::new()
        .nest("/users", users())
        .nest("/products", products())
}

#[tokio::main]
async fn main() -> intralb::Result<()> {
    serve().await
}
