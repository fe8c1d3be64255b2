//! `priority = PATH`: a `fn(&Parts) -> Priority`, by its path, with `queue_target` beside it.
use axum::Router;
use intralb::{balanced, Priority};

mod classes {
    pub(crate) fn of(head: &axum::http::request::Parts) -> intralb::Priority {
        if head.uri.path().starts_with("/admin") {
            intralb::Priority::Critical
        } else {
            intralb::Priority::Normal
        }
    }
}

fn beacons_last(head: &axum::http::request::Parts) -> Priority {
    match head.uri.path() {
        "/beacon" => Priority::Sheddable,
        _ => Priority::default(),
    }
}

#[balanced(priority = classes::of, queue_target = "5ms")]
fn app() -> Router {
    Router::new()
}

#[balanced(serve = serve_beacons, priority = beacons_last, queue_target = "0s")]
fn beacons() -> Router {
    Router::new()
}

fn main() {
    let _ = (serve(), serve_beacons(), app_builder(), beacons_builder());
}
