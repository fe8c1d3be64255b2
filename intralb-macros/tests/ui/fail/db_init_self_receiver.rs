// A method cannot be an initializer.
use intralb::{db_init, WorkerId};

struct Pool;

impl Pool {
    #[db_init]
    fn open(&self, _: WorkerId) -> u8 {
        0
    }
}

fn main() {
    let _ = Pool::open;
}
