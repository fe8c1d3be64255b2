//! The connection layer: HTTP/1.1 and h2c, malformed input, slow clients, bind failures.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use intralb::{Balancer, ErrorKind};
use intralb_test_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn hello() -> Router {
    Router::new().route("/", get(|| async { "Hello World" }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_is_served() {
    let server = start(Balancer::builder(), hello()).await;
    let reply = fetch_with(&h2_client(), server.addr(), "/").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "Hello World"));
    server.stop().await;
}

/// Writes `request` on a fresh connection and reads until the server closes it.
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    within(
        "the server closing the connection",
        stream.read_to_end(&mut response),
    )
    .await
    .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_is_answered_400_without_taking_a_worker() {
    let server = start(Balancer::builder(), hello()).await;
    let response = raw_exchange(
        server.addr(),
        b"GET / HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response:?}");
    assert_eq!(server.stats().served, 0);
    assert_eq!(fetch(server.addr(), "/").await.status, 200, "still serving");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_holds_no_worker_and_is_disconnected() {
    let builder = Balancer::builder()
        .max_concurrent(1)
        .header_read_timeout(Duration::from_millis(300));
    let server = start(builder, hello()).await;
    let mut slow = TcpStream::connect(server.addr()).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();

    // The only worker is free: the half-sent request did not take it.
    assert_eq!(fetch(server.addr(), "/").await.status, 200);
    assert_eq!(server.stats().busy, 0);

    let mut rest = Vec::new();
    within(
        "the slow connection to be closed",
        slow.read_to_end(&mut rest),
    )
    .await
    .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.is_empty() || rest.starts_with("HTTP/1.1 408"),
        "{rest:?}"
    );
    assert_eq!(server.stats().served, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_nothing_is_disconnected() {
    let builder = Balancer::builder().header_read_timeout(Duration::from_millis(300));
    let server = start(builder, hello()).await;
    let mut silent = TcpStream::connect(server.addr()).await.unwrap();
    let mut rest = Vec::new();
    within(
        "the silent connection to be closed",
        silent.read_to_end(&mut rest),
    )
    .await
    .unwrap();
    assert!(rest.is_empty(), "closed without a response: {rest:?}");
    assert_eq!(fetch(server.addr(), "/").await.status, 200, "still serving");
    server.stop().await;
}

#[tokio::test]
async fn a_bind_failure_is_an_error_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = Balancer::builder()
        .addr(addr)
        .serve(hello())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Bind);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert!(format!("{err:?}").contains("caused by"), "{err:?}");
}

/// A body of `left` chunks, one every `every`: a stream that takes its time (server-sent
/// events, say).
struct Ticks {
    left: usize,
    every: tokio::time::Interval,
}

impl http_body::Body for Ticks {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        std::task::ready!(self.every.poll_tick(cx));
        self.left -= 1;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(
            b"tick\n",
        )))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_response_streaming_longer_than_the_idle_limits_is_not_cut() {
    let app = Router::new().route(
        "/ticks",
        get(|| async {
            axum::body::Body::new(Ticks {
                left: 12,
                every: tokio::time::interval(Duration::from_millis(100)),
            })
        }),
    );
    // The stream lasts over a second: five times the idle limits, and past the moment a
    // connection asked to close is dropped.
    let builder = Balancer::builder()
        .header_read_timeout(Duration::from_millis(200))
        .connection_idle_timeout(Duration::from_millis(200));
    let server = start(builder, app).await;
    let response = raw_exchange(
        server.addr(),
        b"GET /ticks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    // Before the fix, the request stopped counting as in flight once its head was sent, and
    // the watchdog closed the connection mid-stream.
    assert_eq!(response.matches("tick").count(), 12, "{response}");
    assert!(response.ends_with("0\r\n\r\n"), "the chunked body ended");
    server.stop().await;
}
