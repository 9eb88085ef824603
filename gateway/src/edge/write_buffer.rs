//! A write buffer under each downstream connection, as pingora's own listeners put one there
//! (`L4BufferSettings`, 1460 bytes by default). pingora's HTTP/1 server writes a response as
//! several small writes (header, body chunks) and flushes once at the end; without a buffer
//! each of those writes is its own `write(2)` and, under TLS, its own record flushed on its
//! own. Our accept loop builds the L4 stream itself, and pingora only sizes its buffers in its
//! own accept path, so the buffer is added here. Reads pass straight through (rustls and
//! pingora's HTTP parser keep their own read buffers).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt as _;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, ReadBuf};

/// Bytes buffered before a write reaches the socket: pingora's default
/// (`DEFAULT_L4_WRITE_BUFFER_SIZE`), one MSS-sized segment — a small response's header and
/// body records together.
const WRITE_BUFFER_BYTES: usize = 1460;

/// An accepted connection with a write buffer; everything else is the L4 stream's.
#[derive(Debug)]
pub(crate) struct BufferedL4(BufWriter<L4Stream>);

impl BufferedL4 {
    pub(crate) fn new(l4: L4Stream) -> Self {
        Self(BufWriter::with_capacity(WRITE_BUFFER_BYTES, l4))
    }
}

impl AsyncRead for BufferedL4 {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for BufferedL4 {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl Drop for BufferedL4 {
    fn drop(&mut self) {
        // As pingora's L4 stream does with its own buffer: a last try, never waiting.
        let _ = self.0.flush().now_or_never();
    }
}

#[async_trait]
impl Shutdown for BufferedL4 {
    async fn shutdown(&mut self) {
        if let Err(error) = AsyncWriteExt::shutdown(&mut self.0).await {
            tracing::debug!(error = %error, "edge: connection shutdown failed");
        }
    }
}

impl UniqueID for BufferedL4 {
    fn id(&self) -> UniqueIDType {
        self.0.get_ref().id()
    }
}

impl Ssl for BufferedL4 {}

#[async_trait]
impl Peek for BufferedL4 {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.0.get_mut().try_peek(buf).await
    }
}

impl GetTimingDigest for BufferedL4 {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.0.get_ref().get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.0.get_ref().get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.0.get_ref().get_write_pending_time()
    }
}

impl GetProxyDigest for BufferedL4 {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.0.get_ref().get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.0.get_mut().set_proxy_digest(digest);
    }
}

impl GetSocketDigest for BufferedL4 {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.0.get_ref().get_socket_digest()
    }

    fn set_socket_digest(&mut self, socket_digest: SocketDigest) {
        self.0.get_mut().set_socket_digest(socket_digest);
    }
}
