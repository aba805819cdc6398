//! Reading a file's byte range as response blocks, the way a busy server should on two cores.
//!
//! - A block the page cache already holds is read inline on the worker with
//!   `preadv2(RWF_NOWAIT)`, which the kernel answers from the cache or refuses with `EAGAIN`
//!   instead of waiting for the disk. Only a refused read goes to the blocking pool. The trip
//!   there and back is two thread switches per block (perf: ~23% of CPU serving 1 MiB pieces),
//!   and a cache miss inline would stall every connection on the worker.
//! - Buffers come from a small pool and go back to it when the response is done with them, so
//!   a block is neither zeroed nor faulted in afresh (perf: memset and page faults under
//!   memmove were a large part of serving large pieces; see also the trim threshold set in
//!   `main`).
//!
//! Invariant: a stream holds one block at a time, so memory per response is one block whatever
//! the range; the pool keeps at most [`POOLED`] idle buffers.

use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::stream;

use super::ByteStream;

/// Bytes per read, and the size of every pooled buffer.
pub const BLOCK: usize = 256 * 1024;
/// Idle buffers kept for reuse (16 MiB); more in flight are allocated and freed as usual.
const POOLED: usize = 64;

static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A pooled buffer with `len` bytes filled; returns to the pool when dropped.
struct Pooled {
    buf: Vec<u8>,
    len: usize,
}

impl Pooled {
    fn take() -> Self {
        let buf = POOL
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_else(|| vec![0; BLOCK]);
        Pooled { buf, len: 0 }
    }
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOLED {
            pool.push(std::mem::take(&mut self.buf));
        }
    }
}

/// `len` bytes of `file` from `start`, one block at a time; an error names `key`.
pub fn stream_range(file: Arc<File>, key: String, start: u64, len: u64) -> ByteStream {
    let state = (file, start, start + len);
    Box::pin(stream::try_unfold(state, move |(file, pos, end)| {
        let key = key.clone();
        async move {
            if pos >= end {
                return Ok(None);
            }
            let want = (end - pos).min(BLOCK as u64) as usize;
            let block = read_block(file.clone(), pos, want)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("{key}: {e}")))?;
            let next = pos + block.len as u64;
            Ok(Some((Bytes::from_owner(block), (file, next, end))))
        }
    }))
}

/// Up to `want` bytes at `pos` (at least one): from the page cache inline when it has them,
/// else all of them on the blocking pool.
async fn read_block(file: Arc<File>, pos: u64, want: usize) -> io::Result<Pooled> {
    let mut block = Pooled::take();
    match read_if_cached(&file, &mut block.buf[..want], pos) {
        Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
        Ok(n) => {
            // Possibly short (the rest is not cached): the next block starts where this ends.
            block.len = n;
            Ok(block)
        }
        // EAGAIN: not cached. Anything else (a filesystem without RWF_NOWAIT, EINTR) is left to
        // the plain read, which retries or reports it.
        Err(_) => tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            file.read_exact_at(&mut block.buf[..want], pos)?;
            block.len = want;
            Ok(block)
        })
        .await
        .map_err(io::Error::other)?,
    }
}

/// A read the page cache answers, or an error (`EAGAIN`: it would wait for the disk).
#[cfg(target_os = "linux")]
fn read_if_cached(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let flags = rustix::io::ReadWriteFlags::NOWAIT;
    Ok(rustix::io::preadv2(
        file,
        &mut [io::IoSliceMut::new(buf)],
        pos,
        flags,
    )?)
}

/// Without `RWF_NOWAIT`, every read goes to the blocking pool.
#[cfg(not(target_os = "linux"))]
fn read_if_cached(_: &File, _: &mut [u8], _: u64) -> io::Result<usize> {
    Err(io::ErrorKind::WouldBlock.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    #[tokio::test]
    async fn reads_any_range_in_blocks_and_reports_a_short_file() {
        let data: Vec<u8> = (0..BLOCK * 2 + 1000).map(|i| (i % 251) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, &data).unwrap();
        let file = Arc::new(File::open(&path).unwrap());

        for (start, len) in [(0, data.len()), (5, BLOCK), (BLOCK - 1, 2), (3, 0)] {
            let blocks: Vec<Bytes> =
                stream_range(file.clone(), "f".into(), start as u64, len as u64)
                    .try_collect()
                    .await
                    .unwrap();
            assert!(blocks.iter().all(|b| !b.is_empty() && b.len() <= BLOCK));
            assert_eq!(blocks.concat(), &data[start..start + len]);
        }

        let past_the_end = stream_range(file, "f".into(), data.len() as u64 - 10, 20);
        let err = past_the_end.try_collect::<Vec<_>>().await.unwrap_err();
        assert!(err.to_string().starts_with("f: "), "{err}");
    }
}
