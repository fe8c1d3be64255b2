//! `send_timeout`: a response whose client does not read it is cut off, and what it held freed.
//!
//! A response body is [`Watched`]: each time hyper polls it, it counts, and it notes whether it
//! just handed hyper data to send. hyper polls a body again only once it has room to send more,
//! so "data handed over, and no poll since" for `send_timeout` means the client is not reading.
//! A body that is waiting for its own data (an SSE stream between two events) is not stalled.
//!
//! - The connection's socket is [`WatchedIo`]: writes waiting on a full socket with no byte going
//!   out for `send_timeout` close the connection (HTTP/1, whose responses hyper may hold in its
//!   own buffer after their bodies ended, and any connection whose peer stopped reading at the
//!   TCP level).
//! - HTTP/2: every stream runs on its own task, spawned through [`StreamExecutor`], which gives
//!   it its own [`Sending`] (found by the dispatch through a task-local) and drops the stream's
//!   task when it stalls: h2 then resets that stream, and the other streams go on (a client that
//!   withholds flow-control window from one stream).
//!
//! The checks run every half `send_timeout`; two in a row without progress cut the response, so
//! a stalled response is cut after one to one and a half `send_timeout`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};

use crate::activity::Running;
use tokio::time::{Instant, Sleep};

tokio::task_local! {
    /// The [`Sending`] of the HTTP/2 stream whose task is running.
    static STREAM: Arc<Sending>;
}

/// Whether a response is waiting for its client to read, and how often hyper polled it.
#[derive(Debug, Default)]
pub(crate) struct Sending {
    polls: AtomicU64,
    waiting_on_client: AtomicBool,
}

impl Sending {
    /// The HTTP/2 stream's own, when running on one.
    pub(crate) fn stream() -> Option<Arc<Sending>> {
        STREAM.try_with(Arc::clone).ok()
    }
}

/// Decides, check after check, whether a [`Sending`] has stalled.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    seen: u64,
    strikes: u8,
}

impl Watch {
    /// Whether the response has made no progress since the previous check, twice in a row.
    pub(crate) fn stalled(&mut self, sending: &Sending) -> bool {
        let polls = sending.polls.load(Ordering::Relaxed);
        if sending.waiting_on_client.load(Ordering::Relaxed) && polls == self.seen {
            self.strikes += 1;
        } else {
            self.strikes = 0;
        }
        self.seen = polls;
        self.strikes >= 2
    }
}

pin_project_lite::pin_project! {
    /// A response body that reports its progress to its HTTP/2 stream's [`Sending`], if any,
    /// and keeps its request counted as running on its connection until it is sent.
    pub(crate) struct Watched<B> {
        #[pin]
        inner: B,
        sending: Option<Arc<Sending>>,
        _running: Option<Running>,
    }

    impl<B> PinnedDrop for Watched<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(sending) = &this.sending {
                sending.waiting_on_client.store(false, Ordering::Relaxed);
            }
        }
    }
}

impl<B> Watched<B> {
    pub(crate) fn new(inner: B, sending: Option<Arc<Sending>>, running: Option<Running>) -> Self {
        Watched {
            inner,
            sending,
            _running: running,
        }
    }
}

impl<B: Body> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        if let Some(sending) = this.sending {
            sending.polls.fetch_add(1, Ordering::Relaxed);
            let handed_over = matches!(&frame, Poll::Ready(Some(Ok(_))));
            sending
                .waiting_on_client
                .store(handed_over, Ordering::Relaxed);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Spawns HTTP/2 streams, each with its own [`Sending`], dropped when it stalls.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamExecutor {
    pub(crate) send_timeout: Duration,
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        let sending = Arc::new(Sending::default());
        tokio::spawn(WatchedStream {
            stream: STREAM.scope(Arc::clone(&sending), stream),
            sending,
            watch: Watch::default(),
            period: self.send_timeout / 2,
            tick: None,
        });
    }
}

pin_project_lite::pin_project! {
    /// An HTTP/2 stream's task, ended early if its response stalls.
    struct WatchedStream<F> {
        #[pin]
        stream: F,
        sending: Arc<Sending>,
        watch: Watch,
        period: Duration,
        // Armed only while the response waits on its client.
        tick: Option<Pin<Box<Sleep>>>,
    }
}

impl<F: Future<Output = ()>> Future for WatchedStream<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if this.stream.poll(cx).is_ready() {
            return Poll::Ready(());
        }
        if !this.sending.waiting_on_client.load(Ordering::Relaxed) {
            *this.tick = None;
            return Poll::Pending;
        }
        let period = *this.period;
        let tick = this
            .tick
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(period)));
        while tick.as_mut().poll(cx).is_ready() {
            if this.watch.stalled(this.sending) {
                tracing::debug!(
                    "an HTTP/2 response made no progress for send_timeout; resetting its stream"
                );
                // Dropping the stream's future makes h2 reset the stream.
                return Poll::Ready(());
            }
            tick.as_mut().reset(Instant::now() + period);
        }
        Poll::Pending
    }
}

pin_project_lite::pin_project! {
    /// A connection's socket, reporting to a [`Sending`]: "waiting on the client" while a write
    /// or flush is blocked on a full socket, and progress for every byte written.
    pub(crate) struct WatchedIo<T> {
        #[pin]
        inner: T,
        sending: Arc<Sending>,
    }
}

impl<T> WatchedIo<T> {
    pub(crate) fn new(inner: T, sending: Arc<Sending>) -> Self {
        WatchedIo { inner, sending }
    }
}

impl Sending {
    /// Notes an I/O result: blocked (the client is not reading), or `written` bytes out.
    fn note<T>(&self, result: &Poll<std::io::Result<T>>, written: impl FnOnce(&T) -> usize) {
        match result {
            Poll::Pending => self.waiting_on_client.store(true, Ordering::Relaxed),
            Poll::Ready(outcome) => {
                self.waiting_on_client.store(false, Ordering::Relaxed);
                let written = outcome.as_ref().map_or(0, written) as u64;
                if written > 0 {
                    self.polls.fetch_add(written, Ordering::Relaxed);
                }
            }
        }
    }
}

impl<T: tokio::io::AsyncRead> tokio::io::AsyncRead for WatchedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite> tokio::io::AsyncWrite for WatchedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let result = this.inner.poll_write(cx, buf);
        this.sending.note(&result, |n| *n);
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let result = this.inner.poll_write_vectored(cx, bufs);
        this.sending.note(&result, |n| *n);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let result = this.inner.poll_flush(cx);
        this.sending.note(&result, |()| 0);
        result
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
