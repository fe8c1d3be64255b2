//! One task per connection: waits for the first byte, serves HTTP/1.1 or h2c, and closes the
//! connection when it idles too long, when the drain begins, or at the shutdown deadline.
//!
//! Every state of a connection has a timeout:
//! - before its first byte, and (HTTP/1) while a head is incomplete or the connection idles
//!   between requests: `header_read_timeout` (hyper's header timer, which HTTP/1 restarts for
//!   every head it waits for);
//! - before its first request (HTTP/2: the preface, SETTINGS and a first HEADERS):
//!   `header_read_timeout`, checked by the watchdog below;
//! - with no request in flight: `connection_idle_timeout`; HTTP/2 also pings an idle peer and
//!   closes a connection whose pings go unanswered;
//! - while a response waits for its client to read: `send_timeout` (see `send.rs`);
//! - during a drain, with no request in flight: [`ENDING_GRACE`] (a half-sent head does not hold
//!   up the exit);
//! - after a close was asked for (GOAWAY) because it idled: [`ENDING_GRACE`] at most (no request
//!   was in flight; an HTTP/2 peer may otherwise keep the connection open), then it is dropped.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::dispatch::{Dispatch, Shared};
use crate::layer::Admission;
use crate::router::RouterService;
use crate::send::{Sending, StreamExecutor, Watch, WatchedIo};
use crate::tally::Tally;

/// How long a connection closed for idling may take to close before it is dropped.
const ENDING_GRACE: Duration = Duration::from_secs(1);

/// The timeouts of a connection's states.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// Until the first byte, and then the first request.
    pub(crate) first_request: Duration,
    /// With no request in flight.
    pub(crate) idle: Duration,
    /// A response that makes no progress because its client does not read.
    pub(crate) send: Duration,
}

/// What a connection's requests tell its watchdog: how many started, how many are running.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    started: AtomicU64,
    running: AtomicUsize,
}

impl Activity {
    /// A request starts; it counts as running until the returned guard drops.
    pub(crate) fn start(self: &Arc<Self>) -> Running {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.running.fetch_add(1, Ordering::Relaxed);
        Running(Arc::clone(self))
    }
}

