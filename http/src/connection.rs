//! One connection's life at the edge, for HTTP/1 and HTTP/2 alike: a
//! deadline from accept to the first whole request head, an idle timeout
//! once no request is in flight, and request bodies that must arrive within
//! a deadline and within their source's share of memory.
//!
//! Why here and not in hyper's settings: hyper's HTTP/1 header timeout
//! starts only once the protocol is known, so a client that connects (or
//! completes TLS) and sends nothing, or part of the HTTP/2 preface, was
//! never closed; and HTTP/2 has no idle timeout at all, so a client that
//! answers the server's PINGs and never asks anything held its slot
//! forever. The decision is pure ([`Lifecycle::next`]); [`drive`] carries
//! it out on a hyper connection, and [`Edge`] is the service wrapper that
//! tells the lifecycle when requests start and end.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper_util::server::graceful::GracefulConnection;

use crate::limits::{BodyCharge, BodyFull, Gate, Limits};

/// How long a connection told to close (idle, or the server stopping with
/// nothing in flight) has to finish before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Why the edge closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// No whole request head arrived in time after accept.
    NoRequest,
    /// No request was in flight for the idle timeout.
    Idle,
}

/// What to do next with a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing before this time; ask again then.
    WaitUntil(Instant),
    /// Close it.
    Close(Closed),
}

/// One connection's requests, as the edge counts them. Pure: times are
/// arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    accepted: Instant,
    requests: u64,
    in_flight: usize,
    idle_since: Instant,
}

impl Lifecycle {
    /// A connection accepted at `now`.
    pub fn new(now: Instant) -> Lifecycle {
        Lifecycle {
            accepted: now,
            requests: 0,
            in_flight: 0,
            idle_since: now,
        }
    }

    /// A request head arrived whole at `now`.
    pub fn request_started(&mut self) {
        self.requests += 1;
        self.in_flight += 1;
    }

    /// A request's response ended (or was abandoned) at `now`.
    pub fn request_ended(&mut self, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            self.idle_since = now;
        }
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// What `limits` say about the connection at `now`.
    pub fn next(&self, limits: &Limits, now: Instant) -> Next {
        if self.requests == 0 {
            let deadline = self.accepted + limits.header_timeout;
            return if now >= deadline {
                Next::Close(Closed::NoRequest)
            } else {
                Next::WaitUntil(deadline)
            };
        }
        if self.in_flight > 0 {
            // Look again after an idle period: if the last request ends in
            // between, the deadline then counts from its end.
            return Next::WaitUntil(now + limits.idle_timeout);
        }
        let deadline = self.idle_since + limits.idle_timeout;
        if now >= deadline {
            Next::Close(Closed::Idle)
        } else {
            Next::WaitUntil(deadline)
        }
    }
}

/// A connection's [`Lifecycle`], shared by its requests and its driver.
#[derive(Clone, Debug)]
pub struct Activity(Arc<Mutex<Lifecycle>>);

impl Activity {
    /// A connection accepted now.
    pub fn new() -> Activity {
        Activity(Arc::new(Mutex::new(Lifecycle::new(Instant::now()))))
    }

    /// A request started; the guard ends it when dropped.
    pub fn start(&self) -> InFlight {
        hearth_runtime::lock(&self.0).request_started();
        InFlight(self.clone())
    }

    fn next(&self, limits: &Limits) -> Next {
        hearth_runtime::lock(&self.0).next(limits, Instant::now())
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        hearth_runtime::lock(&self.0).in_flight()
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

/// A request in flight; dropping it (when its response body ends or is
/// abandoned) ends it.
#[derive(Debug)]
pub struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        hearth_runtime::lock(&(self.0).0).request_ended(Instant::now());
    }
}

/// Why a request body was cut off.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// It did not arrive whole in time.
    #[error("the request body did not arrive within {0:?}")]
    TooSlow(Duration),
    /// Its source holds too many unfinished bodies.
    #[error(transparent)]
    Full(#[from] BodyFull),
    /// The connection failed.
    #[error(transparent)]
    Connection(#[from] hyper::Error),
}

/// A request body that must arrive whole within a deadline and within its
/// source's budget of unfinished bodies; the bytes it took are given back
/// when it ends or is dropped. Says whether it was read to its end
/// ([`LimitedBody::read_whole`]).
pub struct LimitedBody<B> {
    inner: B,
    timeout: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    charge: BodyCharge,
    whole: Arc<AtomicBool>,
}

impl<B: http_body::Body> LimitedBody<B> {
    /// `inner`, due within `timeout` from now, charged to `charge`.
    pub fn new(inner: B, timeout: Duration, charge: BodyCharge) -> LimitedBody<B> {
        let whole = Arc::new(AtomicBool::new(inner.is_end_stream()));
        LimitedBody {
            inner,
            timeout,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            charge,
            whole,
        }
    }

    /// Turns true once the body has been read to its end (at once for a
    /// request without one); readable after the body is gone.
    pub fn read_whole(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.whole)
    }
}

