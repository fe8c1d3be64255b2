//! A worker's lifecycle with real resources: busy while anything holds them, broken ones
//! replaced, blocking calls off the runtime, a drain that long-lived responses can see.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use intralb::{Balancer, Db, Drain, Initializer, WorkerId};
use intralb_test_support::*;

/// Which initialisation a value came from (counted per initializer).
struct Generation(usize);

/// A second resource, to check that replacing one keeps the other.
struct Other(usize);

/// An initializer counting its runs, numbering each value.
fn numbered<T: Send + 'static>(
    runs: &Arc<AtomicUsize>,
    make: fn(usize) -> T,
) -> impl Fn(WorkerId) -> Result<T, Infallible> + Send + Sync + 'static {
    let runs = Arc::clone(runs);
    move |_| Ok(make(runs.fetch_add(1, SeqCst)))
}

/// A body that sends one chunk, then waits for the gate before it ends, holding `held`.
fn streaming_body<H: Send + Sync + Unpin + 'static>(gate: Gate, held: H) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let _ = tx.send(Bytes::from_static(b"first\n")).await;
        gate.pass().await;
        let _ = tx.send(Bytes::from_static(b"last\n")).await;
    });
    Body::new(Chunks { rx, _held: held })
}

/// Chunks from a channel, as a response body that owns `_held` until it ends.
struct Chunks<H> {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    _held: H,
}

impl<H: Unpin> http_body::Body for Chunks<H> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|data| Ok(http_body::Frame::data(data))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_db_held_by_a_streaming_body_keeps_its_worker_busy_and_no_one_gets_500() {
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Gate::new();
    let app = {
        let gate = gate.clone();
        Router::new()
            .route(
                "/stream",
                get(move |db: Db<Generation>| async move { streaming_body(gate, db) }),
            )
            .route(
                "/",
                get(|db: Db<Generation>| async move { db.0.to_string() }),
            )
    };
    let builder = Balancer::builder()
        .max_concurrent(2)
        .min_workers(2)
        .db_init(numbered(&runs, Generation));
    let server = start(builder, app).await;

    // The stream's head is out, its body still holds the worker's value.
    let client = client();
    let req = http::Request::get(format!("http://{}/stream", server.addr()))
        .body(http_body_util::Full::<Bytes>::default())
        .unwrap();
    let mut stream = within("the stream's head", client.request(req))
        .await
        .unwrap()
        .into_body();
    let first = within("the first chunk", stream.frame())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first\n");

    let stats = server.stats();
    assert_eq!(
        (stats.busy, stats.idle),
        (1, 1),
        "busy while held: {stats:?}"
    );
    // Before the fix, these were leased the streaming worker half of the time: 500.
    for _ in 0..6 {
        let reply = fetch_with(&client, server.addr(), "/").await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }

    gate.open(1);
    let rest = within("the rest", stream.collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "last\n");
    server
        .wait_for("the worker back once the body dropped its Db", |s| {
            s.idle == 2
        })
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_db_moved_into_a_spawned_task_counts_against_max_concurrent() {
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Gate::new();
    let app = {
        let gate = gate.clone();
        Router::new()
            .route(
                "/background",
                get(move |db: Db<Generation>| async move {
                    tokio::spawn(async move {
                        gate.pass().await;
                        drop(db);
                    });
                    "accepted"
                }),
            )
            .route(
                "/",
                get(|db: Db<Generation>| async move { db.0.to_string() }),
            )
    };
    let builder = Balancer::builder()
        .max_concurrent(1)
        .min_workers(1)
        .queue(4)
        .db_init(numbered(&runs, Generation));
    let server = start(builder, app).await;
    assert_eq!(fetch(server.addr(), "/background").await.status, 200);
    assert_eq!(server.stats().busy, 1, "the spawned task holds the worker");

    // The only worker is held: the next request waits in the queue (before the fix: 500).
    let waiting = spawn_get(server.addr(), "/");
    server.wait_for("one queued", |s| s.queued == 1).await;
    gate.open(1);
    let reply = within("the queued request", waiting).await.unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "0"));
    server.stop().await;
}

/// A connection-like value that a handler can break.
struct Conn {
    generation: usize,
    closed: AtomicBool,
}

