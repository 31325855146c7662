//! One task owns the state. Socket handlers send it actions with a oneshot for the
//! answer; actions that arrive within the propagation window share one commit (one
//! durable write, one netlink batch), and every answer goes out after that commit.

mod core;
mod ops;
mod sync;
#[cfg(test)]
mod tests;
mod view;

pub use core::{CommitStats, ReconcileError, Reconciler};

use crate::control::{ActionSink, Peer};
use crate::model::{Action, ApiError, ApiErrors, Reply};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Most actions committed in one batch; more wait for the next one.
pub const MAX_BATCH: usize = 1024;
/// Queue depth between the socket and the reconciler.
const QUEUE: usize = 4096;

type Answer = Result<Reply, ApiErrors>;

/// The outcome of a repair: what differed (empty if nothing did).
pub type Repairs = Result<Vec<String>, String>;

enum Command {
    Act {
        action: Action,
        reply: oneshot::Sender<Answer>,
    },
    /// Re-read the kernel and repair by rule identity (drift).
    Resync(oneshot::Sender<Repairs>),
}

/// Something that processes a batch of actions (the reconciler on its thread, or a fake
/// in tests), answering each in order.
pub trait Worker: Send + 'static {
    fn process(
        &mut self,
        actions: Vec<Action>,
    ) -> impl std::future::Future<Output = Vec<Answer>> + Send;

    /// Re-reads the kernel and repairs every difference with the plan.
    fn resync(&mut self) -> impl std::future::Future<Output = Repairs> + Send {
        async { Ok(vec![]) }
    }
}

enum Job {
    Process(Vec<Action>, oneshot::Sender<Vec<Answer>>),
    Resync(oneshot::Sender<Repairs>),
}

/// Runs a [`Reconciler`] on a dedicated thread: its store and netlink calls block.
pub struct ThreadWorker {
    tx: std::sync::mpsc::Sender<Job>,
}

impl ThreadWorker {
    pub fn new(mut reconciler: Reconciler) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("reconciler".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    match job {
                        Job::Process(actions, reply) => {
                            tracing::trace!("reconciler thread: job");
                            let answers = reconciler.process(&actions);
                            tracing::trace!("reconciler thread: done");
                            let _ = reply.send(answers);
                        }
                        Job::Resync(reply) => {
                            let _ = reply.send(reconciler.sync().map_err(|e| e.to_string()));
                        }
                    }
                }
            })
            .expect("spawning the reconciler thread");
        ThreadWorker { tx }
    }
}

fn stopped<T>(n: usize) -> Vec<Result<T, ApiErrors>> {
    (0..n)
        .map(|_| Err(ApiError::internal("the reconciler has stopped").into()))
        .collect()
}

impl Worker for ThreadWorker {
    async fn process(&mut self, actions: Vec<Action>) -> Vec<Answer> {
        let n = actions.len();
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Process(actions, tx)).is_err() {
            return stopped(n);
        }
        rx.await.unwrap_or_else(|_| stopped(n))
    }

    async fn resync(&mut self) -> Repairs {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Job::Resync(tx))
            .map_err(|_| "the reconciler has stopped".to_string())?;
        rx.await
            .map_err(|_| "the reconciler has stopped".to_string())?
    }
}

/// The socket side's handle on the reconciler.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
}

impl Handle {
    /// Asks the reconciler to re-read the kernel and repair it; returns what it repaired.
    pub async fn resync(&self) -> Repairs {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Resync(reply))
            .await
            .map_err(|_| "the reconciler has stopped".to_string())?;
        rx.await
            .map_err(|_| "the reconciler has stopped".to_string())?
    }
}

impl ActionSink for Handle {
    async fn submit(&self, _peer: Peer, action: Action) -> Answer {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Act { action, reply }).await.is_err() {
            return Err(ApiError::internal("the reconciler has stopped").into());
        }
        rx.await.unwrap_or_else(|_| {
            Err(ApiError::internal("the reconciler dropped the request").into())
        })
    }
}

/// Starts the coalescing loop on the current tokio runtime.
pub fn spawn<W: Worker>(worker: W, window: Duration) -> Handle {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(rx, worker, window));
    Handle { tx }
}

/// The first action after an idle period opens a window of `window`; everything that
/// arrives before it closes (up to [`MAX_BATCH`]) is processed as one batch. Actions that
/// queue up while a batch is being committed form the next batch. Repairs asked for in
/// the meantime run after the batch.
async fn run<W: Worker>(mut rx: mpsc::Receiver<Command>, mut worker: W, window: Duration) {
    while let Some(first) = rx.recv().await {
        tracing::trace!("reconcile loop: command received");
        let (action, reply) = match first {
            Command::Resync(reply) => {
                let _ = reply.send(worker.resync().await);
                continue;
            }
            Command::Act { action, reply } => (action, reply),
        };
        // Reads need no window: they are answered in order with whatever is queued.
        let window = if action.is_mutating() {
            window
        } else {
            Duration::ZERO
        };
        let mut batch = vec![(action, reply)];
        let mut resyncs = Vec::new();
        let deadline = Instant::now() + window;
        while batch.len() < MAX_BATCH {
            // Take what is already queued without waiting.
            let next = match rx.try_recv() {
                Ok(c) => Some(c),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) if window.is_zero() => break,
                Err(mpsc::error::TryRecvError::Empty) => tokio::select! {
                    c = rx.recv() => match c {
                        Some(c) => Some(c),
                        None => break,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                },
            };
            match next {
                Some(Command::Act { action, reply }) => batch.push((action, reply)),
                Some(Command::Resync(reply)) => resyncs.push(reply),
                None => break,
            }
        }
        let (actions, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        tracing::trace!(
            actions = actions.len(),
            resyncs = resyncs.len(),
            "batch: processing"
        );
        let answers = worker.process(actions).await;
        tracing::trace!("batch: processed");
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
        for reply in resyncs {
            let _ = reply.send(worker.resync().await);
        }
    }
}
