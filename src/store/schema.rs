//! The SQL schema (documented for operators in [`super::sqlite`]), creating it, and
//! checking that an existing file carries a schema this build understands.
//!
//! The schema is version 1's DDL followed by every upgrade step in [`super::migrate`], both
//! for a new store and for an old one being upgraded: there is one way to reach the current
//! schema, so a migrated store cannot differ from a fresh one.

use super::fault::Fault;
use super::migrate;
use crate::state::Counters;
use rusqlite::Connection;

/// The version written by this build; older versions are upgraded when opened.
pub(super) const SCHEMA_VERSION: i64 = 2;
/// The oldest version this build can upgrade.
pub(super) const OLDEST_VERSION: i64 = 1;

/// `PRAGMA application_id` of a secgroupd store ("SGD1"): tells our file from any other
/// SQLite database that happens to sit at the same path.
pub(super) const APPLICATION_ID: i64 = 0x5347_4431;

/// Tables and indexes of version 1, as secgroupd 1 created them; never edit (changes are
/// upgrade steps). STRICT tables make SQLite itself refuse values of the wrong type.
/// Foreign keys carry no ON DELETE action, so deleting a row that is still referenced
/// fails the transaction instead of silently cascading.
pub(super) const DDL_V1: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE groups (
    num         INTEGER PRIMARY KEY,
    owner       TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    UNIQUE (owner, name)
) STRICT;

CREATE TABLE grants (
    id           INTEGER PRIMARY KEY,
    group_num    INTEGER NOT NULL REFERENCES groups (num),
    kind         TEXT NOT NULL CHECK (kind IN ('cidr', 'group_pair')),
    protocol     TEXT,
    from_port    INTEGER,
    to_port      INTEGER,
    cidr         TEXT,
    source_owner TEXT,
    source_name  TEXT,
    CHECK ((kind = 'cidr'
            AND protocol IS NOT NULL AND from_port IS NOT NULL AND to_port IS NOT NULL
            AND cidr IS NOT NULL AND source_owner IS NULL AND source_name IS NULL)
        OR (kind = 'group_pair'
            AND protocol IS NULL AND from_port IS NULL AND to_port IS NULL
            AND cidr IS NULL AND source_owner IS NOT NULL AND source_name IS NOT NULL)),
    FOREIGN KEY (source_owner, source_name) REFERENCES groups (owner, name)
) STRICT;
-- One grant per set of values within a group (NULLs would defeat a plain UNIQUE).
CREATE UNIQUE INDEX grants_cidr_values
    ON grants (group_num, protocol, from_port, to_port, cidr) WHERE kind = 'cidr';
CREATE UNIQUE INDEX grants_pair_values
    ON grants (group_num, source_owner, source_name) WHERE kind = 'group_pair';
-- Foreign-key lookups when a group is deleted.
CREATE INDEX grants_by_group ON grants (group_num);
CREATE INDEX grants_by_source ON grants (source_owner, source_name);

CREATE TABLE instances (
    id        TEXT PRIMARY KEY,
    num       INTEGER NOT NULL UNIQUE,
    interface TEXT NOT NULL UNIQUE
) STRICT;

CREATE TABLE instance_addresses (
    instance_id TEXT NOT NULL REFERENCES instances (id),
    position    INTEGER NOT NULL,
    address     TEXT NOT NULL UNIQUE,
    PRIMARY KEY (instance_id, position)
) STRICT, WITHOUT ROWID;

CREATE TABLE instance_groups (
    instance_id TEXT NOT NULL REFERENCES instances (id),
    position    INTEGER NOT NULL,
    owner       TEXT NOT NULL,
    name        TEXT NOT NULL,
    PRIMARY KEY (instance_id, position),
    UNIQUE (instance_id, owner, name),
    FOREIGN KEY (owner, name) REFERENCES groups (owner, name)
) STRICT, WITHOUT ROWID;
CREATE INDEX instance_groups_by_group ON instance_groups (owner, name);
";

/// `meta` keys. Any other key is an error: it would mean a schema this build does not know.
pub(super) const KEY_VERSION: &str = "schema_version";
pub(super) const KEY_GENERATION: &str = "generation";
pub(super) const KEY_NEXT_GROUP: &str = "next_group";
pub(super) const KEY_NEXT_GRANT: &str = "next_grant";
pub(super) const KEY_NEXT_INSTANCE: &str = "next_instance";

/// The contents of `meta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Meta {
    /// Between [`OLDEST_VERSION`] and [`SCHEMA_VERSION`].
    pub version: i64,
    pub generation: u64,
    pub counters: Counters,
}

