//! The main demo: notes on SQLite, one connection per worker. No acknowledged write is lost,
//! under concurrent load or across a SIGTERM in the middle of it.

mod common;

use std::collections::HashMap;

use common::assert_notes_stored;
use http::Method;
use intralb_test_support::*;
use serde_json::Value;

async fn create(client: &HttpClient, addr: std::net::SocketAddr, body: &str) -> Reply {
    let json = serde_json::json!({ "body": body }).to_string();
    send(
        client,
        addr,
        Method::POST,
        "/notes",
        &[("content-type", "application/json")],
        &json,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_note_is_read_back_after_concurrent_writes() {
    let dir = TempDir::new("notes");
    let notes = Example::start("notes", &[("NOTES_DB", &dir.file("notes.db"))]);
    let addr = notes.addr;
    let client = client();

    let writers: Vec<_> = (0..16)
        .map(|writer| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut acknowledged = HashMap::new();
                for n in 0..25 {
                    let body = format!("writer {writer} note {n}");
                    let reply = create(&client, addr, &body).await;
                    assert_eq!(reply.status, 201, "{}", reply.body);
                    let note: Value = serde_json::from_str(&reply.body).unwrap();
                    acknowledged.insert(note["id"].as_i64().unwrap(), body);
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = HashMap::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert_eq!(acknowledged.len(), 400, "every write got its own id");

    let list = fetch_with(&client, addr, "/notes").await;
    assert_eq!(list.status, 200);
    let listed: Vec<Value> = serde_json::from_str(&list.body).unwrap();
    let listed: HashMap<i64, String> = listed
        .iter()
        .map(|n| {
            (
                n["id"].as_i64().unwrap(),
                n["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(listed, acknowledged);

    let (id, body) = acknowledged.iter().next().unwrap();
    let one = fetch_with(&client, addr, &format!("/notes/{id}")).await;
    assert_eq!(one.status, 200);
    assert!(one.body.contains(body.as_str()), "{}", one.body);
    let deleted = send(
        &client,
        addr,
        Method::DELETE,
        &format!("/notes/{id}"),
        &[],
        "",
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        fetch_with(&client, addr, &format!("/notes/{id}"))
            .await
            .status,
        404
    );
    assert_eq!(
        fetch_with(&client, addr, "/notes/not-a-number")
            .await
            .status,
        400
    );
    let bad = send(
        &client,
        addr,
        Method::POST,
        "/notes",
        &[("content-type", "application/json")],
        "{",
    )
    .await;
    assert_eq!(bad.status, 400, "malformed JSON is the client's error");

    let (status, output) = notes.stop();
    assert!(status.success(), "{output}");
    assert!(output.contains("shutdown complete"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_during_writes_loses_no_acknowledged_note() {
    let dir = TempDir::new("notes-term");
    let db = dir.file("notes.db");
    let mut notes = Example::start("notes", &[("NOTES_DB", &db)]);
    let addr = notes.addr;
    let client = client();

    let (first_ack, mut first_acked) = tokio::sync::mpsc::channel::<()>(1);
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let (client, first_ack) = (client.clone(), first_ack.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0.. {
                    let json = serde_json::json!({ "body": format!("{writer}/{n}") }).to_string();
                    let req = http::Request::post(format!("http://{addr}/notes"))
                        .header("content-type", "application/json")
                        .body(http_body_util::Full::new(bytes::Bytes::from(json)))
                        .unwrap();
                    // Once the server has stopped, requests fail to connect: stop writing.
                    let Ok(res) = client.request(req).await else {
                        break;
                    };
                    let status = res.status();
                    let body = http_body_util::BodyExt::collect(res.into_body()).await;
                    let Ok(body) = body else { break };
                    if status == 201 {
                        let note: Value = serde_json::from_slice(&body.to_bytes()).unwrap();
                        acknowledged.push(note["id"].as_i64().unwrap());
                        let _ = first_ack.try_send(());
                    } else {
                        assert_eq!(status, 503, "only shutdown refusals are allowed");
                    }
                }
                acknowledged
            })
        })
        .collect();
    drop(first_ack);
    first_acked
        .recv()
        .await
        .expect("some writes were acknowledged");
    notes.signal("TERM");
    let status = notes.wait();
    assert!(status.success(), "{}", notes.output());

    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert!(!acknowledged.is_empty());
    assert_notes_stored(&db, &acknowledged);
}

/// A gauge's value from the example's Prometheus endpoint (scraped fresh each call).
async fn gauge(client: &HttpClient, addr: std::net::SocketAddr, series: &str) -> f64 {
    let metrics = fetch_with(client, addr, "/metrics").await.body;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_another_process_holds_the_write_lock_probes_answer_and_excess_is_shed() {
    let dir = TempDir::new("notes-locked");
    let db = dir.file("notes.db");
    let notes = Example::start(
        "notes",
        &[
            ("NOTES_DB", &db),
            ("INTRALB_MAX_CONCURRENT", "4"),
            ("INTRALB_MIN_WORKERS", "4"),
            ("INTRALB_QUEUE", "8"),
        ],
    );
    let addr = notes.addr;
    let client = client();
    assert_eq!(create(&client, addr, "before").await.status, 201);

    // Another process's transaction takes SQLite's write lock: every write now waits in
    // SQLite's busy handler (up to the example's 5 s busy timeout), blocking its thread.
    let locker = rusqlite::Connection::open(&db).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let writers: Vec<_> = (0..12)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move { create(&client, addr, &format!("blocked {n}")).await })
        })
        .collect();
    // Every worker inside SQLite, the queue full: with the calls on the runtime's threads,
    // the server could not even answer this scrape.
    let mut full = false;
    for _ in 0..400 {
        let busy = gauge(&client, addr, "intralb_workers{state=\"busy\"}").await;
        let queued = gauge(&client, addr, "intralb_queue_depth").await;
        if busy == 4.0 && queued == 8.0 {
            full = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(full, "4 busy and 8 queued while the lock is held");
    assert_eq!(fetch_with(&client, addr, "/healthz").await.status, 200);
    let shed = create(&client, addr, "one too many").await;
    assert_eq!(shed.status, 503, "{shed:?}");
    let retry_after: u64 = shed.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=90).contains(&retry_after), "{retry_after}");

    // The lock is released: every waiting write goes through.
    locker.execute_batch("COMMIT").unwrap();
    let mut acknowledged = Vec::new();
    for writer in writers {
        let reply = within("a blocked write", writer).await.unwrap();
        assert_eq!(reply.status, 201, "{reply:?}");
        let note: Value = serde_json::from_str(&reply.body).unwrap();
        acknowledged.push(note["id"].as_i64().unwrap());
    }
    assert_notes_stored(&db, &acknowledged);
    let (status, output) = notes.stop();
    assert!(status.success(), "{output}");
}
