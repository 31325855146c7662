//! The daemon's store: one SQLite database, `STATE_DIR/state.db`, in WAL mode with
//! `synchronous=FULL`, so that `commit` returns only once the WAL is fsynced.
//!
//! # Guarantees
//! - One `commit` call is one SQLite transaction: all of its changes, the counters and the
//!   generation, or none of them. A change that contradicts the stored state fails the
//!   whole call with [`StoreError::Conflict`].
//! - A missing `state.db` is a first start (empty state). A `state.db` that is not SQLite,
//!   is truncated, fails `PRAGMA quick_check`, has an unknown schema version, or holds any
//!   value the model rejects is [`StoreError::Corrupt`]: the daemon never starts from an
//!   empty state by accident. `state.db` is created atomically (built as `state.db.new`,
//!   fsynced, renamed), so a `state.db` without a schema is damage, never a first start.
//! - A store of an older schema version is upgraded in place when opened, in one
//!   transaction (see below); a newer version is refused, naming both versions.
//! - The directory is created with mode 0700 and flock-ed (`state.lock`) while open.
//!
//! # Schema (version 2)
//! Readable with `sqlite3 STATE_DIR/state.db` (3.37 or later, for STRICT tables); the DDL
//! is in `schema.rs` (version 1) and `migrate.rs` (the steps since). Edits made behind the
//! daemon's back are re-validated at load.
//!
//! | table | columns | notes |
//! |---|---|---|
//! | `meta` | `key` PK, `value` | rows `schema_version`, `generation` (+1 per commit), and the id counters `next_group`, `next_grant`, `next_instance` (next id to hand out; never decrease) |
//! | `groups` | `num` PK, `owner`, `name`, `description` | UNIQUE(`owner`, `name`) |
//! | `grants` | `id` PK, `group_num` → `groups.num`, `kind`, `protocol`, `from_port`, `to_port`, `cidr`, `source_owner`, `source_name`, `shard` | `kind` is `cidr` (protocol `tcp`/`udp`/`icmp`/`icmpv6`, EC2's FromPort/ToPort: a port range, or ICMP type/code with -1 for any, canonical `cidr`; source columns NULL) or `group_pair` (`source_owner`, `source_name` → `groups(owner, name)`; other columns NULL). Unique over the values within a group. `shard` (0 to 1048576) numbers the chain of the group that holds the grant's rule (at most 256 grants a chain, so that deleting a rule stays cheap) |
//! | `remote_members` | (`group_num` → `groups.num`, `address`) PK | addresses of members of the group that live on other hosts (AddGroupMembers), canonical text |
//! | `instances` | `id` PK, `num` UNIQUE, `interface` UNIQUE, `slot` UNIQUE | `slot` (1–4095, reused after deregistration) is what the packet mark carries in bridged mode |
//! | `instance_addresses` | (`instance_id` → `instances.id`, `position`) PK, `address` UNIQUE | addresses in the order registered, canonical text |
//! | `instance_groups` | (`instance_id` → `instances.id`, `position`) PK, `owner`, `name` → `groups(owner, name)` | memberships in order (as registered, or as last set by ModifyInstanceGroups) |
//!
//! Examples: `SELECT g.owner, g.name, r.* FROM grants r JOIN groups g ON g.num = r.group_num;`
//! and `SELECT g.name, m.address FROM remote_members m JOIN groups g ON g.num = m.group_num;`
//!
//! # Upgrading from version 1
//! Opening a version-1 store (secgroupd before remote members and shards) adds
//! `grants.shard` (0 for every existing grant: they were all in the group's one chain) and
//! the empty `remote_members` table, and sets `schema_version` to 2, in one transaction: on
//! any failure the file stays as version 1 left it. There is no way back: keep a copy of
//! `state.db` (taken with the daemon stopped) to return to an older secgroupd.

use super::fault::Fault;
use super::files::{self, Dir};
use super::schema::{self, Meta};
use super::{Store, StoreError, ids, migrate, read, write};
use crate::state::{Change, Counters, State};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::Path;
use std::time::Duration;

/// How long a statement waits for a lock held by someone else (an operator's `sqlite3`
/// reading the store, say) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite-backed [`Store`].
pub struct SqliteStore {
    conn: Connection,
    /// For error messages.
    path: String,
    generation: u64,
    /// Holds the directory lock; dropped after `conn` (field order).
    _dir: Dir,
}

