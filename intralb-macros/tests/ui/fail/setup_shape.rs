// A setup function runs once, before any worker: no parameters, no generics, no other key.
use intralb::{setup, WorkerId};

#[setup]
async fn per_worker(worker: WorkerId) -> Result<(), std::io::Error> {
    let _ = worker;
    Ok(())
}

#[setup(broken = is_broken)]
fn generic<T>() {}

#[setup]
struct NotAFunction;

fn main() {
    let _ = per_worker;
}
