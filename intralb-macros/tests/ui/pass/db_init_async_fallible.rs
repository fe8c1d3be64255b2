//! An `async`, fallible initializer.
use intralb::{db_init, WorkerId};

pub struct Pool(String);

#[db_init]
async fn connect(worker: WorkerId) -> Result<Pool, std::io::Error> {
    tokio::task::yield_now().await;
    Ok(Pool(format!("postgres://db/{worker}")))
}

#[db_init]
async fn connect_boxed(_: WorkerId) -> Result<u16, Box<dyn std::error::Error + Send + Sync>> {
    Ok(5432)
}

fn main() {
    let _ = connect;
    let _ = connect_boxed;
    let _ = |pool: Pool| pool.0;
}
