//! Secrets the configuration points at: where a secret's text comes from, and how the values
//! that say where may appear in a message.
//!
//! Every secret is set by exactly one of a family of keys sharing a prefix, described by a
//! [`SecretKeys`] made with [`secret_keys!`]: `PREFIX_file` names a file, `PREFIX_env` an
//! environment variable, `PREFIX_credential` a systemd credential (read from
//! `$CREDENTIALS_DIRECTORY`), and, for secrets that allow it, `PREFIX` holds the secret inline,
//! which is warned about. [`Sources::of`] finds which of them a table sets,
//! [`Sources::read`] fetches the text, and the caller decodes it with [`SecretText::decode`].
//! A new secret (a TSIG key, an SMTP password, a webhook token) is one more `SecretKeys` and
//! these three calls.
//!
//! Those values are where secrets get pasted by mistake (the key where its variable's name
//! belongs), and diagnostics end up in the journal. So the rule of this module: a value of
//! one of these keys reaches a message only through [`SourceValue`], and
//! [`SourceValue::shown`] alone decides whether it may. It shows the value only when it has
//! the shape its key expects (a variable name, a credential name, a plain path) and does not
//! look like key material ([`looks_like_key_material`]); otherwise the message says what the
//! key expects and that the value is not shown. The rule errs toward hiding: whoever wrote
//! the value finds it at the line and column given, while a secret written to a log cannot
//! be taken back. A shape check catches what a heuristic cannot (a password pasted into
//! `*_env` is not a variable name); the heuristic catches keys that happen to have the
//! expected shape (a base64 key is a valid relative path). An inline value is never shown,
//! and decoding errors give a position, never a character.
//!
//! A secret that allows it (the TSIG secret) may also be one key of an INI file:
//! `PREFIX_ini_key = "dns_rfc2136_secret"` next to `PREFIX_file` or `PREFIX_credential`
//! reads that key's value from the file instead of the whole text, so certbot's credentials
//! file serves certkeeper as it is (see [`ini`]). The key is explicit rather than guessed from
//! the file's shape, because a plain base64 secret may hold `=` too.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::Context;
use crate::diagnostic::{Diagnostics, Reported};
use crate::walk::{Node, Table};

mod ini;

/// The keys that set one secret, and how messages describe it. Make one with
/// [`secret_keys!`], so the key names follow the `PREFIX_file`/`_env`/`_credential` pattern.
#[derive(Debug)]
pub(crate) struct SecretKeys {
    /// The inline key, when `inline`; the others are named after it.
    pub(crate) prefix: &'static str,
    pub(crate) file: &'static str,
    pub(crate) env: &'static str,
    pub(crate) credential: &'static str,
    /// Whether `prefix` itself may hold the secret (accepted with a warning).
    pub(crate) inline: bool,
    /// `PREFIX_ini_key`, for secrets that may be one key of an INI file (certbot's
    /// credentials files); `None` for the others.
    pub(crate) ini_key: Option<&'static str>,
    /// What the secret is, for messages: "HMAC key".
    pub(crate) what: &'static str,
    /// Examples of each key's value, for messages that say what a key expects.
    pub(crate) example_env: &'static str,
    pub(crate) example_file: &'static str,
    pub(crate) example_credential: &'static str,
}

/// A [`SecretKeys`] whose keys are `PREFIX_file`, `PREFIX_env`, `PREFIX_credential`, with
/// `inline: true` `PREFIX`, and with `ini_key: true` `PREFIX_ini_key`.
macro_rules! secret_keys {
    (@ini_key $prefix:literal) => { None };
    (@ini_key $prefix:literal true) => { Some(concat!($prefix, "_ini_key")) };
    {
        prefix: $prefix:literal,
        inline: $inline:literal,
        $(ini_key: $ini:tt,)?
        what: $what:literal,
        example_env: $env:literal,
        example_file: $file:literal,
        example_credential: $credential:literal $(,)?
    } => {
        $crate::secrets::SecretKeys {
            prefix: $prefix,
            file: concat!($prefix, "_file"),
            env: concat!($prefix, "_env"),
            credential: concat!($prefix, "_credential"),
            inline: $inline,
            ini_key: $crate::secrets::secret_keys!(@ini_key $prefix $($ini)?),
            what: $what,
            example_env: $env,
            example_file: $file,
            example_credential: $credential,
        }
    };
}
pub(crate) use secret_keys;