/// A request running on a connection.
pub(crate) struct Running(Arc<Activity>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Spawns one task per connection, and ends them all at the shutdown deadline.
pub(crate) struct Connections {
    pub(crate) http: auto::Builder<StreamExecutor>,
    /// Becomes `true` when the listener closes: connections finish their requests and close
    /// (HTTP/2: GOAWAY); those that sent nothing close at once.
    pub(crate) closing: watch::Receiver<bool>,
    /// Becomes `true` at the shutdown deadline: every connection task ends.
    pub(crate) abort: watch::Receiver<bool>,
    pub(crate) timeouts: Timeouts,
    /// Connection tasks alive.
    pub(crate) open: Arc<Tally>,
    /// The outer layers around admission, if any (see `layer.rs`).
    pub(crate) outer: Option<Admission>,
}

/// Where a connection is in its life, for its watchdog.
enum State {
    /// Serving; the watchdog looks again at the deadline.
    Serving,
    /// Asked to close because it idled: dropped at the deadline if it has not.
    Ending,
    /// Asked to close by the drain: ends with its requests (or at the shutdown deadline), and
    /// is dropped if it has none in flight a moment later.
    Draining,
}

impl Connections {
    /// Serves one accepted connection on its own task; `permit` is its place under
    /// `max_connections`, given back when it closes.
    pub(crate) fn serve<S: RouterService>(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        shared: &Arc<Shared>,
        router: &S,
        permit: OwnedSemaphorePermit,
    ) {
        // Small responses must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let sending = Arc::new(Sending::default());
        let dispatch = Dispatch {
            shared: Arc::clone(shared),
            router: router.clone(),
            activity: Arc::clone(&activity),
            outer: self.outer.clone(),
        };
        let http = self.http.clone();
        let timeouts = self.timeouts;
        let mut closing = self.closing.clone();
        let mut abort = self.abort.clone();
        let open = self.open.enter();
        tokio::spawn(async move {
            let _open = (open, permit);
            let serve = async move {
                // hyper's header timeout starts once the protocol is detected: bound the wait
                // for the first byte too, or a silent client holds its connection forever.
                let mut byte = [0];
                let first_byte =
                    tokio::time::timeout(timeouts.first_request, stream.peek(&mut byte));
                // When the listener closes first, a client that connected just before gets
                // a moment to send its request (it is served, with `Connection: close`).
                let grace = async {
                    let _ = closing.wait_for(|closing| *closing).await;
                    tokio::time::sleep(ENDING_GRACE).await;
                };
                let sent = tokio::select! {
                    biased;
                    peeked = first_byte => matches!(peeked, Ok(Ok(1..))),
                    () = grace => false,
                };
                if !sent {
                    return tracing::debug!(%peer, "closing a connection that sent nothing");
                }
                // The task owns its builder, so the connection borrows it (no second clone).
                let io = TokioIo::new(WatchedIo::new(stream, Arc::clone(&sending)));
                let conn = http.serve_connection_with_upgrades(io, dispatch);
                let mut conn = pin!(conn);
                let mut state = State::Serving;
                let mut closed_gracefully = false;
                let mut seen = 0;
                let accepted = Instant::now();
                let watchdog = tokio::time::sleep(timeouts.first_request.min(timeouts.idle));
                let mut watchdog = pin!(watchdog);
                // The socket: writes blocked with no byte going out (HTTP/2 streams also watch
                // themselves).
                let mut stalled = Watch::default();
                let mut send_check = tokio::time::interval(timeouts.send / 2);
                loop {
                    tokio::select! {
                        result = conn.as_mut() => {
                            if let Err(error) = result {
                                tracing::debug!(%peer, %error, "connection ended with an error");
                            }
                            return;
                        }
                        _ = send_check.tick() => {
                            if stalled.stalled(&sending) {
                                return tracing::debug!(%peer, "the client read nothing for send_timeout; closing the connection");
                            }
                        }
                        _ = closing.wait_for(|closing| *closing), if !matches!(state, State::Draining) => {
                            // A connection that has not made its first request yet (still
                            // sending it, or hyper still telling HTTP/1 from HTTP/2) gets a
                            // moment to: closing it now would drop that request unanswered.
                            if activity.started.load(Ordering::Relaxed) > 0 {
                                conn.as_mut().graceful_shutdown();
                                closed_gracefully = true;
                            }
                            state = State::Draining;
                            watchdog.as_mut().reset(Instant::now() + ENDING_GRACE);
                        }
                        () = watchdog.as_mut() => {
                            if matches!(state, State::Ending) {
                                return tracing::debug!(%peer, "dropping a connection that did not close");
                            }
                            if matches!(state, State::Draining) {
                                // A half-sent head or an idle peer must not hold up the drain;
                                // requests in flight have until the shutdown deadline.
                                if activity.running.load(Ordering::Relaxed) == 0 {
                                    return tracing::debug!(%peer, "dropping a draining connection with no request in flight");
                                }
                                if !closed_gracefully {
                                    conn.as_mut().graceful_shutdown();
                                    closed_gracefully = true;
                                }
                                watchdog.as_mut().reset(Instant::now() + ENDING_GRACE);
                                continue;
                            }
                            let started = activity.started.load(Ordering::Relaxed);
                            let running = activity.running.load(Ordering::Relaxed);
                            let now = Instant::now();
                            if running > 0 || started != seen {
                                seen = started;
                                watchdog.as_mut().reset(now + timeouts.idle);
                            } else if started == 0 && now < accepted + timeouts.first_request {
                                watchdog.as_mut().reset(accepted + timeouts.first_request);
                            } else {
                                tracing::debug!(%peer, requests = started, "closing an idle connection");
                                conn.as_mut().graceful_shutdown();
                                closed_gracefully = true;
                                state = State::Ending;
                                watchdog.as_mut().reset(now + timeouts.first_request.min(ENDING_GRACE));
                            }
                        }
                    }
                }
            };
            tokio::select! {
                () = serve => {}
                _ = abort.wait_for(|abort| *abort) => {
                    tracing::debug!(%peer, "connection aborted at the shutdown deadline");
                }
            }
        });
    }
}

/// The default `max_connections`: three quarters of the process's soft limit on open files
/// (read from `/proc/self/limits` on Linux; 1,024 assumed elsewhere), leaving the rest for the
/// workers' resources and the process itself.
pub(crate) fn default_max_connections() -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| match line.split_whitespace().nth(3)? {
                    "unlimited" => Some(1 << 20),
                    soft => soft.parse::<usize>().ok(),
                })
        })
        .unwrap_or(1024);
    (limit / 4 * 3).max(1)
}
