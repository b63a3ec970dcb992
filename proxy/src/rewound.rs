//! A client stream with bytes put back in front of it, for the streams that cannot take bytes
//! back themselves.
//!
//! An idle HTTP/1.1 keep-alive connection waits for its next request in
//! [`crate::linger::Lingering`] holding only its stream: the next request's first bytes are read
//! there and must then reach Pingora's request parser. A plain TCP stream takes them back
//! (`Stream::rewind`); a TLS stream (Pingora's rustls `TlsStream`) has no such call and keeps
//! its inner stream private, so it is wrapped once in a [`Rewound`], which serves those bytes
//! before reading on. Every other call goes to the stream inside, so Pingora and the access log
//! see the same connection (its id, TLS digest, ALPN, timings).
//!
//! The wrapper is made at the connection's first idle wait and kept for its life (a second wait
//! reuses it), so a kept-alive TLS connection pays one more indirect call per read and write.
//! Measured: 1,000 idle keep-alive HTTPS/1.1 connections 50.5 → 35.5 KiB of resident memory
//! each (what is left is the TLS session's buffers, Pingora's per-connection task and the
//! socket); +1.2k instructions per request on a kept-alive HTTPS connection (callgrind, the
//! benchmark's HTTPS pass-through row: 145.8k → 147.1k).

use async_trait::async_trait;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::{SslDigest, TlsRef, ALPN};
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType,
};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream and the bytes already read from it that its reader has not had yet.
#[derive(Debug)]
pub struct Rewound {
    inner: Stream,
    front: Vec<u8>,
    pos: usize,
}

impl Rewound {
    pub fn new(inner: Stream) -> Rewound {
        Rewound {
            inner,
            front: Vec::new(),
            pos: 0,
        }
    }

    /// Whether bytes put back are still waiting to be read.
    pub fn has_front(&self) -> bool {
        self.pos < self.front.len()
    }

    /// Puts `bytes` in front of whatever the stream gives next. Only called with nothing left
    /// in front (the idle wait reads only then).
    pub fn rewind(&mut self, bytes: Vec<u8>) {
        debug_assert!(!self.has_front());
        self.front = bytes;
        self.pos = 0;
    }

    /// The stream inside, to read the next request's first bytes from.
    pub fn inner_mut(&mut self) -> &mut Stream {
        &mut self.inner
    }
}

impl AsyncRead for Rewound {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.has_front() {
            let n = buf.remaining().min(this.front.len() - this.pos);
            buf.put_slice(&this.front[this.pos..this.pos + n]);
            this.pos += n;
            if !this.has_front() {
                // Not held while the connection serves the request.
                this.front = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewound {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Rewound {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for Rewound {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Rewound {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Rewound {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Rewound {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Rewound {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, socket_digest: SocketDigest) {
        self.inner.set_socket_digest(socket_digest)
    }
}

#[async_trait]
impl Peek for Rewound {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        if self.has_front() {
            let n = buf.len().min(self.front.len() - self.pos);
            buf[..n].copy_from_slice(&self.front[self.pos..self.pos + n]);
            return Ok(true);
        }
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The bytes put back come first, across reads smaller than them, then the stream's own.
    #[tokio::test]
    async fn serves_the_bytes_put_back_before_the_stream() {
        let (a, mut b) = tokio::io::duplex(64);
        let inner: Stream = Box::new(a);
        let mut r = Rewound::new(inner);
        r.rewind(b"GET / HTTP/1.1\r\n".to_vec());
        b.write_all(b"host: x\r\n\r\n").await.unwrap();
        let mut small = [0u8; 5];
        r.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"GET /");
        let mut peeked = [0u8; 3];
        assert!(r.try_peek(&mut peeked).await.unwrap());
        assert_eq!(&peeked, b" HT");
        let mut rest = vec![0u8; 11 + 11];
        r.read_exact(&mut rest).await.unwrap();
        assert_eq!(rest, b" HTTP/1.1\r\nhost: x\r\n\r\n");
        assert!(!r.has_front());
        assert_eq!(r.front.capacity(), 0, "the buffer is let go once served");
        r.write_all(b"ok").await.unwrap();
        let mut got = [0u8; 2];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ok");
    }
}
