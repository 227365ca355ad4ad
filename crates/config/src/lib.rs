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
//!   into, and span -> line/column.
//! - `walk`: typed access to the TOML tree that carries spans and key paths, and reports
//!   wrong types, missing keys and unknown keys (with "did you mean").
//! - `inventory`: the TOML contract itself (every key, default and rule) and the
//!   uniqueness and reference checks across entries.
//! - `secrets`: EAB HMAC key sources (file, environment, systemd credential, inline) and
//!   base64url decoding, without ever putting key material in a message.
//! - `duration`: `"1d12h"`-style durations.
//! - `environment`: [`Environment`], the variables and credentials directory secrets may
//!   come from, passed in so that loading is a function of its inputs.
//!
//! Key paths in diagnostics are dotted keys with 0-based indices in file order:
//! `certificate[1].domains[0]`, `ca[0].eab_hmac_key_file`, `http01.listen[2]`.
//!
//! See `config/certkeeper.toml` in the repository for every key, documented.

mod diagnostic;
mod duration;
mod environment;
mod inventory;
mod secrets;
mod walk;

use std::path::{Path, PathBuf};

use certkeeper_core::Inventory;
use toml::de::DeTable;

pub use diagnostic::{ConfigErrors, Diagnostic, Severity};
pub use environment::Environment;

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

/// Read and validate the configuration file at `path`.
///
/// # Errors
/// Every problem found: an unreadable file is a single diagnostic naming it; otherwise see
/// [`load_str`].
pub fn load(path: &Path, env: &Environment) -> Result<Loaded, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&text, path, env),
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

/// Validate configuration `text`. `path` is what diagnostics name and what relative paths in
/// the text (`state_dir`, `root_ca_file`, `eab_hmac_key_file`) resolve against: the
/// directory containing it.
///
/// # Errors
/// Every problem found, in file order: TOML syntax errors alone when the text does not
/// parse, otherwise every unknown key, wrong type, missing key and failed rule.
pub fn load_str(text: &str, path: &Path, env: &Environment) -> Result<Loaded, ConfigErrors> {
    let mut diagnostics = diagnostic::Diagnostics::new(path, text);
    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    let syntax: Vec<diagnostic::Reported> = syntax_errors
        .iter()
        .map(|error| {
            let span = error.span().unwrap_or(0..0);
            diagnostics.error(&span, "", error.message().trim_end())
        })
        .collect();
    let result = match syntax.first() {
        // A partly parsed document would produce follow-on errors about keys the operator
        // did write; the syntax errors alone say what to fix first.
        Some(&reported) => Err(reported),
        None => {
            let context = Context {
                base_dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
                env,
            };
            inventory::build(&document, &context, &mut diagnostics)
        }
    };
    diagnostics
        .finish(result)
        .map(|(inventory, warnings)| Loaded {
            inventory,
            warnings,
        })
}

/// What checks need besides the document: where relative paths start and the environment.
#[derive(Debug)]
struct Context<'e> {
    base_dir: PathBuf,
    env: &'e Environment,
}

impl Context<'_> {
    /// `path` as written, relative to the config file's directory unless absolute.
    fn resolve(&self, path: &str) -> PathBuf {
        self.base_dir.join(path)
    }
}
