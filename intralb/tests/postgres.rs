//! End to end against a real PostgreSQL: one connection per worker, the database restarted under
//! load, and every worker reconnecting by itself through `Initializer::broken`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use intralb::{Balancer, Db, Initializer, Stats, WorkerId};
use intralb_test_support::*;
use tokio_postgres::{Client, NoTls};

const WORKERS: usize = 4;
/// More writers than workers, so that every worker is busy (and so seen) all the time.
const WRITERS: usize = 8;
/// Consecutive `201`s, after the restart, that count as recovered.
const RECOVERED_RUN: usize = 50;
/// Each wait of the test (a hang fails it, naming what it waited for), and the whole test.
const WAIT_BOUND: Duration = Duration::from_secs(30);
const TEST_BOUND: Duration = Duration::from_secs(120);
/// Requests one writer sends at most: the load is bounded in count as well as in time.
const MAX_REQUESTS_PER_WRITER: usize = 20_000;

/// Where the test is: before `stop`, from when `stop` has returned (PostgreSQL is gone), and from
/// when `start` begins. No request both sent and answered while `DOWN` can succeed.
const BEFORE_STOP: u8 = 0;
const DOWN: u8 = 1;
const RESTARTED: u8 = 2;

async fn connect(conn: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conn, NoTls).await?;
    // Ends (with the server's FATAL, or an I/O error) when the server goes away; from then on
    // `Client::is_closed` is true.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `201` with the new id as the body; `500` with the error. Either way the worker's id is in
/// `x-worker`.
async fn create(worker: WorkerId, db: Db<Client>, body: String) -> Response {
    let header = [("x-worker", worker.to_string())];
    match db
        .query_one(
            "INSERT INTO notes (body) VALUES ($1) RETURNING id",
            &[&body],
        )
        .await
    {
        Ok(row) => {
            let id: i32 = row.get(0);
            (StatusCode::CREATED, header, id.to_string()).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, header, e.to_string()).into_response(),
    }
}

/// One answer, in the order the answers arrived, all writers together.
#[derive(Debug, Clone, Copy)]
struct Answer {
    status: u16,
    worker: Option<usize>,
    /// The phase when the request was sent, and when its answer arrived.
    sent: u8,
    answered: u8,
}

#[derive(Default)]
struct Log {
    answers: Mutex<Vec<Answer>>,
    /// Every id answered `201`: each must be in the table at the end.
    acknowledged: Mutex<Vec<i32>>,
    /// Non-`201` answers to requests sent while PostgreSQL was down.
    failed_while_down: AtomicU64,
}

impl Log {
    /// From where the trailing run of `201`s starts, its length, and the workers it saw.
    fn trailing_run(&self) -> (usize, usize, BTreeSet<usize>) {
        let answers = self.answers.lock().unwrap();
        let start = answers
            .iter()
            .rposition(|a| a.status != 201)
            .map_or(0, |i| i + 1);
        let workers = answers[start..].iter().filter_map(|a| a.worker).collect();
        (start, answers.len() - start, workers)
    }

    /// For a failure's message: how many answers of each status, the last few, and the stats.
    fn describe(&self, stats: &Stats) -> String {
        let answers = self.answers.lock().unwrap();
        let mut statuses = BTreeMap::<u16, usize>::new();
        for a in answers.iter() {
            *statuses.entry(a.status).or_default() += 1;
        }
        let last = &answers[answers.len().saturating_sub(12)..];
        format!("answers by status: {statuses:?}; the last ones: {last:?}; {stats:?}")
    }
}

/// `POST /notes`: the status, the worker's id if a worker answered, and the body; `None` if the
/// server could not be reached (once the test has failed and the server is gone).
async fn post_note(
    client: &HttpClient,
    addr: SocketAddr,
    body: String,
) -> Option<(u16, Option<usize>, String)> {
    let req = Request::post(format!("http://{addr}/notes"))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let res = client.request(req).await.ok()?;
    let status = res.status().as_u16();
    let worker = res
        .headers()
        .get("x-worker")
        .map(|w| w.to_str().unwrap().parse().unwrap());
    let body = res.into_body().collect().await.ok()?.to_bytes();
    Some((status, worker, String::from_utf8_lossy(&body).into_owned()))
}

