//! The notes workload on SQLite (WAL, `busy_timeout`), like `examples/notes.rs` but kept here so
//! the harness does not depend on the example: `POST /notes`, `GET /notes/{id}`,
//! `GET /notes?limit=N` (latest first).
//!
//! The handlers are the same for every opponent; only where the connection comes from differs:
//! the request's intralb worker (`Db<Connection>`), one `Mutex<Connection>` shared by all, or an
//! r2d2 pool of `limit` connections. As in the example, SQLite runs on tokio's blocking threads
//! (`Db::blocking` for intralb, `spawn_blocking` for the others), never on the runtime's.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{FromRequestParts, Path as UrlPath, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use intralb::Db;
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use tower::BoxError;

use crate::cli::Opponent;

/// Notes written before the load starts; reads ask for ids in `1..=SEEDED`.
pub(crate) const SEEDED: i64 = 1000;

#[derive(Serialize)]
struct Note {
    id: i64,
    body: String,
}

#[derive(Deserialize)]
struct NewNote {
    body: String,
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u32>,
}

type Reply<T> = Result<T, (StatusCode, String)>;

fn internal(error: rusqlite::Error) -> (StatusCode, String) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("database error: {error}\n"),
    )
}

/// Opens a connection the way every opponent does.
pub(crate) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    Ok(conn)
}

/// Creates the table and writes [`SEEDED`] notes if it is empty.
fn prepare(path: &Path) -> rusqlite::Result<()> {
    let mut conn = open(path)?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
    )?;
    let count: i64 = conn.query_row("SELECT count(*) FROM notes", [], |row| row.get(0))?;
    if count == 0 {
        let tx = conn.transaction()?;
        for i in 1..=SEEDED {
            tx.execute(
                "INSERT INTO notes (body) VALUES (?1)",
                [format!("note {i}")],
            )?;
        }
        tx.commit()?;
    }
    Ok(())
}

/// Where this server's handlers get their connection.
#[derive(Clone)]
enum Store {
    Worker,
    Shared(Arc<Mutex<Connection>>),
    Pool(r2d2::Pool<Manager>),
}

/// Opens pooled connections for r2d2 (what `r2d2_sqlite` does, without tying the harness to
/// its rusqlite version).
#[derive(Debug)]
struct Manager(PathBuf);

impl r2d2::ManageConnection for Manager {
    type Connection = Connection;
    type Error = rusqlite::Error;

    fn connect(&self) -> rusqlite::Result<Connection> {
        open(&self.0)
    }

    fn is_valid(&self, conn: &mut Connection) -> rusqlite::Result<()> {
        conn.execute_batch("")
    }

    fn has_broken(&self, _conn: &mut Connection) -> bool {
        false
    }
}

/// The notes routes for `opponent`, on the database at `path`, with `size` connections where
/// the opponent keeps several.
pub(crate) fn router(opponent: Opponent, path: &Path, size: usize) -> Result<Router, BoxError> {
    prepare(path)?;
    let store = match opponent {
        Opponent::Intralb => Store::Worker,
        Opponent::Mutex => Store::Shared(Arc::new(Mutex::new(open(path)?))),
        Opponent::Pool => Store::Pool(
            r2d2::Pool::builder()
                .max_size(u32::try_from(size)?)
                .build(Manager(path.to_owned()))?,
        ),
        other => return Err(format!("`{other}` does not serve the notes workload").into()),
    };
    Ok(Router::new()
        .route("/notes", get(list).post(create))
        .route("/notes/{id}", get(fetch))
        .with_state(store))
}

/// A request's connection.
enum Conn {
    Worker(Db<Connection>),
    Shared(Arc<Mutex<Connection>>),
    Pooled(r2d2::PooledConnection<Manager>),
}

impl Conn {
    /// Runs `f` with the connection on a blocking thread.
    async fn with<T, F>(self, f: F) -> Reply<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let blocking = |f: Box<dyn FnOnce() -> rusqlite::Result<T> + Send>| async move {
            tokio::task::spawn_blocking(f)
                .await
                .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
        };
        match self {
            Conn::Worker(mut db) => Db::blocking(&mut db, move |c| f(c)).await,
            Conn::Shared(conn) => {
                blocking(Box::new(move || {
                    f(&conn.lock().unwrap_or_else(PoisonError::into_inner))
                }))
                .await
            }
            Conn::Pooled(conn) => blocking(Box::new(move || f(&conn))).await,
        }
        .map_err(internal)
    }
}

impl FromRequestParts<Store> for Conn {
    type Rejection = (StatusCode, String);

    async fn from_request_parts(parts: &mut Parts, store: &Store) -> Reply<Self> {
        match store {
            Store::Worker => Db::from_extensions(&parts.extensions)
                .map(Conn::Worker)
                .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))),
            Store::Shared(conn) => Ok(Conn::Shared(Arc::clone(conn))),
            Store::Pool(pool) => pool
                .get()
                .map(Conn::Pooled)
                .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"))),
        }
    }
}

async fn create(conn: Conn, Json(new): Json<NewNote>) -> Reply<(StatusCode, Json<Note>)> {
    let body = new.body.clone();
    let id = conn
        .with(move |c| {
            c.prepare_cached("INSERT INTO notes (body) VALUES (?1) RETURNING id")?
                .query_row([&body], |row| row.get(0))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(Note { id, body: new.body })))
}

async fn fetch(conn: Conn, UrlPath(id): UrlPath<i64>) -> Reply<Json<Note>> {
    conn.with(move |c| {
        c.prepare_cached("SELECT id, body FROM notes WHERE id = ?1")?
            .query_row([id], |row| {
                Ok(Note {
                    id: row.get(0)?,
                    body: row.get(1)?,
                })
            })
            .optional()
    })
    .await?
    .map(Json)
    .ok_or((StatusCode::NOT_FOUND, format!("no note {id}\n")))
}

async fn list(conn: Conn, Query(query): Query<ListQuery>) -> Reply<Json<Vec<Note>>> {
    let limit = query.limit.unwrap_or(20);
    conn.with(move |c| {
        c.prepare_cached("SELECT id, body FROM notes ORDER BY id DESC LIMIT ?1")?
            .query_map([limit], |row| {
                Ok(Note {
                    id: row.get(0)?,
                    body: row.get(1)?,
                })
            })?
            .collect()
    })
    .await
    .map(Json)
}