impl SecretKeys {
    /// The sources to recommend, as a phrase.
    fn recommended(&self) -> String {
        format!("{}, {} or {}", self.file, self.env, self.credential)
    }
}

/// Where a secret's text comes from, one per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    File,
    Env,
    Credential,
    Inline,
}

impl Source {
    const ALL: [Source; 4] = [
        Source::File,
        Source::Env,
        Source::Credential,
        Source::Inline,
    ];

    /// This source's key, if `keys` has one.
    fn key(self, keys: &SecretKeys) -> Option<&'static str> {
        match self {
            Source::File => Some(keys.file),
            Source::Env => Some(keys.env),
            Source::Credential => Some(keys.credential),
            Source::Inline => keys.inline.then_some(keys.prefix),
        }
    }

    /// The shape of value the key expects, and its rule, for messages.
    const fn shape(self) -> (&'static str, &'static str) {
        match self {
            Source::File => ("a plain path", "without spaces or control characters"),
            Source::Env => (
                "a variable name",
                "letters, digits and '_', not starting with a digit",
            ),
            Source::Credential => (
                "a credential name",
                "a file name without '/', ':', spaces or control characters",
            ),
            Source::Inline => ("the secret", ""),
        }
    }
}

/// The value of a key that says where a secret is (or, inline, is the secret), as written.
///
/// This is the only way such a value reaches a message: [`SourceValue::shown`] decides, and
/// `Display` and `Debug` go through it.
#[derive(Clone, Copy)]
pub(crate) struct SourceValue<'v> {
    keys: &'static SecretKeys,
    source: Source,
    value: &'v str,
}

impl<'v> SourceValue<'v> {
    /// The key this value is written under.
    fn key(&self) -> &'static str {
        self.source.key(self.keys).unwrap_or(self.keys.prefix)
    }

    /// Whether the value has the shape its key expects, as far as messages are concerned.
    fn is_plain(&self) -> bool {
        let value = self.value;
        match self.source {
            Source::Inline => false,
            Source::Env => is_variable_name(value),
            Source::Credential => is_credential_name(value) && !value.contains(char::is_whitespace),
            Source::File => {
                !value.is_empty()
                    && value.len() <= 4096
                    && !value.chars().any(|c| c.is_whitespace() || c.is_control())
            }
        }
    }

    /// The value, when it may appear in a message: it has the shape its key expects and does
    /// not look like key material. The one place that decides; everything else asks here.
    pub(crate) fn shown(&self) -> Option<&'v str> {
        (self.is_plain() && !looks_like_key_material(self.value)).then_some(self.value)
    }

    /// Whether the value can say where the secret is, shown in messages or not: a file path
    /// need not be plain to be opened, while a variable or credential that is not named by
    /// the rules cannot exist.
    fn is_usable(&self) -> bool {
        let value = self.value;
        match self.source {
            Source::Inline => true,
            Source::Env => is_variable_name(value),
            Source::Credential => is_credential_name(value),
            Source::File => !value.is_empty() && !value.contains('\0'),
        }
    }

    /// Why the value is not shown and what the key expects: the message for any problem
    /// with a value [`SourceValue::shown`] refuses. `failure` is what went wrong when the
    /// value was used anyway (a file path need not be plain).
    fn expectation(&self, failure: &Failure) -> String {
        let keys = self.keys;
        let what = keys.what;
        let (holds, fix) = match self.source {
            Source::File => (
                format!(
                    "names a file that holds the {what}, e.g. {}",
                    keys.example_file
                ),
                format!(
                    "put the {what} in a file and give its path here, or use {}",
                    keys.credential
                ),
            ),
            Source::Env => (
                format!(
                    "names an environment variable that holds the {what}, e.g. {}",
                    keys.example_env
                ),
                format!(
                    "put the {what} in an environment variable and give its name here, or use {}",
                    keys.file
                ),
            ),
            Source::Credential => (
                format!(
                    "names a systemd credential that holds the {what}, e.g. {} (LoadCredential={}:{})",
                    keys.example_credential, keys.example_credential, keys.example_file
                ),
                format!(
                    "load the {what} as a credential and give its name here, or use {}",
                    keys.file
                ),
            ),
            Source::Inline => (
                format!("holds the {what} itself"),
                format!(
                    "keep the {what} out of the config file with {}",
                    keys.recommended()
                ),
            ),
        };
        let given = if self.value.is_empty() {
            "the value given is empty".to_owned()
        } else {
            let (shape, rule) = self.source.shape();
            match (self.is_plain(), looks_like_key_material(self.value)) {
                (false, true) => format!(
                    "the value given is not {shape} and looks like key material, so it is not shown"
                ),
                (false, false) => {
                    format!("the value given is not {shape} ({rule}), so it is not shown")
                }
                (true, _) => {
                    "the value given looks like key material, so it is not shown".to_owned()
                }
            }
        };
        let failed = match failure {
            Failure::Empty | Failure::Unusable => String::new(),
            Failure::EnvUnset => ", and no variable of that name is set".to_owned(),
            Failure::NoCredentialsDirectory => ", and CREDENTIALS_DIRECTORY is not set".to_owned(),
            Failure::Read(err) => format!(", and it cannot be read: {err}"),
        };
        format!("{} {holds}; {given}{failed}; {fix}", self.key())
    }
}

