//! Group commit of flushes: callers that changed the same thing (a
//! directory, or any file of one file system) at about the same time share
//! one flush of it. Each caller returns only after a flush that started
//! after its call has completed, with that flush's result; a failed flush
//! fails every caller it covered. The flush that leads a batch is given
//! every member's token (a descriptor, say). Must not delay a lone caller
//! (it flushes at once) or keep state for keys nobody is flushing.

use std::collections::HashMap;
use std::hash::Hash;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

/// A failed flush as every caller it covered gets it back.
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

struct State<M> {
    /// Callers waiting for a flush that has not started yet, with their
    /// tokens.
    pending: Vec<(M, Slot)>,
    /// A flush of this key is under way.
    running: bool,
}

impl<M> Default for State<M> {
    fn default() -> Self {
        State {
            pending: Vec::new(),
            running: false,
        }
    }
}

struct Dir<M> {
    state: Mutex<State<M>>,
    done: Condvar,
}

impl<M> Default for Dir<M> {
    fn default() -> Self {
        Dir {
            state: Mutex::default(),
            done: Condvar::new(),
        }
    }
}

/// The keys being flushed now, each with its waiting callers.
pub(crate) struct Batches<K, M> {
    dirs: Mutex<HashMap<K, Arc<Dir<M>>>>,
}

impl<K: Hash + Eq + Clone, M> Batches<K, M> {
    pub(crate) fn new() -> Batches<K, M> {
        Batches {
            dirs: Mutex::new(HashMap::new()),
        }
    }

    /// Makes every change to `key` made before this call durable: joins
    /// the next flush of it with `token`, running that flush itself (`flush`
    /// with the tokens of everyone it covers, its own among them) when none
    /// is under way, and returns its result.
    pub(crate) fn join(
        &self,
        key: &K,
        token: M,
        flush: impl FnOnce(&[M]) -> io::Result<()>,
    ) -> io::Result<()> {
        let d = lock(&self.dirs).entry(key.clone()).or_default().clone();
        let mine: Slot = Arc::default();
        let mut flush = Some(flush);
        let result = {
            let mut st = lock(&d.state);
            st.pending.push((token, mine.clone()));
            loop {
                if let Some(r) = mine.get() {
                    break r.clone();
                }
                if st.running {
                    st = d.done.wait(st).unwrap_or_else(|e| e.into_inner());
                    continue;
                }
                // Lead: one flush for everyone who asked before it starts.
                st.running = true;
                let batch = std::mem::take(&mut st.pending);
                drop(st);
                let (tokens, slots): (Vec<M>, Vec<Slot>) = batch.into_iter().unzip();
                let lead = flush.take().expect("a caller leads at most once");
                let r = lead(&tokens).map_err(|e| Failed::of(&e));
                st = lock(&d.state);
                for slot in slots {
                    let _ = slot.set(r.clone());
                }
                st.running = false;
                d.done.notify_all();
            }
        };
        self.forget_if_idle(key, d);
        result.map_err(|f| f.to_error())
    }

    /// Drops the key's entry when no caller holds it any more.
    fn forget_if_idle(&self, key: &K, d: Arc<Dir<M>>) {
        let mut dirs = lock(&self.dirs);
        // Callers only get the entry under this lock: the count cannot grow now.
        if Arc::strong_count(&d) == 2 {
            dirs.remove(key);
        }
    }
}

/// Directory fsyncs shared by the callers syncing the same directory.
pub(crate) struct DirSync<F> {
    batches: Batches<PathBuf, ()>,
    fsync: F,
}

impl<F: Fn(&Path) -> io::Result<()>> DirSync<F> {
    pub(crate) fn new(fsync: F) -> DirSync<F> {
        DirSync {
            batches: Batches::new(),
            fsync,
        }
    }

    /// Makes every change to `dir` made before this call durable: joins
    /// the next fsync of it, running that fsync itself when none is under
    /// way, and returns its result.
    pub(crate) fn sync(&self, dir: &Path) -> io::Result<()> {
        self.batches
            .join(&dir.to_path_buf(), (), |_| (self.fsync)(dir))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
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
        assert!(lock(&ds.batches.dirs).is_empty());
    }

    const DIR: &str = "/m/new";

    /// A fake directory whose fsyncs the test steers: each fsync reports
    /// the changes made before it started, then waits for the test to say
    /// how it ends. Completed fsyncs are recorded, so every caller can
    /// check that one that started after its change covered it.
    struct Steered {
        changes: AtomicUsize,
        started: mpsc::Sender<usize>,
        ends: Mutex<mpsc::Receiver<io::Result<()>>>,
        /// The changes each completed fsync covered, in order.
        done: Mutex<Vec<usize>>,
    }

    /// The test's end of a [`Steered`] directory.
    struct Steering {
        started: mpsc::Receiver<usize>,
        ends: mpsc::Sender<io::Result<()>>,
    }

    fn steered() -> (Steered, Steering) {
        let (started, started_rx) = mpsc::channel();
        let (ends_tx, ends) = mpsc::channel();
        let dir = Steered {
            changes: AtomicUsize::new(0),
            started,
            ends: Mutex::new(ends),
            done: Mutex::new(Vec::new()),
        };
        let steering = Steering {
            started: started_rx,
            ends: ends_tx,
        };
        (dir, steering)
    }