impl Conn {
    fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broken_value_is_replaced_before_its_worker_serves_again() {
    let runs = Arc::new(AtomicUsize::new(0));
    let others = Arc::new(AtomicUsize::new(0));
    let conn = {
        let runs = Arc::clone(&runs);
        Initializer::sync("conn", move |_| {
            Ok::<_, Infallible>(Conn {
                generation: runs.fetch_add(1, SeqCst),
                closed: AtomicBool::new(false),
            })
        })
        .broken(Conn::is_closed)
    };
    let app = Router::new()
        .route(
            "/",
            get(|conn: Db<Conn>, other: Db<Other>| async move {
                format!("{} {}", conn.generation, other.0)
            }),
        )
        .route(
            "/break",
            get(|conn: Db<Conn>| async move {
                conn.closed.store(true, SeqCst);
                "broken"
            }),
        );
    let builder = Balancer::builder()
        .max_concurrent(1)
        .min_workers(1)
        .initializer(conn)
        .db_init(numbered(&others, Other));
    let server = start(builder, app).await;
    let client = client();
    assert_eq!(fetch_with(&client, server.addr(), "/").await.body, "0 0");
    assert_eq!(
        fetch_with(&client, server.addr(), "/break").await.status,
        200
    );
    // The next request waits for the replacement; only the broken value was made again.
    assert_eq!(fetch_with(&client, server.addr(), "/").await.body, "1 0");
    assert_eq!(others.load(SeqCst), 1, "the healthy value was kept");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discard_replaces_only_the_discarded_value() {
    let runs = Arc::new(AtomicUsize::new(0));
    let others = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/",
            get(
                |g: Db<Generation>, other: Db<Other>| async move { format!("{} {}", g.0, other.0) },
            ),
        )
        .route(
            "/discard",
            get(|g: Db<Generation>| async move {
                Db::discard(g);
                "discarded"
            }),
        );
    let builder = Balancer::builder()
        .max_concurrent(1)
        .min_workers(1)
        .db_init(numbered(&runs, Generation))
        .db_init(numbered(&others, Other));
    let server = start(builder, app).await;
    let client = client();
    assert_eq!(fetch_with(&client, server.addr(), "/").await.body, "0 0");
    assert_eq!(
        fetch_with(&client, server.addr(), "/discard").await.status,
        200
    );
    assert_eq!(fetch_with(&client, server.addr(), "/").await.body, "1 0");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_nothing_can_start_requests_get_503_at_once_and_liveness_stays_200() {
    let down = Arc::new(AtomicBool::new(false));
    let init = {
        let down = Arc::clone(&down);
        move |_: WorkerId| {
            if down.load(SeqCst) {
                Err("connection refused")
            } else {
                Ok(Generation(0))
            }
        }
    };
    let app = Router::new()
        .route("/", get(|_: Db<Generation>| async { "ok" }))
        .route(
            "/lose",
            get(|g: Db<Generation>| async move {
                Db::discard(g);
                "lost"
            }),
        );
    // A deadline beyond the test's bound: waiting for it fails the test.
    let builder = Balancer::builder()
        .max_concurrent(1)
        .min_workers(1)
        .timeout(Duration::from_secs(60))
        .health("/healthz")
        .db_init(init);
    let server = start(builder, app).await;
    down.store(true, SeqCst);
    assert_eq!(fetch(server.addr(), "/lose").await.status, 200);
    server
        .wait_for("the replacement failing", |s| s.init_failures >= 1)
        .await;

    let reply = within("a refusal at once", fetch(server.addr(), "/")).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(matches!(reply.header("retry-after"), Some("1" | "2")));
    assert!(reply.body.starts_with("unavailable"), "{reply:?}");
    assert_eq!(server.stats().unavailable, 1);
    assert_eq!(fetch(server.addr(), "/healthz").await.status, 200);

    // The database is back: the worker's retries succeed and it serves again.
    down.store(false, SeqCst);
    server.wait_for("the worker back", |s| s.idle == 1).await;
    assert_eq!(fetch(server.addr(), "/").await.status, 200);
    server.stop().await;
}

/// A blocking call's two ends: it says when it started, and waits to be let go.
#[derive(Clone)]
struct Blocker {
    entered: Arc<Mutex<mpsc::Sender<()>>>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
}

impl Blocker {
    /// Blocks the calling thread (as a SQLite call waiting for a lock does) until released.
    /// Bounded, so a regression fails the test instead of hanging it.
    fn block(&self) -> &'static str {
        let _ = self.entered.lock().unwrap().send(());
        match self
            .release
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(20))
        {
            Ok(()) => "released",
            Err(_) => "never released",
        }
    }
}

/// A blocker, and the test's ends of it.
fn blocker() -> (Blocker, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let blocker = Blocker {
        entered: Arc::new(Mutex::new(entered_tx)),
        release: Arc::new(Mutex::new(release_rx)),
    };
    (blocker, entered, release)
}

async fn entered(entered: &Arc<Mutex<mpsc::Receiver<()>>>) {
    let entered = Arc::clone(entered);
    within(
        "the blocking call to start",
        tokio::task::spawn_blocking(move || entered.lock().unwrap().recv().unwrap()),
    )
    .await
    .unwrap();
}