impl fmt::Display for SourceValue<'_> {
    /// The value when [`SourceValue::shown`] allows (quoted unless it is a variable name),
    /// else what kind of value it is, marked as not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.shown(), self.source) {
            (Some(value), Source::Env) => f.write_str(value),
            (Some(value), _) => write!(f, "{value:?}"),
            (None, Source::Inline) => write!(f, "the {} (not shown)", self.keys.what),
            (None, _) if looks_like_key_material(self.value) => {
                f.write_str("a value that looks like key material (not shown)")
            }
            (None, source) => write!(f, "a value that is not {} (not shown)", source.shape().0),
        }
    }
}

impl fmt::Debug for SourceValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceValue")
            .field("key", &self.key())
            .field("value", &format_args!("{self}"))
            .finish()
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`, what shells and systemd's `Environment=` accept.
fn is_variable_name(value: &str) -> bool {
    let mut chars = value.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A name systemd accepts for a credential: a file name (not `.` or `..`, no `/`, at most 255
/// bytes) of printable ASCII without `:`.
fn is_credential_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 255
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'/' && b != b':')
}

/// Whether `value` looks like key material rather than a name or a path: 32 or more hex
/// digits (separated by `:`, `-` or spaces or not), or 16 or more letters and digits of
/// base64 or base64url text that switch between upper case, lower case and digit at least
/// every fourth character. Random base64 switches about five times in eight; names and
/// paths, made of words, rarely once in four. A name mistaken for a key is only hidden from
/// messages, never refused, so the threshold leans toward keys.
pub(crate) fn looks_like_key_material(value: &str) -> bool {
    let value = value.trim();
    let hex_digits = value.chars().filter(char::is_ascii_hexdigit).count();
    if hex_digits >= 32
        && value
            .chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '-' | ' '))
    {
        return true;
    }
    if !value
        .trim_end_matches('=')
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '-' | '_'))
    {
        return false;
    }
    let classes: Vec<u8> = value
        .chars()
        .filter_map(|c| match c {
            'a'..='z' => Some(0),
            'A'..='Z' => Some(1),
            '0'..='9' => Some(2),
            _ => None,
        })
        .collect();
    if classes.len() < 16 {
        return false;
    }
    let switches = classes.windows(2).filter(|pair| pair[0] != pair[1]).count();
    let has = |class| classes.contains(&class);
    let mixed = has(0) && has(1) && has(2);
    // Random text that happens to switch rarely is still caught by what names lack:
    // standard base64's '+' and '=' padding, or 20 mixed letters and digits without a
    // single separator.
    switches * 4 >= classes.len() - 1
        || (value.contains('+') || value.ends_with('=')) && (has(0) || has(1)) && has(2)
        || mixed && classes.len() >= 20 && !value.contains(['/', '-', '_'])
}

/// What went wrong fetching a secret's text. It holds no value: messages name the source
/// through [`SourceValue`].
#[derive(Debug)]
enum Failure {
    Empty,
    /// Not something the key's source can name (see [`SourceValue::is_usable`]).
    Unusable,
    EnvUnset,
    NoCredentialsDirectory,
    Read(io::Error),
}

/// Where a secret's text came from, for messages: the value that named it, the path it
/// was read from, and the INI key it is the value of.
#[derive(Clone)]
struct Origin<'v> {
    value: SourceValue<'v>,
    path: Option<PathBuf>,
    ini: Option<IniLocation<'v>>,
}

/// The key of an INI file a secret was read from, and its line. `key` is shown: it passed
/// [`is_ini_key_name`].
#[derive(Clone, Copy)]
struct IniLocation<'v> {
    key: &'v str,
    line: usize,
}

impl fmt::Display for Origin<'_> {
    /// `file "/etc/certkeeper/digicert.hmac"`, `environment variable NAME`, `credential
    /// "name" (/run/credentials/…/name)` or the inline key; when the value is not shown,
    /// neither is the path built from it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = &self.value;
        let shown = value.shown().is_some();
        if let Some(IniLocation { key, line }) = self.ini {
            write!(f, "key {key} (line {line}) of ")?;
        }
        match (value.source, &self.path) {
            (Source::Inline, _) => f.write_str(value.key()),
            (Source::File, Some(path)) if shown => write!(f, "file {path:?}"),
            (Source::Credential, Some(path)) if shown => {
                write!(f, "credential {value} ({})", path.display())
            }
            (Source::Env, _) if shown => write!(f, "environment variable {value}"),
            (source, _) => {
                let noun = match source {
                    Source::File => "file",
                    Source::Env => "environment variable",
                    _ => "credential",
                };
                write!(f, "the {noun} named in {}, {value}", value.key())
            }
        }
    }
}

