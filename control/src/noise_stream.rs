//! A ts2021 session over a byte stream, as a byte stream: what is written
//! is sealed into records, what is read is opened from them. HTTP/2 runs on
//! top of it (the control server's side and a client's alike).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use crate::ts2021::Session;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `inner` carrying `session`'s records.
pub struct NoiseStream<S> {
    inner: S,
    session: Session,
    plaintext: Vec<u8>,
    sealed: Vec<u8>,
}

impl<S> NoiseStream<S> {
    /// Wraps `inner`; the handshake is done.
    pub fn new(inner: S, session: Session) -> NoiseStream<S> {
        NoiseStream {
            inner,
            session,
            plaintext: Vec::new(),
            sealed: Vec::new(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for NoiseStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        while this.plaintext.is_empty() {
            let mut raw = [0u8; 8192];
            let mut buffer = ReadBuf::new(&mut raw);
            ready!(Pin::new(&mut this.inner).poll_read(context, &mut buffer))?;
            if buffer.filled().is_empty() {
                return Poll::Ready(Ok(())); // the end of the stream
            }
            let opened = this
                .session
                .open(buffer.filled())
                .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error))?;
            this.plaintext.extend_from_slice(&opened);
        }
        let count = this.plaintext.len().min(out.remaining());
        out.put_slice(&this.plaintext[..count]);
        this.plaintext.drain(..count);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> NoiseStream<S> {
    fn poll_drain(&mut self, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.sealed.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(context, &self.sealed))?;
            if written == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.sealed.drain(..written);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for NoiseStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_drain(context))?;
        let sealed = this
            .session
            .seal(data)
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error))?;
        this.sealed = sealed;
        // Taken: the records go out now or on the next write or flush.
        let _ = this.poll_drain(context)?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        ready!(self.poll_drain(context))?;
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        ready!(self.poll_drain(context))?;
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}
