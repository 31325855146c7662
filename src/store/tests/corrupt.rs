//! A damaged store is `Corrupt` with a message that says where, never `Ok(empty)`.

use super::*;
use rusqlite::Connection;

/// A store with [`populate`]'s state, closed (so its WAL is checkpointed into the file).
fn populated(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    let mut store = open_store(dir.path()).expect("open");
    populate(&mut store, &mut State::new());
    dir
}

/// Edits the closed store with plain SQL, as an operator's `sqlite3` session would
/// (foreign keys off, the CLI's default).
fn edit(dir: &TempDir, sql: &str) {
    let conn = Connection::open(dir.db()).expect("open raw");
    conn.execute_batch(&format!("PRAGMA foreign_keys = OFF; {sql}"))
        .expect("edit");
}

#[test]
fn a_file_of_garbage_is_corrupt() {
    let dir = TempDir::new("garbage");
    std::fs::create_dir_all(dir.path()).expect("mkdir");
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.db(), garbage).expect("write");
    assert_corrupt(reopen(&dir), &["not a database"]);
}

#[test]
fn a_zero_length_file_is_corrupt_not_a_first_start() {
    let dir = TempDir::new("empty");
    std::fs::create_dir_all(dir.path()).expect("mkdir");
    std::fs::write(dir.db(), b"").expect("write");
    assert_corrupt(reopen(&dir), &["not secgroupd's"]);
}

#[test]
fn a_truncated_file_is_corrupt() {
    let dir = TempDir::new("truncated");
    {
        let mut store = open_store(dir.path()).expect("open");
        let mut state = State::new();
        populate(&mut store, &mut state);
        // Enough rows for the file to span many pages.
        let web = key(1, "web");
        for port in 1000..1400 {
            run(
                &mut store,
                &mut state,
                &[authorize(web.clone(), tcp(port, port, "10.0.0.0/8"))],
            );
        }
    }
    let conn = Connection::open(dir.db()).expect("raw");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    drop(conn);
    let len = std::fs::metadata(dir.db()).expect("stat").len();
    assert!(len > 8 * 4096, "file has {len} bytes");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.db())
        .expect("open");
    file.set_len(len / 2).expect("truncate");
    drop(file);
    assert_corrupt(reopen(&dir), &["malformed"]);
}

#[test]
fn an_invalid_cidr_names_table_and_row() {
    let dir = populated("cidr");
    edit(&dir, "UPDATE grants SET cidr = '10.0.0.1/8' WHERE id = 3");
    assert_corrupt(
        reopen(&dir),
        &["table grants, row id=3", "cidr", "host bits"],
    );
}

#[test]
fn invalid_values_in_each_table_are_corrupt() {
    for (sql, needles) in [
        (
            "UPDATE groups SET name = ' web' WHERE num = 1",
            &["table groups", "num=1", "name"][..],
        ),
        (
            "UPDATE groups SET owner = '12' WHERE num = 2",
            &["table groups", "owner"],
        ),
        (
            "UPDATE grants SET from_port = 70000 WHERE id = 1",
            &["grants, row id=1", "from_port"],
        ),
        (
            "UPDATE grants SET protocol = 'sctp' WHERE id = 1",
            &["grants, row id=1", "sctp"],
        ),
        (
            "UPDATE grants SET to_port = 5 WHERE id = 3",
            &["grants, row id=3", "ICMP"],
        ),
        (
            "UPDATE instances SET interface = 'a/b' WHERE id = 'i-1'",
            &["instances", "\"i-1\""],
        ),
        (
            "UPDATE instance_addresses SET address = '10.0.0.300' WHERE address = '10.0.0.1'",
            &["instance_addresses", "10.0.0.300"],
        ),
        (
            "UPDATE instance_addresses SET address = '2001:DB8::1' WHERE address = '2001:db8::1'",
            &["instance_addresses", "canonical"],
        ),
        (
            "DELETE FROM instance_addresses WHERE instance_id = 'i-1' AND position = 0",
            &["instance_addresses", "position"],
        ),
        (
            "UPDATE meta SET value = 3 WHERE key = 'schema_version'",
            &["schema version 3 is newer"],
        ),
        (
            "PRAGMA ignore_check_constraints = ON; UPDATE grants SET shard = -1 WHERE id = 2",
            &["quick_check", "CHECK constraint failed in grants"],
        ),
        (
            // Rebuilt by hand without its constraints: the load still checks the values.
            "ALTER TABLE grants RENAME TO grants_old; \
             CREATE TABLE grants AS SELECT * FROM grants_old; DROP TABLE grants_old; \
             UPDATE grants SET shard = 1048577 WHERE id = 6",
            &[
                "table grants, row id=6",
                "column shard: 1048577 is not in 0..=1048576",
            ],
        ),
        (
            "UPDATE remote_members SET address = '2001:DB8::9' WHERE address = '2001:db8::9'",
            &[
                "table remote_members, row (group_num=1, address=\"2001:DB8::9\")",
                "canonical",
            ],
        ),
        (
            "UPDATE remote_members SET address = 'ten' WHERE address = '10.9.0.1'",
            &["table remote_members", "\"ten\" is not an IP address"],
        ),
        (
            "UPDATE meta SET value = 0 WHERE key = 'schema_version'",
            &["unknown schema version 0"],
        ),
        ("DELETE FROM meta WHERE key = 'next_grant'", &["next_grant"]),
        ("INSERT INTO meta VALUES ('colour', 1)", &["colour"]),
        ("PRAGMA application_id = 7", &["not secgroupd's"]),
        ("DROP TABLE meta", &["meta is missing"]),
    ] {
        let dir = populated("values");
        edit(&dir, sql);
        let r = reopen(&dir);
        assert!(matches!(r, Err(StoreError::Corrupt { .. })), "{sql}: {r:?}");
        assert_corrupt(r, needles);
    }
}

