// The router function must return the router.
#[intralb::balanced]
fn app() {}

#[intralb::balanced(serve = serve_unit)]
fn unit() -> () {}

fn main() {}
