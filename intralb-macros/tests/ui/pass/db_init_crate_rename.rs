//! `#[db_init(crate = "...")]`: generated code names the runtime through the path given, a crate
//! name or a path inside the crate.
extern crate intralb as my_intralb;

use my_intralb::WorkerId;

mod deps {
    pub use ::intralb as lb;
}

#[my_intralb::db_init(crate = "my_intralb")]
fn open(worker: WorkerId) -> std::io::Result<u8> {
    Ok(worker.get() as u8)
}

#[deps::lb::db_init(crate = "crate::deps::lb")]
async fn counter(_: WorkerId) -> u16 {
    0
}

fn main() {
    // The functions stay callable.
    let _ = (open, counter);
}
