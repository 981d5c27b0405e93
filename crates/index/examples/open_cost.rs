//! Measures what recording one delivery costs in a mailbox whose index is
//! not open (open, one row, close) against one whose index is open. A
//! measuring tool for BENCHMARKS.md; must not be used by the server.

use std::time::{Instant, SystemTime};

use mailstow_index::{Delivered, Index, IndexConfig, UidMode};
use mailstow_maildir::{save_test_message, FolderEncoding, Maildir};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let root = tempfile::tempdir().unwrap();
    let cfg = IndexConfig {
        enabled: true,
        uids: UidMode::Own,
        special_use: Default::default(),
    };
    let homes: Vec<_> = (0..n).map(|i| root.path().join(format!("u{i}"))).collect();
    let mds: Vec<_> = homes
        .iter()
        .map(|h| Maildir::new(h.join("Maildir"), None, FolderEncoding::Utf7, "t"))
        .collect();
    for h in &homes {
        std::fs::create_dir_all(h).unwrap();
    }
    // First delivery creates each index.
    for (h, md) in homes.iter().zip(&mds) {
        record(h, md, &cfg);
    }
    let phase = |name: &str, f: &mut dyn FnMut()| {
        let cpu0 = cpu();
        let t = Instant::now();
        f();
        println!(
            "{name}: {:.3} ms wall, {:.3} ms cpu per mailbox",
            t.elapsed().as_secs_f64() * 1e3 / n as f64,
            (cpu() - cpu0) * 1e3 / n as f64
        );
    };
    phase("open only", &mut || {
        for (h, md) in homes.iter().zip(&mds) {
            drop(Index::open(md.clone(), h, &cfg).unwrap());
        }
    });
    let msgs: Vec<_> = mds
        .iter()
        .map(|md| save_test_message(md, "INBOX", "hello there", &[]))
        .collect();
    phase("open + row + close", &mut || {
        for ((h, md), m) in homes.iter().zip(&mds).zip(&msgs) {
            let ix = Index::open(md.clone(), h, &cfg).unwrap();
            add(&ix, m);
        }
    });
    let msgs: Vec<_> = mds
        .iter()
        .map(|md| save_test_message(md, "INBOX", "hello there", &[]))
        .collect();
    println!("heap in use before {} KiB", heap_kib());
    let before = rss_kib();
    let ixs: Vec<_> = homes
        .iter()
        .zip(&mds)
        .map(|(h, md)| Index::open(md.clone(), h, &cfg).unwrap())
        .collect();
    println!(
        "{} open indexes: RSS +{} KiB, heap in use {} KiB",
        ixs.len(),
        rss_kib() - before,
        heap_kib()
    );
    phase("row into an open index", &mut || {
        for (ix, m) in ixs.iter().zip(&msgs) {
            add(ix, m);
        }
    });
    println!(
        "after a row each: RSS +{} KiB, heap in use {} KiB",
        rss_kib() - before,
        heap_kib()
    );
    drop(ixs);
    let before = rss_kib();
    let msgs: Vec<_> = mds
        .iter()
        .map(|md| save_test_message(md, "INBOX", "hello there", &[]))
        .collect();
    for ((h, md), m) in homes.iter().zip(&mds).zip(&msgs) {
        mailstow_index::with_cached(md, h, &cfg, |ix| add(ix, m)).unwrap();
    }
    println!(
        "{} pooled indexes after a row each: RSS +{} KiB, heap in use {} KiB",
        n.min(128),
        rss_kib() - before,
        heap_kib()
    );
}

fn record(home: &std::path::Path, md: &Maildir, cfg: &IndexConfig) {
    let ix = Index::open(md.clone(), home, cfg).unwrap();
    add(&ix, &save_test_message(md, "INBOX", "hello there", &[]));
}

fn add(ix: &Index, (saved, head): &(mailstow_maildir::Saved, Vec<u8>)) {
    ix.add_delivered_batch(&[Delivered {
        saved,
        head,
        received: SystemTime::now(),
    }])
    .unwrap();
}

fn cpu() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn heap_kib() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    unsafe { libc::mallinfo2().uordblks / 1024 }
}
