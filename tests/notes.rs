//! The main demo: notes on SQLite, one connection per worker. No acknowledged write is lost,
//! under concurrent load or across a SIGTERM in the middle of it.

mod common;

use std::collections::HashMap;

use common::*;
use http::Method;
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