    impl Steered {
        fn fsync(&self) -> io::Result<()> {
            let seen = self.changes.load(Ordering::SeqCst);
            self.started.send(seen).unwrap();
            // Once the test has said how every fsync it expects ends, one
            // more fails its callers rather than waiting forever.
            let result = lock(&self.ends).recv().unwrap_or_else(|_| {
                Err(io::Error::other(format!(
                    "an fsync the test did not expect (after {seen} changes)"
                )))
            });
            lock(&self.done).push(seen);
            result
        }

        /// A delivery: change the directory, then sync it.
        fn change_and_sync<F: Fn(&Path) -> io::Result<()>>(
            &self,
            ds: &DirSync<F>,
        ) -> io::Result<()> {
            let mine = self.changes.fetch_add(1, Ordering::SeqCst) + 1;
            let result = ds.sync(Path::new(DIR));
            let covered = lock(&self.done).iter().any(|&upto| upto >= mine);
            assert!(covered, "change {mine} returned before an fsync covered it");
            result
        }
    }

    /// Until all of `callers` wait for the next fsync of [`DIR`] (observed
    /// under its lock) while one runs; another fsync starting meanwhile, or
    /// a caller returning, fails.
    fn until_waiting<F, T>(
        ds: &DirSync<F>,
        started: &mpsc::Receiver<usize>,
        callers: &[std::thread::ScopedJoinHandle<'_, T>],
    ) {
        loop {
            let d = lock(&ds.batches.dirs).get(Path::new(DIR)).cloned();
            if d.is_some_and(|d| lock(&d.state).pending.len() >= callers.len()) {
                return;
            }
            if let Ok(seen) = started.try_recv() {
                panic!("an fsync (after {seen} changes) started while one was running");
            }
            assert!(
                !callers.iter().any(|h| h.is_finished()),
                "a caller returned while an fsync that started before its change ran"
            );
            std::thread::yield_now();
        }
    }

    /// The changes the next fsync covers; the callers all returning before
    /// one starts fails.
    fn next_fsync<T>(
        started: &mpsc::Receiver<usize>,
        callers: &[std::thread::ScopedJoinHandle<'_, T>],
    ) -> usize {
        loop {
            if let Ok(seen) = started.try_recv() {
                return seen;
            }
            if callers.iter().all(|h| h.is_finished()) {
                // One may have started just before its caller returned.
                return started
                    .try_recv()
                    .expect("the callers returned without another fsync");
            }
            std::thread::yield_now();
        }
    }

    /// One fsync runs for the first caller; three callers arrive while it
    /// runs. It does not cover their changes, so they wait, and one fsync,
    /// started after all three, covers them all.
    #[test]
    fn callers_arriving_during_an_fsync_share_the_next_one() {
        let (fake, Steering { started, ends }) = steered();
        let ds = DirSync::new(|_: &Path| fake.fsync());
        std::thread::scope(|s| {
            let first = [s.spawn(|| fake.change_and_sync(&ds))];
            assert_eq!(next_fsync(&started, &first), 1, "the first change");
            let others: Vec<_> = (0..3)
                .map(|_| s.spawn(|| fake.change_and_sync(&ds)))
                .collect();
            until_waiting(&ds, &started, &others);
            ends.send(Ok(())).unwrap();
            let [first] = first;
            first.join().unwrap().unwrap();
            assert_eq!(next_fsync(&started, &others), 4, "all three changes");
            ends.send(Ok(())).unwrap();
            drop(ends);
            for h in others {
                h.join().unwrap().unwrap();
            }
        });
        assert_eq!(*lock(&fake.done), [1, 4], "two fsyncs for four callers");
        assert!(lock(&ds.batches.dirs).is_empty());
    }

    /// As above, with the shared fsync failing: each caller it covered gets
    /// its errno, and the next sync is a fresh fsync that succeeds.
    #[test]
    fn a_failed_fsync_fails_every_caller_it_covered_with_its_errno() {
        let (fake, Steering { started, ends }) = steered();
        let ds = DirSync::new(|_: &Path| fake.fsync());
        std::thread::scope(|s| {
            let first = [s.spawn(|| fake.change_and_sync(&ds))];
            next_fsync(&started, &first);
            let others: Vec<_> = (0..3)
                .map(|_| s.spawn(|| fake.change_and_sync(&ds)))
                .collect();
            until_waiting(&ds, &started, &others);
            ends.send(Ok(())).unwrap();
            let [first] = first;
            first.join().unwrap().unwrap();
            let eio = io::Error::from_raw_os_error(libc::EIO);
            ends.send(Err(eio)).unwrap();
            // For the sync after them.
            ends.send(Ok(())).unwrap();
            drop(ends);
            for h in others {
                let e = h.join().unwrap().unwrap_err();
                assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
            }
        });
        assert_eq!(*lock(&fake.done), [1, 4]);
        fake.change_and_sync(&ds).unwrap();
        assert_eq!(*lock(&fake.done), [1, 4, 5]);
    }

    /// Many callers at once, however they interleave: none returns before
    /// an fsync that started after its change has completed.
    #[test]
    fn concurrent_callers_each_wait_for_an_fsync_that_started_after_their_change() {
        let changes = AtomicUsize::new(0);
        let synced_upto = Mutex::new(Vec::<usize>::new());
        let ds = DirSync::new(|_: &Path| {
            let seen = changes.load(Ordering::SeqCst);
            std::thread::yield_now();
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
        assert!(lock(&ds.batches.dirs).is_empty());
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
