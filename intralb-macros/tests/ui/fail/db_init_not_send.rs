// A worker's resource must be `Send`: the error points at the return type.
use std::rc::Rc;

use intralb::{db_init, WorkerId};

#[db_init]
fn open(_: WorkerId) -> Rc<u8> {
    Rc::new(0)
}

#[db_init]
async fn open_async(_: WorkerId) -> std::io::Result<Rc<u16>> {
    Ok(Rc::new(0))
}

fn main() {}
