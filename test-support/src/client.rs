//! A real HTTP client over TCP: requests go through a socket and hyper's client, as a user's
//! would.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// How long [`within`] lets a future run.
const WITHIN: Duration = Duration::from_secs(20);

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The response's headers.
    pub headers: HeaderMap,
    /// The body, decoded as UTF-8 (lossily).
    pub body: String,
}

impl Reply {
    /// The header `name`'s value, if it is there and is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A pooled client over plain TCP, sending full bodies.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A client speaking HTTP/1.1.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A client speaking only HTTP/2 over plain TCP (h2c, with prior knowledge).
pub fn h2_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// `GET path` with `client`, read whole; panics on a transport error.
pub async fn fetch_with(client: &HttpClient, addr: SocketAddr, path: &str) -> Reply {
    send(client, addr, Method::GET, path, &[], "").await
}

/// Sends one request and reads the whole response; panics on a transport error.
pub async fn send(
    client: &HttpClient,
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let res = client
        .request(req)
        .await
        .expect("request succeeds at the HTTP level");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// `GET path` on a new HTTP/1.1 client, read whole; panics on a transport error.
pub async fn fetch(addr: SocketAddr, path: &str) -> Reply {
    fetch_with(&client(), addr, path).await
}

/// Sends `GET path` on its own task.
pub fn spawn_get(addr: SocketAddr, path: &str) -> tokio::task::JoinHandle<Reply> {
    let path = path.to_owned();
    tokio::spawn(async move { fetch(addr, &path).await })
}

/// Runs `f` with a bound on its duration (20 s), so a hang fails the test instead of the suite;
/// panics naming `what` if it does not finish.
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WITHIN, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {}s", WITHIN.as_secs()))
}
