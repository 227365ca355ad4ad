//! Who certkeeper runs as, and what it gives up.
//!
//! The state directory belongs to the `certkeeper` user, and whoever controls that account
//! (a compromised hook, anything running as that user) controls every entry in it. A command
//! run from a root shell must therefore never act as root inside it: [`drop_to_state_owner`]
//! becomes the directory's owner (groups, then gid, then uid) after the root-only inputs are
//! read (the configuration and its secret files, systemd credentials, certbot's keys) and
//! before the state directory is opened. The store then refuses anything not owned by the
//! user it runs as, so a root process that did not drop cannot be steered either.
//!
//! The daemon (`certkeeper run`) re-reads its configuration and secret files on SIGHUP, which
//! it could no longer do after dropping, so as root against another user's state directory it
//! refuses and says how to start it instead ([`refuse_root_daemon`]). A root-owned state
//! directory (the documented `User=root` drop-in) is used as root, as before.
//!
//! What a hook inherits is limited by [`harden_process`] (run first thing in `main`): the
//! process is marked non-dumpable, so a hook running as the same user cannot read the
//! daemon's `/proc/PID/environ` or memory (where the EAB key is), and the ambient capability
//! set is cleared, so a hook starts without `CAP_NET_BIND_SERVICE` even though the unit hands
//! it to the daemon. [`drop_bind_capability`] then drops that capability from the daemon
//! itself once its sockets are bound.
//!
//! Identity and capabilities are per thread in Linux, and the raw system calls used here
//! change only the calling thread (glibc's wrappers broadcast to every thread; rustix does
//! not). Each function therefore runs while the process has one thread, and checks that it
//! does.

use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, lstat};
use rustix::process::{Gid, Uid, getegid, geteuid};
use thiserror::Error;

/// Why certkeeper would not, or could not, change who it runs as.
#[derive(Debug, Error)]
pub enum PrivilegeError {
    #[error("cannot inspect the state directory {}", path.display())]
    Inspect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the state directory {} is a symbolic link; certkeeper never follows links into its state directory: set state_dir to the real directory",
        path.display()
    )]
    StateDirSymlink { path: PathBuf },
    #[error(
        "the state directory {} is not a directory; set state_dir to a directory",
        path.display()
    )]
    StateDirNotDirectory { path: PathBuf },
    #[error(
        "cannot drop privileges to {user} (owner of the state directory {}) while the process has {threads} threads; this is a bug in certkeeper",
        path.display()
    )]
    Threads {
        user: String,
        path: PathBuf,
        threads: usize,
    },
    #[error(
        "cannot become {user} (owner of the state directory {}); run the command as that user: runuser -u {user} -- certkeeper ...",
        path.display()
    )]
    Drop {
        user: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "certkeeper run as root would use the state directory {} of {user}, and a daemon that re-reads root-only secrets on SIGHUP cannot give up root; start it as that user: `systemctl start certkeeper`, or `runuser -u {user} -- certkeeper run` (secrets then must be readable by {user}, or passed as systemd credentials)",
        path.display()
    )]
    RootDaemon { user: String, path: PathBuf },
    #[error("cannot mark the process non-dumpable or clear its ambient capabilities")]
    Harden(#[source] io::Error),
    #[error("cannot drop CAP_NET_BIND_SERVICE after binding")]
    Capability(#[source] io::Error),
}

/// Who a command runs as after [`drop_to_state_owner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Not root, or root with a root-owned (or not yet created) state directory.
    Unchanged,
    /// Was root; now the owner of the state directory, for good.
    Dropped { uid: u32, gid: u32 },
}

/// The owner of the state directory, when root must not act there itself.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    uid: u32,
    gid: u32,
}

/// Mark the process non-dumpable and clear its ambient capabilities. Called first thing in
/// `main`, while the process has one thread, so every thread and child inherits both.
///
/// # Errors
/// [`PrivilegeError::Harden`] when the kernel refuses (both calls exist since Linux 4.3).
pub fn harden_process() -> Result<(), PrivilegeError> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|errno| PrivilegeError::Harden(errno.into()))?;
    rustix::thread::clear_ambient_capability_set()
        .map_err(|errno| PrivilegeError::Harden(errno.into()))
}

/// When running as root and `state_dir` belongs to another user, become that user (the
/// directory's group as its gid, and the user's supplementary groups from the group database)
/// for the rest of the process.
///
/// The supplementary groups are the ones `runuser`, `login` and systemd's `User=` give the
/// user, so a `key_group` that certkeeper's user is a member of (`usermod -aG`) works the same
/// from a root shell as under the unit; root's own groups are never kept.
///
/// # Errors
/// [`PrivilegeError`] when the state directory is a symlink or not a directory, or the
/// switch fails; nothing in the state directory has been touched then.
pub fn drop_to_state_owner(state_dir: &Path) -> Result<Identity, PrivilegeError> {
    if !geteuid().is_root() {
        return Ok(Identity::Unchanged);
    }
    let Some(owner) = foreign_owner(state_dir)? else {
        return Ok(Identity::Unchanged);
    };
    let user = user_name(owner.uid);
    let uid = Uid::from_raw(owner.uid);
    let gid = Gid::from_raw(owner.gid);
    let groups = supplementary_groups(&user, gid);
    let threads = thread_count();
    if threads != 1 {
        return Err(PrivilegeError::Threads {
            user,
            path: state_dir.to_owned(),
            threads,
        });
    }
    let failed = |errno: rustix::io::Errno| PrivilegeError::Drop {
        user: user.clone(),
        path: state_dir.to_owned(),
        source: errno.into(),
    };
    // Groups and gid first: once the uid is gone, so is the right to change them.
    rustix::thread::set_thread_groups(&groups).map_err(failed)?;
    rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(failed)?;
    rustix::thread::set_thread_res_uid(uid, uid, uid).map_err(failed)?;
    // Setting all three uids away from 0 also emptied the capability sets; make sure the
    // switch is complete and cannot be undone before going on.
    if geteuid() != uid
        || getegid() != gid
        || rustix::thread::set_thread_res_uid(Uid::ROOT, Uid::ROOT, Uid::ROOT).is_ok()
    {
        return Err(failed(rustix::io::Errno::PERM));
    }
    tracing::debug!(
        uid = owner.uid,
        gid = owner.gid,
        "running as the owner of the state directory"
    );
    Ok(Identity::Dropped {
        uid: owner.uid,
        gid: owner.gid,
    })
}

