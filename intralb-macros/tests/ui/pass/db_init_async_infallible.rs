//! An `async` initializer that cannot fail.
use std::collections::HashMap;

use intralb::{db_init, WorkerId};

#[db_init]
async fn cache(_: WorkerId) -> HashMap<String, u64> {
    HashMap::new()
}

fn main() {
    let _ = cache;
}