impl fmt::Debug for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Origin({self})")
    }
}

impl Failure {
    /// The message for this failure to fetch from `origin`. A value that may be shown gets
    /// the short message that names it; any other gets what its key expects.
    fn message(&self, origin: &Origin<'_>) -> String {
        let value = &origin.value;
        let what = value.keys.what;
        match (value.shown(), self) {
            (Some(name), Failure::EnvUnset) => format!("environment variable {name} is not set"),
            (Some(name), Failure::NoCredentialsDirectory) => format!(
                "CREDENTIALS_DIRECTORY is not set, so credential {name:?} cannot be read; run certkeeper as a systemd service with LoadCredential={name}:/path/to/key"
            ),
            (Some(_), Failure::Read(err)) => format!("cannot read {what} from {origin}: {err}"),
            _ => value.expectation(self),
        }
    }
}

/// The keys of one secret that a table sets, in file order.
pub(crate) struct Sources<'a, 'i> {
    keys: &'static SecretKeys,
    set: Vec<(Source, Node<'a, 'i>)>,
    /// `PREFIX_ini_key`, when the keys have it and the table sets it.
    ini_key: Option<Node<'a, 'i>>,
}

impl<'a, 'i> Sources<'a, 'i> {
    /// Which of `keys` `table` sets.
    pub(crate) fn of(keys: &'static SecretKeys, table: &Table<'a, 'i>) -> Self {
        let mut set: Vec<(Source, Node<'a, 'i>)> = Source::ALL
            .into_iter()
            .filter_map(|source| {
                let key = source.key(keys)?;
                table.get(key).map(|node| (source, node))
            })
            .collect();
        // In file order, so "already set" points back at the one written first.
        set.sort_by_key(|(_, node)| node.span().start);
        let ini_key = keys.ini_key.and_then(|key| table.get(key));
        Self { keys, set, ini_key }
    }

    /// The first key set, if any.
    pub(crate) fn first(&self) -> Option<&Node<'a, 'i>> {
        self.set.first().map(|(_, node)| node)
    }

