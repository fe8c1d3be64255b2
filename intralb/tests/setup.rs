//! Setup: once per process, before any worker's initializers.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use axum::Router;
use intralb::{Balancer, ErrorKind, WorkerId};

static MIGRATIONS: AtomicUsize = AtomicUsize::new(0);

/// Declared with the attribute: `registered_setups` finds it.
#[intralb::setup]
async fn migrate() -> Result<(), std::io::Error> {
    MIGRATIONS.fetch_add(1, SeqCst);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_runs_once_before_any_initializer() {
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let builder = {
        let (setup_log, init_log) = (log.clone(), log.clone());
        Balancer::builder()
            .max_concurrent(4)
            .min_workers(4)
            .setup(move || {
                let log = setup_log.clone();
                async move {
                    log.lock().unwrap().push("setup".into());
                    Ok::<(), std::io::Error>(())
                }
            })
            .db_init(move |worker: WorkerId| {
                init_log.lock().unwrap().push(format!("init {worker}"));
                Ok::<_, std::io::Error>(worker)
            })
    };
    let server = builder.start(Router::new()).await.unwrap();
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 5, "{log:?}");
    assert_eq!(log[0], "setup", "{log:?}");
    assert_eq!(log.iter().filter(|l| *l == "setup").count(), 1, "{log:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_failing_setup_stops_the_start_and_no_initializer_runs() {
    let inits = Arc::new(AtomicUsize::new(0));
    let counted = inits.clone();
    let error = Balancer::builder()
        .setup(|| async { Err::<(), _>("the database refused the migration") })
        .db_init(move |_: WorkerId| {
            counted.fetch_add(1, SeqCst);
            Ok::<_, std::io::Error>(())
        })
        .start(Router::new())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Setup);
    assert!(
        error
            .to_string()
            .ends_with("failed: the database refused the migration"),
        "{error}"
    );
    assert_eq!(inits.load(SeqCst), 0);
}

#[tokio::test]
async fn a_setup_declared_with_the_attribute_runs_once_per_process() {
    for _ in 0..2 {
        let server = Balancer::builder()
            .registered_setups()
            .start(Router::new())
            .await
            .unwrap();
        server.stop().await.unwrap();
    }
    assert_eq!(MIGRATIONS.load(SeqCst), 1);
}
