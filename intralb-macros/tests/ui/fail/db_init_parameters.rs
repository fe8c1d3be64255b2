// A `#[db_init]` function takes exactly one parameter, the `WorkerId`.
use intralb::{db_init, WorkerId};

#[db_init]
fn none() -> u8 {
    0
}

#[db_init]
fn two(_: WorkerId, path: &str, flags: u32) -> u16 {
    let _ = (path, flags);
    0
}

fn main() {
    let _ = (none, two);
}
