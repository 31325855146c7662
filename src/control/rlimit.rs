//! Raising the open-file limit so that the connection cap, not `EMFILE`, is what bounds
//! the number of control connections.

use std::io;

/// Raises the soft `RLIMIT_NOFILE` to at least `want` (capped at the hard limit; never
/// lowers it). Returns the soft limit in force afterwards.
pub fn raise_fd_limit(want: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to write to.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let target = want.min(lim.rlim_max);
    if target > lim.rlim_cur {
        lim.rlim_cur = target;
        // SAFETY: `lim` is a valid rlimit; raising the soft limit up to the hard one needs
        // no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_lowers_and_is_idempotent() {
        let now = raise_fd_limit(0).unwrap();
        assert!(now > 0);
        let raised = raise_fd_limit(now + 16).unwrap();
        assert!(raised >= now);
        assert_eq!(raise_fd_limit(raised).unwrap(), raised);
    }
}
