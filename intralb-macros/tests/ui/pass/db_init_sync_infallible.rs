//! A blocking initializer that cannot fail; its attributes and visibility are kept, and even a
//! function named `worker` works.
use intralb::{db_init, WorkerId};

pub struct Counter(pub u64);

/// Documented, public, and still callable.
#[db_init]
#[inline]
pub fn counter(worker: WorkerId) -> Counter {
    Counter(worker.get() as u64)
}

#[db_init]
fn worker(worker: WorkerId) -> (WorkerId, u8) {
    (worker, 0)
}

fn main() {
    let _: fn(WorkerId) -> Counter = counter;
    let _: fn(WorkerId) -> (WorkerId, u8) = worker;
}
