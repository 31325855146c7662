//! The files of a store directory: creating it private, locking it against a second
//! daemon, and creating a new database atomically.
//!
//! A new database is built under a temporary name and renamed into place only once its
//! schema is committed and fsynced. So `state.db` exists only as a complete store, and
//! any `state.db` without a schema (a zero-length file, say) is damage, not a first start.

use super::fault::Fault;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The database file inside the state directory.
pub(super) const DB_FILE: &str = "state.db";
/// Held (flock) while a store is open.
const LOCK_FILE: &str = "state.lock";
/// Where a new database is built before it is renamed to [`DB_FILE`].
const NEW_FILE: &str = "state.db.new";

/// An opened, locked state directory.
pub(super) struct Dir {
    pub db: PathBuf,
    /// Whether `state.db` existed (false: first start).
    pub exists: bool,
    /// Keeps the lock for as long as the store lives.
    _lock: File,
}

/// Creates the directory (mode 0700) if needed, locks it, and clears leftovers of an
/// interrupted creation.
pub(super) fn open_dir(state_dir: &Path) -> Result<Dir, Fault> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(|e| Fault::from(e).context(format!("creating {}", state_dir.display())))?;
    // An existing directory keeps its mode (the operator chose it), but say so if others
    // can read the desired state.
    if let Ok(meta) = fs::metadata(state_dir)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            dir = %state_dir.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "state directory is accessible to other users; 0700 is recommended"
        );
    }
    let lock = lock(&state_dir.join(LOCK_FILE))?;
    for leftover in [NEW_FILE, "state.db.new-journal"] {
        remove_if_present(&state_dir.join(leftover))?;
    }
    let db = state_dir.join(DB_FILE);
    let exists = present(&db)?;
    if !exists {
        for companion in ["state.db-wal", "state.db-journal"] {
            if present(&state_dir.join(companion))? {
                return Err(Fault::Corrupt(format!(
                    "{DB_FILE} is missing but {companion} is there: the database was \
                     removed or lost; refusing to start from an empty state"
                )));
            }
        }
    }
    Ok(Dir {
        db,
        exists,
        _lock: lock,
    })
}

/// Creates `dir.db` atomically: `init` builds the database at a temporary path, which is
/// then fsynced and renamed into place, and the directory fsynced.
pub(super) fn create_db(
    dir: &Dir,
    init: impl FnOnce(&Path) -> Result<(), Fault>,
) -> Result<(), Fault> {
    let parent = dir
        .db
        .parent()
        .ok_or_else(|| Fault::Io(format!("{} has no parent directory", dir.db.display())))?;
    let new = parent.join(NEW_FILE);
    let creating =
        |e: std::io::Error| Fault::from(e).context(format!("creating {}", new.display()));
    // Created here so it gets mode 0600; SQLite gives its -wal and -shm the same mode.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&new)
        .map_err(creating)?;
    init(&new)?;
    File::open(&new)
        .and_then(|f| f.sync_all())
        .map_err(creating)?;
    fs::rename(&new, &dir.db).map_err(creating)?;
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| Fault::from(e).context(format!("syncing {}", parent.display())))
}

/// Takes an exclusive, non-blocking flock: two daemons writing one store would each
/// believe their own in-memory state.
fn lock(path: &Path) -> Result<File, Fault> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| Fault::from(e).context(format!("opening {}", path.display())))?;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == ErrorKind::WouldBlock {
            return Err(Fault::Io(format!(
                "{} is locked: another secgroupd (or store) has this state directory open",
                path.display()
            )));
        }
        return Err(Fault::from(e).context(format!("locking {}", path.display())));
    }
    Ok(file)
}

/// Whether a path exists. Only "not found" means absent: any other error (permissions)
/// must not be mistaken for a first start.
fn present(path: &Path) -> Result<bool, Fault> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Fault::from(e).context(format!("checking {}", path.display()))),
    }
}

fn remove_if_present(path: &Path) -> Result<(), Fault> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Fault::from(e).context(format!("removing {}", path.display()))),
    }
}
