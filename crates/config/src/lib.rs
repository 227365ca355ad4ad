//! certkeeper's inventory loader: TOML text to a validated [`Inventory`], every problem
//! reported with file, line, column and key path.
//!
//! The loader parses the file with `toml`'s span-preserving [`toml::de::DeTable`] and walks
//! it by hand instead of deriving `Deserialize`: serde stops at the first problem and cannot
//! say where an unknown key is, while an operator editing `/etc/certkeeper/certkeeper.toml`
//! wants every mistake listed at once, each pointing at its line. Past this crate the
//! inventory is trusted: names, domains, URLs, CA references and EAB keys are checked here,
//! with the rules themselves owned by `certkeeper-core`.
//!
//! Modules:
//! - `diagnostic`: [`Diagnostic`], [`ConfigErrors`], the collector every check records
//!   into (one for all files), and span -> line/column.
//! - `walk`: typed access to the TOML tree that carries spans and key paths, and reports
//!   wrong types, missing keys and unknown keys (with "did you mean").
//! - `include`: the main file's `include` patterns: which files they load, in which order,
//!   and which directories the daemon watches for new ones.
//! - `inventory`: the TOML contract itself (every key, default and rule) and the
//!   uniqueness and reference checks across entries of all files.
//! - `secrets`: where a secret comes from (`*_file`, `*_env`, `*_credential` or inline) and
//!   the crate's rule for these keys' values: one is quoted in a message only when it has
//!   the shape its key expects and does not look like key material.
//! - `eab`: External Account Binding, `eab_kid` and the `eab_hmac_key` secret, base64url
//!   decoded.
//! - `hooks`: `hooks_dir`, `hook_timeout`, `[hooks]` defaults, `[reload.NAME]` targets and
//!   certificates' hook keys; the three forms a hook may take.
//! - `challenge`: the top-level `challenge` default, `[http01] webroot`, and each
//!   certificate's `challenge`, `webroot` and `dns`, resolved to its effective challenge;
//!   wildcards only with DNS-01.
//! - `keys`: `reuse_key` and `key_group`, top-level defaults and each certificate's own;
//!   the group resolved to its number when loading.
//! - `dns`: `[dns.NAME]` DNS-01 providers (`rfc2136` with its TSIG secret, `hook`) and their
//!   propagation settings.
//! - `notify`: `[[notify]]` targets (webhook, e-mail, command), their events and secrets.
//! - `duration`: `"1d12h"`-style durations.
//! - `environment`: [`Environment`], the variables and credentials directory secrets may
//!   come from, the local time zone and where group names are looked up, passed in so that loading is a function of its
//!   inputs (and of the files it reads).
//!
//! Key paths in diagnostics are dotted keys with 0-based indices in the order of the file the
//! diagnostic names: `certificate[1].domains[0]`, `ca[0].eab_hmac_key_file`,
//! `http01.listen[2]`.
//!
//! Included files are all read and parsed before any entry is checked, because names are
//! unique and CA references resolve across files. A file that could not be loaded (an
//! invalid pattern, an unreadable match, syntax errors) is reported, and the rest is still
//! checked; only the checks that would blame a missing definition on it ("unknown CA") are
//! held back.
//!
//! See `config/certkeeper.toml` in the repository for every key, documented.

mod challenge;
mod cluster;
mod diagnostic;
mod dns;
mod duration;
mod eab;
mod environment;
mod hooks;
mod include;
mod inventory;
mod keys;
mod notify;
mod secrets;
mod values;
mod walk;

use std::path::{Path, PathBuf};

use certkeeper_core::Inventory;
use toml::de::DeTable;

use crate::walk::Table;

pub use diagnostic::{ConfigErrors, Diagnostic, Severity};
pub use environment::{Environment, Groups};

/// Where the binary looks for its configuration unless told otherwise.
pub const DEFAULT_PATH: &str = "/etc/certkeeper/certkeeper.toml";

/// A configuration that passed every check.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub inventory: Inventory,
    /// Problems that do not prevent running (a secret stored inline, a key file others can
    /// read), in file order.
    pub warnings: Vec<Diagnostic>,
}

/// Read and validate the configuration file at `path` and the files it includes.
///
/// # Errors
/// Every problem found: an unreadable file is a single diagnostic naming it; otherwise see
/// [`load_str`].
pub fn load(path: &Path, env: &Environment) -> Result<Loaded, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_text(&text, path, file_mode(path), env),
        Err(err) => Err(ConfigErrors {
            errors: vec![Diagnostic {
                file: path.to_owned(),
                line: 0,
                column: 0,
                key: String::new(),
                message: format!("cannot read the configuration file: {err}"),
                severity: Severity::Error,
            }],
            warnings: Vec::new(),
        }),
    }
}

