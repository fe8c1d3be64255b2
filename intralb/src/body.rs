//! [`RequestBody`]: request bodies read before admission, so that a slow client never holds a
//! worker; larger ones streamed to the handler with a timeout on each read.
//!
//! A body up to `buffer_body` bytes is read whole, under `body_timeout`, before the request
//! takes a queue place. Its chunks are kept as they arrived (no copy) and replayed to the
//! handler. The bytes held at once are bounded by a budget of `buffer_body × (max_concurrent +
//! queue)`, taken as the bytes arrive (so a slow client holds only what it sent): a chunk that
//! does not fit waits for room, under the same timeout. A body
//! that turns out larger streams on: what was read first, then the rest, each read under
//! `body_timeout`. A request without a body costs nothing here.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::error::BoxError;
use crate::outcome::Outcome;

/// The body of a request as the router receives it: empty, read whole before admission, or
/// streaming from the client under a read timeout.
///
/// It implements [`http_body::Body`](https://docs.rs/http-body/1/http_body/trait.Body.html), so axum's extractors (`Json`, `Bytes`, `String`,
/// `Body::into_data_stream`, …) take it as they take hyper's.
pub struct RequestBody {
    kind: Kind,
}

/// The kinds with a body are boxed: a request is moved several times on its way to the router,
/// and most have none.
enum Kind {
    Empty,
    Buffered(Box<Buffered>),
    Streaming(Box<Streaming>),
    /// Another type of body, given to admission by an outer layer that changed the type.
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

/// A body read whole.
struct Buffered {
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    /// The room this body takes in the budget, given back when the body is dropped.
    _budget: Option<OwnedSemaphorePermit>,
}

/// A body too large to read whole: what was read first, then the rest from the client.
struct Streaming {
    read: VecDeque<Bytes>,
    rest: Incoming,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    _budget: Option<OwnedSemaphorePermit>,
}

impl RequestBody {
    pub(crate) fn empty() -> Self {
        RequestBody { kind: Kind::Empty }
    }

    /// `body` itself if it is a `RequestBody`, else `body` boxed.
    pub(crate) fn from_body<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        crate::cast::cast(body).unwrap_or_else(|body: B| RequestBody {
            kind: Kind::Boxed(body.map_err(Into::into).boxed_unsync()),
        })
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Empty => "empty",
            Kind::Buffered(_) => "buffered",
            Kind::Streaming(_) => "streaming",
            Kind::Boxed(_) => "boxed",
        };
        f.debug_tuple("RequestBody").field(&kind).finish()
    }
}

/// Why a request body could not be read.
#[derive(Debug)]
pub struct BodyError {
    timed_out: bool,
    source: Option<BoxError>,
}

impl BodyError {
    /// Whether the client took longer than `body_timeout` to send the next part of the body.
    pub fn is_timeout(&self) -> bool {
        self.timed_out
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            _ if self.timed_out => {
                f.write_str("the client sent no more of the body within body_timeout")
            }
            Some(error) => write!(f, "reading the request body failed: {error}"),
            None => f.write_str("reading the request body failed"),
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Buffered(buffered) => Poll::Ready(match buffered.chunks.pop_front() {
                Some(chunk) => Some(Ok(Frame::data(chunk))),
                None => buffered.trailers.take().map(|t| Ok(Frame::trailers(t))),
            }),
            Kind::Streaming(streaming) => {
                let Streaming {
                    read,
                    rest,
                    timeout,
                    deadline,
                    ..
                } = &mut **streaming;
                if let Some(chunk) = read.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                match Pin::new(rest).poll_frame(cx) {
                    Poll::Ready(frame) => {
                        deadline.as_mut().reset(Instant::now() + *timeout);
                        Poll::Ready(frame.map(|frame| {
                            frame.map_err(|source| BodyError {
                                timed_out: false,
                                source: Some(source.into()),
                            })
                        }))
                    }
                    Poll::Pending => {
                        ready!(deadline.as_mut().poll(cx));
                        Poll::Ready(Some(Err(BodyError {
                            timed_out: true,
                            source: None,
                        })))
                    }
                }
            }
            Kind::Boxed(body) => Pin::new(body).poll_frame(cx).map_err(|error| {
                // A `BodyError` that went through a layer's body type comes back as it was.
                let error = match error.downcast::<axum_core::Error>() {
                    Ok(axum) => axum.into_inner(),
                    Err(error) => error,
                };
                match error.downcast::<BodyError>() {
                    Ok(error) => *error,
                    Err(source) => BodyError {
                        timed_out: false,
                        source: Some(source),
                    },
                }
            }),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Buffered(buffered) => buffered.chunks.is_empty() && buffered.trailers.is_none(),
            Kind::Streaming(streaming) => {
                streaming.read.is_empty() && streaming.rest.is_end_stream()
            }
            Kind::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Buffered(buffered) => {
                SizeHint::with_exact(buffered.chunks.iter().map(|c| c.len() as u64).sum())
            }
            Kind::Streaming(streaming) => {
                let read: u64 = streaming.read.iter().map(|c| c.len() as u64).sum();
                let rest = streaming.rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower() + read);
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + read);
                }
                hint
            }
            Kind::Boxed(body) => body.size_hint(),
        }
    }
}

