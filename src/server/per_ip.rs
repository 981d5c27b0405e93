//! Connections at once per client IP address (`limits.max_connections_per_ip`):
//! a slot is taken and counted in one step under one lock, and given back
//! when dropped. Must not sleep, queue or speak the protocol: a client over
//! the limit is refused by the caller at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The count of open connections by client address.
pub struct PerIp {
    /// Changed by a reload; connections already open stay.
    max: AtomicUsize,
    /// Shared by every connection task; only addresses with a connection
    /// open have an entry, so it is bounded by `max_connections`.
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its address's count, given back on drop.
pub struct Slot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    pub fn new(max: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            max: AtomicUsize::new(max),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A new limit for connections from now on.
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// A slot for a connection from `ip`, or None when `ip` already has
    /// `max` connections open.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let ip = canonical(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max.load(Ordering::Relaxed) {
            return None;
        }
        *n += 1;
        Some(Slot {
            per_ip: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .per_ip
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// An IPv4 client on an IPv6 socket (`::ffff:a.b.c.d`) counts as itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_address_and_given_back_on_drop() {
        let per_ip = PerIp::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let one = per_ip.enter(a).unwrap();
        let two = per_ip.enter(a).unwrap();
        assert!(per_ip.enter(a).is_none(), "a third from the same address");
        let other = per_ip.enter(b).unwrap();
        assert_eq!(per_ip.open.lock().unwrap().get(&a), Some(&2));
        drop(one);
        let three = per_ip.enter(a).unwrap();
        drop((two, three, other));
        assert!(
            per_ip.open.lock().unwrap().is_empty(),
            "no entry left behind"
        );
    }

    #[test]
    fn a_mapped_ipv4_address_counts_as_the_ipv4_one() {
        let per_ip = PerIp::new(1);
        let _v4 = per_ip.enter("192.0.2.7".parse().unwrap()).unwrap();
        assert!(per_ip.enter("::ffff:192.0.2.7".parse().unwrap()).is_none());
    }

    #[test]
    fn a_new_limit_applies_to_the_next_connection_and_keeps_open_ones() {
        let per_ip = PerIp::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let (one, two) = (per_ip.enter(a).unwrap(), per_ip.enter(a).unwrap());
        per_ip.set_max(1);
        assert!(per_ip.enter(a).is_none());
        drop(one);
        assert!(per_ip.enter(a).is_none(), "still one open: the limit");
        drop(two);
        let _one = per_ip.enter(a).unwrap();
        per_ip.set_max(3);
        let _more = (per_ip.enter(a).unwrap(), per_ip.enter(a).unwrap());
        assert!(per_ip.enter(a).is_none());
    }
}
