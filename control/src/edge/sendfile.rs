//! Zero-copy sends for origin mode: `GET /data/PATH` bodies are slices of a
//! mapped file; when hyper writes a buffer that lies inside a registered map, the
//! connection sends those bytes with `sendfile(2)` from the same open file instead
//! of copying them from user memory (as nginx does with `sendfile on`). Every other
//! write goes to the socket unchanged. This is the only module of the edge server
//! with `unsafe` (one raw syscall).
//!
//! Why it is correct: a pointer inside a live mapping addresses that mapping's
//! bytes, which are the page-cache bytes of the mapped file at offset
//! `ptr - start`; a region is registered exactly while its map is alive (it is
//! removed in `Drop` before the map is unmapped), and a writer takes its own
//! reference to the file under the lock, so the descriptor cannot be closed or
//! reused under it.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, ready};

use pfs_dataplane::mapped::MappedFile;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A registered region: `[start, end)` of the address space and the file mapped
/// there.
type Region = (usize, usize, Arc<File>);

static REGIONS: RwLock<Vec<Region>> = RwLock::new(Vec::new());

/// A mapped file whose bytes connections may send with `sendfile`.
#[derive(Debug)]
pub struct ServedMap {
    map: MappedFile,
    start: usize,
}

impl ServedMap {
    /// Registers `map` (an empty map registers nothing).
    pub fn new(map: MappedFile) -> io::Result<ServedMap> {
        let bytes = map.bytes();
        let start = bytes.as_ptr() as usize;
        if !bytes.is_empty() {
            let file = Arc::new(map.file().try_clone()?);
            REGIONS.write().unwrap_or_else(|p| p.into_inner()).push((
                start,
                start + bytes.len(),
                file,
            ));
        }
        Ok(ServedMap { map, start })
    }

    /// The mapped file.
    pub fn map(&self) -> &MappedFile {
        &self.map
    }
}

impl Drop for ServedMap {
    fn drop(&mut self) {
        if self.map.bytes().is_empty() {
            return;
        }
        let mut regions = REGIONS.write().unwrap_or_else(|p| p.into_inner());
        regions.retain(|(s, _, _)| *s != self.start);
    }
}

/// The file and offset behind `buf`, when it lies wholly inside a registered map.
fn lookup(buf: &[u8]) -> Option<(Arc<File>, u64)> {
    if buf.is_empty() {
        return None;
    }
    let (a, b) = (buf.as_ptr() as usize, buf.as_ptr() as usize + buf.len());
    let regions = REGIONS.read().unwrap_or_else(|p| p.into_inner());
    regions
        .iter()
        .find(|(s, e, _)| *s <= a && b <= *e)
        .map(|(s, _, f)| (f.clone(), (a - s) as u64))
}

/// A TCP connection whose writes of registered map slices use `sendfile`.
#[derive(Debug)]
pub struct SendfileStream(TcpStream);

impl SendfileStream {
    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let len = len.min(0x7fff_f000);
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            let r = self.0.try_io(Interest::WRITABLE, || {
                let mut off = offset as libc::off_t;
                // SAFETY: both descriptors are open for the whole call (the socket
                // is owned by `self`, the file by the caller's `Arc`), `off` is a
                // valid, exclusive pointer to an `off_t`, and sendfile writes
                // nothing into our memory except `off`.
                let n =
                    unsafe { libc::sendfile(self.0.as_raw_fd(), file.as_raw_fd(), &mut off, len) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match r {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "sendfile sent nothing (file truncated under its map?)",
                    )));
                }
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match lookup(buf) {
            Some((file, off)) => self.poll_sendfile(cx, &file, off, buf.len()),
            None => Pin::new(&mut self.0).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let Some(first) = bufs.iter().position(|b| !b.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        if let Some((file, off)) = lookup(&bufs[first]) {
            return self.poll_sendfile(cx, &file, off, bufs[first].len());
        }
        // Write the plain buffers up to the first mapped one.
        let end = bufs[first..]
            .iter()
            .position(|b| lookup(b).is_some())
            .map_or(bufs.len(), |i| first + i);
        Pin::new(&mut self.0).poll_write_vectored(cx, &bufs[first..end])
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A listener whose connections are [`SendfileStream`]s.
#[derive(Debug)]
pub struct SendfileListener(pub TcpListener);

impl axum::serve::Listener for SendfileListener {
    type Io = SendfileStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (SendfileStream, std::net::SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok((s, a)) => {
                    let _ = s.set_nodelay(true);
                    return (SendfileStream(s), a);
                }
                // Out of descriptors or a connection reset before accept: wait a
                // little and go on, as axum's own TcpListener does.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_only_registered_live_maps() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, (0..10_000u32).map(|i| i as u8).collect::<Vec<_>>()).unwrap();
        let served = ServedMap::new(MappedFile::open(&p).unwrap()).unwrap();
        let bytes = served.map().bytes();
        let (_, off) = lookup(&bytes[100..200]).unwrap();
        assert_eq!(off, 100);
        assert!(lookup(&[1, 2, 3]).is_none());
        let ptr = bytes.as_ptr() as usize;
        drop(served);
        assert!(REGIONS.read().unwrap().iter().all(|(s, _, _)| *s != ptr));
    }
}