#[test]
fn dangling_references_are_corrupt() {
    for (sql, needles) in [
        (
            "UPDATE instance_groups SET name = 'gone' WHERE instance_id = 'i-1'",
            &["table instance_groups", "instance_id=\"i-1\"", "gone"][..],
        ),
        (
            "UPDATE grants SET group_num = 42 WHERE id = 1",
            &["table grants, row id=1", "group_num 42"],
        ),
        (
            "UPDATE grants SET source_name = 'gone' WHERE id = 4",
            &["table grants", "source group", "gone"],
        ),
        (
            "UPDATE remote_members SET group_num = 42 WHERE address = '10.9.0.2'",
            &[
                "table remote_members",
                "group_num=42",
                "group_num 42 names no row",
            ],
        ),
        (
            "DELETE FROM instances WHERE id = 'i-2'",
            &["names no row of table instances"],
        ),
        (
            "DELETE FROM groups WHERE name = 'db'",
            &["names no row of table groups"],
        ),
    ] {
        let dir = populated("dangling");
        edit(&dir, sql);
        assert_corrupt(reopen(&dir), needles);
    }
}

#[test]
fn a_counter_below_an_id_in_use_is_corrupt() {
    for (sql, needle) in [
        (
            "UPDATE meta SET value = 4 WHERE key = 'next_grant'",
            "next_grant",
        ),
        (
            "UPDATE meta SET value = 2 WHERE key = 'next_group'",
            "next_group",
        ),
        (
            "UPDATE meta SET value = 1 WHERE key = 'next_instance'",
            "next_instance",
        ),
        (
            "UPDATE meta SET value = 0 WHERE key = 'next_instance'",
            "not a counter",
        ),
    ] {
        let dir = populated("counter");
        edit(&dir, sql);
        assert_corrupt(reopen(&dir), &[needle]);
    }
}

#[test]
fn a_lost_database_with_its_wal_left_is_corrupt() {
    let dir = populated("lost");
    std::fs::write(dir.path().join("state.db-wal"), b"stale").expect("write");
    std::fs::remove_file(dir.db()).expect("rm");
    assert_corrupt(reopen(&dir), &["state.db is missing"]);
}

#[test]
fn an_interrupted_creation_is_a_first_start() {
    let dir = TempDir::new("interrupted");
    std::fs::create_dir_all(dir.path()).expect("mkdir");
    std::fs::write(dir.path().join("state.db.new"), b"half-built").expect("write");
    assert_eq!(reopen(&dir).expect("load"), State::new());
}

#[test]
fn a_second_store_on_the_same_directory_is_refused() {
    let dir = TempDir::new("locked");
    let _first = SqliteStore::open(dir.path()).expect("open");
    match SqliteStore::open(dir.path()) {
        Err(StoreError::Io(m)) => assert!(m.contains("locked"), "{m}"),
        other => panic!("expected Io, got {:?}", other.map(|_| ())),
    }
}
