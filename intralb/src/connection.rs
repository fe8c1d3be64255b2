//! One task per connection: waits for the first byte, serves HTTP/1.1 or h2c, and closes the
//! connection when it idles too long, when the drain begins, or at the shutdown deadline.
//!
//! Every state of a connection has a timeout, all kept by one watchdog timer per connection
//! (hyper's per-request header timer is off: it cost every request a timer of its own):
//! - before its first byte, and before its first request (HTTP/2: the preface, SETTINGS and a
//!   first HEADERS): `header_read_timeout`;
//! - with no request in flight (a request is in flight until its response body is sent):
//!   `connection_idle_timeout`, and for HTTP/1 at most `header_read_timeout`, which so bounds
//!   both a slow head and keep-alive idling. The watchdog looks four times per limit, so a
//!   connection closes between one and one and a quarter limits after it went quiet. HTTP/2 also
//!   pings an idle peer and closes a connection whose pings go unanswered;
//! - while a response waits for its client to read: `send_timeout` (see `send.rs`);
//! - during a drain, with no request in flight: [`ENDING_GRACE`] (a half-sent head does not hold
//!   up the exit);
//! - after a close was asked for (GOAWAY) because it idled: [`ENDING_GRACE`] at most (no request
//!   was in flight; an HTTP/2 peer may otherwise keep the connection open), then it is dropped.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::activity::Activity;
use crate::dispatch::Dispatch;
use crate::error::BoxError;
use crate::layer::Admission;
use crate::router::RouterService;
use crate::send::{Sending, StreamExecutor, Watch, WatchedIo};
use crate::shared::Shared;
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
        let abort = self.abort.clone();
        let open = self.open.enter();
        tokio::spawn(async move {
            let _open = (open, permit);
            {
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
                watch_over(
                    pin!(conn),
                    peer,
                    &activity,
                    &sending,
                    timeouts,
                    closing,
                    abort,
                )
                .await;
            }
        });
    }
}

/// What woke a connection's watch: the connection ended, its one timer fired, the drain began,
/// or the shutdown deadline passed.
enum Event {
    Ended,
    Timer,
    Closing,
    Abort,
}