/// Sequential `POST /notes` until told to stop.
async fn writer(
    n: usize,
    addr: SocketAddr,
    phase: Arc<AtomicU8>,
    done: Arc<AtomicBool>,
    log: Arc<Log>,
) {
    let client = client();
    for i in 0..MAX_REQUESTS_PER_WRITER {
        if done.load(SeqCst) {
            return;
        }
        let sent = phase.load(SeqCst);
        let body = format!("writer {n} note {i}");
        let Some((status, worker, body)) = post_note(&client, addr, body).await else {
            return;
        };
        let answer = Answer {
            status,
            worker,
            sent,
            answered: phase.load(SeqCst),
        };
        if status == 201 {
            let id = body.parse().expect("a 201's body is the new id");
            log.acknowledged.lock().unwrap().push(id);
        } else if sent == DOWN {
            log.failed_while_down.fetch_add(1, SeqCst);
        }
        log.answers.lock().unwrap().push(answer);
        if status != 201 {
            // What a client does on a failure: pause before trying again, rather than spin.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Polls `cond` every 10ms until it holds; panics with `what` and `state()` after `bound`.
async fn until(
    what: &str,
    bound: Duration,
    mut cond: impl FnMut() -> bool,
    state: impl Fn() -> String,
) {
    let polls = bound.as_millis() / 10;
    for _ in 0..polls {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out after {bound:?} waiting for {what}; {}", state());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_reconnect_after_postgres_restarts_under_load() {
    let mut pg = match PgServer::try_new() {
        Ok(pg) => pg,
        Err(reason) => {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
    tokio::time::timeout(TEST_BOUND, restart_under_load(&mut pg))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the test did not finish within {TEST_BOUND:?}; PostgreSQL's log:\n{}",
                pg.log()
            )
        });
}

async fn restart_under_load(pg: &mut PgServer) {
    let conn = pg.connection_string();
    connect(&conn)
        .await
        .expect("connect to PostgreSQL")
        .batch_execute("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)")
        .await
        .unwrap();

    let init = {
        let conn = conn.clone();
        Initializer::asynchronous("postgres", move |_: WorkerId| {
            let conn = conn.clone();
            async move { connect(&conn).await }
        })
        .broken(Client::is_closed)
    };
    let builder = Balancer::builder()
        .max_concurrent(WORKERS)
        .min_workers(WORKERS)
        .queue(16)
        .timeout(Duration::from_secs(5))
        .initializer(init);
    let server = start(builder, Router::new().route("/notes", post(create))).await;
    let addr = server.addr();

    let phase = Arc::new(AtomicU8::new(BEFORE_STOP));
    let done = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Log::default());
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| tokio::spawn(writer(n, addr, phase.clone(), done.clone(), log.clone())))
        .collect();

    let state = || log.describe(&server.stats());

    until(
        "100 notes written before the stop",
        WAIT_BOUND,
        || log.acknowledged.lock().unwrap().len() >= 100,
        state,
    )
    .await;

    // Down: sessions are terminated, connections refused; requests fail (500 from a handler
    // whose connection just closed, 503 once no worker can start).
    tokio::task::block_in_place(|| pg.stop());
    phase.store(DOWN, SeqCst);
    until(
        "failed requests while PostgreSQL is down",
        WAIT_BOUND,
        || log.failed_while_down.load(SeqCst) >= WRITERS as u64,
        state,
    )
    .await;
    server
        .wait_for("fail-fast 503s while no worker can start", |s| {
            s.unavailable > 0
        })
        .await;

    // Before `start`: the server accepts connections a little before `pg_ctl -w` sees it ready.
    phase.store(RESTARTED, SeqCst);
    tokio::task::block_in_place(|| pg.start());
    let acknowledged_before_restart = log.acknowledged.lock().unwrap().len();
    let mut recovered_from = 0;
    until(
        "every worker serving again after the restart",
        WAIT_BOUND,
        || {
            let (start, len, workers) = log.trailing_run();
            recovered_from = start;
            len >= RECOVERED_RUN && workers.len() == WORKERS
        },
        state,
    )
    .await;
    done.store(true, SeqCst);
    for w in writers {
        w.await.expect("writer task");
    }

    let answers = log.answers.lock().unwrap().clone();
    let acknowledged = log.acknowledged.lock().unwrap().clone();
    let stats = server.stats();
    eprintln!(
        "{} requests: {} acknowledged ({} after the restart), {} failed while down; {stats:?}",
        answers.len(),
        acknowledged.len(),
        acknowledged.len() - acknowledged_before_restart,
        log.failed_while_down.load(SeqCst),
    );

    for a in &answers {
        assert!(
            matches!(a.status, 201 | 500 | 503),
            "only 201, or 500/503 around the outage: {a:?}"
        );
        assert!(
            !(a.status == 201 && a.sent == DOWN && a.answered == DOWN),
            "a note acknowledged while PostgreSQL was down: {a:?}"
        );
    }
    let after_recovery = &answers[recovered_from..];
    assert!(
        after_recovery.iter().all(|a| a.status == 201),
        "once recovered, every request succeeds: {:?}",
        after_recovery.iter().find(|a| a.status != 201)
    );
    let workers: BTreeSet<usize> = after_recovery.iter().filter_map(|a| a.worker).collect();
    assert_eq!(
        workers,
        (0..WORKERS).collect(),
        "every worker reconnected and serves"
    );
    assert!(after_recovery.len() >= RECOVERED_RUN);
    assert_eq!(stats.panicked, 0);

    // Nothing acknowledged was lost: a fresh client sees every id.
    let stored: HashSet<i32> = connect(&conn)
        .await
        .expect("connect after the restart")
        .query("SELECT id FROM notes", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let missing: Vec<i32> = acknowledged
        .iter()
        .filter(|id| !stored.contains(id))
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged ids missing from the table: {missing:?}"
    );
    assert_eq!(
        acknowledged.iter().collect::<HashSet<_>>().len(),
        acknowledged.len(),
        "ids are unique"
    );

    server.stop().await;
}
