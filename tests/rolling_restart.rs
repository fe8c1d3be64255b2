//! Two `notes` instances behind a real nginx, restarted one at a time under steady write load:
//! no failed request, no lost acknowledged write.
//!
//! The nginx settings are the ones `docs/deploy.md` recommends.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::assert_notes_stored;
use http::Method;
use intralb_test_support::*;

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// nginx in front of two upstreams. Retrying a POST elsewhere is safe here because intralb
/// answers a request it will not run with a refused connection or a 503, never half-way.
fn nginx_config(dir: &TempDir, listen: u16, upstreams: [u16; 2]) -> String {
    let prefix = dir.path().display();
    format!(
        r#"
worker_processes 1;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    upstream notes {{
        server 127.0.0.1:{a} max_fails=0;
        server 127.0.0.1:{b} max_fails=0;
    }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            proxy_pass http://notes;
            proxy_next_upstream error http_503 non_idempotent;
            proxy_next_upstream_tries 4;
            proxy_connect_timeout 2s;
        }}
    }}
}}
"#,
        a = upstreams[0],
        b = upstreams[1],
    )
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers; SIGKILL would orphan them.
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        if let Ok(Some(_)) = wait_exit_within(&mut self.0, Duration::from_secs(3)) {
            return;
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nginx(binary: &PathBuf, dir: &TempDir, config: &str) -> Nginx {
    let conf = dir.file("nginx.conf");
    std::fs::write(&conf, config).unwrap();
    let child = Command::new(binary)
        .args([
            "-p",
            &dir.file(""),
            "-c",
            &conf,
            "-e",
            &dir.file("error.log"),
        ])
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    Nginx(child)
}

async fn wait_listening(addr: std::net::SocketAddr) {
    for _ in 0..2000 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("nothing listens on {addr}");
}

#[derive(Default)]
struct Load {
    stop: AtomicBool,
    acknowledged: Mutex<Vec<i64>>,
    failures: Mutex<Vec<String>>,
    requests: AtomicUsize,
}

/// Writes a note, then reads it back, until told to stop; every failure is recorded.
async fn drive(load: Arc<Load>, client: HttpClient, addr: std::net::SocketAddr, writer: usize) {
    let json = [("content-type", "application/json")];
    let mut n = 0;
    while !load.stop.load(SeqCst) {
        n += 1;
        let body = serde_json::json!({ "body": format!("{writer}/{n}") }).to_string();
        let req = http::Request::post(format!("http://{addr}/notes"))
            .header(json[0].0, json[0].1)
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        load.requests.fetch_add(1, SeqCst);
        let created = match client.request(req).await {
            Ok(res) => res,
            Err(error) => {
                load.failures.lock().unwrap().push(format!("POST: {error}"));
                continue;
            }
        };
        let status = created.status();
        let body = http_body_util::BodyExt::collect(created.into_body()).await;
        let body = body.map(|b| b.to_bytes()).unwrap_or_default();
        if status != 201 {
            let text = String::from_utf8_lossy(&body);
            load.failures
                .lock()
                .unwrap()
                .push(format!("POST: {status} {text}"));
            continue;
        }
        let note: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let id = note["id"].as_i64().unwrap();
        load.acknowledged.lock().unwrap().push(id);
        load.requests.fetch_add(1, SeqCst);
        let read = send(&client, addr, Method::GET, &format!("/notes/{id}"), &[], "").await;
        if read.status != 200 {
            let failure = format!("GET /notes/{id}: {} {}", read.status, read.body);
            load.failures.lock().unwrap().push(failure);
        }
    }
}

/// Waits until `more` requests beyond the current count have been sent.
async fn wait_requests(load: &Load, more: usize) {
    let target = load.requests.load(SeqCst) + more;
    for _ in 0..6000 {
        if load.requests.load(SeqCst) >= target {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the load stalled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_behind_nginx_fails_no_request_and_loses_no_write() {
    let Some(nginx) = nginx_binary() else {
        eprintln!("SKIPPED: nginx is not installed (.ci/run installs it with apt-get)");
        return;
    };
    let dir = TempDir::new("rolling");
    let db = dir.file("notes.db");
    let spawn = |port: u16| {
        let (db, addr) = (db.clone(), format!("127.0.0.1:{port}"));
        tokio::task::spawn_blocking(move || {
            Example::start("notes", &[("NOTES_DB", &db), ("INTRALB_ADDR", &addr)])
        })
    };
    let mut instances = [Some(spawn(0).await.unwrap()), Some(spawn(0).await.unwrap())];
    let port = |i: &Option<Example>| i.as_ref().unwrap().addr.port();
    let ports = [port(&instances[0]), port(&instances[1])];
    let listen = free_port().expect("a free port");
    let _nginx = start_nginx(&nginx, &dir, &nginx_config(&dir, listen, ports));
    let front: std::net::SocketAddr = ([127, 0, 0, 1], listen).into();
    wait_listening(front).await;

    let load = Arc::new(Load::default());
    let client = client();
    let drivers: Vec<_> = (0..6)
        .map(|w| tokio::spawn(drive(load.clone(), client.clone(), front, w)))
        .collect();
    wait_requests(&load, 100).await;

    for (i, port) in ports.into_iter().enumerate() {
        let old = instances[i].take().unwrap();
        let (status, output) = tokio::task::spawn_blocking(move || old.stop())
            .await
            .unwrap();
        assert!(status.success(), "instance {i} exited badly:\n{output}");
        assert!(output.contains("shutdown complete"), "{output}");
        wait_requests(&load, 100).await;
        instances[i] = Some(spawn(port).await.unwrap());
        wait_requests(&load, 100).await;
    }

    load.stop.store(true, SeqCst);
    for driver in drivers {
        driver.await.unwrap();
    }
    let failures = load.failures.lock().unwrap().clone();
    let acknowledged = load.acknowledged.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed requests: {failures:#?}",
        failures.len()
    );
    assert!(
        acknowledged.len() >= 300,
        "steady load: {} writes",
        acknowledged.len()
    );

    assert_notes_stored(&db, &acknowledged);
}
