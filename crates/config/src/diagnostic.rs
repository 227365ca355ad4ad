//! Diagnostics: what is wrong, in which file, at which line and column, under which key.
//!
//! The loader never stops at the first problem. Every check records into one
//! [`Diagnostics`] collector and carries on, so an operator fixes a config in one round
//! trip instead of one error per restart. A check that failed returns [`Reported`], a token
//! only the collector can mint: a caller holding `Err(Reported)` knows a diagnostic was
//! recorded, which is what lets `load_str` turn "some entry failed" into "here is why"
//! without an internal-error fallback.
//!
//! Positions come from TOML spans (byte ranges); [`LineIndex`] turns them into 1-based line
//! and column numbers, counting columns in characters as editors do. One collector serves
//! the main file and every included file: each position is a [`FileId`] and a span, so a
//! check comparing entries of two files (a duplicate name) reports into the right one.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The configuration is refused.
    Error,
    /// The configuration is accepted, but something deserves attention (a secret stored
    /// inline, a key file readable by others).
    Warning,
}

/// One problem found in a configuration file.
///
/// `key` is the path of the offending key, such as `certificate[1].domains[0]` or
/// `ca[0].eab_hmac_key_file`: dotted keys, and 0-based indices for arrays and for
/// `[[ca]]`/`[[certificate]]` entries in file order. It is empty for problems that belong to
/// no key (TOML syntax errors, an unreadable file).
///
/// `line` and `column` are 1-based; both are 0 when the problem has no position in the
/// text (the file could not be read at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
    pub severity: Severity,
}

impl fmt::Display for Diagnostic {
    /// `{file}:{line}:{column}: {key}: {message}`; the position is left out when there is
    /// none and the key when it is empty. The severity is not shown: callers know which list
    /// a diagnostic came from (see [`ConfigErrors`]'s `Display`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        f.write_str(": ")?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// The configuration was refused. `errors` holds every problem found (never empty when
/// returned by the loader); `warnings` what would have been reported had it been accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl fmt::Display for ConfigErrors {
    /// One diagnostic per line: the errors in file order, then the warnings in file order,
    /// each prefixed with `warning: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.errors.iter().map(|d| ("", d));
        let warnings = self.warnings.iter().map(|d| ("warning: ", d));
        for (index, (prefix, diagnostic)) in errors.chain(warnings).enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{prefix}{diagnostic}")?;
        }
        Ok(())
    }
}

/// Proof that an error diagnostic has been recorded. Only [`Diagnostics::error`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reported {
    _private: (),
}

/// Byte offset -> 1-based (line, column).
#[derive(Debug)]
pub(crate) struct LineIndex<'t> {
    text: &'t str,
    /// Byte offset at which each line starts; the first is always 0.
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Self { text, starts }
    }

    /// The 1-based line and column (in characters) of `offset`, clamped to the text.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        // `starts[0] == 0 <= offset`, so the partition point is at least 1.
        let line = self.starts.partition_point(|&start| start <= offset);
        let line_start = self.starts[line - 1];
        let column = self
            .text
            .get(line_start..offset)
            .map_or(offset - line_start, |before| before.chars().count());
        (line, column + 1)
    }
}

/// A file diagnostics may point into: the main configuration or an included file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FileId(usize);

#[derive(Debug)]
struct SourceFile<'t> {
    path: PathBuf,
    lines: LineIndex<'t>,
}

/// Collects every diagnostic, for the main file and every file it includes.
#[derive(Debug)]
pub(crate) struct Diagnostics<'t> {
    files: Vec<SourceFile<'t>>,
    errors: Vec<(FileId, Diagnostic)>,
    warnings: Vec<(FileId, Diagnostic)>,
}

