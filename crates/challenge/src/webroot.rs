//! The webroot HTTP-01 solver: key authorizations as files that a web server already serves.
//!
//! Where port 80 belongs to a web server, certkeeper can answer HTTP-01 through it, the way
//! `certbot --webroot` does: [`Webroot`] writes the key authorization to
//! `DIR/.well-known/acme-challenge/TOKEN` under the directory `DIR` the web server serves for
//! the name, and removes it when the order is done. The other way through a web server is the
//! *proxy setup*: the web server passes `/.well-known/acme-challenge/` to certkeeper's own
//! listener ([`NGINX_PROXY_LOCATION`]), which needs no write access to anything.
//!
//! # Nothing outside the web root
//!
//! A web root is usually writable by people and programs less trusted than certkeeper (a
//! site's deploy user, the application itself). Whoever can write there can plant a symlink,
//! and a solver that writes by path follows it: `.well-known -> /etc` would have certkeeper
//! create `/etc/acme-challenge/TOKEN`, and `acme-challenge/TOKEN -> /etc/passwd` would have
//! it replace or remove a file of the system. So:
//!
//! * `DIR` itself is the administrator's configuration and is resolved as given (symlinks
//!   and all), once per set of answers in flight (see below); it must be a directory;
//! * `.well-known`, `acme-challenge` and the token file are reached from `DIR`'s descriptor
//!   one component at a time with the `*at` system calls, directories opened with
//!   `O_NOFOLLOW | O_DIRECTORY`, so no component is ever resolved through a symlink (the
//!   store's way, `crates/store/src/nofollow.rs`; `openat2`'s `RESOLVE_BENEATH` would add
//!   nothing to a walk that never resolves more than one name at a time);
//! * a symlink or an entry of the wrong type where one of them belongs is refused with
//!   [`WebrootError::Symlink`] or [`WebrootError::WrongType`] naming the path, and left where
//!   it is for the administrator to see;
//! * the token is checked before anything touches the disk ([`TokenProblem`]): base64url
//!   only, as RFC 8555 section 8.1 defines tokens, so a CA cannot hand over `../x` as a file
//!   name.
//!
//! # Files a web server never sees half-written
//!
//! The key authorization is written to a temporary file in `acme-challenge` (a name starting
//! with `.`, which no token can) created with `O_EXCL | O_NOFOLLOW`, set to mode 0644 with
//! `fchmod` (so the umask cannot make it unreadable for the web server's user), and renamed
//! over `TOKEN`: a request sees no file or the whole file. It is not fsynced: after a crash
//! the order is presented again, so a token file is worth nothing on the next boot. Cleanup
//! removes `TOKEN` only while it is a regular file; whatever else stands there was not put
//! there by certkeeper.
//!
//! # Directories certkeeper made, and only those, are removed
//!
//! `.well-known` and `acme-challenge` are created when missing, with mode 0755, and removed
//! on cleanup only when certkeeper created them, when they are empty, and when the name
//! still is the directory it created (same device and inode). A `.well-known` the site
//! already had (with its `security.txt`, say) is never touched.
//!
//! Several orders may share one web root at once (a certificate per site, all served from
//! `/var/www/html`), and one order's cleanup must not remove `acme-challenge` while another's
//! answer is still in it. Answers in flight are therefore counted per web root directory, in
//! one process-wide table keyed by the directory's device and inode rather than in each
//! [`Webroot`]: the count stays right however many `Webroot`s the engine builds for the
//! directory, and under whichever paths. The table holds the web root's descriptor while
//! answers are in flight and lets it go with the last one, so every answer is removed from
//! the directory it was written to, and the next order follows a web root that a deploy has
//! swapped in the meantime (a `current -> releases/N` symlink). Each step is a handful of
//! system calls on a local directory, done within the call under the table's lock, like the
//! embedded responder's; cleanup in particular finishes before its future is polled, as the
//! order code's `Drop` needs.
//!
//! `ready` resolves at once: a file in the web root is served from the moment it is renamed
//! into place. Fetching it back through the web server first would need the server's address,
//! which the solver does not know (a name may be served from a load balancer certkeeper cannot
//! reach), and a misconfigured server is reported by the CA anyway, naming what it fetched.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use certkeeper_core::SolverError;
use certkeeper_core::{ChallengeAnswer, ChallengeKind, ChallengeSolver, SolverFuture, SolverStep};
use rustix::fs::{
    AtFlags, CWD, FileType, Mode, OFlags, Stat, fchmod, fstat, mkdirat, openat, readlinkat,
    renameat, statat, unlinkat,
};
use rustix::io::Errno;

/// The directory under the web root that RFC 8615 reserves for well-known URIs.
pub const WELL_KNOWN: &str = ".well-known";

/// The directory under [`WELL_KNOWN`] that RFC 8555 section 8.3 fixes for HTTP-01.
pub const ACME_CHALLENGE: &str = "acme-challenge";

/// The longest token written as a file name. CAs send 43 characters (256 bits, base64url);
/// the bound only keeps the name and its temporary sibling within `NAME_MAX` (255 bytes).
pub const MAX_TOKEN_LEN: usize = 200;

/// The *proxy setup* for nginx: the `location` block that passes HTTP-01 validations to
/// certkeeper's own listener, here on `[http01] listen = ["127.0.0.1:8080"]`. It goes into
/// the `server` block that answers the names on port 80; certkeeper then needs no write
/// access to the web root. The end-to-end test runs it in front of a real Pebble, with the
/// address replaced by the test listener's.
pub const NGINX_PROXY_LOCATION: &str = "\
location /.well-known/acme-challenge/ {
    proxy_pass http://127.0.0.1:8080;
}
";

