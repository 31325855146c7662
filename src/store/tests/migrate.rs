//! A store written by secgroupd with schema version 1 opens, is upgraded in place, and
//! keeps its state; a failed upgrade leaves the file as version 1 left it.

use super::*;
use crate::store::MemStore;
use crate::store::row::PermissionRow;
use crate::store::schema::{self, APPLICATION_ID};
use rusqlite::Connection;

/// The state a version-1 store might hold: every kind of row, and one group with more
/// grants than a shard holds (version 1 had one chain per group).
fn v1_state() -> State {
    let mut state = State::new();
    let (web, db, big) = (key(1, "web"), key(1, "db"), key(2, "big"));
    let mut actions = vec![
        create(web.clone(), "Web servers"),
        create(db.clone(), ""),
        create(big.clone(), "many grants"),
        authorize(web.clone(), tcp(80, 80, "0.0.0.0/0")),
        authorize(web.clone(), icmp(Some(8), None, "2001:db8::/32")),
        authorize(db.clone(), pair(web.clone())),
        instance(
            "i-1",
            "tap1",
            &["10.0.0.1", "2001:db8::1"],
            std::slice::from_ref(&web),
        ),
        instance("i-2", "tap2", &["10.0.0.2"], &[db.clone(), web.clone()]),
    ];
    let n = crate::state::SHARD_SIZE as u16 + 20;
    actions.extend((1..=n).map(|p| authorize(big.clone(), tcp(p, p, "10.0.0.0/8"))));
    run(&mut MemStore::new(), &mut state, &actions);
    // Version 1 had no shards: every grant was in its group's one chain.
    let groups = state.groups().cloned().map(|mut g| {
        for gr in g.grants.values_mut() {
            gr.shard = 0;
        }
        g
    });
    State::from_parts(groups, state.instances().cloned(), state.counters()).expect("state")
}

/// Writes `state` as secgroupd 1 would have: the version-1 DDL and rows, WAL mode.
fn write_v1(dir: &TempDir, state: &State, generation: u64) {
    std::fs::create_dir_all(dir.path()).expect("mkdir");
    let conn = Connection::open(dir.db()).expect("create");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.execute_batch(schema::DDL_V1).expect("v1 schema");
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .expect("application_id");
    let c = state.counters();
    for (k, v) in [
        ("schema_version", 1),
        ("generation", generation as i64),
        ("next_group", i64::from(c.next_group)),
        ("next_grant", i64::from(c.next_grant)),
        ("next_instance", i64::from(c.next_instance)),
    ] {
        conn.execute("INSERT INTO meta VALUES (?1, ?2)", (k, v))
            .expect("meta");
    }
    for g in state.groups() {
        conn.execute(
            "INSERT INTO groups VALUES (?1, ?2, ?3, ?4)",
            (
                g.num,
                g.key.owner.as_str(),
                g.key.name.as_str(),
                g.description.as_str(),
            ),
        )
        .expect("group");
    }
    for g in state.groups() {
        for (id, gr) in &g.grants {
            let r = PermissionRow::from_permission(&gr.permission);
            conn.execute(
                "INSERT INTO grants VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                (
                    id,
                    g.num,
                    r.kind,
                    r.protocol,
                    r.from_port,
                    r.to_port,
                    r.cidr,
                    r.source_owner,
                    r.source_name,
                ),
            )
            .expect("grant");
        }
    }
    for i in state.instances() {
        let id = i.spec.id.as_str();
        conn.execute(
            "INSERT INTO instances VALUES (?1, ?2, ?3)",
            (id, i.num, i.spec.interface.as_str()),
        )
        .expect("instance");
        for (p, a) in i.spec.addresses.iter().enumerate() {
            conn.execute(
                "INSERT INTO instance_addresses VALUES (?1, ?2, ?3)",
                (id, p as i64, a.to_string()),
            )
            .expect("address");
        }
        for (p, g) in i.spec.groups.iter().enumerate() {
            conn.execute(
                "INSERT INTO instance_groups VALUES (?1, ?2, ?3, ?4)",
                (id, p as i64, g.owner.as_str(), g.name.as_str()),
            )
            .expect("membership");
        }
    }
}