/// The groups of `user` in the group database besides `gid` (`getgrouplist(3)`); none when
/// the user has no name or the database cannot be asked.
fn supplementary_groups(user: &str, gid: Gid) -> Vec<Gid> {
    let Ok(name) = std::ffi::CString::new(user) else {
        return Vec::new();
    };
    nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(gid.as_raw()))
        .map(|groups| {
            groups
                .into_iter()
                .map(|group| Gid::from_raw(group.as_raw()))
                .filter(|&group| group != gid)
                .collect()
        })
        .unwrap_or_default()
}

/// For `certkeeper run`: as root against another user's state directory, refuse.
///
/// # Errors
/// [`PrivilegeError::RootDaemon`] in that case; the other variants as
/// [`drop_to_state_owner`].
pub fn refuse_root_daemon(state_dir: &Path) -> Result<(), PrivilegeError> {
    if !geteuid().is_root() {
        return Ok(());
    }
    match foreign_owner(state_dir)? {
        None => Ok(()),
        Some(owner) => Err(PrivilegeError::RootDaemon {
            user: user_name(owner.uid),
            path: state_dir.to_owned(),
        }),
    }
}

/// Drop `CAP_NET_BIND_SERVICE` (the only capability the unit grants) from the effective,
/// permitted and inheritable sets once the listeners are bound: nothing later needs it, and a
/// process that cannot regain it cannot hand it on. A no-op when it is not held.
///
/// # Errors
/// [`PrivilegeError::Capability`] when the capability sets cannot be read or written.
pub fn drop_bind_capability() -> Result<(), PrivilegeError> {
    use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
    let mut sets = capabilities(None).map_err(|errno| PrivilegeError::Capability(errno.into()))?;
    let bind = CapabilitySet::NET_BIND_SERVICE;
    if !(sets.permitted | sets.effective | sets.inheritable).contains(bind) {
        return Ok(());
    }
    let threads = thread_count();
    if threads != 1 {
        // Only this thread would lose it; say so rather than pretend.
        tracing::warn!(
            threads,
            "dropping CAP_NET_BIND_SERVICE on the main thread only"
        );
    }
    sets.effective.remove(bind);
    sets.permitted.remove(bind);
    sets.inheritable.remove(bind);
    set_capabilities(None, sets).map_err(|errno| PrivilegeError::Capability(errno.into()))?;
    tracing::debug!("dropped CAP_NET_BIND_SERVICE: the listeners are bound");
    Ok(())
}

/// The owner of `state_dir` when it is not root; `None` when it is root's or does not exist
/// yet (root then creates it, as root's).
fn foreign_owner(state_dir: &Path) -> Result<Option<Owner>, PrivilegeError> {
    let stat = match lstat(state_dir) {
        Ok(stat) => stat,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(errno) => {
            return Err(PrivilegeError::Inspect {
                path: state_dir.to_owned(),
                source: errno.into(),
            });
        }
    };
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => {}
        FileType::Symlink => {
            return Err(PrivilegeError::StateDirSymlink {
                path: state_dir.to_owned(),
            });
        }
        _ => {
            return Err(PrivilegeError::StateDirNotDirectory {
                path: state_dir.to_owned(),
            });
        }
    }
    if stat.st_uid == 0 {
        return Ok(None);
    }
    Ok(Some(Owner {
        uid: stat.st_uid,
        gid: stat.st_gid,
    }))
}

/// The process's thread count, from `/proc/self/status` (0 when it cannot be read, which
/// refuses the drop).
fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Threads:"))
                .and_then(|count| count.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The user name for `uid` from `/etc/passwd`, for messages; the number when there is none.
fn user_name(uid: u32) -> String {
    let wanted = uid.to_string();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id = fields.nth(1)?;
                (id == wanted).then(|| name.to_owned())
            })
        })
        .unwrap_or(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_come_from_passwd_or_the_number() {
        assert_eq!(user_name(0), "root");
        assert_eq!(user_name(4_000_000_000), "4000000000");
    }

    #[test]
    fn a_missing_state_directory_has_no_foreign_owner() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            foreign_owner(&dir.path().join("absent")).expect("absent"),
            None
        );
    }

    #[test]
    fn a_symlinked_state_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("state");
        std::os::unix::fs::symlink(dir.path(), &link).expect("symlink");
        assert!(matches!(
            foreign_owner(&link),
            Err(PrivilegeError::StateDirSymlink { .. })
        ));
    }
}
