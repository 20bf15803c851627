//! What a certmint process does before anything else: it makes itself
//! non-dumpable and sets its core file size to zero.
//!
//! A certmint process holds a CA PIN, PKCS#12 passwords and device keys in
//! memory; a core file (a crash, `SIGABRT`, `gcore`) would write them to disk
//! where the core pattern says, readable by whoever reads cores. The core
//! size limit (0, soft and hard, so it cannot be raised again) is inherited
//! by every child; the dumpable flag is reset by `execve`, so each certmint
//! process — the `pkcs11-session` children included — sets it itself. A
//! non-dumpable process also cannot be attached to with ptrace by its own
//! user, and its `/proc/<pid>/` files belong to root, so that only root reads
//! its `environ` or `mem`.

use nix::sys::prctl;
use nix::sys::resource::{setrlimit, Resource};

/// A protection the kernel refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HardeningError {
    /// `prctl(PR_SET_DUMPABLE, 0)` failed.
    #[error("cannot make the process non-dumpable: {0}")]
    Dumpable(nix::Error),
    /// `setrlimit(RLIMIT_CORE, 0, 0)` failed.
    #[error("cannot set the core file size limit to 0: {0}")]
    CoreLimit(nix::Error),
}

impl HardeningError {
    /// Always a failure.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Failure
    }
}

/// Makes this process non-dumpable and its (and its children's) core size
/// limit zero. Call first thing in `main`, before any secret is read.
pub fn forbid_core_dumps() -> Result<(), HardeningError> {
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(HardeningError::CoreLimit)?;
    prctl::set_dumpable(false).map_err(HardeningError::Dumpable)
}

#[cfg(test)]
mod tests {
    /// Checked in a child process of its own (`tests/safety_audit.rs`): the
    /// flag and the limit are per process and would leak into the other
    /// unit tests here.
    #[test]
    fn the_errors_name_what_was_refused() {
        let e = super::HardeningError::CoreLimit(nix::Error::EPERM);
        assert!(e.to_string().contains("core file size"), "{e}");
    }
}
