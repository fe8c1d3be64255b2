// The router function cannot be generic: nothing would choose its parameters.
use axum::Router;

#[intralb::balanced]
fn app<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
}

#[intralb::balanced(serve = serve_where)]
fn with_where<'a>() -> Router
where
    'a: 'static,
{
    Router::new()
}

fn main() {}