impl<'t> Diagnostics<'t> {
    pub(crate) fn new() -> Self {
        Self {
            files: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Register a file and its text. Files are numbered in the order they are added, which is
    /// also the order their diagnostics are listed in.
    pub(crate) fn add_file(&mut self, path: &Path, text: &'t str) -> FileId {
        self.files.push(SourceFile {
            path: path.to_owned(),
            lines: LineIndex::new(text),
        });
        FileId(self.files.len() - 1)
    }

    fn file(&self, file: FileId) -> &SourceFile<'t> {
        // A `FileId` is only made by `add_file`, and files are never removed.
        &self.files[file.0]
    }

    /// The path `file` was registered with.
    pub(crate) fn path(&self, file: FileId) -> &Path {
        &self.file(file).path
    }

    /// The 1-based line on which `span` starts.
    pub(crate) fn line_of(&self, file: FileId, span: &Range<usize>) -> usize {
        self.file(file).lines.position(span.start).0
    }

    /// Record an error at `span` of `file`, under `key`.
    pub(crate) fn error(
        &mut self,
        file: FileId,
        span: &Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> Reported {
        let diagnostic = self.diagnostic(file, span, key, message.into(), Severity::Error);
        self.errors.push((file, diagnostic));
        Reported { _private: () }
    }

    /// Record a warning at `span` of `file`, under `key`.
    pub(crate) fn warning(
        &mut self,
        file: FileId,
        span: &Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) {
        let diagnostic = self.diagnostic(file, span, key, message.into(), Severity::Warning);
        self.warnings.push((file, diagnostic));
    }

    fn diagnostic(
        &self,
        file: FileId,
        span: &Range<usize>,
        key: &str,
        message: String,
        severity: Severity,
    ) -> Diagnostic {
        let source = self.file(file);
        let (line, column) = source.lines.position(span.start);
        Diagnostic {
            file: source.path.clone(),
            line,
            column,
            key: key.to_owned(),
            message,
            severity,
        }
    }

    /// The loaded value and the warnings, or every diagnostic when any error was recorded.
    /// Both lists are sorted by file (in the order the files were added: the main file first,
    /// then included files in load order) and position within it. The sort is stable, so
    /// diagnostics at one spot keep the order in which the checks ran.
    pub(crate) fn finish<T>(
        self,
        result: Result<T, Reported>,
    ) -> Result<(T, Vec<Diagnostic>), ConfigErrors> {
        fn sorted(mut list: Vec<(FileId, Diagnostic)>) -> Vec<Diagnostic> {
            list.sort_by_key(|(file, d)| (*file, d.line, d.column));
            list.into_iter().map(|(_, d)| d).collect()
        }
        let errors = sorted(self.errors);
        let warnings = sorted(self.warnings);
        match result {
            Ok(value) if errors.is_empty() => Ok((value, warnings)),
            _ => Err(ConfigErrors { errors, warnings }),
        }
    }
}

/// Evaluate every result (so each failure records its diagnostic), then combine them.
///
/// `Iterator::collect::<Result<Vec<_>, _>>` stops at the first `Err`, which would hide the
/// problems in the remaining items.
pub(crate) fn collect_all<T>(
    results: impl IntoIterator<Item = Result<T, Reported>>,
) -> Result<Vec<T>, Reported> {
    let results: Vec<_> = results.into_iter().collect();
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_one_based_lines_and_character_columns() {
        let text = "a = 1\n\nname = \"é\" # x\r\nlast";
        let index = LineIndex::new(text);
        let cases = [
            (0, (1, 1)),
            (4, (1, 5)),
            (5, (1, 6)), // the newline itself
            (6, (2, 1)), // empty line
            (7, (3, 1)),
            (14, (3, 8)), // the opening quote
            (15, (3, 9)), // 'é', two bytes long
            // After 'é': a column in characters (11), not bytes (12).
            (text.find(" #").expect("in text"), (3, 11)),
            (text.find("last").expect("in text"), (4, 1)),
            (text.len(), (4, 5)),
            (text.len() + 10, (4, 5)), // clamped
        ];
        for (offset, expected) in cases {
            assert_eq!(index.position(offset), expected, "offset {offset}");
        }
    }

    #[test]
    fn display_formats() {
        let mut diagnostic = Diagnostic {
            file: PathBuf::from("conf/certkeeper.toml"),
            line: 3,
            column: 7,
            key: "certificate[0].domains[1]".to_owned(),
            message: "bad".to_owned(),
            severity: Severity::Error,
        };
        assert_eq!(
            diagnostic.to_string(),
            "conf/certkeeper.toml:3:7: certificate[0].domains[1]: bad"
        );
        diagnostic.key.clear();
        diagnostic.line = 0;
        assert_eq!(diagnostic.to_string(), "conf/certkeeper.toml: bad");
    }

    #[test]
    fn errors_are_sorted_by_file_and_position_and_block_the_result() {
        let text = "a\nb\nc\n";
        let mut diagnostics = Diagnostics::new();
        let main = diagnostics.add_file(Path::new("f.toml"), text);
        let included = diagnostics.add_file(Path::new("conf.d/g.toml"), text);
        diagnostics.error(included, &(0..1), "a", "in the included file");
        diagnostics.error(main, &(4..5), "c", "third");
        diagnostics.error(main, &(0..1), "a", "first");
        diagnostics.warning(main, &(2..3), "b", "careful");
        assert_eq!(diagnostics.path(included), Path::new("conf.d/g.toml"));
        assert_eq!(diagnostics.line_of(main, &(4..5)), 3);
        let errors = diagnostics
            .finish(Ok(()))
            .expect_err("errors were recorded");
        assert_eq!(
            errors.to_string(),
            [
                "f.toml:1:1: a: first",
                "f.toml:3:1: c: third",
                "conf.d/g.toml:1:1: a: in the included file",
                "warning: f.toml:2:1: b: careful",
            ]
            .join("\n")
        );
    }

    #[test]
    fn collect_all_evaluates_every_item() {
        let mut diagnostics = Diagnostics::new();
        let file = diagnostics.add_file(Path::new("f.toml"), "");
        let lazy = (0..3).map(|i| -> Result<u8, Reported> {
            Err(diagnostics.error(file, &(0..0), "", format!("item {i}")))
        });
        assert!(collect_all(lazy).is_err());
        let errors = diagnostics.finish(Ok(())).expect_err("three errors");
        assert_eq!(errors.errors.len(), 3);
    }
}
