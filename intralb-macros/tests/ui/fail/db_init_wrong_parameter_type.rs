// The parameter receives a `WorkerId`: another type is reported at the parameter's type.
use intralb::db_init;

#[db_init]
fn open(worker: u32) -> u8 {
    worker as u8
}

fn main() {}