// One runtime thread: a blocking call on it would stall the whole server.
#[tokio::test(flavor = "current_thread")]
async fn a_blocking_call_leaves_the_runtime_free_to_probe_and_shed() {
    let (blocker, entered_rx, release) = blocker();
    let entered_rx = Arc::new(Mutex::new(entered_rx));
    let app = Router::new().route(
        "/",
        get(move |mut db: Db<Generation>| {
            let blocker = blocker.clone();
            async move { Db::blocking(&mut db, move |_| blocker.block()).await }
        }),
    );
    let builder = Balancer::builder()
        .max_concurrent(1)
        .min_workers(1)
        .queue(0)
        .health("/healthz")
        .db_init(|_| Ok::<_, Infallible>(Generation(0)));
    let server = start(builder, app).await;
    let slow = spawn_get(server.addr(), "/");
    entered(&entered_rx).await;

    // The worker is inside the blocking call: the runtime still answers probes and sheds.
    assert_eq!(fetch(server.addr(), "/healthz").await.status, 200);
    assert_eq!(fetch(server.addr(), "/").await.status, 503);
    release.send(()).unwrap();
    let reply = within("the slow request", slow).await.unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "released"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blocking_call_past_the_deadline_gets_504_and_keeps_its_worker_until_it_returns() {
    let (blocker, entered_rx, release) = blocker();
    let entered_rx = Arc::new(Mutex::new(entered_rx));
    let app = Router::new()
        .route(
            "/slow",
            get(move |mut db: Db<Generation>| {
                let blocker = blocker.clone();
                async move { Db::blocking(&mut db, move |_| blocker.block()).await }
            }),
        )
        .route(
            "/",
            get(|db: Db<Generation>| async move { db.0.to_string() }),
        );
    let builder = Balancer::builder()
        .max_concurrent(1)
        .min_workers(1)
        .queue(4)
        .timeout(Duration::from_millis(300))
        .db_init(|_| Ok::<_, Infallible>(Generation(7)));
    let server = start(builder, app).await;
    let slow = spawn_get(server.addr(), "/slow");
    entered(&entered_rx).await;
    let reply = within("the 504", slow).await.unwrap();
    assert_eq!(reply.status, 504);

    // The handler was cancelled, the closure runs on: the worker stays busy.
    assert_eq!(server.stats().busy, 1);
    let next = spawn_get(server.addr(), "/");
    server
        .wait_for("the next one queued", |s| s.queued == 1)
        .await;
    release.send(()).unwrap();
    let reply = within("the next request", next).await.unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "7"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_in_a_blocking_call_is_a_500_and_replaces_the_worker_values() {
    let runs = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/panic",
            get(|mut db: Db<Generation>| async move {
                Db::blocking(&mut db, |_| -> String { panic!("bug in a query") }).await
            }),
        )
        .route(
            "/",
            get(|db: Db<Generation>| async move { db.0.to_string() }),
        );
    let builder = Balancer::builder()
        .max_concurrent(1)
        .min_workers(1)
        .db_init(numbered(&runs, Generation));
    let server = start(builder, app).await;
    assert_eq!(fetch(server.addr(), "/panic").await.status, 500);
    assert_eq!(server.stats().panicked, 1);
    assert_eq!(fetch(server.addr(), "/").await.body, "1");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_poll_learns_that_the_drain_began_and_ends_cleanly() {
    let app = Router::new().route(
        "/poll",
        get(|drain: Drain| async move {
            drain.signaled().await;
            "draining: reconnect"
        }),
    );
    // A drain far longer than the test's bound: only the signal ends the poll in time.
    let builder = Balancer::builder().shutdown_timeout(Duration::from_secs(60));
    let server = start(builder, app).await;
    let poll = spawn_get(server.addr(), "/poll");
    server.wait_for("the poll running", |s| s.busy == 1).await;
    let server = server.begin_shutdown();
    let reply = within("the poll's answer", poll).await.unwrap();
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "draining: reconnect")
    );
    within("the drain", server.wait()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_endless_stream_is_cut_at_the_shutdown_deadline() {
    let app = Router::new().route("/events", get(|| async { streaming_body(Gate::new(), ()) }));
    let builder = Balancer::builder().shutdown_timeout(Duration::from_millis(200));
    let server = start(builder, app).await;
    let req = http::Request::get(format!("http://{}/events", server.addr()))
        .body(http_body_util::Full::<Bytes>::default())
        .unwrap();
    let mut events = client().request(req).await.unwrap().into_body();
    let first = within("the first event", events.frame())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first\n");

    let server = server.begin_shutdown();
    within("the drain to give up on the stream", server.wait())
        .await
        .unwrap();
    let rest = within("the stream to end", events.collect()).await;
    assert!(rest.is_err(), "the stream was cut, not finished: {rest:?}");
}
