// An unknown key lists the valid ones; a close misspelling or a guessed name gets a hint. Errors
// in the arguments and in the function are reported together.
use intralb::{db_init, WorkerId};

#[db_init(name = "db")]
fn open(_: WorkerId) -> u8 {
    0
}

#[db_init(brokn = is_broken, is_closed = is_broken)]
fn open2(_: WorkerId) -> u16 {
    0
}

#[db_init(colour = 1)]
fn open3() -> u32 {
    0
}

fn is_broken(_: &u16) -> bool {
    false
}

fn main() {
    let _ = (open, open2, open3, is_broken);
}
