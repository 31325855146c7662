//! What went wrong inside the SQLite store, before it is tied to the store's path.
//!
//! The classification matters more than the text: `Corrupt` stops the daemon at start,
//! `Conflict` means memory and disk disagree, `Io` may be transient.

use super::StoreError;
use rusqlite::ErrorCode;

#[derive(Debug)]
pub(super) enum Fault {
    Corrupt(String),
    Conflict(String),
    Io(String),
}

impl Fault {
    /// Prefixes the message with where it happened.
    pub fn context(self, what: impl std::fmt::Display) -> Fault {
        match self {
            Fault::Corrupt(m) => Fault::Corrupt(format!("{what}: {m}")),
            Fault::Conflict(m) => Fault::Conflict(format!("{what}: {m}")),
            Fault::Io(m) => Fault::Io(format!("{what}: {m}")),
        }
    }

    pub fn into_store_error(self, path: &str) -> StoreError {
        match self {
            Fault::Corrupt(why) => StoreError::Corrupt {
                path: path.to_string(),
                why,
            },
            Fault::Conflict(why) => StoreError::Conflict {
                path: path.to_string(),
                why,
            },
            Fault::Io(why) => StoreError::Io(format!("{path}: {why}")),
        }
    }
}

impl From<rusqlite::Error> for Fault {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                // SQLITE_CORRUPT, SQLITE_NOTADB: the file is damaged or not a database.
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                    Fault::Corrupt(e.to_string())
                }
                // A UNIQUE, FOREIGN KEY, NOT NULL or CHECK constraint: the change does not
                // fit what is stored.
                ErrorCode::ConstraintViolation => Fault::Conflict(e.to_string()),
                _ => Fault::Io(e.to_string()),
            },
            // A value of the wrong type or range came out of the file.
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..) => Fault::Corrupt(e.to_string()),
            _ => Fault::Io(e.to_string()),
        }
    }
}

impl From<std::io::Error> for Fault {
    fn from(e: std::io::Error) -> Self {
        Fault::Io(e.to_string())
    }
}
