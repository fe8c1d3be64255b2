// A router that still needs its state: the error says to call `.with_state(...)`.
use axum::extract::State;
use axum::routing::get;
use axum::Router;

#[derive(Clone)]
struct AppState {
    greeting: &'static str,
}

#[intralb::balanced]
fn app() -> Router<AppState> {
    Router::new().route("/", get(|State(state): State<AppState>| async move { state.greeting }))
}

fn main() {}
