//! `bench load`: an open-loop load generator for the shapes oha cannot make: bursts (a higher
//! rate for a few milliseconds every period) and two classes of requests at once (`/slow` and
//! `/critical`), each measured apart.
//!
//! Requests are due at the scheduled rate whatever the server does; each one's latency counts
//! from when it was due (coordinated omission corrected, like oha's `--latency-correction`). A
//! request takes an idle keep-alive connection, or opens one while fewer than `connections` are
//! open, or waits for one (the wait counts in its latency). It prints a JSON summary.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Options of `bench load`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoadOptions {
    pub(crate) port: u16,
    pub(crate) seconds: f64,
    /// Requests per second outside bursts.
    pub(crate) rate: f64,
    /// A burst: this rate, for `burst_ms`, every `every_ms`.
    pub(crate) burst_rate: Option<f64>,
    pub(crate) burst_ms: u64,
    pub(crate) every_ms: u64,
    /// Of the requests, the share sent to `/critical` instead of `/slow`.
    pub(crate) critical: f64,
    pub(crate) connections: usize,
    /// Windows (from, to; seconds into the run) to report the p99 of the 200s of.
    pub(crate) windows: Vec<(f64, f64)>,
}

/// What one class of requests got.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClassResult {
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) shed: u64,
    /// Other statuses and failed exchanges.
    pub(crate) other: u64,
    /// Not answered within [`GRACE`] after the end of the run (a server that queues without
    /// bound).
    #[serde(default)]
    pub(crate) unanswered: u64,
    pub(crate) ok_p50_ms: Option<f64>,
    pub(crate) ok_p99_ms: Option<f64>,
    pub(crate) shed_p99_ms: Option<f64>,
    pub(crate) shed_max_ms: Option<f64>,
    /// The `Retry-After` values of the 503s: smallest, largest.
    pub(crate) retry_after: Option<(u64, u64)>,
}

/// `bench load`'s output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LoadReport {
    pub(crate) seconds: f64,
    pub(crate) normal: ClassResult,
    pub(crate) critical: ClassResult,
    /// The p99 of the normal class's 200s, by the second they were sent in.
    #[serde(default)]
    pub(crate) normal_ok_p99_by_second: Vec<Option<f64>>,
    /// The p99 of the normal class's 200s sent within each window asked for (`--windows`).
    #[serde(default)]
    pub(crate) normal_ok_p99_windows: Vec<Window>,
}

/// The p99 of the 200s sent from `from` to `to` seconds into the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Window {
    pub(crate) from: f64,
    pub(crate) to: f64,
    pub(crate) p99_ms: Option<f64>,
}

/// One answered request: class, status (0: failed), latency, `Retry-After`, when it was sent
/// (since the start).
type Sample = (bool, u16, Duration, Option<u64>, Duration);

/// How long requests still in flight at the end of the run may take to be answered.
const GRACE: Duration = Duration::from_secs(5);

pub(crate) fn main(options: LoadOptions) -> std::process::ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let report = runtime.block_on(run(options));
    println!(
        "{}",
        serde_json::to_string(&report).expect("the report serialises")
    );
    std::process::ExitCode::SUCCESS
}