const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;

/// How a directory under the web root is opened: never through a symlink, never inherited.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// How the temporary file is created: new, never through a symlink.
const TEMP_FLAGS: OFlags = OFlags::WRONLY
    .union(OFlags::CREATE)
    .union(OFlags::EXCL)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// The HTTP-01 solver for one web root directory.
///
/// Cheap to clone and to build again: what answers are in flight is kept per directory,
/// process-wide (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Webroot {
    root: PathBuf,
}

impl Webroot {
    /// The solver for the web root `root`, an absolute path to a directory (symlinks in it
    /// are followed: it is the administrator's configuration). It is checked now and
    /// resolved again when answers are next presented.
    ///
    /// # Errors
    /// [`WebrootError::RootNotAbsolute`], [`WebrootError::RootMissing`],
    /// [`WebrootError::RootNotADirectory`], [`WebrootError::RootNotAccessible`].
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, WebrootError> {
        let root = root.into();
        if !root.is_absolute() {
            return Err(WebrootError::RootNotAbsolute { path: root });
        }
        open_root(&root)?;
        Ok(Self { root })
    }

    /// The web root as configured.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the key authorization for `token` is written.
    #[must_use]
    pub fn token_path(&self, token: &str) -> PathBuf {
        self.root.join(WELL_KNOWN).join(ACME_CHALLENGE).join(token)
    }

    /// Write `key_authorization` to `.well-known/acme-challenge/<token>` under the web root,
    /// creating the directories as needed. Publishing a token again rewrites the file.
    ///
    /// # Errors
    /// An invalid token (nothing is touched), a web root that is gone or not writable, a
    /// symlink or an entry of the wrong type on the way. What this call created is removed
    /// again before it returns an error.
    pub fn publish(&self, token: &str, key_authorization: &str) -> Result<(), WebrootError> {
        check_token(token)?;
        registry().publish(&self.root, token, key_authorization.as_bytes())?;
        tracing::debug!(web_root = %self.root.display(), token, "published HTTP-01 token in web root");
        Ok(())
    }

    /// Remove the token file written by [`Webroot::publish`], and the directories it created
    /// once no other answer in flight uses them. Nothing happens for a token that is not
    /// published (retracting twice is harmless).
    ///
    /// # Errors
    /// What could not be removed; the token is forgotten all the same, so a retry does
    /// nothing.
    pub fn retract(&self, token: &str) -> Result<(), WebrootError> {
        check_token(token)?;
        registry().retract(&self.root, token)?;
        tracing::debug!(web_root = %self.root.display(), token, "retracted HTTP-01 token from web root");
        Ok(())
    }
}

/// The webroot answers `http-01`; every step completes within the call.
impl ChallengeSolver for Webroot {
    fn kind(&self) -> ChallengeKind {
        ChallengeKind::Http01
    }

    fn present<'a>(&'a self, answer: &'a ChallengeAnswer) -> SolverFuture<'a> {
        let presented = match answer {
            ChallengeAnswer::Http01 {
                token,
                key_authorization,
                ..
            } => self
                .publish(token, key_authorization)
                .map_err(|err| SolverError::failed(SolverStep::Present, answer, err)),
            other => Err(super::wrong_kind(other)),
        };
        Box::pin(std::future::ready(presented))
    }

    fn ready<'a>(&'a self, answer: &'a ChallengeAnswer) -> SolverFuture<'a> {
        let ready = match answer {
            ChallengeAnswer::Http01 { .. } => Ok(()),
            other => Err(super::wrong_kind(other)),
        };
        Box::pin(std::future::ready(ready))
    }

    fn cleanup(&self, answer: &ChallengeAnswer) -> SolverFuture<'static> {
        let cleaned = match answer {
            ChallengeAnswer::Http01 { token, .. } => self
                .retract(token)
                .map_err(|err| SolverError::failed(SolverStep::Cleanup, answer, err)),
            other => Err(super::wrong_kind(other)),
        };
        Box::pin(std::future::ready(cleaned))
    }
}

