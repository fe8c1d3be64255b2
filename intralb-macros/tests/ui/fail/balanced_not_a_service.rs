// A router function that returns something that is not a service: the error points at the type.
#[intralb::balanced]
fn app() -> u32 {
    7
}

fn main() {}
