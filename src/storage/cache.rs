//! [`RangeCache`]: byte ranges recently served from a remote store, kept in memory, so a piece
//! that many peers ask for leaves the object store once (`storage.s3.cache_mib`).
//!
//! A range is known by object key, version, start and length: a cached range is exactly the
//! bytes of the version that was hashed, so it is never stale for the torrent that names it
//! (a changed object gets a new version and new keys; the old ones age out).
//!
//! Invariants:
//! - Memory is bounded twice: cached bytes by the capacity (scan-resistant eviction, from
//!   `quick_cache`), and bytes outside the cache (ranges being gathered, spare buffers) by the
//!   same amount again; a read that would pass that second bound is served without being kept.
//! - A range is gathered into the buffer of one evicted before it when one fits: misses at a
//!   steady rate then write into memory already mapped. Fresh buffers cost a page fault and a
//!   zeroed page per 4 KiB, which on a miss of a 1 MiB piece was a third of the relay's CPU.
//! - Only a read that ran to its full length is kept: a client that went away, or a store
//!   that failed midway, leaves nothing behind.
//! - Ranges longer than an eighth of the capacity are never kept (whole-file downloads, hashing
//!   reads do not come here at all: see [`crate::seeder::Seeder::read`]).
//!
//! Two peers missing the same range at the same moment both read it from the store; the
//! second to finish replaces the first's copy.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};

use super::{ByteStream, ObjectMeta, Storage, StorageError};

/// One read: which bytes of which version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RangeKey {
    key: String,
    version: String,
    start: u64,
    len: u64,
}

/// A kept range: its bytes, and the memory its buffer holds (a reused buffer may be larger).
#[derive(Clone)]
struct Kept {
    bytes: Bytes,
    held: u64,
}

/// An entry weighs the memory it holds.
#[derive(Clone)]
struct ByMemory;

impl Weighter<RangeKey, Kept> for ByMemory {
    fn weight(&self, _key: &RangeKey, kept: &Kept) -> u64 {
        kept.held
    }
}

/// Hands the buffers of evicted ranges to [`Outside`] once the cache's lock is released.
#[derive(Clone)]
struct Recycle(Arc<Outside>);

impl Lifecycle<RangeKey, Kept> for Recycle {
    /// Ranges evicted during one insert.
    type RequestState = Vec<Kept>;

    fn begin_request(&self) -> Vec<Kept> {
        Vec::new()
    }

    fn on_evict(&self, evicted: &mut Vec<Kept>, _key: RangeKey, kept: Kept) {
        evicted.push(kept);
    }

    fn end_request(&self, evicted: Vec<Kept>) {
        for kept in evicted {
            self.0.recycle(kept.bytes);
        }
    }
}

type Ranges = Cache<RangeKey, Kept, ByMemory, DefaultHashBuilder, Recycle>;

/// The cache's shards, at most (quick_cache uses fewer for a small capacity): each holds a
/// quarter of the capacity or more, so an entry of at most an eighth always fits.
const SHARDS: usize = 4;
/// The blocks a kept range is served in.
const SERVE_BLOCK: usize = 64 * 1024;
/// Spare buffers kept at most: an insert usually evicts about one range as long as the one it
/// keeps, and the next miss takes that buffer.
const SPARES: usize = 8;

pub struct RangeCache {
    ranges: Arc<Ranges>,
    capacity: u64,
    outside: Arc<Outside>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Memory held for the cache outside it: ranges being gathered and spare buffers, together at
/// most the capacity.
struct Outside {
    capacity: u64,
    /// Bytes of the buffers of ranges being gathered and of the spare buffers.
    held: AtomicU64,
    /// Buffers of evicted ranges, emptied, most recent last (its pages are likelier cached).
    spare: Mutex<Vec<BytesMut>>,
    /// Bytes of buffers allocated rather than reused, since start.
    allocated: AtomicU64,
}

impl Outside {
    fn try_hold(&self, bytes: u64) -> bool {
        let held = self.held.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if held > self.capacity {
            self.release(bytes);
            return false;
        }
        true
    }