async fn run(options: LoadOptions) -> LoadReport {
    let idle: Arc<Mutex<Vec<SendRequest<Empty<Bytes>>>>> = Arc::default();
    let open = Arc::new(Semaphore::new(options.connections));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(options.seconds);
    let mut due = start;
    let mut share = 0.0;
    let mut tasks = tokio::task::JoinSet::new();
    // Requests sent, normal and critical.
    let mut sent = [0u64; 2];
    while due < end {
        tokio::time::sleep_until(due).await;
        share += options.critical;
        let critical = share >= 1.0;
        if critical {
            share -= 1.0;
        }
        sent[usize::from(critical)] += 1;
        let (idle, open, samples) = (idle.clone(), open.clone(), samples.clone());
        let port = options.port;
        tasks.spawn(async move {
            let (status, retry_after) = exchange(port, critical, &idle, &open).await;
            let latency = due.elapsed();
            samples
                .lock()
                .unwrap()
                .push((critical, status, latency, retry_after, due - start));
        });
        due += Duration::from_secs_f64(1.0 / rate_at(&options, due - start));
    }
    let _ = tokio::time::timeout(GRACE, async { while tasks.join_next().await.is_some() {} }).await;
    tasks.abort_all();
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let seconds = options.seconds.ceil() as usize;
    let mut by_second = vec![Vec::new(); seconds.max(1)];
    for &(critical, status, latency, _, sent) in &samples {
        if !critical && status == 200 {
            let second = (sent.as_secs() as usize).min(by_second.len() - 1);
            by_second[second].push(latency.as_secs_f64() * 1000.0);
        }
    }
    let windows = options
        .windows
        .iter()
        .map(|&(from, to)| {
            let mut latencies: Vec<f64> = samples
                .iter()
                .filter(|&&(critical, status, _, _, sent)| {
                    !critical && status == 200 && (from..to).contains(&sent.as_secs_f64())
                })
                .map(|s| s.2.as_secs_f64() * 1000.0)
                .collect();
            Window {
                from,
                to,
                p99_ms: percentile(&mut latencies, 0.99),
            }
        })
        .collect();
    let mut normal = summarise(samples.iter().filter(|s| !s.0));
    let mut critical = summarise(samples.iter().filter(|s| s.0));
    normal.unanswered = sent[0] - normal.sent;
    critical.unanswered = sent[1] - critical.sent;
    normal.sent = sent[0];
    critical.sent = sent[1];
    LoadReport {
        seconds: options.seconds,
        normal,
        critical,
        normal_ok_p99_by_second: by_second
            .iter_mut()
            .map(|latencies| percentile(latencies, 0.99))
            .collect(),
        normal_ok_p99_windows: windows,
    }
}

/// The request rate `elapsed` into the run.
fn rate_at(options: &LoadOptions, elapsed: Duration) -> f64 {
    match options.burst_rate {
        Some(burst) if (elapsed.as_millis() as u64) % options.every_ms < options.burst_ms => burst,
        _ => options.rate,
    }
}

/// One request on an idle connection (or a new one); its status (0 if the exchange failed)
/// and `Retry-After`.
async fn exchange(
    port: u16,
    critical: bool,
    idle: &Mutex<Vec<SendRequest<Empty<Bytes>>>>,
    open: &Arc<Semaphore>,
) -> (u16, Option<u64>) {
    let reused = idle.lock().unwrap().pop();
    let mut sender = match reused {
        Some(sender) => sender,
        None => {
            // A connection of its own, once fewer than the most are open.
            let permit = Arc::clone(open)
                .acquire_owned()
                .await
                .expect("never closed");
            let reused = idle.lock().unwrap().pop();
            if let Some(sender) = reused {
                drop(permit);
                sender
            } else {
                match connect(port, permit).await {
                    Some(sender) => sender,
                    None => return (0, None),
                }
            }
        }
    };
    let path = if critical { "/critical" } else { "/slow" };
    let request = http::Request::get(path)
        .header(http::header::HOST, "127.0.0.1")
        .body(Empty::new())
        .expect("a valid request");
    let Ok(response) = sender.send_request(request).await else {
        return (0, None);
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok()?.parse().ok());
    if response.into_body().collect().await.is_err() {
        return (0, None);
    }
    if sender.ready().await.is_ok() {
        idle.lock().unwrap().push(sender);
    }
    (status, retry_after)
}

/// Opens a connection, which keeps `permit` while it lives.
async fn connect(
    port: u16,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Option<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(async move {
        let _ = connection.await;
        drop(permit);
    });
    Some(sender)
}

fn summarise<'a>(samples: impl Iterator<Item = &'a Sample>) -> ClassResult {
    let mut result = ClassResult::default();
    let mut ok = Vec::new();
    let mut shed = Vec::new();
    let mut retry: Option<(u64, u64)> = None;
    for &(_, status, latency, retry_after, _) in samples {
        result.sent += 1;
        let ms = latency.as_secs_f64() * 1000.0;
        match status {
            200 => {
                result.ok += 1;
                ok.push(ms);
            }
            503 => {
                result.shed += 1;
                shed.push(ms);
                if let Some(secs) = retry_after {
                    retry =
                        Some(retry.map_or((secs, secs), |(lo, hi)| (lo.min(secs), hi.max(secs))));
                }
            }
            _ => result.other += 1,
        }
    }
    result.ok_p50_ms = percentile(&mut ok, 0.50);
    result.ok_p99_ms = percentile(&mut ok, 0.99);
    result.shed_p99_ms = percentile(&mut shed, 0.99);
    result.shed_max_ms = percentile(&mut shed, 1.0);
    result.retry_after = retry;
    result
}

fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
    Some(values[index])
}