impl SqliteStore {
    /// Opens `state_dir/state.db`, creating the directory (mode 0700) and an empty store
    /// if missing. Checks that the file is a secgroupd store of a known schema version;
    /// the full check of the contents is [`Store::load`].
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        let path = state_dir.join(files::DB_FILE).display().to_string();
        Self::open_inner(state_dir).map_err(|f| f.into_store_error(&path))
    }

    fn open_inner(state_dir: &Path) -> Result<Self, Fault> {
        let dir = files::open_dir(state_dir)?;
        if !dir.exists {
            files::create_db(&dir, |path| {
                let mut conn = connect(path)?;
                conn.pragma_update(None, "synchronous", "FULL")?;
                schema::create(&mut conn)?;
                conn.close().map_err(|(_, e)| Fault::from(e))
            })?;
        }
        let mut conn = connect(&dir.db)?;
        // Check before configuring: switching to WAL writes to the file, and a file that
        // is not ours must be left as it was found.
        let meta = schema::check(&conn)?;
        configure(&conn)?;
        migrate::upgrade(&mut conn, meta.version)?;
        Ok(SqliteStore {
            conn,
            path: dir.db.display().to_string(),
            generation: meta.generation,
            _dir: dir,
        })
    }

    /// The generation of the last commit (0 for a store never committed to): it grows by
    /// one per successful commit.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn load_inner(&mut self) -> Result<State, Fault> {
        // One read transaction: the check and every table see the same snapshot.
        let tx = self.conn.transaction()?;
        quick_check(&tx)?;
        let Meta {
            generation,
            counters,
            ..
        } = schema::read_meta(&tx)?;
        let state = read::state(&tx, counters)?;
        tx.commit()?;
        self.generation = generation;
        Ok(state)
    }

    fn commit_inner(&mut self, changes: &[Change], counters: Counters) -> Result<u64, Fault> {
        let t0 = std::time::Instant::now();
        // IMMEDIATE takes the write lock up front: no deadlock upgrading a read lock.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let t_begin = t0.elapsed();
        let stored = schema::read_meta(&tx)?;
        ids::check_counters(stored.counters, counters, changes).map_err(Fault::Conflict)?;
        for (i, change) in changes.iter().enumerate() {
            write::apply(&tx, change).map_err(|f| {
                f.context(format!(
                    "change {} of {} ({})",
                    i + 1,
                    changes.len(),
                    write::describe(change)
                ))
            })?;
        }
        let generation = write::finish(&tx, counters)?;
        let t_write = t0.elapsed();
        // Returns once the WAL is fsynced (synchronous=FULL). On error the transaction is
        // rolled back when `tx` drops.
        tx.commit()?;
        let total = t0.elapsed();
        if total > std::time::Duration::from_millis(200) {
            tracing::warn!(?t_begin, ?t_write, ?total, "slow state store commit");
        }
        Ok(generation)
    }
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<State, StoreError> {
        self.load_inner()
            .map_err(|f| f.into_store_error(&self.path))
    }

    fn commit(&mut self, changes: &[Change], counters: Counters) -> Result<(), StoreError> {
        let generation = self
            .commit_inner(changes, counters)
            .map_err(|f| f.into_store_error(&self.path))?;
        self.generation = generation;
        Ok(())
    }
}

/// Opens an existing file (never creates one: creation goes through `files::create_db`).
fn connect(path: &Path) -> Result<Connection, Fault> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_EXRESCODE;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Per-connection settings (only the journal mode is stored in the file).
fn configure(conn: &Connection) -> Result<(), Fault> {
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Fault::Io(format!(
            "could not switch to WAL mode (journal_mode is {mode})"
        )));
    }
    // FULL: in WAL mode, every commit fsyncs the WAL. NORMAL could lose the last commits
    // on power loss, which would break "acknowledged means durable".
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Checks each page's cells as it is read: damage shows up as SQLITE_CORRUPT early.
    conn.pragma_update(None, "cell_size_check", "ON")?;
    // The schema is ours alone; do not run functions it might name.
    conn.pragma_update(None, "trusted_schema", "OFF")?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

/// `PRAGMA quick_check`: page structure, record formats, NOT NULL and CHECK constraints.
/// (It skips matching index contents to tables, which `integrity_check` does at several
/// times the cost; the load itself re-checks uniqueness.)
fn quick_check(conn: &Connection) -> Result<(), Fault> {
    let checking = |e: rusqlite::Error| Fault::from(e).context("PRAGMA quick_check");
    let mut stmt = conn.prepare("PRAGMA quick_check(10)").map_err(checking)?;
    let problems: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(checking)?
        .collect::<Result<_, _>>()
        .map_err(checking)?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(Fault::Corrupt(format!(
        "PRAGMA quick_check failed: {}",
        problems.join("; ")
    )))
}
