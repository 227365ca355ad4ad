//! Watching the configuration for edits, so `certkeeper run` reloads without a SIGHUP.
//!
//! Editors save by writing a temporary file and renaming it over the original, which replaces
//! the inode a file watch would follow. So the watcher watches *directories* (the one holding
//! each configuration file, and each `include` directory) and passes on events that touch a
//! configuration file or any `*.toml` in an include directory. The daemon debounces them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

pub struct ConfigWatcher {
    tx: UnboundedSender<()>,
    watcher: Option<RecommendedWatcher>,
}

impl ConfigWatcher {
    pub fn new(tx: UnboundedSender<()>) -> Self {
        Self { tx, watcher: None }
    }

    /// (Re)start watching: `paths` are configuration files and include directories.
    pub fn watch(&mut self, paths: &[PathBuf]) {
        let files: BTreeSet<PathBuf> = paths.iter().filter(|p| !p.is_dir()).cloned().collect();
        let include_dirs: BTreeSet<PathBuf> =
            paths.iter().filter(|p| p.is_dir()).cloned().collect();
        let mut dirs: BTreeSet<PathBuf> = include_dirs.clone();
        dirs.extend(
            files
                .iter()
                .filter_map(|f| f.parent().map(Path::to_path_buf)),
        );

        let tx = self.tx.clone();
        let relevant = move |path: &Path| {
            files.contains(path)
                || (path.extension().is_some_and(|ext| ext == "toml")
                    && path.parent().is_some_and(|dir| include_dirs.contains(dir)))
        };
        let handler = move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event
                && !event.kind.is_access()
                && event.paths.iter().any(|p| relevant(p))
            {
                let _ = tx.send(());
            }
        };
        // Drop the old watcher first: its handler would report the old set of files.
        self.watcher = None;
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(watcher) => watcher,
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch the configuration; reload with SIGHUP");
                return;
            }
        };
        for dir in &dirs {
            if let Err(err) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %dir.display(), error = %err, "cannot watch this configuration directory; reload with SIGHUP");
            }
        }
        self.watcher = Some(watcher);
    }
}