    /// The secret's text from the one source set, or `Ok(None)` when none is. Warns when the
    /// secret is inline, and refuses more than one source.
    pub(crate) fn read(
        &self,
        context: &Context<'_>,
        diagnostics: &mut Diagnostics<'_>,
    ) -> Result<Option<SecretText<'a, 'i>>, Reported> {
        let keys = self.keys;
        if let Some((_, inline)) = self
            .set
            .iter()
            .find(|(source, _)| *source == Source::Inline)
        {
            // Worse when anyone on the machine can read the file.
            let exposed = context
                .file_mode
                .filter(|mode| mode & 0o077 != 0)
                .map(|mode| {
                    format!(
                        ", which group or others can read (mode {mode:04o}; chmod 600 {})",
                        context.file.display()
                    )
                })
                .unwrap_or_default();
            inline.warning(
                diagnostics,
                format!(
                    "the {} is stored in the config file{exposed}; keep it out of the file with {}",
                    keys.what,
                    keys.recommended()
                ),
            );
        }
        match self.set.as_slice() {
            [] => match &self.ini_key {
                None => Ok(None),
                Some(ini_node) => Err(ini_node.error(
                    diagnostics,
                    format!(
                        "{} names a key of an INI file, but no file is named: set {} (or {}) to the file that holds the {} under that key",
                        ini_key_name(keys),
                        keys.file,
                        keys.credential,
                        keys.what
                    ),
                )),
            },
            [(source, node)] => {
                let ini_key = match &self.ini_key {
                    None => None,
                    Some(ini_node) => Some((ini_key(keys, *source, ini_node, diagnostics)?, ini_node)),
                };
                let text = fetch(keys, *source, node, context, diagnostics)?;
                match ini_key {
                    None => Ok(Some(text)),
                    Some((key, ini_node)) => text.ini_value(key, ini_node, diagnostics).map(Some),
                }
            }
            [(first, first_node), rest @ ..] => {
                let line = first_node.line(diagnostics);
                let first_key = first.key(keys).unwrap_or(keys.prefix);
                let mut reported = None;
                for (_, node) in rest {
                    reported = Some(node.error(
                        diagnostics,
                        format!(
                            "only one {} source may be set; {first_key} is already set on line {line}",
                            keys.what
                        ),
                    ));
                }
                reported.map_or(Ok(None), Err)
            }
        }
    }
}

/// A secret's text, where it came from, and the key that named it.
pub(crate) struct SecretText<'a, 'i> {
    text: String,
    origin: Origin<'a>,
    node: Node<'a, 'i>,
}

impl fmt::Debug for SecretText<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretText")
            .field(
                "text",
                &format_args!("<redacted {} bytes>", self.text.len()),
            )
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl<'a, 'i> SecretText<'a, 'i> {
    /// The value of INI key `key` (a plain name, see [`is_ini_key_name`]) in the text, in
    /// place of the whole text. A problem is reported at `ini_node` (the `PREFIX_ini_key`),
    /// naming the file, a line and the key, never any of the text.
    fn ini_value(
        self,
        key: &'a str,
        ini_node: &Node<'a, 'i>,
        diagnostics: &mut Diagnostics<'_>,
    ) -> Result<Self, Reported> {
        match ini::value_of(&self.text, key) {
            Ok(value) => Ok(SecretText {
                text: value.text,
                origin: Origin {
                    ini: Some(IniLocation {
                        key,
                        line: value.line,
                    }),
                    ..self.origin
                },
                node: self.node,
            }),
            Err(problem) => Err(ini_node.error(
                diagnostics,
                format!(
                    "cannot read the {} from {}: {problem}",
                    self.origin.value.keys.what, self.origin
                ),
            )),
        }
    }

    /// The secret decoded by `decode`, whose error describes the problem without quoting
    /// the text ("is not valid base64url: invalid character at position 4"); it is reported
    /// at the key that named the source.
    pub(crate) fn decode<T, P: fmt::Display>(
        self,
        diagnostics: &mut Diagnostics<'_>,
        decode: impl FnOnce(&str) -> Result<T, P>,
    ) -> Result<T, Reported> {
        decode(&self.text).map_err(|problem| {
            let what = self.origin.value.keys.what;
            let message = if self.origin.value.source == Source::Inline {
                format!(
                    "{what} in {} {problem} (the value is not shown)",
                    self.origin
                )
            } else {
                format!("{what} from {} {problem}", self.origin)
            };
            self.node.error(diagnostics, message)
        })
    }
}