/// Why the webroot solver could not publish or retract a token. Each message says what to
/// change; the system's own error, when there is one, is the `source`.
#[derive(Debug, thiserror::Error)]
pub enum WebrootError {
    /// The CA sent a token that cannot be a file name; nothing was written.
    #[error(
        "refusing the HTTP-01 token {token:?}: {problem}; tokens are base64url \
         (A-Z a-z 0-9 - _), so the CA sent something no file may be named after"
    )]
    InvalidToken {
        /// At most the first 64 characters of it.
        token: String,
        problem: TokenProblem,
    },
    #[error("web root {} is not an absolute path: configure the full path", .path.display())]
    RootNotAbsolute { path: PathBuf },
    #[error(
        "web root {} does not exist: create it, or configure the directory the web server \
         serves for this name",
        .path.display()
    )]
    RootMissing { path: PathBuf },
    #[error(
        "web root {} is not a directory: configure the directory the web server serves for \
         this name",
        .path.display()
    )]
    RootNotADirectory { path: PathBuf },
    #[error(
        "web root {} cannot be opened by the certkeeper user: give it search access to the \
         web root and every directory above it, or use the proxy setup",
        .path.display()
    )]
    RootNotAccessible {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A symlink where certkeeper needs a directory or its own file; left in place.
    #[error(
        "{} is a symlink{}, and certkeeper follows no symlink inside a web root: remove it \
         (a real directory in its place is fine), or use the proxy setup",
        .path.display(),
        LinkTarget(.target.as_deref())
    )]
    Symlink {
        path: PathBuf,
        /// Where it points, as stored (never resolved), when it could be read.
        target: Option<PathBuf>,
    },
    /// Something other than what certkeeper needs there; left in place.
    #[error(
        "{} is {found} where certkeeper needs {expected}: move it out of the way, or use the \
         proxy setup",
        .path.display()
    )]
    WrongType {
        path: PathBuf,
        expected: EntryKind,
        found: EntryKind,
    },
    /// Permission denied (or a read-only file system) writing under the web root.
    #[error(
        "web root {} is not writable by the certkeeper user (cannot {action} {}): give it \
         write access to {}/{WELL_KNOWN}/{ACME_CHALLENGE} (creating it if missing), or use \
         the proxy setup",
        .root.display(),
        .path.display(),
        .root.display()
    )]
    NotWritable {
        root: PathBuf,
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot {action} {}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Renders ` (to TARGET)` for a symlink whose target could be read.
struct LinkTarget<'a>(Option<&'a Path>);

impl fmt::Display for LinkTarget<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(target) => write!(f, " (to {})", target.display()),
            None => Ok(()),
        }
    }
}

/// What is wrong with a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenProblem {
    #[error("it is empty")]
    Empty,
    #[error("it is {len} bytes long, more than {MAX_TOKEN_LEN}")]
    TooLong { len: usize },
    #[error("it contains {character:?}")]
    Forbidden { character: char },
}

/// What an entry under the web root is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    RegularFile,
    Symlink,
    /// A FIFO, socket or device.
    Special,
}

impl EntryKind {
    fn of(stat: &Stat) -> Self {
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => Self::Directory,
            FileType::RegularFile => Self::RegularFile,
            FileType::Symlink => Self::Symlink,
            _ => Self::Special,
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Directory => "a directory",
            Self::RegularFile => "a regular file",
            Self::Symlink => "a symlink",
            Self::Special => "a special file",
        })
    }
}

/// Refuse a token that is not a non-empty, bounded base64url string.
fn check_token(token: &str) -> Result<(), WebrootError> {
    let problem = if token.is_empty() {
        Some(TokenProblem::Empty)
    } else if let Some(character) = token
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        Some(TokenProblem::Forbidden { character })
    } else if token.len() > MAX_TOKEN_LEN {
        Some(TokenProblem::TooLong { len: token.len() })
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(WebrootError::InvalidToken {
            token: token.chars().take(64).collect(),
            problem,
        }),
    }
}

/// A directory's identity: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct DirId {
    dev: u64,
    ino: u64,
}

impl DirId {
    fn of(stat: &Stat) -> Self {
        Self {
            dev: stat.st_dev,
            ino: stat.st_ino,
        }
    }
}

/// One answer in flight: the web root as its solver was configured, and the token.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Answer {
    web_root: PathBuf,
    token: String,
}

/// The web root directories with answers in flight, by identity.
#[derive(Debug)]
struct Registry {
    trees: BTreeMap<DirId, Tree>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    trees: BTreeMap::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    // A panic under the lock (there is none to expect) would at worst leave a count one too
    // high, which keeps a directory rather than removing one in use: safe to carry on.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    fn publish(
        &mut self,
        web_root: &Path,
        token: &str,
        content: &[u8],
    ) -> Result<(), WebrootError> {
        let answer = Answer {
            web_root: web_root.to_owned(),
            token: token.to_owned(),
        };
        if let Some(tree) = self
            .trees
            .values_mut()
            .find(|tree| tree.answers.contains(&answer))
        {
            // Published before and not retracted: its hold stays until cleanup.
            return tree.write_token(token, content);
        }
        let (root, id) = open_root(web_root)?;
        let tree = self.trees.entry(id).or_insert_with(|| Tree {
            root: Dir {
                fd: root,
                path: web_root.to_owned(),
            },
            created_well_known: None,
            created_challenge: None,
            answers: BTreeSet::new(),
        });
        tree.answers.insert(answer.clone());
        let written = tree.write_token(token, content);
        if written.is_err() {
            // Undo at once rather than wait for cleanup: directories created for this answer
            // go, and a later cleanup of it finds nothing to do. An error undoing is less
            // useful than the one that made us undo.
            let _ = self.retract_answer(&answer);
        }
        written
    }

    fn retract(&mut self, web_root: &Path, token: &str) -> Result<(), WebrootError> {
        self.retract_answer(&Answer {
            web_root: web_root.to_owned(),
            token: token.to_owned(),
        })
    }

    fn retract_answer(&mut self, answer: &Answer) -> Result<(), WebrootError> {
        let Some((&id, tree)) = self
            .trees
            .iter_mut()
            .find(|(_, tree)| tree.answers.contains(answer))
        else {
            return Ok(());
        };
        tree.answers.remove(answer);
        let mut result = Ok(());
        // The same token through another path to this directory still needs the file.
        if !tree.answers.iter().any(|other| other.token == answer.token) {
            result = tree.remove_token(&answer.token);
        }
        if tree.answers.is_empty()
            && let Some(tree) = self.trees.remove(&id)
        {
            result = result.and(tree.remove_created_dirs());
        }
        result
    }
}