/// Serves `conn` and watches over it: idling, first request, stalled sends, drain and abort,
/// all on one timer and two signals.
///
/// The signals and the timer are polled only when one of them woke the task (see [`Side`]): a
/// request's reads and writes wake it many times, and polling three more futures on each wake
/// cost more than the rest of intralb's work per request.
async fn watch_over<C>(
    mut conn: Pin<&mut C>,
    peer: SocketAddr,
    activity: &Activity,
    sending: &Sending,
    timeouts: Timeouts,
    mut closing: watch::Receiver<bool>,
    mut abort: watch::Receiver<bool>,
) where
    C: Future<Output = Result<(), BoxError>> + GracefulConnection,
{
    let accepted = Instant::now();
    let mut state = State::Serving;
    let mut seen = 0;
    let mut quiet_since = accepted;
    // The watchdog (first request, idling, ending) and the socket's send check share one timer.
    let mut watchdog_at = accepted + timeouts.first_request.min(timeouts.idle);
    let send_every = timeouts.send / 2;
    let mut send_check_at = accepted + send_every;
    let mut stalled = Watch::default();
    let timer = tokio::time::sleep_until(watchdog_at.min(send_check_at));
    let mut timer = pin!(timer);
    let closing_fired = closing.wait_for(|closing| *closing);
    let mut closing_fired = pin!(closing_fired);
    let abort_fired = abort.wait_for(|abort| *abort);
    let mut abort_fired = pin!(abort_fired);
    let side = Arc::new(Side::default());
    let side_waker = Waker::from(Arc::clone(&side));
    loop {
        let event = poll_fn(|cx| {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                return Poll::Ready(Event::Ended);
            }
            if !side.woken(cx) {
                return Poll::Pending;
            }
            let mut side_cx = Context::from_waker(&side_waker);
            if abort_fired.as_mut().poll(&mut side_cx).is_ready() {
                return Poll::Ready(Event::Abort);
            }
            if !matches!(state, State::Draining)
                && closing_fired.as_mut().poll(&mut side_cx).is_ready()
            {
                return Poll::Ready(Event::Closing);
            }
            if timer.as_mut().poll(&mut side_cx).is_ready() {
                return Poll::Ready(Event::Timer);
            }
            Poll::Pending
        })
        .await;
        let now = Instant::now();
        match event {
            Event::Ended => return,
            Event::Abort => {
                return tracing::debug!(%peer, "connection aborted at the shutdown deadline");
            }
            Event::Closing => {
                // A connection that has not made its first request yet (still sending it, or
                // hyper still telling HTTP/1 from HTTP/2) gets a moment to: closing it now
                // would drop that request unanswered.
                if activity.started() > 0 {
                    conn.as_mut().graceful_shutdown();
                }
                state = State::Draining;
                watchdog_at = now + ENDING_GRACE;
            }
            Event::Timer => {
                if now >= send_check_at {
                    if stalled.stalled(sending) {
                        return tracing::debug!(%peer, "the client read nothing for send_timeout; closing the connection");
                    }
                    send_check_at = now + send_every;
                }
                if now >= watchdog_at {
                    match state {
                        State::Ending => {
                            return tracing::debug!(%peer, "dropping a connection that did not close");
                        }
                        State::Draining => {
                            // A half-sent head or an idle peer must not hold up the drain;
                            // requests in flight have until the shutdown deadline.
                            if activity.running() == 0 {
                                return tracing::debug!(%peer, "dropping a draining connection with no request in flight");
                            }
                            conn.as_mut().graceful_shutdown();
                            watchdog_at = now + ENDING_GRACE;
                        }
                        State::Serving => {
                            let started = activity.started();
                            if activity.running() > 0 || started != seen {
                                seen = started;
                                quiet_since = now;
                            }
                            // Before the first request: `header_read_timeout` from the accept.
                            // Then without a request in flight: `connection_idle_timeout`, and
                            // for HTTP/1 at most `header_read_timeout` (a head takes no longer
                            // to arrive than that, and hyper's own timer is off).
                            let (since, limit) = if started == 0 {
                                (accepted, timeouts.first_request)
                            } else if activity.http2() {
                                (quiet_since, timeouts.idle)
                            } else {
                                (quiet_since, timeouts.idle.min(timeouts.first_request))
                            };
                            if now < since + limit {
                                // Looked at four times per limit, so that an idle connection
                                // closes within a quarter of it after the limit.
                                watchdog_at = (since + limit).min(now + limit / 4);
                            } else {
                                tracing::debug!(%peer, requests = started, "closing an idle connection");
                                conn.as_mut().graceful_shutdown();
                                state = State::Ending;
                                watchdog_at = now + timeouts.first_request.min(ENDING_GRACE);
                            }
                        }
                    }
                }
            }
        }
        timer.as_mut().reset(watchdog_at.min(send_check_at));
    }
}

/// A connection that can be asked to close gracefully (hyper's, whatever its protocol).
trait GracefulConnection {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, E> GracefulConnection for auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Future: 'static,
    S::Error: Into<BoxError>,
    S::ResBody: http_body::Body + Send + 'static,
    <S::ResBody as http_body::Body>::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        auto::UpgradeableConnection::graceful_shutdown(self);
    }
}

/// The waker given to a connection's timer and signals: records that one of them fired, then
/// wakes the connection's task. So a wake by the socket polls only the connection.
struct Side {
    fired: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Default for Side {
    fn default() -> Self {
        Side {
            // So that the first poll registers the timer and the signals.
            fired: AtomicBool::new(true),
            task: Mutex::new(None),
        }
    }
}

impl Side {
    /// Whether the timer or a signal fired since the last call (true the first time, so that
    /// they get registered); keeps the task's waker for them.
    fn woken(&self, cx: &Context<'_>) -> bool {
        if !self.fired.swap(false, Ordering::AcqRel) {
            return false;
        }
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if !task.as_ref().is_some_and(|task| task.will_wake(cx.waker())) {
            *task = Some(cx.waker().clone());
        }
        true
    }
}

impl Wake for Side {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
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
