//! `include`: more `[[ca]]` and `[[certificate]]` entries from other files, usually a
//! `conf.d/` directory that packages and configuration management drop files into.
//!
//! Only the main file may include, and included files may hold nothing but entries: global
//! settings in one place keep "where is this set?" a one-file question, and a single level
//! of includes keeps the set of files the daemon watches easy to state. Patterns are
//! `glob` patterns resolved against the directory of the main file; each pattern's matches
//! are loaded in sorted order, patterns in the order written, and a file matched twice (or
//! the main file itself, matched by `*.toml` next to it) is loaded once. A pattern matching
//! nothing is fine: an empty `conf.d/` is normal.
//!
//! This module also says what the daemon watches to reload: every file read, and for each
//! pattern the directory it globs in, where new files appear.

use std::path::{Component, Path, PathBuf};

use glob::{MatchOptions, Pattern};

use crate::diagnostic::{Diagnostics, Reported};
use crate::walk::{Node, Table};

pub(crate) const INCLUDE_KEY: &str = "include";

/// Matching as shells and systemd do for drop-in directories: `*` stays within one path
/// component, and hidden files (editor backups such as `.a.toml.swp`, `.#a.toml`) are only
/// matched by a pattern that starts with a dot itself.
const MATCH_OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

/// A file an `include` pattern matched, and its text.
#[derive(Debug)]
pub(crate) struct Included {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
}

/// What the main file's `include` resolved to.
#[derive(Debug, Default)]
pub(crate) struct Includes {
    /// Files to load, in load order.
    pub(crate) files: Vec<Included>,
    /// For each pattern, the directory it globs in.
    pub(crate) directories: Vec<PathBuf>,
    /// A pattern was invalid, or a match could not be read: the entries are incomplete.
    pub(crate) failed: Option<Reported>,
}

/// Resolve the `include` key of the main file's `root`. `main_path` is the main file, whose
/// directory relative patterns start from.
pub(crate) fn resolve(
    root: &Table<'_, '_>,
    main_path: &Path,
    diagnostics: &mut Diagnostics<'_>,
) -> Includes {
    let mut includes = Includes::default();
    let Some(node) = root.get(INCLUDE_KEY) else {
        return includes;
    };
    let items = match node.array(diagnostics, "an array of glob patterns") {
        Ok(items) => items,
        Err(reported) => {
            includes.failed = Some(reported);
            return includes;
        }
    };
    let base_dir = directory_of(main_path);
    // Files already loaded (or the main file), compared by canonical path where it exists.
    let mut seen = vec![identity(main_path)];
    for item in &items {
        if let Err(reported) = expand(item, &base_dir, &mut seen, &mut includes, diagnostics) {
            includes.failed = Some(reported);
        }
    }
    includes
}

/// Load the files one pattern matches.
fn expand(
    item: &Node<'_, '_>,
    base_dir: &Path,
    seen: &mut Vec<PathBuf>,
    includes: &mut Includes,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<(), Reported> {
    let text = item.str(diagnostics)?;
    if text.is_empty() {
        return Err(item.error(diagnostics, "must not be empty"));
    }
    Pattern::new(text).map_err(|err| {
        item.error(
            diagnostics,
            format!(
                "invalid glob pattern {text:?}: {} (near character {})",
                err.msg,
                err.pos + 1
            ),
        )
    })?;
    let pattern = if Path::new(text).is_absolute() || base_dir.as_os_str().is_empty() {
        text.to_owned()
    } else {
        // The directory is a literal part of the pattern: a '[' in it must not start a class.
        let Some(base) = base_dir.to_str() else {
            return Err(item.error(
                diagnostics,
                format!(
                    "cannot match relative patterns in {}: its name is not valid UTF-8; write an absolute pattern",
                    base_dir.display()
                ),
            ));
        };
        let separator = if base.ends_with('/') { "" } else { "/" };
        format!("{}{separator}{text}", Pattern::escape(base))
    };
    includes.directories.push(glob_directory(base_dir, text));

    let paths = glob::glob_with(&pattern, MATCH_OPTIONS).map_err(|err| {
        // Unreachable in practice: both halves were checked above.
        item.error(
            diagnostics,
            format!("invalid glob pattern {pattern:?}: {err}"),
        )
    })?;
    let mut matched = Vec::new();
    let mut failed = Ok(());
    for entry in paths {
        match entry {
            Ok(path) => matched.push(path),
            Err(err) => {
                failed = Err(item.error(
                    diagnostics,
                    format!(
                        "cannot read {} while matching {text:?}: {}",
                        err.path().display(),
                        err.error()
                    ),
                ));
            }
        }
    }
    matched.sort();
    for path in matched {
        let id = identity(&path);
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        match std::fs::read_to_string(&path) {
            Ok(text) => includes.files.push(Included { path, text }),
            Err(err) => {
                failed = Err(item.error(
                    diagnostics,
                    format!("cannot read included file {}: {err}", path.display()),
                ));
            }
        }
    }
    failed
}

/// The directory holding `file`, for resolving relative paths written in it.
pub(crate) fn directory_of(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// What tells two paths to the same file apart from two files: the canonical path when
/// there is one, else the path as given.
fn identity(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

/// The directory a pattern globs in: its leading components without wildcards, never
/// including the last (which names the files), resolved against `base_dir`. New files that
/// the pattern would match appear there (or below it, for `**` and wildcard directories).
pub(crate) fn glob_directory(base_dir: &Path, pattern: &str) -> PathBuf {
    let components: Vec<Component<'_>> = Path::new(pattern).components().collect();
    let leading = components
        .split_last()
        .map_or(&[][..], |(_, leading)| leading);
    let literal: PathBuf = leading
        .iter()
        .take_while(|component| {
            !component
                .as_os_str()
                .to_string_lossy()
                .contains(['*', '?', '['])
        })
        .collect();
    let directory = if literal.as_os_str().is_empty() {
        base_dir.to_path_buf()
    } else {
        base_dir.join(literal)
    };
    if directory.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        directory
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_directories_are_the_literal_prefix() {
        let base = Path::new("/etc/certkeeper");
        let cases = [
            ("conf.d/*.toml", "/etc/certkeeper/conf.d"),
            ("*.toml", "/etc/certkeeper"),
            ("conf.d/extra.toml", "/etc/certkeeper/conf.d"),
            ("extra.toml", "/etc/certkeeper"),
            ("conf.d/**/*.toml", "/etc/certkeeper/conf.d"),
            ("sites/*/certs.toml", "/etc/certkeeper/sites"),
            ("a/[bc]/d/*.toml", "/etc/certkeeper/a"),
            ("/srv/certkeeper/*.toml", "/srv/certkeeper"),
            ("../shared/*.toml", "/etc/certkeeper/../shared"),
        ];
        for (pattern, expected) in cases {
            assert_eq!(
                glob_directory(base, pattern),
                Path::new(expected),
                "{pattern}"
            );
        }
        assert_eq!(glob_directory(Path::new(""), "*.toml"), Path::new("."));
        assert_eq!(
            glob_directory(Path::new(""), "conf.d/*.toml"),
            Path::new("conf.d")
        );
    }
}