    fn release(&self, bytes: u64) {
        self.held.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// A buffer to gather `len` bytes into, already counted in `held`: a spare one no more than
    /// twice as large, else a new one if the bound allows (dropping the spares to make room:
    /// they are the wrong size for what is asked now).
    fn buffer(&self, len: usize) -> Option<BytesMut> {
        let mut spare = self.spare.lock().expect("no panics while locked");
        let fitting = spare
            .iter()
            .rposition(|buf| (len..=len.saturating_mul(2)).contains(&buf.capacity()));
        if let Some(at) = fitting {
            return Some(spare.remove(at));
        }
        if !self.try_hold(len as u64) {
            let freed: usize = spare.drain(..).map(|buf| buf.capacity()).sum();
            self.release(freed as u64);
            if freed == 0 || !self.try_hold(len as u64) {
                return None;
            }
        }
        self.allocated.fetch_add(len as u64, Ordering::Relaxed);
        Some(BytesMut::with_capacity(len))
    }

    /// Keeps an evicted range's buffer for the next miss, unless a response still reads from
    /// it or there is no room.
    fn recycle(&self, bytes: Bytes) {
        let Ok(mut buf) = bytes.try_into_mut() else {
            return;
        };
        buf.clear();
        let mut spare = self.spare.lock().expect("no panics while locked");
        if spare.len() < SPARES && self.try_hold(buf.capacity() as u64) {
            spare.push(buf);
        }
    }
}

impl RangeCache {
    /// A cache of at most `capacity` bytes (plus as much again being gathered).
    pub fn new(capacity: u64) -> Self {
        let outside = Arc::new(Outside {
            capacity,
            held: AtomicU64::new(0),
            spare: Mutex::default(),
            allocated: AtomicU64::new(0),
        });
        let options = OptionsBuilder::new()
            .shards(SHARDS)
            .weight_capacity(capacity)
            // A guess for sizing the table: 1 MiB pieces.
            .estimated_items_capacity((capacity >> 20).max(16) as usize)
            .build()
            .expect("capacity and item estimate are set");
        RangeCache {
            ranges: Arc::new(Cache::with_options(
                options,
                ByMemory,
                DefaultHashBuilder::default(),
                Recycle(outside.clone()),
            )),
            capacity,
            outside,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// `len` bytes of `object` from `start`: from memory when this range was served whole
    /// before, otherwise from `storage`, kept on the way through when it fits.
    pub async fn read(
        &self,
        storage: &dyn Storage,
        object: &ObjectMeta,
        start: u64,
        len: u64,
    ) -> Result<ByteStream, StorageError> {
        if len == 0 || len > self.capacity / 8 {
            return storage.read(object, start, len).await;
        }
        let key = RangeKey {
            key: object.key.clone(),
            version: object.version.clone(),
            start,
            len,
        };
        if let Some(Kept { bytes, .. }) = self.ranges.get(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            // Slices of the kept bytes, not copies: the HTTP layer copies each block it is
            // given into its write buffer, so one block of the whole range would be a second
            // copy of it per client, outside both bounds.
            let blocks = (0..bytes.len())
                .step_by(SERVE_BLOCK)
                .map(move |at| Ok(bytes.slice(at..(at + SERVE_BLOCK).min(bytes.len()))));
            return Ok(Box::pin(futures_util::stream::iter(blocks)));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let body = storage.read(object, start, len).await?;
        let Some(into) = self.outside.buffer(len as usize) else {
            return Ok(body);
        };
        Ok(Box::pin(Gather {
            body,
            held: into.capacity() as u64,
            into: Some(into),
            key: Some(key),
            ranges: self.ranges.clone(),
            outside: self.outside.clone(),
        }))
    }

    /// Bytes held now, and reads of ranges short enough to keep answered from memory and sent
    /// to the store (answered or not) since start.
    pub fn stats(&self) -> (u64, u64, u64) {
        (
            self.ranges.weight(),
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// A store's body passed through unchanged, copied aside, and kept once it has ended whole.
struct Gather {
    body: ByteStream,
    /// `None` once the copy is abandoned (an error, or more bytes than asked for).
    into: Option<BytesMut>,
    key: Option<RangeKey>,
    ranges: Arc<Ranges>,
    outside: Arc<Outside>,
    /// The buffer's capacity, counted in `outside` until the gather ends.
    held: u64,
}

impl Stream for Gather {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let next = this.body.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(Some(Ok(block))) => {
                let fits = this
                    .into
                    .as_ref()
                    .zip(this.key.as_ref())
                    .is_some_and(|(into, key)| (into.len() + block.len()) as u64 <= key.len);
                match this.into.as_mut() {
                    Some(into) if fits => into.extend_from_slice(block),
                    _ => this.into = None,
                }
            }
            Poll::Ready(Some(Err(_))) => this.into = None,
            Poll::Ready(None) => {
                if let (Some(into), Some(key)) = (this.into.take(), this.key.take()) {
                    if into.len() as u64 == key.len {
                        let held = this.held;
                        let bytes = into.freeze();
                        this.ranges.insert(key, Kept { bytes, held });
                    }
                }
            }
            Poll::Pending => {}
        }
        next
    }
}

impl Drop for Gather {
    fn drop(&mut self) {
        // Kept, the buffer is the cache's to count now; abandoned, it is freed.
        self.outside.release(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::BoxFuture;
    use futures_util::TryStreamExt;
    use std::sync::Mutex;
    use std::time::SystemTime;

    /// A store of one object whose bytes are `i as u8` at offset `i`, counting reads; it can be
    /// told to fail in the middle of every body.
    #[derive(Default)]
    struct Counting {
        reads: Mutex<Vec<(u64, u64)>>,
        fail_midway: bool,
    }

    impl Storage for Counting {
        fn list(&self) -> BoxFuture<Result<Vec<ObjectMeta>, StorageError>> {
            unreachable!("the cache only reads")
        }
        fn stat(&self, _key: &str) -> BoxFuture<Result<ObjectMeta, StorageError>> {
            unreachable!("the cache only reads")
        }
        fn read(
            &self,
            _object: &ObjectMeta,
            start: u64,
            len: u64,
        ) -> BoxFuture<Result<ByteStream, StorageError>> {
            self.reads.lock().unwrap().push((start, len));
            let bytes: Vec<u8> = (start..start + len).map(|i| i as u8).collect();
            let half = bytes.len() / 2;
            let mut blocks = vec![
                Ok(Bytes::copy_from_slice(&bytes[..half])),
                Ok(Bytes::copy_from_slice(&bytes[half..])),
            ];
            if self.fail_midway {
                blocks[1] = Err(std::io::Error::other("the store went away"));
            }
            Box::pin(async move { Ok(Box::pin(futures_util::stream::iter(blocks)) as ByteStream) })
        }
        fn put(
            &self,
            _key: &str,
            _body: ByteStream,
        ) -> BoxFuture<Result<ObjectMeta, StorageError>> {
            unreachable!("the cache only reads")
        }
    }

    fn object(version: &str) -> ObjectMeta {
        ObjectMeta {
            key: "a file.bin".into(),
            size: 1 << 30,
            version: version.into(),
            last_modified: SystemTime::UNIX_EPOCH,
        }
    }

    async fn read_all(
        cache: &RangeCache,
        store: &Counting,
        object: &ObjectMeta,
        start: u64,
        len: u64,
    ) -> std::io::Result<Vec<u8>> {
        let body = cache.read(store, object, start, len).await.unwrap();
        let blocks: Vec<Bytes> = body.try_collect().await?;
        Ok(blocks.concat())
    }

    #[actix_web::test]
    async fn a_range_served_whole_is_served_again_from_memory() {
        let (cache, store) = (RangeCache::new(1 << 20), Counting::default());
        let v1 = object("v1");

        let first = read_all(&cache, &store, &v1, 1000, 5000).await.unwrap();
        let again = read_all(&cache, &store, &v1, 1000, 5000).await.unwrap();

        assert_eq!(first, again);
        assert_eq!(first[0], (1000 % 256) as u8);
        assert_eq!(*store.reads.lock().unwrap(), [(1000, 5000)]);
        assert_eq!(cache.stats(), (5000, 1, 1));
    }

    #[actix_web::test]
    async fn a_kept_range_is_served_in_slices_of_the_kept_bytes() {
        let (cache, store) = (RangeCache::new(8 << 20), Counting::default());
        let v1 = object("v1");
        read_all(&cache, &store, &v1, 0, 200_000).await.unwrap();

        let body = cache.read(&store, &v1, 0, 200_000).await.unwrap();
        let blocks: Vec<Bytes> = body.try_collect().await.unwrap();

        let sizes: Vec<usize> = blocks.iter().map(Bytes::len).collect();
        assert_eq!(
            sizes,
            [
                SERVE_BLOCK,
                SERVE_BLOCK,
                SERVE_BLOCK,
                200_000 - 3 * SERVE_BLOCK
            ]
        );
        assert_eq!(store.reads.lock().unwrap().len(), 1);
    }

    #[actix_web::test]
    async fn another_version_or_range_goes_to_the_store() {
        let (cache, store) = (RangeCache::new(1 << 20), Counting::default());
        read_all(&cache, &store, &object("v1"), 0, 4096)
            .await
            .unwrap();

        read_all(&cache, &store, &object("v2"), 0, 4096)
            .await
            .unwrap();
        read_all(&cache, &store, &object("v1"), 1, 4096)
            .await
            .unwrap();
        read_all(&cache, &store, &object("v1"), 0, 4095)
            .await
            .unwrap();

        assert_eq!(store.reads.lock().unwrap().len(), 4);
    }

    #[actix_web::test]
    async fn a_read_cut_short_is_not_kept() {
        let cache = RangeCache::new(1 << 20);
        let failing = Counting {
            fail_midway: true,
            ..Counting::default()
        };
        let v1 = object("v1");
        assert!(read_all(&cache, &failing, &v1, 0, 4096).await.is_err());
        // A client that reads half and goes away.
        let mut body = cache.read(&failing, &v1, 0, 4096).await.unwrap();
        futures_util::StreamExt::next(&mut body).await;
        drop(body);

        let store = Counting::default();
        read_all(&cache, &store, &v1, 0, 4096).await.unwrap();
        assert_eq!(store.reads.lock().unwrap().len(), 1, "nothing was kept");
        assert_eq!(cache.outside.held.load(Ordering::Relaxed), 0);
    }

    #[actix_web::test]
    async fn misses_gather_into_the_buffers_of_evicted_ranges() {
        let capacity = 64 * 1024;
        let (cache, store) = (RangeCache::new(capacity), Counting::default());
        let v1 = object("v1");

        for i in 0..100 {
            read_all(&cache, &store, &v1, i * 8192, 8192).await.unwrap();
        }

        let allocated = cache.outside.allocated.load(Ordering::Relaxed);
        assert!(
            allocated <= 2 * capacity,
            "{allocated} bytes allocated for 100 misses"
        );
        assert!(cache.stats().0 <= capacity, "{:?}", cache.stats());
        assert!(cache.outside.held.load(Ordering::Relaxed) <= capacity);
    }

    #[actix_web::test]
    async fn a_range_still_being_sent_is_not_reused() {
        let capacity = 64 * 1024;
        let (cache, store) = (RangeCache::new(capacity), Counting::default());
        let v1 = object("v1");
        let first = read_all(&cache, &store, &v1, 0, 8192).await.unwrap();
        let sending = cache.read(&store, &v1, 0, 8192).await.unwrap();
        assert_eq!(cache.stats().1, 1, "the second read is from memory");

        for i in 1..100 {
            read_all(&cache, &store, &v1, i * 8192, 8192).await.unwrap();
        }

        let sent: Vec<Bytes> = sending.try_collect().await.unwrap();
        assert_eq!(sent.concat(), first);
    }

    #[actix_web::test]
    async fn memory_stays_within_the_capacity() {
        let capacity = 64 * 1024;
        let (cache, store) = (RangeCache::new(capacity), Counting::default());
        let v1 = object("v1");
        // Too long to keep: an eighth of the capacity at most.
        read_all(&cache, &store, &v1, 0, capacity / 8 + 1)
            .await
            .unwrap();
        read_all(&cache, &store, &v1, 0, capacity / 8 + 1)
            .await
            .unwrap();
        assert_eq!(store.reads.lock().unwrap().len(), 2);

        for i in 0..100 {
            read_all(&cache, &store, &v1, i * 4096, 4096).await.unwrap();
        }
        assert!(cache.stats().0 <= capacity, "{:?}", cache.stats());

        // Reads being gathered hold at most the capacity again; past it they pass through.
        let held: Vec<ByteStream> = futures_util::future::join_all(
            (0..9).map(|i| cache.read(&store, &v1, (1 << 24) + i * 8192, 8192)),
        )
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
        assert_eq!(cache.outside.held.load(Ordering::Relaxed), 8 * 8192);
        drop(held);
        assert_eq!(cache.outside.held.load(Ordering::Relaxed), 0);
    }
}
