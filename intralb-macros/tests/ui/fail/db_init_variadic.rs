// An initializer cannot be variadic (the compiler rejects the signature too).
use intralb::{db_init, WorkerId};

#[db_init]
fn open(_: WorkerId, _: ...) -> u8 {
    0
}

fn main() {}
