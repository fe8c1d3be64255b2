// An initializer must return the resource it opens.
use intralb::{db_init, WorkerId};

#[db_init]
fn nothing(_: WorkerId) {}

#[db_init]
async fn unit(_: WorkerId) -> () {}

fn main() {
    let _ = (nothing, unit);
}
