//! A JSON notes API on SQLite, with one connection per worker.
//!
//! ```text
//! cargo run --example notes
//! curl -X POST localhost:8080/notes -H 'content-type: application/json' -d '{"body":"hi"}'
//! curl localhost:8080/notes
//! ```
//! The database is `notes.db`, or the file named by `NOTES_DB`. `/healthz`, `/readyz` and
//! `/metrics` are answered by intralb itself.

use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use intralb::{Db, WorkerId};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct Note {
    id: i64,
    body: String,
}

#[derive(Deserialize)]
struct NewNote {
    body: String,
}

type Reply<T> = Result<T, (StatusCode, String)>;

fn internal(error: rusqlite::Error) -> (StatusCode, String) {
    tracing::error!(%error, "database error");
    (StatusCode::INTERNAL_SERVER_ERROR, "database error\n".into())
}

fn db_path() -> String {
    std::env::var("NOTES_DB").unwrap_or_else(|_| "notes.db".into())
}

/// Once, before the first worker starts: the file is set up (WAL, which the file keeps, and
/// the table). Workers start concurrently, so their initializers must not do this: SQLite
/// refuses (rather than waits on) a second switch to WAL in progress.
#[intralb::setup]
fn migrate() -> rusqlite::Result<()> {
    let conn = Connection::open(db_path())?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
    )
}

/// Every worker opens its own connection to the same file.
#[intralb::db_init]
fn open(_worker: WorkerId) -> rusqlite::Result<Connection> {
    let conn = Connection::open(db_path())?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

// Every SQLite call runs through `Db::blocking`: a query waiting for the write lock blocks
// its thread, and on the runtime's threads it would stall the probes and the shedding too.

async fn create(
    mut db: Db<Connection>,
    Json(new): Json<NewNote>,
) -> Reply<(StatusCode, Json<Note>)> {
    let note = Db::blocking(&mut db, move |conn| {
        let id = conn.query_row(
            "INSERT INTO notes (body) VALUES (?1) RETURNING id",
            [&new.body],
            |row| row.get(0),
        )?;
        Ok(Note { id, body: new.body })
    })
    .await
    .map_err(internal)?;
    Ok((StatusCode::CREATED, Json(note)))
}

async fn list(mut db: Db<Connection>) -> Reply<Json<Vec<Note>>> {
    let notes = Db::blocking(&mut db, |conn| {
        let mut query = conn.prepare_cached("SELECT id, body FROM notes ORDER BY id")?;
        let notes = query.query_map([], |row| {
            Ok(Note {
                id: row.get(0)?,
                body: row.get(1)?,
            })
        })?;
        notes.collect::<rusqlite::Result<Vec<Note>>>()
    })
    .await
    .map_err(internal)?;
    Ok(Json(notes))
}

async fn fetch(mut db: Db<Connection>, Path(id): Path<i64>) -> Reply<Json<Note>> {
    Db::blocking(&mut db, move |conn| {
        conn.query_row("SELECT id, body FROM notes WHERE id = ?1", [id], |row| {
            Ok(Note {
                id: row.get(0)?,
                body: row.get(1)?,
            })
        })
        .optional()
    })
    .await
    .map_err(internal)?
    .map(Json)
    .ok_or((StatusCode::NOT_FOUND, format!("no note {id}\n")))
}

async fn delete(mut db: Db<Connection>, Path(id): Path<i64>) -> Reply<StatusCode> {
    let deleted = Db::blocking(&mut db, move |conn| {
        conn.execute("DELETE FROM notes WHERE id = ?1", [id])
    })
    .await
    .map_err(internal)?;
    match deleted {
        0 => Err((StatusCode::NOT_FOUND, format!("no note {id}\n"))),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

#[intralb::balanced(
    max_concurrent = 32,
    queue = 256,
    timeout = "10s",
    health = "/healthz",
    ready = "/readyz",
    metrics = "/metrics",
    log = true
)]
fn app() -> Router {
    Router::new()
        .route("/notes", get(list).post(create))
        .route("/notes/{id}", get(fetch).delete(delete))
}

#[tokio::main]
async fn main() -> intralb::Result<()> {
    serve().await
}
