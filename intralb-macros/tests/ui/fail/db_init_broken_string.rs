// `broken` takes the path of a function, not a string or a closure.
use intralb::{db_init, WorkerId};

#[db_init(broken = "is_broken")]
fn open(_: WorkerId) -> u8 {
    0
}

#[db_init(broken = "is it broken?")]
fn open2(_: WorkerId) -> u16 {
    0
}

#[db_init(broken = |n: &u32| *n == 0)]
fn open3(_: WorkerId) -> u32 {
    0
}

fn is_broken(_: &u8) -> bool {
    false
}

fn main() {
    let _ = (open, open2, open3, is_broken);
}
