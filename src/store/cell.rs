//! Typed access to one column of a row read back from the store, with messages that
//! name the column. Values are checked by type by hand (not `row.get`) so that a wrong
//! type is reported as damage to that column, never as a panic or a generic error.

use rusqlite::Row;
use rusqlite::types::ValueRef;
use std::net::IpAddr;

pub(super) fn int(row: &Row<'_>, i: usize, column: &str) -> Result<i64, String> {
    opt_int(row, i, column)?.ok_or_else(|| format!("column {column} is NULL"))
}

pub(super) fn opt_int(row: &Row<'_>, i: usize, column: &str) -> Result<Option<i64>, String> {
    match row
        .get_ref(i)
        .map_err(|e| format!("column {column}: {e}"))?
    {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(v) => Ok(Some(v)),
        other => Err(format!(
            "column {column} holds {:?}, not an integer",
            other.data_type()
        )),
    }
}

/// A numeric id (group num, grant id, instance num): a u32.
pub(super) fn id(row: &Row<'_>, i: usize, column: &str) -> Result<u32, String> {
    let v = int(row, i, column)?;
    u32::try_from(v).map_err(|_| format!("column {column}: {v} is not in 0..=4294967295"))
}

pub(super) fn text<'r>(row: &'r Row<'_>, i: usize, column: &str) -> Result<&'r str, String> {
    match row
        .get_ref(i)
        .map_err(|e| format!("column {column}: {e}"))?
    {
        ValueRef::Text(t) => {
            std::str::from_utf8(t).map_err(|_| format!("column {column} is not UTF-8"))
        }
        other => Err(format!(
            "column {column} holds {:?}, not text",
            other.data_type()
        )),
    }
}

pub(super) fn opt_text(row: &Row<'_>, i: usize, column: &str) -> Result<Option<String>, String> {
    match row
        .get_ref(i)
        .map_err(|e| format!("column {column}: {e}"))?
    {
        ValueRef::Null => Ok(None),
        _ => text(row, i, column).map(|s| Some(s.to_string())),
    }
}

/// Reads a text column through one of the model's parsers (`parse(param, text)`).
pub(super) fn parse<T, E: std::fmt::Display>(
    row: &Row<'_>,
    i: usize,
    column: &str,
    parser: impl Fn(&str, &str) -> Result<T, E>,
) -> Result<T, String> {
    let s = text(row, i, column)?;
    parser(column, s).map_err(|e| format!("column {column}: {e}"))
}

/// An IP address in the canonical text the write side produces (`a.to_string()`), so that
/// the UNIQUE constraints over the text really mean "no address twice".
pub(super) fn address(row: &Row<'_>, i: usize, column: &str) -> Result<IpAddr, String> {
    let s = text(row, i, column)?;
    let a: IpAddr = s
        .parse()
        .map_err(|_| format!("column {column}: {s:?} is not an IP address"))?;
    if a.to_string() != s {
        return Err(format!(
            "column {column}: {s:?} is not in canonical form (expected \"{a}\")"
        ));
    }
    Ok(a)
}

/// A number within `0..=max` (a shard, say).
pub(super) fn bounded(row: &Row<'_>, i: usize, column: &str, max: u32) -> Result<u32, String> {
    let v = int(row, i, column)?;
    u32::try_from(v)
        .ok()
        .filter(|v| *v <= max)
        .ok_or_else(|| format!("column {column}: {v} is not in 0..={max}"))
}
