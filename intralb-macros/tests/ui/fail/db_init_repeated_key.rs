// A key given twice is reported at the second one.
use intralb::{db_init, WorkerId};

#[db_init(broken = is_broken, crate = "intralb", broken = is_broken, crate = "intralb")]
fn open(_: WorkerId) -> u8 {
    0
}

fn is_broken(_: &u8) -> bool {
    false
}

fn main() {
    let _ = (open, is_broken);
}
