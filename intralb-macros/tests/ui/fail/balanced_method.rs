// A method cannot be the router function.
use axum::Router;

struct App;

impl App {
    #[intralb::balanced]
    fn router(&self) -> Router {
        Router::new()
    }
}

fn main() {
    let _ = App.router();
}
