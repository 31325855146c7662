//! The reconciler: owns the desired state, its plan, the store and the kernel backend,
//! and turns a batch of actions into one durable write and one netlink batch.
//!
//! Blocking: it runs on a thread of its own (see [`super::spawn`]).

use super::ops::{Diff, batch_for};
use super::sync::sync_plan;
use super::view::KernelView;
use crate::compile::explain::{explain, overlaps};
use crate::compile::plan::Family;
use crate::compile::{Delta, Options, Plan, compile};
use crate::model::{Action, ApiError, ApiErrors, ErrorCode, Reply, StatusInfo};
use crate::nft::{Backend, KernelTable, NftError};
use crate::state::{Change, State};
use crate::store::{Store, StoreError};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// How often a batch is retried after the ruleset changed under it.
const MAX_ATTEMPTS: usize = 5;

/// Why the reconciler could not start or keep the kernel in line.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("kernel: {0}")]
    Kernel(#[from] NftError),
    #[error("the kernel table does not match the plan after sync: {0}")]
    Mismatch(String),
}

/// Numbers about the last commit, for status and metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitStats {
    pub generation: u64,
    pub actions: usize,
    pub changes: usize,
    pub ops: usize,
    pub store_latency: Duration,
    pub kernel_latency: Duration,
}

pub struct Reconciler {
    state: State,
    plan: Plan,
    view: KernelView,
    store: Box<dyn Store>,
    backend: Box<dyn Backend>,
    options: Options,
    pub last: CommitStats,
    /// Where commit latencies and drift repairs are counted (`GET /metrics`).
    pub metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

impl Reconciler {
    /// Loads the persisted state and makes the kernel table match it. Returns only when
    /// the kernel matches (verified by reading it back).
    pub fn start(
        mut store: Box<dyn Store>,
        backend: Box<dyn Backend>,
        options: Options,
    ) -> Result<Self, ReconcileError> {
        let t = Instant::now();
        let state = store.load()?;
        let loaded = t.elapsed();
        let plan = compile(&state, &options);
        let compiled = t.elapsed() - loaded;
        let mut r = Reconciler {
            state,
            plan,
            view: KernelView::default(),
            store,
            backend,
            options,
            last: CommitStats::default(),
            metrics: None,
        };
        r.sync()?;
        info!(
            load_ms = loaded.as_millis() as u64,
            compile_ms = compiled.as_millis() as u64,
            sync_ms = (t.elapsed() - loaded - compiled).as_millis() as u64,
            "start-up"
        );
        info!(
            groups = r.state.groups().count(),
            grants = r.state.grant_count(),
            instances = r.state.instances().count(),
            rules = r.view.len(),
            "kernel table {} matches the persisted state",
            r.options.table
        );
        Ok(r)
    }

    pub fn state(&self) -> &State {
        &self.state
    }
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn dump_all(&mut self) -> Result<Vec<KernelTable>, NftError> {
        let t = self.options.table.clone();
        Ok(vec![
            self.backend.dump(&t, Family::Inet)?,
            self.backend.dump(&t, Family::Bridge)?,
        ])
    }

    /// The figures GetStatus reports.
    pub fn status(&self) -> StatusInfo {
        StatusInfo {
            generation: self.last.generation,
            groups: self.state.groups().count(),
            permissions: self.state.grant_count(),
            instances: self.state.instances().count(),
            remote_members: self.state.remote_member_count(),
            rules: self.plan.rule_count(),
            set_elements: self.plan.elem_count(),
            last_commit_actions: self.last.actions,
            last_commit_ops: self.last.ops,
            last_commit_micros: (self.last.store_latency + self.last.kernel_latency).as_micros()
                as u64,
            last_store_micros: self.last.store_latency.as_micros() as u64,
            last_kernel_micros: self.last.kernel_latency.as_micros() as u64,
            table: self.options.table.clone(),
            mode: self.options.mode.as_str().to_string(),
            established_on_revoke: self.options.established.as_str().to_string(),
        }
    }

