//! `hooks_dir`: certbot's `renewal-hooks/{pre,deploy,post}/` convention.
//!
//! Packages and configuration management drop executables into `pre/`, `deploy/` and
//! `post/` instead of editing the configuration. Each run lists the folder afresh, so a hook
//! added or removed takes effect without a reload. Files run in byte order of their names
//! (`10-firewall` before `50-nginx`); dotfiles (editor and package manager leftovers) and
//! files without an execute bit are skipped, as certbot does. Symbolic links are followed.

use std::fmt;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use certkeeper_core::{Hook, HookCommand};

use crate::HookError;

/// A folder of `hooks_dir`, and the hook kind it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Pre,
    Deploy,
    Post,
}

impl Phase {
    /// The folder name, also the first part of the hooks' labels.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Deploy => "deploy",
            Phase::Post => "post",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The executables of `hooks_dir/PHASE/` in name order, each as a label
/// (`deploy:dir/50-nginx`) and an argv hook with `timeout`. A missing `hooks_dir` or folder
/// means no hooks (the config loader warns about a missing `hooks_dir`).
///
/// # Errors
/// [`HookError::ReadDir`] when the folder exists but cannot be listed.
pub fn dir_hooks(
    hooks_dir: &Path,
    phase: Phase,
    timeout: Duration,
) -> Result<Vec<(String, Hook)>, HookError> {
    let folder = hooks_dir.join(phase.as_str());
    let read_error = |source| HookError::ReadDir {
        path: folder.clone(),
        source,
    };
    let entries = match std::fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(read_error(err)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(read_error)?;
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        let Some(name) = name.to_str() else {
            tracing::warn!(path = %path.display(), "hook file name is not UTF-8; skipped");
            continue;
        };
        // `metadata` follows symbolic links: a link to an executable is a hook.
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "cannot inspect hook file; skipped");
                continue;
            }
        };
        if !metadata.is_file() {
            continue;
        }
        if metadata.permissions().mode() & 0o111 == 0 {
            tracing::debug!(path = %path.display(), "hook file is not executable; skipped");
            continue;
        }
        let Some(program) = path.to_str() else {
            tracing::warn!(path = %path.display(), "hook path is not UTF-8; skipped");
            continue;
        };
        let hook = Hook {
            command: HookCommand::Argv(vec![program.to_owned()]),
            timeout,
        };
        found.push((name.to_owned(), hook));
    }
    found.sort_by(|(a, _), (b, _)| a.cmp(b));
    Ok(found
        .into_iter()
        .map(|(name, hook)| (format!("{phase}:dir/{name}"), hook))
        .collect())
}