impl<B> http_body::Body for LimitedBody<B>
where
    B: http_body::Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(context);
        let frame = match polled {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => {
                this.deadline = None;
                this.charge.release();
                this.whole.store(true, Ordering::Relaxed);
                return Poll::Ready(None);
            }
            Poll::Pending => {
                if let Some(deadline) = this.deadline.as_mut()
                    && deadline.as_mut().poll(context).is_ready()
                {
                    this.deadline = None;
                    return Poll::Ready(Some(Err(BodyError::TooSlow(this.timeout))));
                }
                return Poll::Pending;
            }
        };
        if let Some(data) = frame.data_ref()
            && let Err(full) = this.charge.take(data.len())
        {
            return Poll::Ready(Some(Err(full.into())));
        }
        if this.inner.is_end_stream() {
            this.whole.store(true, Ordering::Relaxed);
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request in flight until it ends.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The service the edge puts around an application for one connection:
/// each request is counted in the connection's [`Activity`] until its
/// response ends, gets what `extend` adds (`ConnectInfo`, the TLS peer),
/// and its body is a [`LimitedBody`].
#[derive(Clone)]
pub struct Edge<S, X> {
    inner: S,
    extend: X,
    activity: Activity,
    gate: Gate,
    source: IpAddr,
}

impl<S, X> Edge<S, X> {
    /// `inner` for a connection from `source` within `gate`'s limits.
    pub fn new(inner: S, extend: X, activity: Activity, gate: Gate, source: IpAddr) -> Self {
        Edge {
            inner,
            extend,
            activity,
            gate,
            source,
        }
    }
}

type Pending<E> = Pin<Box<dyn Future<Output = Result<axum::response::Response, E>> + Send>>;

impl<S, X> tower::Service<http::Request<hyper::body::Incoming>> for Edge<S, X>
where
    S: tower::Service<
            http::Request<Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    X: Fn(&mut http::Extensions) + Clone + Send + 'static,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pending<Self::Error>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<hyper::body::Incoming>) -> Self::Future {
        let in_flight = self.activity.start();
        let limits = self.gate.limits();
        let charge = self.gate.body_charge(self.source);
        let timeout = limits.body_timeout;
        let http1 = request.version() < http::Version::HTTP_2;
        let limited = request.map(|body| LimitedBody::new(body, timeout, charge));
        let read_whole = limited.body().read_whole();
        let mut request = limited.map(Body::new);
        (self.extend)(request.extensions_mut());
        // A clone that is ready takes the request (tower's rule for
        // services called from spawned futures).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let mut response = inner.call(request).await?;
            // Answered before its body was read whole (refused for its size,
            // its caller, its form): the rest of the body is still on the
            // connection, which hyper then closes rather than reads. Said in
            // the answer, so that a client does not send its next request on
            // a connection that is closing (the official `openai` SDK did,
            // and lost the request: "Server disconnected").
            if http1
                && response.status() != http::StatusCode::SWITCHING_PROTOCOLS
                && !read_whole.load(Ordering::Relaxed)
            {
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            Ok(response.map(|body| {
                Body::new(TrackedBody {
                    inner: body,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// Serves `connection` until it ends, closing it when `activity` and
/// `limits` say so (see [`Lifecycle::next`]) or when `stop` turns true:
/// then it is asked to close gracefully (HTTP/2 GOAWAY, HTTP/1 after the
/// response in progress) and, unless requests are in flight, dropped after
/// a short grace.
pub async fn drive<C>(
    connection: C,
    activity: &Activity,
    limits: &Limits,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<Option<Closed>, C::Error>
where
    C: GracefulConnection,
{
    tokio::pin!(connection);
    let closed = loop {
        let until = match activity.next(limits) {
            Next::WaitUntil(until) => until,
            Next::Close(Closed::NoRequest) => return Ok(Some(Closed::NoRequest)),
            Next::Close(closed) => break Some(closed),
        };
        tokio::select! {
            result = connection.as_mut() => return result.map(|()| None),
            () = tokio::time::sleep_until(until.into()) => {}
            // A dropped sender means no one will ask to stop.
            Ok(_) = stop.wait_for(|stopped| *stopped) => break None,
        }
    };
    connection.as_mut().graceful_shutdown();
    if closed.is_none() && activity.in_flight() > 0 {
        // Stopping with responses in flight: the caller's drain bounds it.
        return connection.await.map(|()| None);
    }
    match tokio::time::timeout(CLOSE_GRACE, connection).await {
        Ok(result) => result.map(|()| closed),
        Err(_) => Ok(closed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ..Limits::fitted(16, 4, 1 << 20)
        }
    }

    #[test]
    fn a_connection_without_a_request_closes_at_the_header_deadline_from_accept() {
        let start = Instant::now();
        let lifecycle = Lifecycle::new(start);
        let limits = limits();
        assert_eq!(
            lifecycle.next(&limits, start + Duration::from_secs(3)),
            Next::WaitUntil(start + Duration::from_secs(10))
        );
        assert_eq!(
            lifecycle.next(&limits, start + Duration::from_secs(10)),
            Next::Close(Closed::NoRequest)
        );
    }

    #[test]
    fn a_request_in_flight_keeps_the_connection_and_idleness_counts_from_its_end() {
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        let limits = limits();
        let mut lifecycle = Lifecycle::new(start);
        lifecycle.request_started();
        // A stream lasting far longer than the idle timeout stays open.
        assert_eq!(lifecycle.next(&limits, at(500)), Next::WaitUntil(at(560)));
        lifecycle.request_ended(at(530));
        assert_eq!(lifecycle.next(&limits, at(560)), Next::WaitUntil(at(590)));
        assert_eq!(lifecycle.next(&limits, at(590)), Next::Close(Closed::Idle));
    }

    #[test]
    fn overlapping_requests_leave_the_connection_idle_only_when_the_last_ends() {
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        let limits = limits();
        let mut lifecycle = Lifecycle::new(start);
        lifecycle.request_started();
        lifecycle.request_started();
        lifecycle.request_ended(at(1));
        assert_eq!(lifecycle.in_flight(), 1);
        assert_eq!(lifecycle.next(&limits, at(100)), Next::WaitUntil(at(160)));
        lifecycle.request_ended(at(120));
        assert_eq!(lifecycle.next(&limits, at(179)), Next::WaitUntil(at(180)));
        assert_eq!(lifecycle.next(&limits, at(180)), Next::Close(Closed::Idle));
    }
}
