//! [`PerThread`]: one value per thread for a shared object, such as a connection to a store.
//!
//! Each server worker runs its own single-threaded runtime (see `server::workers`). A
//! connection, or a task, is driven on the runtime that made it, so one shared by every worker
//! would hand each answer from one thread to another: a wake-up and a context switch each time.
//! A value made per thread keeps that work on the thread that asked for it.
//!
//! Invariant: all clones of a `PerThread` share their values (one per thread), and distinct
//! `PerThread`s never do.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    static VALUES: RefCell<HashMap<usize, Box<dyn Any>>> = RefCell::default();
}

pub struct PerThread<T> {
    /// Which of this thread's values is ours.
    id: usize,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for PerThread<T> {
    fn clone(&self) -> Self {
        PerThread {
            id: self.id,
            _value: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for PerThread<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerThread").field("id", &self.id).finish()
    }
}

impl<T> Default for PerThread<T> {
    fn default() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        PerThread {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            _value: PhantomData,
        }
    }
}

impl<T: Clone + 'static> PerThread<T> {
    /// This thread's value: the one kept, while `usable` says it still is, or else a new one
    /// from `make`, kept if it was made.
    pub fn try_get<E>(
        &self,
        usable: impl FnOnce(&T) -> bool,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        VALUES.with(|values| {
            let mut values = values.borrow_mut();
            if let Some(kept) = values.get(&self.id).and_then(|v| v.downcast_ref::<T>()) {
                if usable(kept) {
                    return Ok(kept.clone());
                }
            }
            let value = make()?;
            values.insert(self.id, Box::new(value.clone()));
            Ok(value)
        })
    }

    /// [`PerThread::try_get`] for a value that can always be made.
    pub fn get(&self, usable: impl FnOnce(&T) -> bool, make: impl FnOnce() -> T) -> T {
        self.try_get(usable, || Ok::<_, std::convert::Infallible>(make()))
            .unwrap_or_else(|never| match never {})
    }
}

/// How many threads the machine runs at once: the default for one-per-core pools (HTTP workers,
/// torrent decoders).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_a_value_per_thread_and_others_do_not() {
        let (a, b) = (PerThread::<u32>::default(), PerThread::<u32>::default());
        let kept = |_: &u32| true;
        assert_eq!(a.get(kept, || 1), 1);
        assert_eq!(a.clone().get(kept, || 2), 1, "a clone finds the value kept");
        assert_eq!(b.get(kept, || 3), 3, "another PerThread has its own");
        let elsewhere = a.clone();
        let there = std::thread::spawn(move || elsewhere.get(kept, || 4));
        assert_eq!(there.join().unwrap(), 4);
        // Replaced when no longer usable; kept as it was when making fails.
        assert_eq!(a.try_get(|v| *v != 1, || Ok::<_, ()>(5)), Ok(5));
        assert_eq!(a.try_get(|_| false, || Err("down")), Err("down"));
        assert_eq!(a.get(kept, || 6), 5);
    }
}
