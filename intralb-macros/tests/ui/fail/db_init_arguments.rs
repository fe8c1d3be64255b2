// `#[db_init]` takes no arguments.
use intralb::{db_init, WorkerId};

#[db_init(x)]
fn open(_: WorkerId) -> u8 {
    0
}

#[db_init(crate = "intralb", name = "db")]
fn open2(_: WorkerId) -> u16 {
    0
}

fn main() {
    let _ = (open, open2);
}
