//! The delivery pool: a fixed set of OS threads fed by a bounded channel,
//! one job per transaction, each answered on its own oneshot channel. A full
//! queue makes connections wait (backpressure). Must not cancel a job once
//! queued: shutdown closes the queue and joins the threads after the last
//! job ran.

use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::envelope::{Envelope, Recipient};
use super::outcome::{Failure, RcptOutcome};
use super::pipeline::Deliverer;
use super::spool::Spool;

/// One transaction to deliver.
pub struct Job {
    /// The deliverer of the connection the transaction came on.
    pub deliverer: Arc<Deliverer>,
    pub env: Envelope,
    pub rcpts: Vec<Recipient>,
    pub spool: Spool,
    pub done: oneshot::Sender<Vec<RcptOutcome>>,
    /// The caller's span (session > txn), entered on the delivery thread so
    /// its log lines carry the session and transaction.
    pub span: tracing::Span,
}

pub struct Pool {
    queue: mpsc::Sender<Job>,
    threads: Vec<JoinHandle<()>>,
    current: Arc<Current>,
}

/// The deliverer in force: a reload replaces it; each connection takes the
/// one current when it starts and keeps it to its end.
struct Current(RwLock<Arc<Deliverer>>);

impl Current {
    fn get(&self) -> Arc<Deliverer> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Pool {
    pub fn start(deliverer: Arc<Deliverer>, threads: usize, depth: usize) -> std::io::Result<Pool> {
        let (queue, rx) = mpsc::channel::<Job>(depth.max(1));
        // Shared by the threads; whoever holds the lock waits for the next
        // job, the others wait for the lock.
        let rx = Arc::new(Mutex::new(rx));
        let current = Arc::new(Current(RwLock::new(deliverer)));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("deliver-{i}"))
                    .spawn(move || worker(&rx))?,
            );
        }
        Ok(Pool {
            queue,
            threads: handles,
            current,
        })
    }

    /// The deliverer in force now.
    pub fn deliverer(&self) -> Arc<Deliverer> {
        self.current.get()
    }

    /// Put `d` in force for every job that starts from now on; jobs running
    /// keep the one they started with.
    pub fn replace(&self, d: Deliverer) {
        *self.current.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(d);
    }

    /// Queue a transaction (waiting for room) and wait for its outcomes.
    pub async fn deliver(
        &self,
        deliverer: Arc<Deliverer>,
        env: Envelope,
        rcpts: Vec<Recipient>,
        spool: Spool,
    ) -> Vec<RcptOutcome> {
        let n = rcpts.len();
        let (done, result) = oneshot::channel();
        let job = Job {
            deliverer,
            env,
            rcpts,
            spool,
            done,
            span: tracing::Span::current(),
        };
        crate::metrics::queue(1.0);
        if self.queue.send(job).await.is_err() {
            crate::metrics::queue(-1.0);
            return vec![RcptOutcome::Failed(Failure::Io("delivery pool stopped".into())); n];
        }
        result.await.unwrap_or_else(|_| {
            vec![RcptOutcome::Failed(Failure::Io("delivery thread failed".into())); n]
        })
    }

    /// Close the queue and wait until every queued job has run.
    pub fn shutdown(self) {
        drop(self.queue);
        for t in self.threads {
            let _ = t.join();
        }
        self.current.get().finish_index();
    }
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(mut guard) => guard.blocking_recv(),
            Err(_) => return,
        };
        let Some(job) = job else { return };
        crate::metrics::queue(-1.0);
        let n = job.rcpts.len();
        let _span = job.span.enter();
        let d = &job.deliverer;
        let outcomes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            d.deliver(&job.env, &job.rcpts, &job.spool)
        }))
        .unwrap_or_else(|_| {
            tracing::error!(id = %job.env.id, "delivery panicked; recipients deferred");
            vec![RcptOutcome::Failed(Failure::Io("internal error".into())); n]
        });
        let _ = job.done.send(outcomes);
    }
}
