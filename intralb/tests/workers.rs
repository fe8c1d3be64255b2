//! Workers own per-worker resources, run one request at a time, and scale with demand.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use intralb::{Balancer, Db, ErrorKind, WorkerId};
use intralb_test_support::*;

/// A resource that knows which worker it was made for and counts its drops.
struct Tagged {
    made_for: WorkerId,
    dropped: Arc<AtomicUsize>,
}

impl Drop for Tagged {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, SeqCst);
    }
}

#[derive(Clone, Default)]
struct Counts {
    inits: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
}

impl Counts {
    fn init(&self) -> impl Fn(WorkerId) -> Result<Tagged, Infallible> + Send + Sync + 'static {
        let this = self.clone();
        move |worker| {
            this.inits.fetch_add(1, SeqCst);
            Ok(Tagged {
                made_for: worker,
                dropped: Arc::clone(&this.drops),
            })
        }
    }
}

/// `/` parks at the gate, holding its `Db<Tagged>` across the await, and answers
/// "<worker running it> <worker its resource was made for>".
fn gated_app(gate: &Gate) -> Router {
    let gate = gate.clone();
    Router::new().route(
        "/",
        get(move |worker: WorkerId, db: Db<Tagged>| {
            let gate = gate.clone();
            async move {
                gate.pass().await;
                format!("{worker} {}", db.made_for)
            }
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_run_on_distinct_workers_with_their_own_resources() {
    let counts = Counts::default();
    let gate = Gate::new();
    let builder = Balancer::builder()
        .max_concurrent(4)
        .min_workers(4)
        .db_init(counts.init());
    let server = start(builder, gated_app(&gate)).await;
    assert_eq!(
        counts.inits.load(SeqCst),
        4,
        "one value per worker at start"
    );

    let replies: Vec<_> = (0..4).map(|_| spawn_get(server.addr(), "/")).collect();
    server.wait_for("4 busy workers", |s| s.busy == 4).await;
    gate.open(4);
    let mut workers = HashSet::new();
    for reply in replies {
        let reply = reply.await.unwrap();
        assert_eq!(reply.status, 200);
        let (running, owner) = reply.body.split_once(' ').unwrap();
        assert_eq!(
            running, owner,
            "a request uses the resources of the worker running it"
        );
        workers.insert(running.to_owned());
    }
    assert_eq!(
        workers.len(),
        4,
        "four concurrent requests ran on four workers"
    );
    server.stop().await;
    assert_eq!(
        counts.drops.load(SeqCst),
        4,
        "shutdown drops every worker's resources"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_worker_has_its_own_sqlite_connection() {
    fn open(_: WorkerId) -> rusqlite::Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open_in_memory()?;
        conn.execute_batch("CREATE TABLE hits (worker INTEGER NOT NULL)")?;
        Ok(conn)
    }
    // Insert a row tagged with the worker, then count this worker's rows and everyone else's.
    async fn hit(worker: WorkerId, db: Db<rusqlite::Connection>) -> String {
        let id = worker.get() as i64;
        db.execute("INSERT INTO hits VALUES (?1)", [id]).unwrap();
        let count = |sql: &str| -> i64 { db.query_row(sql, [id], |row| row.get(0)).unwrap() };
        let own = count("SELECT count(*) FROM hits WHERE worker = ?1");
        let foreign = count("SELECT count(*) FROM hits WHERE worker != ?1");
        format!("{id} {own} {foreign}")
    }
    let app = Router::new().route("/", get(hit));
    let server = start(Balancer::builder().max_concurrent(3).db_init(open), app).await;

    let replies: Vec<_> = (0..30).map(|_| spawn_get(server.addr(), "/")).collect();
    let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
    for reply in replies {
        let reply = reply.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        let parts: Vec<&str> = reply.body.split(' ').collect();
        assert_eq!(
            parts[2], "0",
            "a worker's connection holds only its own rows"
        );
        seen.entry(parts[0].to_owned())
            .or_default()
            .push(parts[1].parse().unwrap());
    }
    for (worker, mut counts) in seen {
        counts.sort_unstable();
        let expected: Vec<i64> = (1..=counts.len() as i64).collect();
        assert_eq!(
            counts, expected,
            "worker {worker} saw every insert of its own, in turn"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_max_concurrent_requests_execute_at_once() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let gate = Gate::new();
    let app = {
        let (running, peak, gate) = (running.clone(), peak.clone(), gate.clone());
        Router::new().route(
            "/",
            get(move || async move {
                let now = running.fetch_add(1, SeqCst) + 1;
                peak.fetch_max(now, SeqCst);
                gate.pass().await;
                running.fetch_sub(1, SeqCst);
                "done"
            }),
        )
    };
    let server = start(Balancer::builder().max_concurrent(3).queue(10), app).await;
    let replies: Vec<_> = (0..8).map(|_| spawn_get(server.addr(), "/")).collect();
    let stats = server
        .wait_for("3 running, 5 queued", |s| s.busy == 3 && s.queued == 5)
        .await;
    assert_eq!(stats.workers, 3, "never more workers than max_concurrent");
    assert_eq!(peak.load(SeqCst), 3);
    gate.open(8);
    for reply in replies {
        assert_eq!(reply.await.unwrap().status, 200);
    }
    assert_eq!(
        peak.load(SeqCst),
        3,
        "the queued requests ran only as workers freed up"
    );
    let stats = server.stats();
    assert_eq!(stats.served, 8);
    assert_eq!(stats.service_time.count, 8);
    assert_eq!(stats.queue_wait.count, 8);
    // Three got a worker at once (counted as 1 µs), five waited for the gate to open.
    let waits = stats.queue_wait;
    assert!(waits.p50 <= waits.p90 && waits.p90 <= waits.p99 && waits.p99 <= waits.max);
    assert!(waits.max > Duration::from_micros(1), "{waits:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sequential_requests_reuse_the_most_recently_used_worker() {
    let app = Router::new().route(
        "/",
        get(|worker: WorkerId| async move { worker.to_string() }),
    );
    let server = start(Balancer::builder().max_concurrent(4).min_workers(4), app).await;
    let client = client();
    let first = fetch_with(&client, server.addr(), "/").await.body;
    for _ in 0..20 {
        assert_eq!(fetch_with(&client, server.addr(), "/").await.body, first);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_start_on_demand_and_retire_when_idle() {
    let counts = Counts::default();
    let gate = Gate::new();
    let builder = Balancer::builder()
        .max_concurrent(4)
        .min_workers(1)
        .idle_timeout(Duration::from_millis(100))
        .db_init(counts.init());
    let server = start(builder, gated_app(&gate)).await;
    assert_eq!(server.stats().workers, 1);

    let replies: Vec<_> = (0..4).map(|_| spawn_get(server.addr(), "/")).collect();
    let stats = server.wait_for("4 busy workers", |s| s.busy == 4).await;
    assert_eq!(stats.workers, 4);
    assert_eq!(
        counts.inits.load(SeqCst),
        4,
        "each new worker ran the initializer"
    );
    gate.open(4);
    for reply in replies {
        assert_eq!(reply.await.unwrap().status, 200);
    }
    let stats = server
        .wait_for("surplus workers to retire", |s| s.workers == 1)
        .await;
    assert_eq!(stats.idle, 1);
    // Retired workers' resources are dropped off the runtime's threads, just after they leave
    // the pool: a bounded wait.
    within("retired workers to drop their resources", async {
        while counts.drops.load(SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(counts.drops.load(SeqCst), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_initializer_for_a_new_worker_is_counted_and_retried() {
    let attempts = Arc::new(Mutex::new(Vec::<usize>::new()));
    let init = {
        let attempts = attempts.clone();
        move |worker: WorkerId| {
            let mut attempts = attempts.lock().unwrap();
            attempts.push(worker.get());
            let tries = attempts.iter().filter(|w| **w == worker.get()).count();
            if worker.get() == 1 && tries <= 2 {
                return Err(format!("worker {worker}: database not ready (try {tries})"));
            }
            Ok(worker)
        }
    };
    let gate = Gate::new();
    let app = {
        let gate = gate.clone();
        Router::new()
            .route("/hold", get(move || async move { gate.pass().await }))
            .route("/", get(|db: Db<WorkerId>| async move { db.to_string() }))
    };
    let builder = Balancer::builder()
        .max_concurrent(2)
        .min_workers(1)
        .db_init(init);
    let server = start(builder, app).await;
    let hold = spawn_get(server.addr(), "/hold");
    server.wait_for("worker 0 busy", |s| s.busy == 1).await;

    let reply = fetch(server.addr(), "/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body, "1",
        "served by the new worker once its initializer succeeded"
    );
    assert_eq!(server.stats().init_failures, 2);
    gate.open(1);
    assert_eq!(hold.await.unwrap().status, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_failing_initializer_at_startup_is_an_error_naming_it() {
    fn broken(_: WorkerId) -> Result<u32, std::io::Error> {
        Err(std::io::Error::other("disk full"))
    }
    let Err(err) = try_start(Balancer::builder().db_init(broken), Router::new()).await else {
        panic!("start must fail");
    };
    assert_eq!(err.kind(), ErrorKind::Init);
    let message = err.to_string();
    assert!(
        message.contains("broken"),
        "names the initializer: {message}"
    );
    assert!(message.contains("disk full"), "says why: {message}");
}

#[tokio::test]
async fn serve_reports_a_failing_initializer_before_binding() {
    // The port is taken: if `serve` bound before starting the workers, this would be a
    // bind error.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = Balancer::builder()
        .addr(addr)
        .db_init(|_| Err::<u32, _>("no database"))
        .serve(Router::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Init, "{err:?}");
}

#[tokio::test]
async fn two_initializers_of_one_type_are_rejected_at_startup() {
    let builder = Balancer::builder()
        .db_init(|_| Ok::<u32, Infallible>(1))
        .db_init(|_| Ok::<u32, Infallible>(2));
    let Err(err) = try_start(builder, Router::new()).await else {
        panic!("start must fail");
    };
    assert_eq!(err.kind(), ErrorKind::DuplicateInit);
    assert!(err.to_string().contains("`u32`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_asking_for_a_type_no_initializer_returns_gets_500() {
    let app = Router::new().route("/", get(|db: Db<String>| async move { db.clone() }));
    let server = start(Balancer::builder().max_concurrent(1), app).await;
    let reply = fetch(server.addr(), "/").await;
    assert_eq!(reply.status, 500);
    server.stop().await;
}
