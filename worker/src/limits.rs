//! Process limits a worker needs: thousands of concurrent provider calls each hold a socket
//! (one per call over HTTP/1.1), so the open-file soft limit (often 1024) is raised to the
//! hard limit at start, by the worker itself rather than by whoever launches it.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Raises the open-file soft limit to the hard limit; returns the limit now in force. A
/// failure is logged, not fatal: the worker still runs, with fewer sockets.
pub fn raise_open_file_limit() -> Option<u64> {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit");
            return None;
        }
    };
    if soft >= hard {
        return Some(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => {
            tracing::debug!(from = soft, to = hard, "open-file limit raised");
            Some(hard)
        }
        Err(e) => {
            tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
            Some(soft)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_open_file_limit_ends_at_the_hard_limit() {
        let limit = super::raise_open_file_limit().expect("limits readable");
        let (soft, hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!((limit, soft), (hard, hard));
    }
}
