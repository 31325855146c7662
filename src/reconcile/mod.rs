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

struct Command {
    action: Action,
    reply: oneshot::Sender<Answer>,
}

/// Something that processes a batch of actions (the reconciler on its thread, or a fake
/// in tests), answering each in order.
pub trait Worker: Send + 'static {
    fn process(
        &mut self,
        actions: Vec<Action>,
    ) -> impl std::future::Future<Output = Vec<Answer>> + Send;
}

/// Runs a [`Reconciler`] on a dedicated thread: its store and netlink calls block.
pub struct ThreadWorker {
    tx: std::sync::mpsc::Sender<(Vec<Action>, oneshot::Sender<Vec<Answer>>)>,
}

impl ThreadWorker {
    pub fn new(mut reconciler: Reconciler) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<(Vec<Action>, oneshot::Sender<Vec<Answer>>)>();
        std::thread::Builder::new()
            .name("reconciler".into())
            .spawn(move || {
                while let Ok((actions, reply)) = rx.recv() {
                    let _ = reply.send(reconciler.process(&actions));
                }
            })
            .expect("spawning the reconciler thread");
        ThreadWorker { tx }
    }
}

impl Worker for ThreadWorker {
    async fn process(&mut self, actions: Vec<Action>) -> Vec<Answer> {
        let n = actions.len();
        let (tx, rx) = oneshot::channel();
        if self.tx.send((actions, tx)).is_err() {
            return vec![Err(ApiError::internal("the reconciler has stopped").into()); n];
        }
        rx.await.unwrap_or_else(|_| {
            vec![Err(ApiError::internal("the reconciler has stopped").into()); n]
        })
    }
}

/// The socket side's handle on the reconciler.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
}

impl ActionSink for Handle {
    async fn submit(&self, _peer: Peer, action: Action) -> Answer {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command { action, reply }).await.is_err() {
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
/// queue up while a batch is being committed form the next batch.
async fn run<W: Worker>(mut rx: mpsc::Receiver<Command>, mut worker: W, window: Duration) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = Instant::now() + window;
        while batch.len() < MAX_BATCH {
            // Take what is already queued without waiting.
            match rx.try_recv() {
                Ok(c) => {
                    batch.push(c);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if window.is_zero() {
                break;
            }
            tokio::select! {
                c = rx.recv() => match c {
                    Some(c) => batch.push(c),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let (actions, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|c| (c.action, c.reply)).unzip();
        let answers = worker.process(actions).await;
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
    }
}
