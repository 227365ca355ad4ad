//! An unprivileged attacker for the security tests: a system user made by the harness (the
//! tests run as root, as CI does), victim files owned by root outside the state directory, and
//! snapshots that show whether anything of root's was touched.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The attacker's account: what a compromised hook or the `certkeeper` user would be.
pub const ATTACKER: &str = "ck-attacker";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

impl User {
    /// `command` run as this user (std clears the supplementary groups when root sets a uid).
    pub fn command(self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.uid(self.uid).gid(self.gid);
        command
    }

    /// Give `path` (not following a link) to this user.
    pub fn chown(self, path: &Path) {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid)).unwrap();
    }

    /// Give `path` and everything below it to this user.
    pub fn chown_tree(self, path: &Path) {
        self.chown(path);
        if fs::symlink_metadata(path).unwrap().is_dir() {
            for entry in fs::read_dir(path).unwrap() {
                self.chown_tree(&entry.unwrap().path());
            }
        }
    }
}

/// The attacker user, created on first use.
pub fn attacker() -> User {
    static CREATE: Mutex<()> = Mutex::new(());
    assert!(
        rustix::process::geteuid().is_root(),
        "the security tests run as root (as CI does): they create the unprivileged user {ATTACKER} \
         and check that root's certkeeper cannot be steered by it; run them with sudo"
    );
    let _guard = CREATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if id(&["-u", ATTACKER]).is_none() {
        let status = Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home"])
            .args(["--shell", "/usr/sbin/nologin", ATTACKER])
            .status()
            .expect("useradd (package passwd) is needed to create the attacker user");
        // Another test binary may have created it in the meantime.
        assert!(
            status.success() || id(&["-u", ATTACKER]).is_some(),
            "useradd {ATTACKER} failed"
        );
    }
    User {
        uid: id(&["-u", ATTACKER]).unwrap(),
        gid: id(&["-g", ATTACKER]).unwrap(),
    }
}

fn id(args: &[&str]) -> Option<u32> {
    let output = Command::new("id").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

/// Root's files outside the state directory that an attacker would like root to overwrite,
/// chmod, chown or create.
pub struct Victims {
    /// A root-owned directory (`0755`) holding `root-file` (`0600`) and `lib/` with files.
    pub dir: PathBuf,
    pub file: PathBuf,
    /// Where a dangling link points: nothing must ever be created there.
    pub absent: PathBuf,
}

impl Victims {
    pub fn new(parent: &Path) -> Self {
        let dir = parent.join("victim");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.join("root-file");
        fs::write(&file, "precious root data\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let lib = dir.join("lib");
        fs::create_dir(&lib).unwrap();
        for index in 0..20 {
            fs::write(
                lib.join(format!("lib{index}.so")),
                format!("library {index}\n"),
            )
            .unwrap();
        }
        Self {
            absent: dir.join("created-by-root"),
            dir,
            file,
        }
    }

    /// Mode, owner and content of everything under the victim directory.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut found = BTreeMap::new();
        walk(&self.dir, &mut found);
        found
    }
}

fn walk(path: &Path, found: &mut BTreeMap<PathBuf, String>) {
    let meta = fs::symlink_metadata(path).unwrap();
    let content = if meta.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            walk(&entry.unwrap().path(), found);
        }
        "directory".to_owned()
    } else if meta.file_type().is_symlink() {
        format!("-> {}", fs::read_link(path).unwrap().display())
    } else {
        fs::read_to_string(path).unwrap_or_else(|_| "binary".to_owned())
    };
    found.insert(
        path.to_owned(),
        format!(
            "{:o} {}:{} {content}",
            meta.mode() & 0o7777,
            meta.uid(),
            meta.gid()
        ),
    );
}

/// Owner uid of `path`, not following a link.
pub fn owner(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().uid()
}

/// Every path under `root` (itself included) whose owner is not `uid`.
pub fn not_owned_by(root: &Path, uid: u32) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.uid() != uid {
            found.push(path.clone());
        }
        if meta.is_dir() {
            for entry in fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        }
    }
    found
}

/// Let other users traverse `dir` (a test's private temporary directory), so the attacker
/// can reach what it owns inside.
pub fn open_to_others(dir: &Path) {
    let mode = fs::metadata(dir).unwrap().mode() & 0o7777;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o055)).unwrap();
}
