//! Group commit of directory fsyncs: deliveries that linked a file into the
//! same directory at about the same time share one fsync of it. Each caller
//! returns only after an fsync that started after its call has completed,
//! with that fsync's result; a failed fsync fails every caller it covered.
//! Must not delay a lone caller (it syncs at once) or keep state for
//! directories nobody is syncing.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

/// A failed fsync as every caller it covered gets it back.
#[derive(Clone, Debug)]
struct Failed {
    errno: Option<i32>,
    kind: io::ErrorKind,
    text: String,
}

impl Failed {
    fn of(e: &io::Error) -> Failed {
        Failed {
            errno: e.raw_os_error(),
            kind: e.kind(),
            text: e.to_string(),
        }
    }

    fn to_error(&self) -> io::Error {
        match self.errno {
            Some(n) => io::Error::from_raw_os_error(n),
            None => io::Error::new(self.kind, self.text.clone()),
        }
    }
}

/// Where one caller's result lands.
type Slot = Arc<OnceLock<Result<(), Failed>>>;

#[derive(Default)]
struct State {
    /// Callers waiting for an fsync that has not started yet.
    pending: Vec<Slot>,
    /// An fsync of this directory is under way.
    running: bool,
}

#[derive(Default)]
struct Dir {
    state: Mutex<State>,
    done: Condvar,
}

/// The directories being synced now, by path.
pub(crate) struct DirSync<F> {
    dirs: Mutex<HashMap<PathBuf, Arc<Dir>>>,
    fsync: F,
}

impl<F: Fn(&Path) -> io::Result<()>> DirSync<F> {
    pub(crate) fn new(fsync: F) -> DirSync<F> {
        DirSync {
            dirs: Mutex::new(HashMap::new()),
            fsync,
        }
    }

    /// Makes every change to `dir` made before this call durable: joins
    /// the next fsync of it, running that fsync itself when none is under
    /// way, and returns its result.
    pub(crate) fn sync(&self, dir: &Path) -> io::Result<()> {
        let d = lock(&self.dirs)
            .entry(dir.to_path_buf())
            .or_default()
            .clone();
        let mine: Slot = Arc::default();
        let result = {
            let mut st = lock(&d.state);
            st.pending.push(mine.clone());
            loop {
                if let Some(r) = mine.get() {
                    break r.clone();
                }
                if st.running {
                    st = d.done.wait(st).unwrap_or_else(|e| e.into_inner());
                    continue;
                }
                // Lead: one fsync for everyone who asked before it starts.
                st.running = true;
                let batch = std::mem::take(&mut st.pending);
                drop(st);
                let r = (self.fsync)(dir).map_err(|e| Failed::of(&e));
                st = lock(&d.state);
                for slot in batch {
                    let _ = slot.set(r.clone());
                }
                st.running = false;
                d.done.notify_all();
            }
        };
        self.forget_if_idle(dir, d);
        result.map_err(|f| f.to_error())
    }

    /// Drops the directory's entry when no caller holds it any more.
    fn forget_if_idle(&self, dir: &Path, d: Arc<Dir>) {
        let mut dirs = lock(&self.dirs);
        // Callers only get the entry under this lock: the count cannot grow now.
        if Arc::strong_count(&d) == 2 {
            dirs.remove(dir);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;
    use std::time::Duration;

    #[test]
    fn a_lone_caller_syncs_once_and_leaves_no_state() {
        let calls = AtomicUsize::new(0);
        let ds = DirSync::new(|_: &Path| {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        ds.sync(Path::new("/x/new")).unwrap();
        ds.sync(Path::new("/x/new")).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(lock(&ds.dirs).is_empty());
    }

    /// Every caller's change must be covered by an fsync that started after
    /// the change: the fake directory records, per fsync, the changes made
    /// before it started, and each caller checks its own is among them.
    #[test]
    fn concurrent_callers_share_fsyncs_and_each_waits_for_one_that_started_after_it() {
        let changes = AtomicUsize::new(0);
        let synced_upto = Mutex::new(Vec::<usize>::new());
        let ds = DirSync::new(|_: &Path| {
            let seen = changes.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            lock(&synced_upto).push(seen);
            Ok(())
        });
        let start = Barrier::new(16);
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| {
                    start.wait();
                    for _ in 0..20 {
                        let mine = changes.fetch_add(1, Ordering::SeqCst) + 1;
                        ds.sync(Path::new("/m/new")).unwrap();
                        let covered = lock(&synced_upto).iter().any(|&upto| upto >= mine);
                        assert!(covered, "change {mine} returned before an fsync covered it");
                    }
                });
            }
        });
        let fsyncs = lock(&synced_upto).len();
        assert!(
            fsyncs < 16 * 20,
            "no fsync was shared ({fsyncs} for 320 calls)"
        );
        assert!(lock(&ds.dirs).is_empty());
    }

    #[test]
    fn a_failed_fsync_fails_every_caller_it_covered_with_its_errno() {
        let fail = std::sync::atomic::AtomicBool::new(true);
        let ds = DirSync::new(|_: &Path| {
            std::thread::sleep(Duration::from_millis(5));
            if fail.load(Ordering::SeqCst) {
                Err(io::Error::from_raw_os_error(libc::EIO))
            } else {
                Ok(())
            }
        });
        let start = Barrier::new(8);
        let errs: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        ds.sync(Path::new("/d/new"))
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for e in errs {
            assert_eq!(e.unwrap_err().raw_os_error(), Some(libc::EIO));
        }
        fail.store(false, Ordering::SeqCst);
        ds.sync(Path::new("/d/new")).unwrap();
    }

    #[test]
    fn different_directories_do_not_wait_for_each_other() {
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, released_rx) = std::sync::mpsc::channel::<()>();
        let released_rx = Mutex::new(released_rx);
        let released = std::sync::atomic::AtomicBool::new(false);
        let ds = DirSync::new(|p: &Path| {
            if p.ends_with("slow") {
                started_tx.send(()).unwrap();
                // Held until the other directory's sync has returned; were
                // it queued behind this one, this times out first.
                let r = lock(&released_rx).recv_timeout(Duration::from_secs(10));
                released.store(r.is_ok(), Ordering::SeqCst);
            }
            Ok(())
        });
        std::thread::scope(|s| {
            s.spawn(|| ds.sync(Path::new("/slow")).unwrap());
            started.recv().unwrap();
            ds.sync(Path::new("/fast")).unwrap();
            let _ = release.send(());
        });
        assert!(released.load(Ordering::SeqCst));
    }
}
