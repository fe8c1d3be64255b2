//! Hostile clients: slow bodies hold no worker, every connection state has a timeout, and the
//! connection limit keeps the server reachable.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::{get, post};
use axum::Router;
use intralb::Balancer;
use intralb_test_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `POST /echo` answers the length of the body it read; `GET /` answers "ok".
fn echo() -> Router {
    Router::new().route("/", get(|| async { "ok" })).route(
        "/echo",
        post(|body: Bytes| async move { body.len().to_string() }),
    )
}

/// Reads what the server sends until it closes the connection.
async fn read_until_closed(conn: &mut TcpStream) -> String {
    let mut text = Vec::new();
    within(
        "the server to close the connection",
        conn.read_to_end(&mut text),
    )
    .await
    .ok();
    String::from_utf8_lossy(&text).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_body_holds_no_worker_and_gets_408_at_its_timeout() {
    let builder = Balancer::builder()
        .max_concurrent(1)
        .min_workers(1)
        .queue(0)
        .body_timeout(Duration::from_millis(300));
    let server = start(builder, echo()).await;
    let mut slow = TcpStream::connect(server.addr()).await.unwrap();
    slow.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    // The server asks for the body when it starts reading it: before admission.
    let mut continue_line = [0; 25];
    within("100 Continue", slow.read_exact(&mut continue_line))
        .await
        .unwrap();
    assert!(continue_line.starts_with(b"HTTP/1.1 100 Continue"));
    slow.write_all(&[b'x'; 12]).await.unwrap();

    // While the body trickles in, the only worker is free (with it taken: 503, no queue).
    for _ in 0..3 {
        assert_eq!(fetch(server.addr(), "/").await.status, 200);
    }
    assert_eq!(server.stats().busy, 0);

    let answer = read_until_closed(&mut slow).await.to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 408"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert_eq!(server.stats().body_timed_out, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_larger_than_the_buffer_stream_to_the_handler_in_full() {
    let builder = Balancer::builder().buffer_body(1024);
    let server = start(builder, echo()).await;
    let client = client();
    for len in [0, 10, 1024, 1025, 300_000] {
        let body = "y".repeat(len);
        let reply = send(
            &client,
            server.addr(),
            http::Method::POST,
            "/echo",
            &[],
            &body,
        )
        .await;
        assert_eq!((reply.status, reply.body), (200, len.to_string()));
    }
    // Chunked, with no declared length: read up to the buffer, then streamed.
    let mut conn = TcpStream::connect(server.addr()).await.unwrap();
    let chunk = "z".repeat(1000);
    let mut request = String::from(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    for _ in 0..5 {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("5000"), "{answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_streamed_body_that_stalls_is_an_error_the_handler_sees() {
    let app = Router::new().route(
        "/upload",
        post(|body: axum::body::Body| async move {
            match axum::body::to_bytes(body, usize::MAX).await {
                Ok(bytes) => (http::StatusCode::OK, bytes.len().to_string()),
                Err(error) => (http::StatusCode::BAD_REQUEST, format!("{error:?}")),
            }
        }),
    );
    // Nothing is buffered: the handler streams, each read under body_timeout.
    let builder = Balancer::builder()
        .buffer_body(0)
        .body_timeout(Duration::from_millis(200));
    let server = start(builder, app).await;
    let mut conn = TcpStream::connect(server.addr()).await.unwrap();
    conn.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let mut head = [0; 24];
    within("the handler's answer", conn.read_exact(&mut head))
        .await
        .unwrap();
    assert!(
        head.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http2_connections_stuck_before_their_first_request_are_closed() {
    let builder = Balancer::builder().header_read_timeout(Duration::from_millis(300));
    let server = start(builder, echo()).await;
    let stuck: [&[u8]; 3] = [
        b"PRI * HTTP/2",                                         // part of the preface
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",                     // the preface, no SETTINGS
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0", // and SETTINGS, no request
    ];
    let mut conns = Vec::new();
    for bytes in stuck {
        let mut conn = TcpStream::connect(server.addr()).await.unwrap();
        conn.write_all(bytes).await.unwrap();
        conns.push(conn);
    }
    for conn in &mut conns {
        // Closed by the server (a GOAWAY at most): the read ends.
        read_until_closed(conn).await;
    }
    assert_eq!(
        fetch_with(&h2_client(), server.addr(), "/").await.status,
        200
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_http2_connection_is_closed_after_connection_idle_timeout() {
    let builder = Balancer::builder().connection_idle_timeout(Duration::from_millis(300));
    let server = start(builder, echo()).await;
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::get("/")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(request).await.unwrap().status(), 200);
    // No more requests: the server says GOAWAY and the connection ends.
    within("the idle connection to close", connection)
        .await
        .unwrap()
        .ok();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_max_connections_accepting_pauses_until_a_slot_frees() {
    // The handler records whether the test still held both slots when it ran.
    let slots_held = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let app = {
        let slots_held = Arc::clone(&slots_held);
        Router::new().route(
            "/",
            get(move || async move { slots_held.load(SeqCst).to_string() }),
        )
    };
    let builder = Balancer::builder().max_connections(2);
    let server = start(builder, app).await;
    // Two connections take both slots with a head they never finish (and never time out here).
    let mut stuck = Vec::new();
    for _ in 0..2 {
        let mut conn = TcpStream::connect(server.addr()).await.unwrap();
        conn.write_all(b"GET / HT").await.unwrap();
        stuck.push(conn);
    }
    // A third client waits in the backlog. Had it been accepted, its handler would run now;
    // the wait only gives a broken limit the chance to show (it passes at any length).
    let third = spawn_get(server.addr(), "/");
    tokio::time::sleep(Duration::from_millis(200)).await;
    slots_held.store(false, SeqCst);
    drop(stuck.pop());
    let reply = within("the third client", third).await.unwrap();
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "false"),
        "served only once a slot was freed"
    );
    server.stop().await;
}

/// A response body of `chunks` × 64 KiB, made as it is read, that reports when it is dropped.
struct Big {
    chunks: usize,
    dropped: Option<tokio::sync::oneshot::Sender<usize>>,
}

impl http_body::Body for Big {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.chunks == 0 {
            return std::task::Poll::Ready(None);
        }
        self.chunks -= 1;
        let chunk = Bytes::from(vec![b'b'; 64 * 1024]);
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }
}

impl Drop for Big {
    fn drop(&mut self) {
        if let Some(dropped) = self.dropped.take() {
            let _ = dropped.send(self.chunks);
        }
    }
}

/// `GET /big` answers `chunks` × 64 KiB and sends the count left unsent when its body drops;
/// `GET /empty` answers `204`.
fn big(chunks: usize) -> (Router, tokio::sync::mpsc::UnboundedReceiver<usize>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = Router::new()
        .route("/empty", get(|| async { http::StatusCode::NO_CONTENT }))
        .route(
            "/big",
            get(move || {
                let tx = tx.clone();
                async move {
                    let (dropped, report) = tokio::sync::oneshot::channel();
                    tokio::spawn(async move {
                        if let Ok(left) = report.await {
                            let _ = tx.send(left);
                        }
                    });
                    axum::body::Body::new(Big {
                        chunks,
                        dropped: Some(dropped),
                    })
                }
            }),
        );
    (app, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_http1_client_that_does_not_read_is_cut_off_and_its_response_freed() {
    // 64 MiB: far more than the kernel's socket buffers hold.
    let (app, mut dropped) = big(1024);
    let builder = Balancer::builder().send_timeout(Duration::from_millis(400));
    let server = start(builder, app).await;
    let mut conn = TcpStream::connect(server.addr()).await.unwrap();
    conn.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The client reads nothing: the response stalls, and is dropped unfinished.
    let left = within("the stalled response to be dropped", dropped.recv())
        .await
        .unwrap();
    assert!(left > 0, "cut before its end");
    let mut received = Vec::new();
    within("the connection to close", conn.read_to_end(&mut received))
        .await
        .ok();
    assert!(received.len() < 64 << 20, "{} bytes", received.len());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_http2_stream_that_is_not_read_is_reset_and_the_connection_goes_on() {
    let (app, mut dropped) = big(1024);
    let builder = Balancer::builder().send_timeout(Duration::from_millis(400));
    let server = start(builder, app).await;
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    // The client grants each stream one byte of window and never reads.
    let (mut sender, connection) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(1)
            .handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = |path: &str| {
        http::Request::get(path)
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap()
    };
    let stuck = sender.send_request(request("/big")).await.unwrap();
    assert_eq!(stuck.status(), 200);
    let left = within(
        "the stalled stream's response to be dropped",
        dropped.recv(),
    )
    .await
    .unwrap();
    assert!(left > 0);
    // The same connection still serves other streams.
    sender.ready().await.unwrap();
    let other = sender.send_request(request("/empty")).await.unwrap();
    assert_eq!(other.status(), 204);
    drop(stuck);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_reader_that_keeps_reading_is_never_cut() {
    // 4 MiB read 256 KiB at a time, a pause between reads far shorter than send_timeout.
    let (app, mut dropped) = big(64);
    let builder = Balancer::builder().send_timeout(Duration::from_secs(3));
    let server = start(builder, app).await;
    let mut conn = TcpStream::connect(server.addr()).await.unwrap();
    conn.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut received = 0;
    let mut buf = vec![0; 256 * 1024];
    within("the whole response", async {
        loop {
            match conn.read(&mut buf).await.unwrap() {
                0 => break,
                n => received += n,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(received > 64 * 64 * 1024, "all of it arrived: {received}");
    assert_eq!(dropped.recv().await, Some(0), "finished, not cut");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_half_sent_head_does_not_hold_up_the_shutdown() {
    // Every timeout far beyond the test's bound: only dropping the connection at the drain passes.
    let builder = Balancer::builder()
        .header_read_timeout(Duration::from_secs(60))
        .shutdown_timeout(Duration::from_secs(60));
    let server = start(builder, echo()).await;
    let mut half = TcpStream::connect(server.addr()).await.unwrap();
    half.write_all(b"GET / HT").await.unwrap();
    assert_eq!(
        fetch(server.addr(), "/").await.status,
        200,
        "the server is up"
    );

    let server = server.begin_shutdown();
    within("the shutdown", server.wait()).await.unwrap();
    read_until_closed(&mut half).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pipelining_http1_client_that_does_not_read_is_cut_off() {
    // Four 2 MiB responses asked for at once: their bodies end inside hyper's buffer, which
    // then waits on the full socket.
    let (app, _dropped) = big(32);
    let builder = Balancer::builder().send_timeout(Duration::from_millis(400));
    let server = start(builder, app).await;
    let mut conn = TcpStream::connect(server.addr()).await.unwrap();
    conn.write_all(&b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n".repeat(4))
        .await
        .unwrap();
    // The client reads nothing for a while (several send_timeouts; the idle limit is 60 s),
    // then reads what it was sent before the server cut it off.
    let mut received = Vec::new();
    within("the connection to be cut", async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        conn.read_to_end(&mut received).await
    })
    .await
    .ok();
    assert!(received.len() < 4 * (2 << 20), "{} bytes", received.len());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_body_declaring_a_large_size_holds_only_what_it_sent_of_the_budget() {
    // A budget of one buffer (max_concurrent 1, queue 0), a body timeout beyond the test.
    let builder = Balancer::builder()
        .max_concurrent(1)
        .min_workers(1)
        .queue(0)
        .body_timeout(Duration::from_secs(60));
    let server = start(builder, echo()).await;
    let mut slow = TcpStream::connect(server.addr()).await.unwrap();
    slow.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let mut continue_line = [0; 25];
    within("100 Continue", slow.read_exact(&mut continue_line))
        .await
        .unwrap();
    slow.write_all(b"x").await.unwrap();
    // Had the slow body reserved all it declared, this one would wait for its 60 s timeout.
    let reply = within(
        "a small body",
        send(
            &client(),
            server.addr(),
            http::Method::POST,
            "/echo",
            &[],
            "hello",
        ),
    )
    .await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "5"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_connected_before_the_drain_and_asks_just_after_is_answered() {
    let server = start(Balancer::builder(), echo()).await;
    let addr = server.addr();
    let mut late = TcpStream::connect(addr).await.unwrap();
    let server = server.begin_shutdown();
    // The listener is closed: new connections are refused.
    within("the listener to close", async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    late.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut late).await.to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer:?}");
    assert!(answer.contains("connection: close"), "{answer}");
    within("the drain", server.wait()).await.unwrap();
}
