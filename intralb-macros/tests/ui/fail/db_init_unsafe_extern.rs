// An initializer cannot be `unsafe` or `extern`.
use intralb::{db_init, WorkerId};

#[db_init]
unsafe fn open(_: WorkerId) -> u8 {
    0
}

#[db_init]
extern "C" fn open_c(_: WorkerId) -> u16 {
    0
}

fn main() {
    let _ = (open as unsafe fn(WorkerId) -> u8, open_c);
}