/// An open directory and the path it was reached by (for messages only).
#[derive(Debug)]
struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// A web root with answers in flight.
#[derive(Debug)]
struct Tree {
    /// The web root as resolved when its first answer in flight was published.
    root: Dir,
    /// `.well-known`, when certkeeper created it for the answers in flight.
    created_well_known: Option<DirId>,
    /// `.well-known/acme-challenge`, when certkeeper created it for the answers in flight.
    created_challenge: Option<DirId>,
    answers: BTreeSet<Answer>,
}

impl Tree {
    /// `acme-challenge`, reached without following a symlink and created where missing.
    fn challenge_dir(&mut self) -> Result<Dir, WebrootError> {
        let root_path = self.root.path.clone();
        let well_known = open_or_create(
            &self.root,
            WELL_KNOWN,
            &root_path,
            &mut self.created_well_known,
        )?;
        open_or_create(
            &well_known,
            ACME_CHALLENGE,
            &root_path,
            &mut self.created_challenge,
        )
    }

    /// `acme-challenge` when it is there, never created.
    fn existing_challenge_dir(&self) -> Result<Option<Dir>, WebrootError> {
        let Some(well_known) = open_dir(&self.root, WELL_KNOWN, &self.root.path)? else {
            return Ok(None);
        };
        open_dir(&well_known, ACME_CHALLENGE, &self.root.path)
    }

    /// Write `content` to `acme-challenge/<token>` through a temporary file and a rename.
    fn write_token(&mut self, token: &str, content: &[u8]) -> Result<(), WebrootError> {
        let dir = self.challenge_dir()?;
        let path = dir.path.join(token);
        // Replacing a regular file is fine (a leftover of a crash); a rename would replace a
        // symlink as a link too, but one planted there is reported rather than removed.
        match statat(&dir.fd, token, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if EntryKind::of(&stat) == EntryKind::RegularFile => {}
            Ok(stat) => {
                return Err(refuse(
                    &dir,
                    token,
                    EntryKind::of(&stat),
                    EntryKind::RegularFile,
                ));
            }
            Err(Errno::NOENT) => {}
            Err(errno) => return Err(io_error("inspect", path, errno)),
        }
        // Tokens never start with `.`, so this cannot be another answer's file. A leftover
        // of a crash is removed first; under the registry's lock nobody else writes it.
        let temp = format!(".{token}.certkeeper-tmp");
        let temp_path = dir.path.join(&temp);
        let _ = unlinkat(&dir.fd, temp.as_str(), AtFlags::empty());
        let fd = openat(
            &dir.fd,
            temp.as_str(),
            TEMP_FLAGS,
            Mode::from_raw_mode(FILE_MODE),
        )
        .map_err(|errno| write_error(&self.root.path, "create", temp_path.clone(), errno))?;
        let written = fchmod(&fd, Mode::from_raw_mode(FILE_MODE))
            .map_err(|errno| io_error("set the mode of", temp_path.clone(), errno))
            .and_then(|()| {
                File::from(fd)
                    .write_all(content)
                    .map_err(|source| WebrootError::Io {
                        action: "write",
                        path: temp_path.clone(),
                        source,
                    })
            })
            .and_then(|()| {
                renameat(&dir.fd, temp.as_str(), &dir.fd, token)
                    .map_err(|errno| write_error(&self.root.path, "create", path, errno))
            });
        if written.is_err() {
            let _ = unlinkat(&dir.fd, temp.as_str(), AtFlags::empty());
        }
        written
    }

    /// Remove `acme-challenge/<token>` if it is a regular file.
    fn remove_token(&self, token: &str) -> Result<(), WebrootError> {
        let Some(dir) = self.existing_challenge_dir()? else {
            return Ok(());
        };
        let path = dir.path.join(token);
        match statat(&dir.fd, token, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if EntryKind::of(&stat) == EntryKind::RegularFile => {}
            // Not the file certkeeper wrote: someone replaced it; leave it to them.
            Ok(_) | Err(Errno::NOENT) => return Ok(()),
            Err(errno) => return Err(io_error("inspect", path, errno)),
        }
        match unlinkat(&dir.fd, token, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(errno) => Err(write_error(&self.root.path, "remove", path, errno)),
        }
    }

    /// Remove the directories certkeeper created, deepest first, if they are still the
    /// ones it created and are empty.
    fn remove_created_dirs(self) -> Result<(), WebrootError> {
        if let Some(created) = self.created_challenge
            && let Some(well_known) = open_dir(&self.root, WELL_KNOWN, &self.root.path)?
        {
            remove_dir_if(&well_known, ACME_CHALLENGE, created, &self.root.path)?;
        }
        if let Some(created) = self.created_well_known {
            remove_dir_if(&self.root, WELL_KNOWN, created, &self.root.path)?;
        }
        Ok(())
    }
}

/// Open the web root `path`, following symlinks (it is configuration); its identity too.
fn open_root(path: &Path) -> Result<(OwnedFd, DirId), WebrootError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = openat(CWD, path, flags, Mode::empty()).map_err(|errno| match errno {
        Errno::NOENT => WebrootError::RootMissing {
            path: path.to_owned(),
        },
        Errno::NOTDIR => WebrootError::RootNotADirectory {
            path: path.to_owned(),
        },
        Errno::ACCESS | Errno::PERM => WebrootError::RootNotAccessible {
            path: path.to_owned(),
            source: errno.into(),
        },
        _ => io_error("open web root", path.to_owned(), errno),
    })?;
    let stat = fstat(&fd).map_err(|errno| io_error("inspect", path.to_owned(), errno))?;
    Ok((fd, DirId::of(&stat)))
}