/// `PREFIX_ini_key`'s name, for messages.
fn ini_key_name(keys: &SecretKeys) -> &'static str {
    keys.ini_key.unwrap_or(keys.prefix)
}

/// The INI key `node` names, checked to go with `source` and to be a plain key name.
fn ini_key<'a>(
    keys: &'static SecretKeys,
    source: Source,
    node: &Node<'a, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<&'a str, Reported> {
    let key = node.str(diagnostics)?;
    let name = ini_key_name(keys);
    if !matches!(source, Source::File | Source::Credential) {
        let used = source.key(keys).unwrap_or(keys.prefix);
        return Err(node.error(
            diagnostics,
            format!(
                "{name} picks one key of an INI file, so it goes with {} or {}; {used} holds the {} itself: remove {name}, or name the INI file with {} instead",
                keys.file, keys.credential, keys.what, keys.file
            ),
        ));
    }
    if !is_ini_key_name(key) || looks_like_key_material(key) {
        let given = if key.is_empty() {
            "the value given is empty"
        } else {
            "the value given is not such a name (letters, digits, '_', '.', ':' and '-'), so it is not shown"
        };
        return Err(node.error(
            diagnostics,
            format!(
                "{name} names the key whose line holds the {} in the INI file, e.g. dns_rfc2136_secret for certbot's RFC 2136 credentials; {given}",
                keys.what
            ),
        ));
    }
    Ok(key)
}

