// A key without a value shows what one looks like.
use intralb::{db_init, WorkerId};

#[db_init(broken, crate)]
fn open(_: WorkerId) -> u8 {
    0
}

fn main() {
    let _ = open;
}