/// Open the directory `name` in `parent` without following a symlink; `None` when missing.
fn open_dir(parent: &Dir, name: &str, root: &Path) -> Result<Option<Dir>, WebrootError> {
    match openat(&parent.fd, name, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => Ok(Some(Dir {
            fd,
            path: parent.path.join(name),
        })),
        Err(Errno::NOENT) => Ok(None),
        Err(errno) => Err(open_failed(parent, name, errno, root)),
    }
}

/// Open the directory `name` in `parent`, creating it with mode 0755 when missing and then
/// recording its identity in `created`.
fn open_or_create(
    parent: &Dir,
    name: &str,
    root: &Path,
    created: &mut Option<DirId>,
) -> Result<Dir, WebrootError> {
    let path = parent.path.join(name);
    let made = match mkdirat(&parent.fd, name, Mode::from_raw_mode(DIR_MODE)) {
        Ok(()) => true,
        Err(Errno::EXIST) => false,
        Err(errno) => return Err(write_error(root, "create", path, errno)),
    };
    let fd = openat(&parent.fd, name, DIR_FLAGS, Mode::empty())
        .map_err(|errno| open_failed(parent, name, errno, root))?;
    if made {
        let stat = fstat(&fd).map_err(|errno| io_error("inspect", path.clone(), errno))?;
        *created = Some(DirId::of(&stat));
        // The umask may have narrowed the mode, and the web server's user must get in.
        fchmod(&fd, Mode::from_raw_mode(DIR_MODE))
            .map_err(|errno| io_error("set the mode of", path.clone(), errno))?;
    }
    Ok(Dir { fd, path })
}

/// Remove the directory `name` in `parent` if it is the one `created` names and is empty.
fn remove_dir_if(
    parent: &Dir,
    name: &str,
    created: DirId,
    root: &Path,
) -> Result<(), WebrootError> {
    let path = parent.path.join(name);
    match statat(&parent.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if EntryKind::of(&stat) == EntryKind::Directory && DirId::of(&stat) == created => {
        }
        // Gone, or replaced by something certkeeper did not make.
        Ok(_) | Err(Errno::NOENT) => return Ok(()),
        Err(errno) => return Err(io_error("inspect", path, errno)),
    }
    match unlinkat(&parent.fd, name, AtFlags::REMOVEDIR) {
        // Not empty: someone else put something there since, and keeps it.
        Ok(()) | Err(Errno::NOENT | Errno::NOTEMPTY | Errno::EXIST) => Ok(()),
        Err(errno) => Err(write_error(root, "remove", path, errno)),
    }
}

/// The error for a failed `openat` of the directory `name` in `parent`: a symlink or an
/// entry of another type is refused by name, the rest are I/O errors.
fn open_failed(parent: &Dir, name: &str, errno: Errno, root: &Path) -> WebrootError {
    // ELOOP: O_NOFOLLOW met a symlink; ENOTDIR: not a directory.
    if matches!(errno, Errno::LOOP | Errno::NOTDIR)
        && let Ok(stat) = statat(&parent.fd, name, AtFlags::SYMLINK_NOFOLLOW)
    {
        let found = EntryKind::of(&stat);
        if found != EntryKind::Directory {
            return refuse(parent, name, found, EntryKind::Directory);
        }
    }
    write_error(root, "open", parent.path.join(name), errno)
}

/// The refusal of `name` in `dir`, found to be `found` where `expected` was needed.
fn refuse(dir: &Dir, name: &str, found: EntryKind, expected: EntryKind) -> WebrootError {
    let path = dir.path.join(name);
    if found == EntryKind::Symlink {
        let target = readlinkat(&dir.fd, name, Vec::new())
            .ok()
            .map(|target| PathBuf::from(std::ffi::OsString::from_vec(target.into_bytes())));
        WebrootError::Symlink { path, target }
    } else {
        WebrootError::WrongType {
            path,
            expected,
            found,
        }
    }
}

/// A failed write under the web root `root`: a permission problem says whom to give access.
fn write_error(root: &Path, action: &'static str, path: PathBuf, errno: Errno) -> WebrootError {
    match errno {
        Errno::ACCESS | Errno::PERM | Errno::ROFS => WebrootError::NotWritable {
            root: root.to_owned(),
            action,
            path,
            source: errno.into(),
        },
        _ => io_error(action, path, errno),
    }
}

