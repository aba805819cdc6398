//! Permits for response bodies that stream from storage: at most `seeder.max_streams` at once,
//! and at most `seeder.max_streams_per_client` of them for one client (an IPv4 address or an
//! IPv6 /64), so a few slow readers cannot hold every permit. A permit lives as long as its
//! body; dropping it gives both counts back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;

pub struct Streams {
    total: Arc<Semaphore>,
    per_client: usize,
    /// Open streams per client key; a key is removed when its count returns to zero, so the
    /// map holds only clients with a stream open (at most `max_streams` of them).
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open stream; gives its place back when dropped.
pub struct StreamPermit {
    _total: OwnedSemaphorePermit,
    client: Option<IpAddr>,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Streams {
    pub fn new(max_streams: usize, per_client: usize) -> Self {
        Streams {
            total: Arc::new(Semaphore::new(max_streams)),
            per_client,
            open: Arc::default(),
        }
    }

    /// A permit for a stream to `client` (its rate-limit key), or the refusal to send.
    pub fn try_acquire(&self, client: Option<IpAddr>) -> Result<StreamPermit, ApiError> {
        let total = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::Overloaded)?;
        if let Some(key) = client {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            let count = open.entry(key).or_insert(0);
            if *count >= self.per_client {
                return Err(ApiError::TooManyStreams {
                    limit: self.per_client,
                });
            }
            *count += 1;
        }
        Ok(StreamPermit {
            _total: total,
            client,
            open: self.open.clone(),
        })
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let Some(key) = self.client else { return };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_cannot_take_every_stream() {
        let streams = Streams::new(3, 2);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = streams.try_acquire(Some(a)).unwrap();
        let _second = streams.try_acquire(Some(a)).unwrap();
        assert!(matches!(
            streams.try_acquire(Some(a)),
            Err(ApiError::TooManyStreams { limit: 2 })
        ));
        let _other = streams.try_acquire(Some(b)).unwrap();
        assert!(matches!(
            streams.try_acquire(Some(b)),
            Err(ApiError::Overloaded)
        ));
        drop(first);
        assert!(
            streams.try_acquire(Some(a)).is_ok(),
            "a closed stream frees its place"
        );
        assert!(streams.open.lock().unwrap().len() <= 2);
    }
}
