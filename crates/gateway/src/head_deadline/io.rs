//! The client's socket, watched for writes that cannot complete: while the
//! rest of a response is still going out, the client is not late with its
//! next head.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::idleness::Idleness;

/// A socket (or any stream) that tells its connection's [`Idleness`]
/// whether each write, flush and shutdown completed.
pub(crate) struct WriteWatched<T> {
    io: T,
    idleness: Arc<Idleness>,
}

impl<T> WriteWatched<T> {
    pub(crate) fn new(io: T, idleness: Arc<Idleness>) -> Self {
        Self { io, idleness }
    }

    fn note<R>(&self, polled: Poll<R>) -> Poll<R> {
        self.idleness.wrote(polled.is_ready());
        polled
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteWatched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteWatched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.note(polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.note(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.note(polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_shutdown(cx);
        this.note(polled)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_write_the_client_does_not_take_holds_the_clock() {
        let idleness = Idleness::new();
        let (ours, mut client) = tokio::io::duplex(16);
        let mut socket = WriteWatched::new(ours, Arc::clone(&idleness));
        let response = [b'x'; 64];
        let mut writing = Box::pin(socket.write_all(&response));
        // The client takes nothing for three timeouts.
        assert!(
            tokio::time::timeout(TIMEOUT * 3, &mut writing)
                .await
                .is_err()
        );
        let now = Instant::now();
        assert_eq!(idleness.next_deadline(TIMEOUT, now), Some(now + TIMEOUT));
        // It reads the response; the write completes, and the clock starts.
        let mut taken = vec![0u8; response.len()];
        let (written, read) = tokio::join!(writing, client.read_exact(&mut taken));
        written.unwrap();
        read.unwrap();
        let flushed = Instant::now();
        assert_eq!(
            idleness.next_deadline(TIMEOUT, flushed),
            Some(flushed + TIMEOUT)
        );
    }
}