fn io_error(action: &'static str, path: PathBuf, errno: Errno) -> WebrootError {
    WebrootError::Io {
        action,
        path,
        source: errno.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink};

    use super::*;

    /// A web root in a fresh tempdir, and a sibling directory outside it (where planted
    /// symlinks point).
    struct Site {
        _dir: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    fn site() -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("html");
        let outside = dir.path().join("etc");
        fs::create_dir(&root).expect("web root");
        fs::create_dir(&outside).expect("outside");
        Site {
            _dir: dir,
            root,
            outside,
        }
    }

    fn http01(token: &str) -> ChallengeAnswer {
        ChallengeAnswer::Http01 {
            domain: "www.example.org".to_owned(),
            token: token.to_owned(),
            key_authorization: format!("{token}.thumbprint"),
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).expect("metadata").mode() & 0o7777
    }

    /// Every entry under `dir`, relative, sorted, directories with a trailing `/`.
    fn tree(dir: &Path) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, into: &mut Vec<String>) {
            for entry in fs::read_dir(dir).expect("read dir") {
                let path = entry.expect("entry").path();
                let name = path
                    .strip_prefix(base)
                    .expect("under base")
                    .display()
                    .to_string();
                if fs::symlink_metadata(&path).expect("metadata").is_dir() {
                    into.push(format!("{name}/"));
                    walk(base, &path, into);
                } else {
                    into.push(name);
                }
            }
        }
        let mut entries = Vec::new();
        walk(dir, dir, &mut entries);
        entries.sort();
        entries
    }

    fn webroot_error(err: &SolverError) -> &WebrootError {
        let SolverError::Failed { source, .. } = err else {
            panic!("a solver failure: {err:?}");
        };
        source
            .downcast_ref::<WebrootError>()
            .unwrap_or_else(|| panic!("a WebrootError: {source:?}"))
    }

    #[test]
    fn tokens_are_base64url_nonempty_and_bounded() {
        let longest = "a".repeat(MAX_TOKEN_LEN);
        for good in [
            "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA",
            "A",
            "-_",
            longest.as_str(),
        ] {
            assert!(check_token(good).is_ok(), "{good:?}");
        }
        let too_long = "a".repeat(MAX_TOKEN_LEN + 1);
        for (bad, problem) in [
            ("", TokenProblem::Empty),
            (
                too_long.as_str(),
                TokenProblem::TooLong {
                    len: MAX_TOKEN_LEN + 1,
                },
            ),
            ("..", TokenProblem::Forbidden { character: '.' }),
            ("../etc/passwd", TokenProblem::Forbidden { character: '.' }),
            ("a/b", TokenProblem::Forbidden { character: '/' }),
            (".hidden", TokenProblem::Forbidden { character: '.' }),
            ("tok=", TokenProblem::Forbidden { character: '=' }),
            ("tok+en", TokenProblem::Forbidden { character: '+' }),
            ("a b", TokenProblem::Forbidden { character: ' ' }),
            ("a\0b", TokenProblem::Forbidden { character: '\0' }),
            ("tökén", TokenProblem::Forbidden { character: 'ö' }),
        ] {
            match check_token(bad) {
                Err(WebrootError::InvalidToken { problem: found, .. }) => {
                    assert_eq!(found, problem, "{bad:?}");
                }
                other => panic!("{bad:?} accepted: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn an_invalid_token_touches_nothing() {
        let site = site();
        let webroot = Webroot::new(&site.root).expect("web root");
        let answer = http01("../../etc/passwd");
        let err = webroot.present(&answer).await.expect_err("refused");
        assert!(
            matches!(
                webroot_error(&err),
                WebrootError::InvalidToken {
                    problem: TokenProblem::Forbidden { character: '.' },
                    ..
                }
            ),
            "{err:?}"
        );
        webroot.cleanup(&answer).await.expect_err("refused too");
        assert!(tree(&site.root).is_empty(), "{:?}", tree(&site.root));
        assert!(tree(&site.outside).is_empty());
    }

    #[tokio::test]
    async fn present_writes_the_key_authorization_with_fixed_modes_and_cleanup_removes_what_it_created()
     {
        let site = site();
        let webroot = Webroot::new(&site.root).expect("web root");
        let answer = http01("tok-modes");
        // A umask that would leave the web server's user out: the modes must not depend on it.
        let previous = rustix::process::umask(Mode::from_raw_mode(0o077));
        let presented = webroot.present(&answer).await;
        rustix::process::umask(previous);
        presented.expect("present");
        webroot.ready(&answer).await.expect("ready");

        let file = webroot.token_path("tok-modes");
        assert_eq!(file, site.root.join(".well-known/acme-challenge/tok-modes"));
        assert_eq!(
            fs::read_to_string(&file).expect("token file"),
            "tok-modes.thumbprint"
        );
        assert_eq!(mode(&file), 0o644);
        assert_eq!(mode(&site.root.join(".well-known")), 0o755);
        assert_eq!(mode(&site.root.join(".well-known/acme-challenge")), 0o755);
        assert_eq!(
            tree(&site.root),
            [
                ".well-known/",
                ".well-known/acme-challenge/",
                ".well-known/acme-challenge/tok-modes"
            ],
            "no temporary file is left"
        );

        let cleanup = webroot.cleanup(&answer);
        assert!(
            tree(&site.root).is_empty(),
            "removed within the call, before the future is polled: {:?}",
            tree(&site.root)
        );
        cleanup.await.expect("cleanup");
        // Twice is harmless: the order code may clean up again after a drop.
        webroot.cleanup(&answer).await.expect("second cleanup");
        assert!(tree(&site.root).is_empty());
    }

    #[tokio::test]
    async fn directories_that_were_there_are_kept_with_their_modes_and_contents() {
        let site = site();
        let challenge = site.root.join(".well-known/acme-challenge");
        fs::create_dir_all(&challenge).expect("dirs");
        fs::set_permissions(&challenge, fs::Permissions::from_mode(0o770)).expect("chmod");
        fs::write(site.root.join(".well-known/security.txt"), "Contact: x").expect("file");
        fs::write(challenge.join("someone-elses"), "theirs").expect("file");
        let webroot = Webroot::new(&site.root).expect("web root");
        let answer = http01("tok-kept");

        webroot.present(&answer).await.expect("present");
        assert_eq!(mode(&challenge.join("tok-kept")), 0o644);
        webroot.cleanup(&answer).await.expect("cleanup");

        assert_eq!(
            tree(&site.root),
            [
                ".well-known/",
                ".well-known/acme-challenge/",
                ".well-known/acme-challenge/someone-elses",
                ".well-known/security.txt"
            ]
        );
        assert_eq!(
            mode(&challenge),
            0o770,
            "an existing directory's mode is its own"
        );
    }

    #[tokio::test]
    async fn an_existing_well_known_is_kept_and_the_created_acme_challenge_removed() {
        let site = site();
        fs::create_dir(site.root.join(".well-known")).expect("dir");
        fs::write(site.root.join(".well-known/security.txt"), "Contact: x").expect("file");
        let webroot = Webroot::new(&site.root).expect("web root");
        let answer = http01("tok-half");

        webroot.present(&answer).await.expect("present");
        webroot.cleanup(&answer).await.expect("cleanup");

        assert_eq!(
            tree(&site.root),
            [".well-known/", ".well-known/security.txt"]
        );
    }

    #[tokio::test]
    async fn a_created_directory_someone_else_filled_meanwhile_is_kept() {
        let site = site();
        let webroot = Webroot::new(&site.root).expect("web root");
        let answer = http01("tok-filled");
        webroot.present(&answer).await.expect("present");
        fs::write(site.root.join(".well-known/acme-challenge/manual"), "x").expect("file");

        webroot.cleanup(&answer).await.expect("cleanup");

        assert_eq!(
            tree(&site.root),
            [
                ".well-known/",
                ".well-known/acme-challenge/",
                ".well-known/acme-challenge/manual"
            ]
        );
    }

    #[tokio::test]
    async fn two_answers_share_the_directories_until_the_last_is_cleaned_up() {
        let site = site();
        let webroot = Webroot::new(&site.root).expect("web root");
        // The same directory through another path and another solver: the count is the
        // directory's, not the solver's.
        let alias = site.root.with_file_name("alias");
        symlink(&site.root, &alias).expect("alias");
        let other = Webroot::new(&alias).expect("aliased web root");
        let (first, second) = (http01("tok-first"), http01("tok-second"));

        webroot.present(&first).await.expect("present first");
        other.present(&second).await.expect("present second");
        webroot.cleanup(&first).await.expect("cleanup first");

        assert_eq!(
            tree(&site.root),
            [
                ".well-known/",
                ".well-known/acme-challenge/",
                ".well-known/acme-challenge/tok-second"
            ],
            "the second answer is still in flight"
        );
        other.cleanup(&second).await.expect("cleanup second");
        assert!(tree(&site.root).is_empty(), "{:?}", tree(&site.root));
    }

    /// Orders on many threads at once, each checking its own file is there until it cleans
    /// up: no cleanup removes a directory another answer is using.
    #[test]
    fn concurrent_answers_never_lose_their_directory() {
        let site = site();
        let webroot = Webroot::new(&site.root).expect("web root");
        std::thread::scope(|scope| {
            for thread in 0..8 {
                let webroot = &webroot;
                scope.spawn(move || {
                    for round in 0..50 {
                        let token = format!("tok-{thread}-{round}");
                        webroot.publish(&token, "content").expect("publish");
                        assert_eq!(
                            fs::read_to_string(webroot.token_path(&token)).expect("still there"),
                            "content"
                        );
                        webroot.retract(&token).expect("retract");
                        assert!(!webroot.token_path(&token).exists());
                    }
                });
            }
        });
        assert!(tree(&site.root).is_empty(), "{:?}", tree(&site.root));
    }

    /// A symlink planted at `relative` (under the web root) pointing at the outside
    /// directory or a file in it: present refuses it by name, and writes nothing anywhere.
    async fn refuses_planted_symlink(prepare: &[&str], relative: &str, target: &str) {
        let site = site();
        for dir in prepare {
            fs::create_dir(site.root.join(dir)).expect("dir");
        }
        fs::write(site.outside.join("passwd"), "root:x:0:0").expect("outside file");
        let link = site.root.join(relative);
        let pointed = site.outside.join(target);
        symlink(&pointed, &link).expect("plant symlink");
        let before = tree(&site.root);
        let webroot = Webroot::new(&site.root).expect("web root");
        let answer = http01("tok-link");

        let err = webroot.present(&answer).await.expect_err("refused");
        match webroot_error(&err) {
            WebrootError::Symlink { path, target } => {
                assert_eq!(path, &link);
                assert_eq!(target.as_deref(), Some(pointed.as_path()));
            }
            other => panic!("a symlink refusal: {other:?}"),
        }
        let message = format!("{}", webroot_error(&err));
        assert!(message.contains(&link.display().to_string()), "{message}");

        webroot.cleanup(&answer).await.expect("cleanup");
        assert_eq!(
            tree(&site.root),
            before,
            "the link is left for the admin to see"
        );
        assert_eq!(tree(&site.outside), ["passwd"], "nothing written outside");
        assert_eq!(
            fs::read_to_string(site.outside.join("passwd")).expect("outside file"),
            "root:x:0:0"
        );
    }

    #[tokio::test]
    async fn a_well_known_symlink_is_refused() {
        refuses_planted_symlink(&[], ".well-known", "").await;
    }

    #[tokio::test]
    async fn an_acme_challenge_symlink_is_refused() {
        refuses_planted_symlink(&[".well-known"], ".well-known/acme-challenge", "").await;
    }

    #[tokio::test]
    async fn a_token_file_symlink_is_refused() {
        refuses_planted_symlink(
            &[".well-known", ".well-known/acme-challenge"],
            ".well-known/acme-challenge/tok-link",
            "passwd",
        )
        .await;
    }

    #[tokio::test]
    async fn a_file_where_a_directory_belongs_is_refused_and_what_was_created_removed() {
        let site = site();
        fs::create_dir(site.root.join(".well-known")).expect("dir");
        fs::write(site.root.join(".well-known/acme-challenge"), "a file").expect("file");
        let webroot = Webroot::new(&site.root).expect("web root");

        let err = webroot
            .present(&http01("tok-type"))
            .await
            .expect_err("refused");
        assert!(
            matches!(
                webroot_error(&err),
                WebrootError::WrongType {
                    expected: EntryKind::Directory,
                    found: EntryKind::RegularFile,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            webroot_error(&err).to_string(),
            format!(
                "{}/.well-known/acme-challenge is a regular file where certkeeper needs a \
                 directory: move it out of the way, or use the proxy setup",
                site.root.display()
            )
        );

        // Nothing pre-existing, so `.well-known` is created, the failure comes one level
        // down, and the created directory is gone with the failed present.
        let fresh = self::site();
        fs::write(fresh.root.join(".well-known"), "a file").expect("file");
        let webroot = Webroot::new(&fresh.root).expect("web root");
        webroot
            .present(&http01("tok-type"))
            .await
            .expect_err("refused");
        assert_eq!(tree(&fresh.root), [".well-known"]);
    }

    #[test]
    fn a_web_root_must_be_an_existing_absolute_directory() {
        let site = site();
        let file = site.outside.join("file");
        fs::write(&file, "x").expect("file");
        assert!(matches!(
            Webroot::new("var/www/html"),
            Err(WebrootError::RootNotAbsolute { .. })
        ));
        let missing = site.root.join("missing");
        let err = Webroot::new(&missing).expect_err("missing");
        assert!(matches!(err, WebrootError::RootMissing { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
        assert!(matches!(
            Webroot::new(&file),
            Err(WebrootError::RootNotADirectory { .. })
        ));
        // The web root itself may be a symlink: the administrator configured it.
        let link = site.outside.join("link");
        symlink(&site.root, &link).expect("symlink");
        Webroot::new(&link).expect("a symlinked web root");
    }

    /// A web root that went away after the solver was built is reported when presenting.
    #[tokio::test]
    async fn a_vanished_web_root_is_reported_on_present() {
        let site = site();
        let webroot = Webroot::new(&site.root).expect("web root");
        fs::remove_dir(&site.root).expect("remove");
        let err = webroot
            .present(&http01("tok-gone"))
            .await
            .expect_err("missing");
        assert!(
            matches!(webroot_error(&err), WebrootError::RootMissing { .. }),
            "{err:?}"
        );
        webroot
            .cleanup(&http01("tok-gone"))
            .await
            .expect("nothing to clean");
    }

    /// Permission problems name the web root and say what to change. As root the kernel
    /// ignores the mode bits, so the refusal is then built from the errno the kernel would
    /// give; as any other user the web root is really made read-only.
    #[tokio::test]
    async fn a_web_root_not_writable_says_what_to_change() {
        let site = site();
        let err = if rustix::process::geteuid().is_root() {
            write_error(
                &site.root,
                "create",
                site.root.join(".well-known"),
                Errno::ACCESS,
            )
        } else {
            fs::set_permissions(&site.root, fs::Permissions::from_mode(0o555)).expect("chmod");
            let webroot = Webroot::new(&site.root).expect("web root");
            let err = webroot
                .present(&http01("tok-ro"))
                .await
                .expect_err("read-only");
            fs::set_permissions(&site.root, fs::Permissions::from_mode(0o755)).expect("chmod");
            let SolverError::Failed { source, .. } = err else {
                panic!("a solver failure: {err:?}");
            };
            *source.downcast::<WebrootError>().expect("a WebrootError")
        };
        assert!(matches!(err, WebrootError::NotWritable { .. }), "{err:?}");
        let root = site.root.display();
        assert_eq!(
            err.to_string(),
            format!(
                "web root {root} is not writable by the certkeeper user (cannot create \
                 {root}/.well-known): give it write access to \
                 {root}/.well-known/acme-challenge (creating it if missing), or use the proxy \
                 setup"
            )
        );
    }

    #[tokio::test]
    async fn a_dns_answer_is_refused() {
        let site = site();
        let webroot = Webroot::new(&site.root).expect("web root");
        let answer = ChallengeAnswer::Dns01 {
            domain: "example.org".to_owned(),
            record_name: "_acme-challenge.example.org".to_owned(),
            value: "digest".to_owned(),
        };
        assert_eq!(webroot.kind(), ChallengeKind::Http01);
        let err = webroot.present(&answer).await.expect_err("wrong kind");
        assert!(matches!(err, SolverError::WrongKind { .. }), "{err:?}");
        assert!(tree(&site.root).is_empty());
    }

    #[test]
    fn the_proxy_snippet_passes_the_challenge_path_to_the_listener() {
        assert!(
            NGINX_PROXY_LOCATION.starts_with(&format!("location {} {{", crate::CHALLENGE_PREFIX))
        );
        assert!(NGINX_PROXY_LOCATION.contains("proxy_pass http://127.0.0.1:8080;"));
    }
}
