//! The total connection limit (`limits.max_connections`) as permits taken
//! before each accept, resizable by a reload: raised, permits are added at
//! once; lowered, free permits are withdrawn at once and the rest as open
//! connections end, before any waiting accept gets one. Must not close or
//! delay a connection that is already open.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct ConnLimit {
    permits: Arc<Semaphore>,
    /// Permits still to withdraw as they come back (after a lowering).
    surplus: AtomicUsize,
    /// The limit in force; resizes are serialized by this lock.
    max: Mutex<usize>,
}

impl ConnLimit {
    pub fn new(max: usize) -> ConnLimit {
        ConnLimit {
            permits: Arc::new(Semaphore::new(max)),
            surplus: AtomicUsize::new(0),
            max: Mutex::new(max),
        }
    }

    /// A permit for one connection, waiting while the limit is reached.
    /// None once the semaphore is closed (never, in practice).
    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        loop {
            let p = Arc::clone(&self.permits).acquire_owned().await.ok()?;
            // A lowered limit takes returned permits first.
            let withdrawn = self
                .surplus
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| s.checked_sub(1))
                .is_ok();
            if !withdrawn {
                return Some(p);
            }
            p.forget();
        }
    }

    /// Put `max` in force.
    pub fn resize(&self, max: usize) {
        let mut current = self.max.lock().unwrap_or_else(PoisonError::into_inner);
        if max > *current {
            let mut more = max - *current;
            // Cancel withdrawals still pending before adding permits.
            let cancelled = self
                .surplus
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                    Some(s - s.min(more))
                })
                .map_or(0, |s| s.min(more));
            more -= cancelled;
            self.permits.add_permits(more);
        } else if max < *current {
            let fewer = *current - max;
            let now = self.permits.forget_permits(fewer);
            self.surplus.fetch_add(fewer - now, Ordering::AcqRel);
        }
        *current = max;
    }
}

#[cfg(test)]
mod tests {
    //! Futures are polled by hand, outside any runtime: a permit is either
    //! there at the first poll or the acquire is queued, so every state is
    //! observed, none waited for.

    use super::*;
    use std::future::Future;
    use std::pin::{pin, Pin};
    use std::task::{Context, Poll, Waker};

    /// Poll `fut` once: its output if it is ready now.
    fn poll_now<F: Future>(fut: Pin<&mut F>) -> Option<F::Output> {
        match fut.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }

    /// A permit if one is free now.
    fn free_now(l: &ConnLimit) -> Option<OwnedSemaphorePermit> {
        poll_now(pin!(l.acquire())).flatten()
    }

    #[test]
    fn lowering_withdraws_returned_permits_before_anyone_gets_one() {
        let l = ConnLimit::new(2);
        let (a, b) = (free_now(&l).unwrap(), free_now(&l).unwrap());
        assert!(free_now(&l).is_none());
        l.resize(1);
        drop(a);
        assert!(free_now(&l).is_none(), "one open, limit 1");
        drop(b);
        let c = free_now(&l).expect("none open");
        assert!(free_now(&l).is_none());
        drop(c);
    }

    #[test]
    fn a_waiting_acquire_does_not_jump_a_lowering() {
        let l = ConnLimit::new(1);
        let a = free_now(&l).unwrap();
        let mut waiter = pin!(l.acquire());
        assert!(poll_now(waiter.as_mut()).is_none(), "limit 1, one open");
        l.resize(2);
        let b = poll_now(waiter.as_mut())
            .expect("raised: the waiter is served")
            .unwrap();
        // Two open, limit lowered to 1; the next acquire queues now.
        l.resize(1);
        let mut waiter = pin!(l.acquire());
        assert!(poll_now(waiter.as_mut()).is_none());
        drop(a);
        assert!(
            poll_now(waiter.as_mut()).is_none(),
            "one still open: limit 1"
        );
        drop(b);
        let c = poll_now(waiter.as_mut()).expect("none open: served");
        assert!(c.is_some());
    }

    #[test]
    fn raising_after_lowering_cancels_the_pending_withdrawal() {
        let l = ConnLimit::new(2);
        let (a, b) = (free_now(&l).unwrap(), free_now(&l).unwrap());
        l.resize(1);
        l.resize(2);
        drop(a);
        let c = free_now(&l).expect("limit 2, one open");
        assert!(free_now(&l).is_none());
        drop((b, c));
        let both = (free_now(&l), free_now(&l));
        assert!(both.0.is_some() && both.1.is_some());
        assert!(free_now(&l).is_none());
    }
}
