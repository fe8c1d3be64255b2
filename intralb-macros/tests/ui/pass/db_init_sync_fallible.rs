//! A blocking, fallible initializer (`rusqlite::Result<T>`, `io::Result<T>`, `Result<T, E>`),
//! and a handler that takes the worker's value as `Db<T>`.
use axum::{routing::get, Router};
use intralb::{balanced, db_init, Db, WorkerId};
use rusqlite::Connection;

#[db_init]
fn open(worker: WorkerId) -> rusqlite::Result<Connection> {
    Connection::open(format!("shard-{}.db", worker.get()))
}

#[db_init]
fn read_config(_: intralb::WorkerId) -> std::io::Result<Vec<u8>> {
    Ok(Vec::new())
}

struct Client;

#[db_init]
fn client(_worker: WorkerId) -> Result<Client, String> {
    Ok(Client)
}

async fn count(db: Db<Connection>) -> String {
    let n: i64 = db.query_row("SELECT 1", [], |row| row.get(0)).unwrap_or(0);
    n.to_string()
}

async fn uses_client(_client: Db<Client>, config: Db<Vec<u8>>) -> String {
    config.len().to_string()
}

#[balanced]
fn app() -> Router {
    Router::new().route("/", get(count)).route("/client", get(uses_client))
}

#[allow(dead_code)]
async fn run() -> intralb::Result<()> {
    serve().await
}

fn main() {}
