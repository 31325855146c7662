//! The baselines of part (b), on a twin of the daemon's table.
//!
//! The twin is a namespace holding the very table the daemon's state compiles to
//! (`render(&compile(&state, table))`, loaded with `nft -f`): same chains, same rules,
//! same sizes. Running the baselines there, rather than on the daemon's own table, lets
//! them interleave sample by sample with the daemon's revokes while the daemon runs (a
//! rule deleted behind its back would make its next commit fail the generation check and
//! re-read the whole table). On a shared, noisy machine, interleaving is what makes the
//! ratios meaningful: both sides of a ratio see the same moments of load.
//!
//! - floor: a bare one-message netlink batch deleting one rule, through the library's
//!   `NetlinkBackend::commit` (no genid check, no store, no socket). Like each of the
//!   daemon's samples (a revoke, then a re-grant), each is followed by an untimed batch
//!   adding the rule back, so both tables keep their size and, interleaved, each sees
//!   two commits on the other table between two of its own (the kernel walks every
//!   chain of a table on commit: how recently that memory was touched shows at 20,000
//!   chains);
//! - `nft delete rule inet <table> <chain> handle <h>`: one process per rule, timed from
//!   spawn to exit;
//! - full reload: `flush table` plus the whole rendered table, one `nft -f` transaction,
//!   as reload-based tools do. It also puts back what the other baselines deleted (with
//!   new handles, so rules are picked again afterwards).

use super::cleanup::WorkDir;
use super::kernel::{self, RuleRef, Summary};
use super::netns::{Netns, run};
use super::workload::{OWNER, Table};
use anyhow::{Context, Result};
use secgroupd::compile::plan::{Obj, RuleSpec};
use secgroupd::compile::{compile, render::render};
use secgroupd::nft::netlink::NetlinkBackend;
use secgroupd::nft::{Backend, Op, Position};
use secgroupd::state::State;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Twin {
    ns: Netns,
    table: String,
    /// Opened inside the twin namespace; a netlink socket stays in its namespace.
    backend: NetlinkBackend,
    reload_script: PathBuf,
    /// The plan's rules by comment, to add a deleted rule back.
    rules: HashMap<String, RuleSpec>,
    pub script_bytes: usize,
    pub summary: Summary,
    _work: WorkDir,
}

impl Twin {
    /// Creates the namespace and loads the table `state` compiles to.
    pub fn new(table: &str, state: &State) -> Result<Twin> {
        let ns = Netns::new("twin")?;
        let work = WorkDir::new("twin")?;
        let plan = compile(state, &secgroupd::compile::Options::new(table));
        let rendered = render(&plan);
        let rules = plan
            .objs
            .values()
            .filter_map(|o| match o {
                Obj::Rule(r) => Some((r.comment.to_string(), (**r).clone())),
                _ => None,
            })
            .collect();
        let load = work.path().join("load.nft");
        let reload_script = work.path().join("reload.nft");
        std::fs::write(&load, &rendered)?;
        let reload = format!("flush table inet {table}\n{rendered}");
        std::fs::write(&reload_script, &reload)?;
        run(ns.command("nft").arg("-f").arg(&load)).context("loading the twin table")?;
        let backend = ns.enter(NetlinkBackend::new)??;
        let summary = kernel::summary(&kernel::dump(&ns, table)?);
        Ok(Twin {
            ns,
            table: table.to_string(),
            backend,
            reload_script,
            rules,
            script_bytes: reload.len(),
            summary,
            _work: work,
        })
    }

    /// `n` grant rules spread over the groups of `t`, the samples' group `g0` first.
    pub fn pick_rules(&mut self, t: &Table, n: usize) -> Result<Vec<RuleRef>> {
        let kt = self
            .backend
            .dump(&self.table, secgroupd::compile::plan::Family::Inet)?;
        let by_group = kernel::grant_rules_by_group(&kt);
        let groups = (0..t.groups()).map(|g| format!("{OWNER}/{}", Table::group_name(g)));
        let candidates = kernel::grant_rules(&by_group, groups, n);
        Ok(kernel::spread(&candidates, n))
    }

    pub fn rules_now(&mut self) -> Result<usize> {
        Ok(kernel::summary(
            &self
                .backend
                .dump(&self.table, secgroupd::compile::plan::Family::Inet)?,
        )
        .rules)
    }

    /// Deletes the rule (timed), then adds it back at the end of its chain (untimed).
    pub fn floor_delete(&mut self, r: &RuleRef) -> Result<Duration> {
        let op = Op::DelForeignRule {
            family: secgroupd::compile::plan::Family::Inet,
            chain: r.chain.clone(),
            handle: r.handle,
        };
        let t0 = Instant::now();
        self.backend
            .commit(&self.table, &[op], None)
            .with_context(|| format!("deleting rule {} of {}", r.handle, r.chain))?;
        let elapsed = t0.elapsed();
        if let Some(spec) = self.rules.get(&r.comment) {
            let add = Op::AddRule(spec.clone(), Position::Append);
            self.backend
                .commit(&self.table, &[add], None)
                .with_context(|| format!("adding back rule {:?}", r.comment))?;
        }
        Ok(elapsed)
    }

    pub fn nft_delete(&self, r: &RuleRef) -> Result<Duration> {
        let handle = r.handle.to_string();
        let mut cmd = self.ns.command("nft");
        cmd.args([
            "delete",
            "rule",
            "inet",
            &self.table,
            &r.chain,
            "handle",
            &handle,
        ]);
        let t0 = Instant::now();
        run(&mut cmd)?;
        Ok(t0.elapsed())
    }

    pub fn reload(&self) -> Result<Duration> {
        let mut cmd = self.ns.command("nft");
        cmd.arg("-f").arg(&self.reload_script);
        let t0 = Instant::now();
        run(&mut cmd)?;
        Ok(t0.elapsed())
    }
}
