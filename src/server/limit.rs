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
    use super::*;
    use std::time::Duration;

    /// Whether a permit can be had within a short wait.
    async fn available(l: &ConnLimit) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(Duration::from_millis(50), l.acquire())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn lowering_withdraws_returned_permits_before_anyone_gets_one() {
        let l = ConnLimit::new(2);
        let (a, b) = (available(&l).await.unwrap(), available(&l).await.unwrap());
        assert!(available(&l).await.is_none());
        l.resize(1);
        drop(a);
        assert!(available(&l).await.is_none(), "one open, limit 1");
        drop(b);
        let c = available(&l).await.expect("none open");
        assert!(available(&l).await.is_none());
        drop(c);
    }

    #[tokio::test]
    async fn a_waiting_acquire_does_not_jump_a_lowering() {
        let l = Arc::new(ConnLimit::new(1));
        let a = available(&l).await.unwrap();
        let waiter = {
            let l = Arc::clone(&l);
            tokio::spawn(async move { l.acquire().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        l.resize(2);
        let b = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("raised: the waiter is served")
            .unwrap()
            .unwrap();
        // Two open, limit lowered to 1; the next waiter starts waiting now.
        l.resize(1);
        let waiter = {
            let l = Arc::clone(&l);
            tokio::spawn(async move { l.acquire().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(a);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "one still open: limit 1");
        drop(b);
        let c = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("none open: served")
            .unwrap();
        assert!(c.is_some());
    }

    #[tokio::test]
    async fn raising_after_lowering_cancels_the_pending_withdrawal() {
        let l = ConnLimit::new(2);
        let (a, b) = (available(&l).await.unwrap(), available(&l).await.unwrap());
        l.resize(1);
        l.resize(2);
        drop(a);
        let c = available(&l).await.expect("limit 2, one open");
        assert!(available(&l).await.is_none());
        drop((b, c));
        let both = (available(&l).await, available(&l).await);
        assert!(both.0.is_some() && both.1.is_some());
        assert!(available(&l).await.is_none());
    }
}