/// Creates the schema of an empty store, generation 0, in one transaction.
pub(super) fn create(conn: &mut Connection) -> Result<(), Fault> {
    let tx = conn.transaction()?;
    tx.execute_batch(DDL_V1)?;
    migrate::steps(&tx, OLDEST_VERSION)?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    let c = Counters::default();
    {
        let mut insert = tx.prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")?;
        for (key, value) in [
            (KEY_VERSION, SCHEMA_VERSION),
            (KEY_GENERATION, 0),
            (KEY_NEXT_GROUP, i64::from(c.next_group)),
            (KEY_NEXT_GRANT, i64::from(c.next_grant)),
            (KEY_NEXT_INSTANCE, i64::from(c.next_instance)),
        ] {
            insert.execute((key, value))?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Checks that the file is a secgroupd store of a schema version this build understands
/// (the current one, or an older one it can upgrade: see `Meta::version`).
pub(super) fn check(conn: &Connection) -> Result<Meta, Fault> {
    // The first read of the file: a file that is not SQLite fails here.
    let app: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(|e| Fault::from(e).context("reading the database file"))?;
    if app != APPLICATION_ID {
        return Err(Fault::Corrupt(format!(
            "application_id is {app:#x}, not secgroupd's {APPLICATION_ID:#x}: this is not a \
             secgroupd state store, or its header was damaged"
        )));
    }
    read_any_meta(conn)
}

/// Reads and validates `meta` of a store at the current version. Cheap (five rows); done
/// by every commit and load.
pub(super) fn read_meta(conn: &Connection) -> Result<Meta, Fault> {
    let meta = read_any_meta(conn)?;
    if meta.version != SCHEMA_VERSION {
        return Err(Fault::Corrupt(format!(
            "table meta, row key={KEY_VERSION:?}: schema version {} where {SCHEMA_VERSION} \
             was expected (the store was changed while open)",
            meta.version
        )));
    }
    Ok(meta)
}

/// Reads and validates `meta` of a store at any version this build understands.
fn read_any_meta(conn: &Connection) -> Result<Meta, Fault> {
    read_meta_rows(conn).map_err(|f| match f {
        Fault::Corrupt(m) if !m.starts_with("table meta") => {
            Fault::Corrupt(format!("reading table meta: {m}"))
        }
        other => other,
    })
}

fn read_meta_rows(conn: &Connection) -> Result<Meta, Fault> {
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta')",
        [],
        |r| r.get(0),
    )?;
    if !has_meta {
        return Err(Fault::Corrupt(
            "table meta is missing: the schema was never created or was damaged".into(),
        ));
    }
    let mut stmt = conn.prepare_cached("SELECT key, value FROM meta")?;
    let mut rows = stmt.query([])?;
    let (mut version, mut generation) = (None, None);
    let (mut group, mut grant, mut instance) = (None, None, None);
    while let Some(row) = rows.next()? {
        let key: String = row.get(0).map_err(|e| meta_fault("?", e))?;
        let value: i64 = row.get(1).map_err(|e| meta_fault(&key, e))?;
        let slot = match key.as_str() {
            KEY_VERSION => &mut version,
            KEY_GENERATION => &mut generation,
            KEY_NEXT_GROUP => &mut group,
            KEY_NEXT_GRANT => &mut grant,
            KEY_NEXT_INSTANCE => &mut instance,
            _ => {
                return Err(Fault::Corrupt(format!(
                    "table meta, row key={key:?}: unknown key (written by a newer secgroupd?)"
                )));
            }
        };
        *slot = Some(value);
    }
    let version = version.ok_or_else(|| missing_key(KEY_VERSION))?;
    if version > SCHEMA_VERSION {
        return Err(Fault::Corrupt(format!(
            "schema version {version} is newer than this secgroupd understands \
             ({SCHEMA_VERSION}); run the secgroupd that wrote it, or restore a backup"
        )));
    }
    if version < OLDEST_VERSION {
        return Err(Fault::Corrupt(format!(
            "unknown schema version {version} (this secgroupd understands \
             {OLDEST_VERSION} to {SCHEMA_VERSION})"
        )));
    }
    let generation = generation.ok_or_else(|| missing_key(KEY_GENERATION))?;
    let generation = u64::try_from(generation).map_err(|_| {
        Fault::Corrupt(format!(
            "table meta, row key=\"generation\": {generation} is negative"
        ))
    })?;
    Ok(Meta {
        version,
        generation,
        counters: Counters {
            next_group: counter(KEY_NEXT_GROUP, group)?,
            next_grant: counter(KEY_NEXT_GRANT, grant)?,
            next_instance: counter(KEY_NEXT_INSTANCE, instance)?,
        },
    })
}

fn meta_fault(key: &str, e: rusqlite::Error) -> Fault {
    Fault::from(e).context(format!("table meta, row key={key:?}"))
}

fn missing_key(key: &str) -> Fault {
    Fault::Corrupt(format!("table meta has no row key={key:?}"))
}

/// A counter is the next id to hand out: ids start at 1, so it is at least 1.
fn counter(key: &str, value: Option<i64>) -> Result<u32, Fault> {
    let value = value.ok_or_else(|| missing_key(key))?;
    u32::try_from(value)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            Fault::Corrupt(format!(
                "table meta, row key={key:?}: {value} is not a counter (1..=4294967295)"
            ))
        })
}
