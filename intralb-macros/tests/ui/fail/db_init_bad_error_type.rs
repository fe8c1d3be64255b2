// A fallible initializer's error must convert into a boxed error: the error points at the type.
use intralb::{db_init, WorkerId};

#[db_init]
fn open(_: WorkerId) -> Result<u8, ()> {
    Ok(0)
}

fn main() {}