/// Reads bodies before admission, within the budget.
pub(crate) struct Bodies {
    buffer: usize,
    timeout: Duration,
    budget: Arc<Semaphore>,
}

impl Bodies {
    pub(crate) fn new(buffer: usize, timeout: Duration, admitted: usize) -> Self {
        let room = buffer.saturating_mul(admitted).min(Semaphore::MAX_PERMITS);
        Bodies {
            buffer,
            timeout,
            budget: Arc::new(Semaphore::new(room)),
        }
    }

    fn streaming(
        &self,
        read: VecDeque<Bytes>,
        rest: Incoming,
        budget: Option<OwnedSemaphorePermit>,
    ) -> RequestBody {
        RequestBody {
            kind: Kind::Streaming(Box::new(Streaming {
                read,
                rest,
                timeout: self.timeout,
                deadline: Box::pin(tokio::time::sleep(self.timeout)),
                _budget: budget,
            })),
        }
    }

    /// The request's body, read whole if it is small enough; `Err` with the answer to give if
    /// the client was too slow, the body broke, or there is no room.
    pub(crate) async fn read(&self, body: Incoming) -> Result<RequestBody, Outcome> {
        if body.is_end_stream() {
            return Ok(RequestBody::empty());
        }
        let declared = body.size_hint().exact();
        if self.buffer == 0 || declared.is_some_and(|len| len > self.buffer as u64) {
            return Ok(self.streaming(VecDeque::new(), body, None));
        }
        let deadline = Instant::now() + self.timeout;
        // Room in the budget is taken as the bytes arrive, not as declared: a slow client holds
        // only what it has sent.
        let mut budget: Option<OwnedSemaphorePermit> = None;
        let mut body = body;
        let mut chunks = VecDeque::new();
        let mut len = 0usize;
        loop {
            let frame = match tokio::time::timeout_at(
                deadline,
                std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)),
            )
            .await
            {
                Err(_elapsed) => return Err(Outcome::BodyTimedOut),
                Ok(Some(Err(_broken))) => return Err(Outcome::BodyFailed),
                Ok(Some(Ok(frame))) => frame,
                Ok(None) => break,
            };
            match frame.into_data() {
                Ok(chunk) => {
                    len += chunk.len();
                    if len > self.buffer {
                        // Larger than it said, or than `buffer`: stream the rest.
                        chunks.push_back(chunk);
                        return Ok(self.streaming(chunks, body, budget));
                    }
                    let room = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
                    let taken = tokio::time::timeout_at(
                        deadline,
                        Arc::clone(&self.budget).acquire_many_owned(room),
                    )
                    .await;
                    // No room for it within its timeout: the server is overloaded.
                    let Ok(Ok(taken)) = taken else {
                        return Err(Outcome::Shed);
                    };
                    match &mut budget {
                        Some(budget) => budget.merge(taken),
                        None => budget = Some(taken),
                    }
                    chunks.push_back(chunk);
                }
                Err(frame) => {
                    // Trailers end the body.
                    return Ok(RequestBody {
                        kind: Kind::Buffered(Box::new(Buffered {
                            chunks,
                            trailers: frame.into_trailers().ok(),
                            _budget: budget,
                        })),
                    });
                }
            }
        }
        Ok(RequestBody {
            kind: Kind::Buffered(Box::new(Buffered {
                chunks,
                trailers: None,
                _budget: budget,
            })),
        })
    }
}
