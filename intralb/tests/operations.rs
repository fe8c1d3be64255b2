//! Operations: probes answered without a worker, readiness during a drain, Prometheus metrics,
//! and SO_REUSEPORT.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use intralb::{Balancer, ErrorKind};
use intralb_test_support::*;
use tokio::net::TcpStream;

/// `/hold` parks at the gate; `/` answers at once.
fn app(gate: &Gate) -> Router {
    let gate = gate.clone();
    Router::new()
        .route("/hold", get(move || async move { gate.pass().await }))
        .route("/", get(|| async { "ok" }))
}

/// The Prometheus recorder is process-wide, so the servers of this binary's tests share its
/// gauges (each sets `intralb_workers` from its own pool): the tests that start one take turns.
static METRICS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn probed() -> intralb::Builder {
    Balancer::builder()
        .health("/healthz")
        .ready("/readyz")
        .metrics("/metrics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn probes_answer_without_a_worker_under_full_overload() {
    let _turn = METRICS.lock().await;
    let gate = Gate::new();
    let server = start(probed().max_concurrent(1).queue(0), app(&gate)).await;
    let held = spawn_get(server.addr(), "/hold");
    server
        .wait_for("the only worker busy", |s| s.busy == 1)
        .await;
    assert_eq!(
        fetch(server.addr(), "/").await.status,
        503,
        "the pool is full"
    );

    assert_eq!(fetch(server.addr(), "/healthz").await.status, 200);
    assert_eq!(fetch(server.addr(), "/readyz").await.status, 200);
    assert_eq!(fetch(server.addr(), "/metrics").await.status, 200);
    let stats = server.stats();
    assert_eq!(
        (stats.served, stats.shed),
        (0, 1),
        "probes are not requests"
    );
    gate.open(1);
    assert_eq!(held.await.unwrap().status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_turns_503_before_the_listener_closes() {
    let _turn = METRICS.lock().await;
    let builder = probed().drain_delay(Duration::from_secs(3));
    let server = start(builder, app(&Gate::new())).await;
    let addr = server.addr();
    assert_eq!(fetch(addr, "/readyz").await.status, 200);

    let server = server.begin_shutdown();
    let mut ready = 200;
    for _ in 0..2000 {
        ready = fetch(addr, "/readyz").await.status;
        if ready == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(ready, 503, "readiness reports the drain");
    // Still accepting and serving, but asking clients to go elsewhere.
    let reply = fetch(addr, "/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("connection"), Some("close"));
    assert_eq!(
        fetch(addr, "/healthz").await.status,
        200,
        "alive while draining"
    );

    within("the drain", server.wait()).await.unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "closed after the drain"
    );
}

/// Parses Prometheus text with the reference Python client's parser; one line per sample,
/// `name{label="value",...} value`, labels sorted. `None` (with the reason printed) where the
/// parser cannot be had.
fn parse_prometheus(text: &str) -> Option<Vec<String>> {
    const SCRIPT: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value}")
"#;
    let probe = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: python3 with prometheus_client is not installed (pip install prometheus-client)");
        return None;
    }
    let mut parser = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    parser
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = parser.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the Prometheus parser rejected the output:\n{}\n---\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

fn sample(samples: &[String], series: &str) -> f64 {
    samples
        .iter()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{}", samples.join("\n")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_parse_with_the_prometheus_reference_parser() {
    let _turn = METRICS.lock().await;
    let gate = Gate::new();
    let server = start(probed().max_concurrent(1).queue(0), app(&gate)).await;
    for _ in 0..3 {
        assert_eq!(fetch(server.addr(), "/").await.status, 200);
    }
    let held = spawn_get(server.addr(), "/hold");
    server
        .wait_for("the only worker busy", |s| s.busy == 1)
        .await;
    assert_eq!(fetch(server.addr(), "/").await.status, 503);

    let metrics = fetch(server.addr(), "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let Some(samples) = parse_prometheus(&metrics.body) else {
        gate.open(1);
        return;
    };
    // Counters are process-wide: other tests in this binary may have added to them.
    assert!(
        sample(
            &samples,
            r#"intralb_requests_total{outcome="served",priority="normal"}"#
        ) >= 3.0
    );
    assert!(
        sample(
            &samples,
            r#"intralb_requests_total{outcome="shed",priority="normal"}"#
        ) >= 1.0
    );
    assert_eq!(sample(&samples, r#"intralb_workers{state="busy"}"#), 1.0);
    assert_eq!(sample(&samples, "intralb_queue_depth{}"), 0.0);
    assert!(sample(&samples, "intralb_service_time_seconds_count{}") >= 3.0);
    assert!(sample(&samples, r#"intralb_queue_wait_seconds_bucket{le="+Inf"}"#) >= 3.0);
    gate.open(1);
    assert_eq!(held.await.unwrap().status, 200);
    server.stop().await;
}

#[tokio::test]
async fn reuse_port_lets_a_second_process_bind_the_same_port() {
    let first = Balancer::builder()
        .addr("127.0.0.1:0".parse().unwrap())
        .reuse_port(true)
        .bind()
        .unwrap();
    let addr = first.local_addr().unwrap();
    let second = Balancer::builder().addr(addr).reuse_port(true).bind();
    assert!(second.is_ok(), "{:?}", second.err());
    let err = Balancer::builder().addr(addr).bind().unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Bind,
        "without reuse_port the port is taken"
    );
}