/// A key as configobj files write them: letters, digits, `_`, `.`, `:` (third-party certbot
/// plugins prefix their keys with `plugin:`) and `-`, at most 128 of them.
fn is_ini_key_name(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

/// Read the text the value of `node` points at (or is, inline).
fn fetch<'a, 'i>(
    keys: &'static SecretKeys,
    source: Source,
    node: &Node<'a, 'i>,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<SecretText<'a, 'i>, Reported> {
    let value = SourceValue {
        keys,
        source,
        value: node.str(diagnostics)?,
    };
    let mut origin = Origin {
        value,
        path: None,
        ini: None,
    };
    let read = read_text(&mut origin, context);
    let (text, loose_mode) = read.map_err(|failure| {
        let message = failure.message(&origin);
        node.error(diagnostics, message)
    })?;
    if let Some(mode) = loose_mode {
        node.warning(
            diagnostics,
            format!("{origin} can be read by group or others (mode {mode:04o}); restrict it with chmod 600"),
        );
    }
    Ok(SecretText {
        text,
        origin,
        node: node.clone(),
    })
}

/// The text and, for a file group or others can access, its permission bits. Sets the path
/// of `origin` to the file read.
fn read_text(
    origin: &mut Origin<'_>,
    context: &Context<'_>,
) -> Result<(String, Option<u32>), Failure> {
    let value = origin.value;
    if value.source == Source::Inline {
        return Ok((value.value.to_owned(), None));
    }
    if value.value.is_empty() {
        return Err(Failure::Empty);
    }
    if !value.is_usable() {
        return Err(Failure::Unusable);
    }
    let path = match value.source {
        Source::Env => {
            let text = context.env.var(value.value).ok_or(Failure::EnvUnset)?;
            return Ok((text.to_owned(), None));
        }
        Source::Credential => {
            let directory = context
                .env
                .credentials_directory
                .as_ref()
                .ok_or(Failure::NoCredentialsDirectory)?;
            directory.join(value.value)
        }
        Source::File | Source::Inline => context.resolve(value.value),
    };
    origin.path = Some(path.clone());
    let read = || -> io::Result<(String, u32)> {
        let mut file = File::open(&path)?;
        let mode = file.metadata()?.permissions().mode();
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        Ok((text, mode))
    };
    let (text, mode) = read().map_err(Failure::Read)?;
    Ok((text, (mode & 0o077 != 0).then_some(mode & 0o777)))
}

/// A password (SMTP, the fleet's database): the text without its final line break.
pub(crate) fn decode_password(text: &str) -> Result<certkeeper_core::Secret, &'static str> {
    let password = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    if password.is_empty() {
        return Err("is empty");
    }
    Ok(certkeeper_core::Secret::new(password.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: SecretKeys = secret_keys! {
        prefix: "token",
        inline: true,
        what: "token",
        example_env: "CERTKEEPER_TOKEN",
        example_file: "/etc/certkeeper/token",
        example_credential: "token",
    };

    fn value(source: Source, value: &str) -> SourceValue<'_> {
        SourceValue {
            keys: &KEYS,
            source,
            value,
        }
    }

    #[test]
    fn keys_follow_the_prefix() {
        let keys = [KEYS.file, KEYS.env, KEYS.credential];
        assert_eq!(keys, ["token_file", "token_env", "token_credential"]);
        assert_eq!(Source::Inline.key(&KEYS), Some("token"));
    }

    #[test]
    fn key_material_is_recognized() {
        let cases = [
            // base64 and base64url keys, padded or not, with or without '/', '+', '-', '_'.
            ("dGhpcy1pcy1hLXRlc3QtaG1hYy1rZXktb2YtMzItYnl0", true),
            ("Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTA", true),
            ("q8Zr/Ud9xK3mP0vW7yT2bN5cL1hJ4gF6sD8aQ0eR+tY=", true),
            ("kX2-pQ9_rLm2Vb8NtYz4Wc", true),
            ("  q8Zr/Ud9xK3mP0vW7yT2bN5cL1hJ4gF6sD8aQ0eR+tY=\n", true),
            // hex, bare or separated.
            ("3f786850e387550fdab836ed7e6dc881de23001b", true),
            ("DEADBEEFDEADBEEFDEADBEEFDEADBEEF", true),
            ("3f:78:68:50:e3:87:55:0f:da:b8:36:ed:7e:6d:c8:81", true),
            ("123e4567-e89b-12d3-a456-426614174000", true),
            // Names and paths.
            ("CERTKEEPER_DIGICERT_HMAC", false),
            ("CERTKEEPER_MISSING", false),
            ("digicert-hmac", false),
            ("/etc/certkeeper/digicert.hmac", false),
            ("/etc/certkeeper/digicert2024hmac", false),
            // Mixed-case names err toward hiding: CamelCase with digits, written together.
            ("/etc/certkeeper/DigiCert2024Hmac", true),
            ("Certkeeper_Digicert_Hmac_V2", true),
            ("/run/credentials/certkeeper.service/digicert-hmac", false),
            ("DigiCert2024Key", false),
            ("certkeeper-digicert-hmac-key-for-prod", false),
            ("hooks/deploy-2024-01-15.sh", false),
        ];
        for (value, expected) in cases {
            assert_eq!(looks_like_key_material(value), expected, "{value:?}");
        }
    }

    /// Random keys as CAs hand them out, from a fixed-seed generator (xorshift64*), so
    /// every run checks the same ones.
    fn random_keys(count: usize, bytes: usize) -> Vec<Vec<u8>> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes()[7]
        };
        (0..count)
            .map(|_| (0..bytes).map(|_| next()).collect())
            .collect()
    }

    #[test]
    fn random_keys_look_like_key_material() {
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        // (key length in bytes, how many of its 20,000 encodings may pass for a name). The
        // one miss is base64url, which the shape check may still catch ('-' is in no
        // variable name).
        for (bytes, allowed) in [(16, 0), (24, 1), (32, 0), (64, 0)] {
            let missed = random_keys(10_000, bytes)
                .iter()
                .flat_map(|key| [STANDARD.encode(key), URL_SAFE_NO_PAD.encode(key)])
                .filter(|text| !looks_like_key_material(text))
                .count();
            assert!(missed <= allowed, "{missed} keys of {bytes} bytes missed");
        }
    }

    #[test]
    fn values_are_shown_only_with_the_shape_their_key_expects() {
        let key = "q8Zr/Ud9xK3mP0vW7yT2bN5cL1hJ4gF6sD8aQ0eR+tY=";
        let cases = [
            (
                Source::Env,
                "CERTKEEPER_MISSING",
                Some("CERTKEEPER_MISSING"),
            ),
            (Source::Env, "_private1", Some("_private1")),
            (Source::Env, "1ST", None),
            (Source::Env, "MY-VAR", None),
            (Source::Env, "hunter2.pass!", None),
            (
                Source::Env,
                "3f786850e387550fdab836ed7e6dc881de23001b",
                None,
            ),
            (Source::Env, key, None),
            (
                Source::Credential,
                "digicert-hmac",
                Some("\"digicert-hmac\""),
            ),
            (Source::Credential, "../digicert-hmac", None),
            (Source::Credential, "a:b", None),
            (Source::Credential, "my pass word", None),
            (Source::Credential, key, None),
            (Source::File, "digicert.hmac", Some("\"digicert.hmac\"")),
            (
                Source::File,
                "/etc/certkeeper/digicert.hmac",
                Some("\"/etc/certkeeper/digicert.hmac\""),
            ),
            (Source::File, "correct horse battery staple", None),
            (Source::File, key, None),
            (Source::Inline, "digicert.hmac", None),
            (Source::Inline, key, None),
        ];
        for (source, raw, expected) in cases {
            let value = value(source, raw);
            let shown = value.to_string();
            match expected {
                Some(expected) => assert_eq!(shown, expected, "{raw:?}"),
                None => {
                    assert!(value.shown().is_none(), "{raw:?}");
                    assert!(shown.ends_with("(not shown)"), "{shown}");
                    assert!(!shown.contains(raw), "{shown}");
                    assert!(!format!("{value:?}").contains(raw));
                }
            }
        }
        assert_eq!(
            value(Source::Env, key).to_string(),
            "a value that looks like key material (not shown)"
        );
        assert_eq!(
            value(Source::Env, "MY-VAR").to_string(),
            "a value that is not a variable name (not shown)"
        );
        assert_eq!(
            value(Source::Inline, key).to_string(),
            "the token (not shown)"
        );
    }

    #[test]
    fn origins_of_hidden_values_hide_the_path_built_from_them() {
        let key = "q8Zr/Ud9xK3mP0vW7yT2bN5cL1hJ4gF6sD8aQ0eR+tY=";
        let origin = Origin {
            value: value(Source::File, key),
            path: Some(PathBuf::from("/etc/certkeeper").join(key)),
            ini: None,
        };
        assert_eq!(
            origin.to_string(),
            "the file named in token_file, a value that looks like key material (not shown)"
        );
        let origin = Origin {
            value: value(Source::Credential, "token"),
            path: Some(PathBuf::from("/run/credentials/x/token")),
            ini: None,
        };
        assert_eq!(
            origin.to_string(),
            "credential \"token\" (/run/credentials/x/token)"
        );
    }

    #[test]
    fn hidden_values_get_what_their_key_expects() {
        let key = "q8Zr/Ud9xK3mP0vW7yT2bN5cL1hJ4gF6sD8aQ0eR+tY=";
        let origin = Origin {
            value: value(Source::Env, key),
            path: None,
            ini: None,
        };
        assert_eq!(
            Failure::Unusable.message(&origin),
            "token_env names an environment variable that holds the token, e.g. CERTKEEPER_TOKEN; the value given is not a variable name and looks like key material, so it is not shown; put the token in an environment variable and give its name here, or use token_file"
        );
        let origin = Origin {
            value: value(Source::Env, "CERTKEEPER_MISSING"),
            path: None,
            ini: None,
        };
        assert_eq!(
            Failure::EnvUnset.message(&origin),
            "environment variable CERTKEEPER_MISSING is not set"
        );
        let origin = Origin {
            value: value(Source::Env, ""),
            path: None,
            ini: None,
        };
        assert_eq!(
            Failure::Empty.message(&origin),
            "token_env names an environment variable that holds the token, e.g. CERTKEEPER_TOKEN; the value given is empty; put the token in an environment variable and give its name here, or use token_file"
        );
    }
}
