// `crate` is a string literal holding a path.
use intralb::{db_init, WorkerId};

#[db_init(crate = "not a path")]
fn open(_: WorkerId) -> u8 {
    0
}

#[db_init(crate = intralb)]
fn open2(_: WorkerId) -> u16 {
    0
}

fn main() {
    let _ = (open, open2);
}