/// Validate configuration `text`, together with the files its `include` patterns match
/// (read from disk). `path` is what diagnostics name, and its directory is where relative
/// paths in the text (`state_dir`, `root_ca_file`, `eab_hmac_key_file`, `include`) start.
///
/// # Errors
/// Every problem found, ordered by file (the main file, then included files in load order)
/// and position: TOML syntax errors alone when the main text does not parse, otherwise
/// every unknown key, wrong type, missing key and failed rule in every file.
pub fn load_str(text: &str, path: &Path, env: &Environment) -> Result<Loaded, ConfigErrors> {
    load_text(text, path, None, env)
}

/// The permission bits of a file read from disk.
fn file_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|meta| meta.permissions().mode() & 0o777)
}

fn load_text(
    text: &str,
    path: &Path,
    main_mode: Option<u32>,
    env: &Environment,
) -> Result<Loaded, ConfigErrors> {
    let mut diagnostics = diagnostic::Diagnostics::new();
    let main = diagnostics.add_file(path, text);
    let document = match parse(main, text, &mut diagnostics) {
        Ok(document) => document,
        Err(reported) => return finish(diagnostics, Err(reported)),
    };
    let root = Table::root(&document, main);
    let includes = include::resolve(&root, path, &mut diagnostics);

    // Parse every included file before checking anything, so that names and CA references
    // are checked against all of them.
    let mut incomplete = includes.failed;
    let mut documents = Vec::new();
    for file in &includes.files {
        let id = diagnostics.add_file(&file.path, &file.text);
        match parse(id, &file.text, &mut diagnostics) {
            Ok(document) => documents.push((id, document, &file.path)),
            // A file with syntax errors is left out like an unreadable one: its syntax errors
            // say what to fix, and its entries count as missing.
            Err(reported) => incomplete = Some(reported),
        }
    }

    let main_source = inventory::Source {
        root,
        context: Context::new(path, main_mode, env),
    };
    let included: Vec<inventory::Source<'_, '_, '_>> = documents
        .iter()
        .map(|(id, document, file)| inventory::Source {
            root: Table::root(document, *id),
            context: Context::new(file, file_mode(file), env),
        })
        .collect();
    let result = inventory::build(&main_source, &included, incomplete, &mut diagnostics).map(
        |mut inventory| {
            inventory.watch_paths = watch_paths(path, &includes);
            inventory
        },
    );
    finish(diagnostics, result)
}

/// Parse one file, recording its syntax errors.
fn parse<'i>(
    file: diagnostic::FileId,
    text: &'i str,
    diagnostics: &mut diagnostic::Diagnostics<'_>,
) -> Result<toml::Spanned<DeTable<'i>>, diagnostic::Reported> {
    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    let syntax: Vec<diagnostic::Reported> = syntax_errors
        .iter()
        .map(|error| {
            let span = error.span().unwrap_or(0..0);
            diagnostics.error(file, &span, "", error.message().trim_end())
        })
        .collect();
    match syntax.first() {
        // A partly parsed document would produce follow-on errors about keys the operator
        // did write; the syntax errors alone say what to fix first.
        Some(&reported) => Err(reported),
        None => Ok(document),
    }
}

fn finish(
    diagnostics: diagnostic::Diagnostics<'_>,
    result: Result<Inventory, diagnostic::Reported>,
) -> Result<Loaded, ConfigErrors> {
    diagnostics
        .finish(result)
        .map(|(inventory, warnings)| Loaded {
            inventory,
            warnings,
        })
}

/// What the daemon watches to reload: the main file, every included file, and the directory
/// each `include` pattern globs in, each once, in that order.
fn watch_paths(main: &Path, includes: &include::Includes) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = Vec::new();
    let candidates = std::iter::once(main)
        .chain(includes.files.iter().map(|file| file.path.as_path()))
        .chain(includes.directories.iter().map(PathBuf::as_path));
    for path in candidates {
        if !paths.iter().any(|seen| seen == path) {
            paths.push(path.to_owned());
        }
    }
    paths
}

/// What checks need besides the document: where relative paths start and the environment.
#[derive(Debug)]
struct Context<'e> {
    base_dir: PathBuf,
    /// The file being read and its mode when it was read from disk: a secret written into a
    /// file others can read deserves a louder warning.
    file: PathBuf,
    file_mode: Option<u32>,
    env: &'e Environment,
}

impl<'e> Context<'e> {
    /// The context of the file at `path`.
    fn new(path: &Path, file_mode: Option<u32>, env: &'e Environment) -> Self {
        Self {
            base_dir: include::directory_of(path),
            file: path.to_path_buf(),
            file_mode,
            env,
        }
    }

    /// `path` as written, relative to the directory of the file it is written in unless
    /// absolute.
    fn resolve(&self, path: &str) -> PathBuf {
        self.base_dir.join(path)
    }
}