fn version(dir: &TempDir) -> i64 {
    Connection::open(dir.db())
        .expect("open raw")
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .expect("version")
}

fn columns(dir: &TempDir, table: &str) -> Vec<String> {
    let conn = Connection::open(dir.db()).expect("open raw");
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .expect("prepare");
    stmt.query_map([table], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("columns")
}

/// Every table, index and column with its declared type, constraints and default.
fn schema_outline(dir: &TempDir) -> Vec<String> {
    let conn = Connection::open(dir.db()).expect("open raw");
    let mut stmt = conn
        .prepare(
            "SELECT s.type, s.name, c.name, c.type, c.\"notnull\", c.dflt_value, c.pk \
             FROM sqlite_schema s LEFT JOIN pragma_table_info(s.name) c \
             WHERE s.name NOT LIKE 'sqlite_%' ORDER BY s.name, c.cid",
        )
        .expect("prepare");
    stmt.query_map([], |r| {
        Ok(format!(
            "{} {} {:?} {:?} {:?} {:?} {:?}",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<i64>>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, Option<i64>>(6)?,
        ))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("outline")
}

#[test]
fn a_version_1_store_is_upgraded_in_place_and_keeps_its_state() {
    let dir = TempDir::new("v1");
    let state = v1_state();
    write_v1(&dir, &state, 41);
    assert_eq!(version(&dir), 1);
    assert!(!columns(&dir, "grants").contains(&"shard".to_string()));

    let mut store = open_store(dir.path()).expect("open upgrades");
    let mut loaded = store.load().expect("load");
    assert_eq!(loaded, state);
    assert_eq!(store.generation(), 41, "the generation carries over");

    // It is a version-2 store in every way: members, shards, instance groups.
    let big = key(2, "big");
    let actions = [
        add_members(key(1, "web"), &["192.0.2.7", "2001:db8::77"]),
        authorize(big.clone(), tcp(9000, 9000, "10.0.0.0/8")),
        modify_groups("i-2", &[key(1, "web")]),
    ];
    run(&mut store, &mut loaded, &actions);
    let next = loaded
        .find_grant(&big, &tcp(9000, 9000, "10.0.0.0/8"))
        .expect("granted");
    assert_eq!(
        loaded.group(&big).expect("big").grants[&next].shard,
        1,
        "shard 0 holds all of version 1's grants, so the next one opens shard 1"
    );
    drop(store);
    assert_eq!(version(&dir), 2);
    let mut reopened = open_store(dir.path()).expect("reopen");
    assert_eq!(reopened.load().expect("load"), loaded);
    assert_eq!(reopened.generation(), 41 + actions.len() as u64);
}

#[test]
fn a_migrated_store_has_the_schema_of_a_new_one() {
    let (fresh, old) = (TempDir::new("fresh"), TempDir::new("old"));
    drop(open_store(fresh.path()).expect("create"));
    write_v1(&old, &State::new(), 0);
    drop(open_store(old.path()).expect("upgrade"));
    assert_eq!(schema_outline(&old), schema_outline(&fresh));
    assert!(columns(&fresh, "grants").contains(&"shard".to_string()));
    assert_eq!(columns(&fresh, "remote_members"), ["group_num", "address"]);
}

#[test]
fn a_failed_upgrade_leaves_the_version_1_store_as_it_was() {
    let dir = TempDir::new("v1-fail");
    let state = v1_state();
    write_v1(&dir, &state, 7);
    // Something in the way of the second part of the step: the first part (the new
    // column) must be rolled back with it.
    let conn = Connection::open(dir.db()).expect("raw");
    conn.execute_batch("CREATE TABLE remote_members (x TEXT)")
        .expect("obstacle");
    drop(conn);
    assert_corrupt(
        open_store(dir.path()).map(|_| ()),
        &["upgrading the schema to version 2", "remote_members"],
    );
    assert_eq!(version(&dir), 1);
    assert!(!columns(&dir, "grants").contains(&"shard".to_string()));

    let conn = Connection::open(dir.db()).expect("raw");
    conn.execute_batch("DROP TABLE remote_members")
        .expect("clear");
    drop(conn);
    assert_eq!(reopen(&dir).expect("load"), state);
}