    /// Answers the actions that read the reconciler's own data rather than the state.
    fn answer_locally(&self, action: &Action) -> Option<Result<Reply, ApiErrors>> {
        match action {
            Action::GetStatus => Some(Ok(Reply::Status(self.status()))),
            Action::ExplainPacket { probe } => Some(
                explain(&self.plan, &self.state, probe)
                    .map(Reply::Explained)
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::InstanceNotFound,
                            format!("The instance ID '{}' is not registered", probe.instance),
                        )
                        .into()
                    }),
            ),
            _ => None,
        }
    }

    /// Reads the kernel table, repairs every difference with the plan in one batch, and
    /// rebuilds the handle view from a second read that must show no difference.
    pub fn sync(&mut self) -> Result<Vec<String>, ReconcileError> {
        let mut all_repairs = Vec::new();
        for attempt in 1..=MAX_ATTEMPTS {
            let t = Instant::now();
            let kernel = self.dump_all()?;
            let dumped = t.elapsed();
            let genid = kernel[0].genid.max(kernel[1].genid);
            let sp = sync_plan(&kernel, &self.plan);
            debug!(
                dump_ms = dumped.as_millis() as u64,
                compare_ms = (t.elapsed() - dumped).as_millis() as u64,
                ops = sp.batch.ops.len(),
                "read and compared the kernel tables"
            );
            if sp.batch.ops.is_empty() && kernel[0].genid == kernel[1].genid {
                self.view.clear();
                for (c, id, h) in sp.kept {
                    self.view.set(c, id, h);
                }
                self.view.genid = Some(genid);
                return Ok(all_repairs);
            }
            if kernel[0].genid != kernel[1].genid {
                continue; // the ruleset changed between the two dumps: read again
            }
            if attempt == MAX_ATTEMPTS {
                return Err(ReconcileError::Mismatch(sp.repairs.join("; ")));
            }
            for r in &sp.repairs {
                warn!(table = %self.options.table, "repair: {r}");
            }
            all_repairs.extend(sp.repairs);
            let table = self.options.table.clone();
            match self.backend.commit(&table, &sp.batch.ops, Some(genid)) {
                // Committed against exactly the generation we read: the kernel now holds
                // the kept rules and the added ones, and nothing else, so there is no
                // need to read it all again.
                Ok(done) => {
                    if let Some(m) = &self.metrics {
                        m.record_drift_repair(all_repairs.len());
                    }
                    self.view.clear();
                    for (c, id, h) in sp.kept {
                        self.view.set(c, id, h);
                    }
                    for ((c, id), h) in sp.batch.added.iter().zip(done.handles) {
                        self.view.set(*c, *id, h);
                    }
                    self.view.genid = Some(genid.wrapping_add(1));
                    return Ok(all_repairs);
                }
                Err(NftError::GenerationChanged) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// Plans, persists and commits a batch of actions; one answer per action, in order.
    /// Actions that fail validation change nothing and do not affect the others.
    pub fn process(&mut self, actions: &[Action]) -> Vec<Result<Reply, ApiErrors>> {
        let mut results = Vec::with_capacity(actions.len());
        let mut changes: Vec<Change> = Vec::new();
        let mut mutating = Vec::new();
        let mut delta = Delta::new();
        for (i, action) in actions.iter().enumerate() {
            if let Some(answer) = self.answer_locally(action) {
                results.push(answer);
                continue;
            }
            match self.state.plan(action) {
                Err(e) => results.push(Err(ApiErrors::from(e))),
                Ok((chs, reply)) => {
                    for c in &chs {
                        self.state.apply(c);
                        delta.apply(&mut self.plan, &self.options, &self.state, c);
                    }
                    let reply = match action {
                        Action::RevokeSecurityGroupIngress { group, permission } => {
                            let overlaps = overlaps(&self.state, group, permission);
                            for o in &overlaps {
                                warn!(
                                    group = %group,
                                    "revoked '{permission}', but it is still {} admitted by {}: {}",
                                    if o.full { "fully" } else { "partly" },
                                    o.group,
                                    o.permission
                                );
                            }
                            Reply::Revoked { overlaps }
                        }
                        _ => reply,
                    };
                    if !chs.is_empty() {
                        mutating.push(i);
                    }
                    changes.extend(chs);
                    results.push(Ok(reply));
                }
            }
        }
        if changes.is_empty() {
            return results;
        }

        let t0 = Instant::now();
        if let Err(e) = self.store.commit(&changes, self.state.counters()) {
            warn!("store commit failed, {} changes undone: {e}", changes.len());
            self.undo(&changes, delta);
            return fail(
                results,
                &mutating,
                &format!("the state store refused the change: {e}"),
            );
        }
        let store_latency = t0.elapsed();

        let t1 = Instant::now();
        let ops = match self.commit_kernel(&delta) {
            Ok(n) => n,
            Err(e) => {
                warn!(
                    "kernel commit failed, {} changes undone: {e}",
                    changes.len()
                );
                self.undo(&changes, delta);
                let inverse: Vec<Change> = changes.iter().rev().map(Change::inverse).collect();
                if let Err(se) = self.store.commit(&inverse, self.state.counters()) {
                    // The store now holds changes the kernel refused. Nothing was
                    // acknowledged; the next start makes the kernel match the store.
                    warn!("store undo failed too: {se}");
                }
                if let Err(se) = self.sync() {
                    warn!("kernel resync after failure failed: {se}");
                }
                return fail(
                    results,
                    &mutating,
                    &format!("the kernel refused the change: {e}"),
                );
            }
        };
        self.last = CommitStats {
            generation: self.last.generation + 1,
            actions: mutating.len(),
            changes: changes.len(),
            ops,
            store_latency,
            kernel_latency: t1.elapsed(),
        };
        if let Some(m) = &self.metrics {
            m.record_commit(mutating.len(), store_latency, self.last.kernel_latency);
        }
        debug!(stats = ?self.last, "committed");
        results
    }

    /// Sends the delta to the kernel; on a generation conflict re-reads the kernel and
    /// reconciles fully against the new plan instead. Returns the number of ops sent.
    fn commit_kernel(&mut self, delta: &Delta) -> Result<usize, ReconcileError> {
        let diffs = delta.differences(&self.plan).map(|d| Diff {
            key: d.key,
            before: d.before,
            after: d.after,
        });
        let batch = match batch_for(diffs, &self.plan, &self.view) {
            Ok(b) => b,
            Err(missing) => {
                warn!("{missing}: re-reading the kernel");
                return self.sync().map(|r| r.len());
            }
        };
        if batch.ops.is_empty() {
            return Ok(0);
        }
        let table = self.options.table.clone();
        match self.backend.commit(&table, &batch.ops, self.view.genid) {
            Ok(done) => {
                for (c, id) in &batch.deleted {
                    self.view.forget(*c, *id);
                }
                for ((c, id), h) in batch.added.iter().zip(done.handles) {
                    self.view.set(*c, *id, h);
                }
                self.view.genid = self.view.genid.map(|g| g.wrapping_add(1));
                Ok(batch.ops.len())
            }
            Err(NftError::GenerationChanged) => {
                debug!("ruleset changed since our last commit: reconciling by identity");
                self.sync().map(|_| batch.ops.len())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn undo(&mut self, changes: &[Change], delta: Delta) {
        delta.rollback(&mut self.plan);
        for c in changes.iter().rev() {
            self.state.apply(&c.inverse());
        }
    }
}

/// Turns the answers of the mutating actions of a failed batch into internal errors.
fn fail(
    mut results: Vec<Result<Reply, ApiErrors>>,
    mutating: &[usize],
    why: &str,
) -> Vec<Result<Reply, ApiErrors>> {
    for &i in mutating {
        results[i] = Err(ApiError::internal(why).into());
    }
    results
}
