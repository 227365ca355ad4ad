//! Typed, position-aware access to the parsed TOML tree.
//!
//! `toml`'s [`DeTable`] keeps a span on every key and value. [`Table`] and [`Node`] carry
//! that span together with the key path (`certificate[1].domains[0]`), so a check that finds
//! a wrong type, a missing key or an unknown key reports it with its position and path
//! without threading either through by hand. Serde derive would stop at the first problem
//! and lose unknown keys' positions, hence the walk by hand.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Diagnostics, FileId, Reported, collect_all};

/// A table (the document, a `[table]`, an inline table or one `[[entry]]`).
#[derive(Debug, Clone)]
pub(crate) struct Table<'a, 'i> {
    entries: &'a DeTable<'i>,
    file: FileId,
    span: Range<usize>,
    path: String,
}

/// A value and where it is.
#[derive(Debug, Clone)]
pub(crate) struct Node<'a, 'i> {
    value: &'a DeValue<'i>,
    file: FileId,
    span: Range<usize>,
    path: String,
}

impl<'a, 'i> Table<'a, 'i> {
    /// The top-level table of `file`'s document.
    pub(crate) fn root(document: &'a Spanned<DeTable<'i>>, file: FileId) -> Self {
        Self {
            entries: document.get_ref(),
            file,
            span: document.span(),
            path: String::new(),
        }
    }

    /// The value under `key`, if present.
    pub(crate) fn get(&self, key: &str) -> Option<Node<'a, 'i>> {
        self.entries.get(key).map(|value| Node {
            value: value.get_ref(),
            file: self.file,
            span: value.span(),
            path: child_path(&self.path, key),
        })
    }

    /// Every key and its value, in the order they are written (the map itself is sorted by
    /// key), for tables whose keys are names chosen by the operator (`[reload.NAME]`).
    pub(crate) fn entries(&self) -> Vec<(&'a str, Node<'a, 'i>)> {
        let mut entries: Vec<(&'a str, Node<'a, 'i>)> = self
            .entries
            .iter()
            .map(|(key, value)| {
                let name: &'a str = key.get_ref();
                let node = Node {
                    value: value.get_ref(),
                    file: self.file,
                    span: value.span(),
                    path: child_path(&self.path, name),
                };
                (name, node)
            })
            .collect();
        entries.sort_by_key(|(_, node)| node.span.start);
        entries
    }

    /// The value under `key`; its absence is an error reported at the table's header.
    pub(crate) fn required(
        &self,
        key: &str,
        diagnostics: &mut Diagnostics<'_>,
    ) -> Result<Node<'a, 'i>, Reported> {
        self.get(key).ok_or_else(|| {
            diagnostics.error(
                self.file,
                &self.span,
                &child_path(&self.path, key),
                "missing required key",
            )
        })
    }

    /// The value under `key` checked by `check`, or `Ok(None)` when absent.
    pub(crate) fn optional<T>(
        &self,
        key: &str,
        check: impl FnOnce(&Node<'a, 'i>) -> Result<T, Reported>,
    ) -> Result<Option<T>, Reported> {
        self.get(key).as_ref().map(check).transpose()
    }

    /// Report every key not in `known`, suggesting the closest known key when one is near.
    pub(crate) fn reject_unknown_keys(&self, known: &[&str], diagnostics: &mut Diagnostics<'_>) {
        self.reject_keys(known, |_| None, diagnostics);
    }

    /// Report every key not in `known`: with the message `misplaced` returns for it (a key
    /// that exists, but not here), or else as unknown, suggesting the closest known key.
    pub(crate) fn reject_keys(
        &self,
        known: &[&str],
        misplaced: impl Fn(&str) -> Option<String>,
        diagnostics: &mut Diagnostics<'_>,
    ) {
        for key in self.entries.keys() {
            let name = key.get_ref();
            if known.contains(&name.as_ref()) {
                continue;
            }
            let message = misplaced(name).unwrap_or_else(|| match closest(name, known) {
                Some(suggestion) => format!("unknown key; did you mean {suggestion:?}?"),
                None => format!("unknown key; expected one of: {}", known.join(", ")),
            });
            diagnostics.error(
                self.file,
                &key.span(),
                &child_path(&self.path, name),
                message,
            );
        }
    }

    /// Record an error about the table as a whole, at its header.
    pub(crate) fn error(
        &self,
        diagnostics: &mut Diagnostics<'_>,
        key: &str,
        message: impl Into<String>,
    ) -> Reported {
        diagnostics.error(self.file, &self.span, &child_path(&self.path, key), message)
    }

    /// Record a warning about the table as a whole, at its header.
    pub(crate) fn warning(
        &self,
        diagnostics: &mut Diagnostics<'_>,
        key: &str,
        message: impl Into<String>,
    ) {
        diagnostics.warning(self.file, &self.span, &child_path(&self.path, key), message);
    }
}

impl<'a, 'i> Node<'a, 'i> {
    pub(crate) fn span(&self) -> &Range<usize> {
        &self.span
    }

    pub(crate) fn file(&self) -> FileId {
        self.file
    }

    /// The 1-based line the value starts on.
    pub(crate) fn line(&self, diagnostics: &Diagnostics<'_>) -> usize {
        diagnostics.line_of(self.file, &self.span)
    }

    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    pub(crate) fn value(&self) -> &'a DeValue<'i> {
        self.value
    }

    /// Record an error about this value.
    pub(crate) fn error(
        &self,
        diagnostics: &mut Diagnostics<'_>,
        message: impl Into<String>,
    ) -> Reported {
        diagnostics.error(self.file, &self.span, &self.path, message)
    }

    /// Record a warning about this value.
    pub(crate) fn warning(&self, diagnostics: &mut Diagnostics<'_>, message: impl Into<String>) {
        diagnostics.warning(self.file, &self.span, &self.path, message);
    }

    /// The error for a value of the wrong type; `expected` reads "a string", "an array", ...
    pub(crate) fn wrong_type(&self, diagnostics: &mut Diagnostics<'_>, expected: &str) -> Reported {
        self.error(
            diagnostics,
            format!("expected {expected}, found {}", self.value.type_str()),
        )
    }

    pub(crate) fn str(&self, diagnostics: &mut Diagnostics<'_>) -> Result<&'a str, Reported> {
        self.value
            .as_str()
            .ok_or_else(|| self.wrong_type(diagnostics, "a string"))
    }

    pub(crate) fn bool(&self, diagnostics: &mut Diagnostics<'_>) -> Result<bool, Reported> {
        self.value
            .as_bool()
            .ok_or_else(|| self.wrong_type(diagnostics, "a boolean"))
    }

    /// The elements of an array, each with its indexed path.
    pub(crate) fn array(
        &self,
        diagnostics: &mut Diagnostics<'_>,
        expected: &str,
    ) -> Result<Vec<Node<'a, 'i>>, Reported> {
        let items = self
            .value
            .as_array()
            .ok_or_else(|| self.wrong_type(diagnostics, expected))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(index, item)| Node {
                value: item.get_ref(),
                file: self.file,
                span: item.span(),
                path: format!("{}[{index}]", self.path),
            })
            .collect())
    }

    pub(crate) fn table(
        &self,
        diagnostics: &mut Diagnostics<'_>,
    ) -> Result<Table<'a, 'i>, Reported> {
        let entries = self
            .value
            .as_table()
            .ok_or_else(|| self.wrong_type(diagnostics, "a table"))?;
        Ok(Table {
            entries,
            file: self.file,
            span: self.span.clone(),
            path: self.path.clone(),
        })
    }

    /// A string turned into `T` by `parse`; its error message is reported at the value.
    pub(crate) fn parse<T>(
        &self,
        diagnostics: &mut Diagnostics<'_>,
        parse: impl FnOnce(&'a str) -> Result<T, String>,
    ) -> Result<T, Reported> {
        let text = self.str(diagnostics)?;
        parse(text).map_err(|message| self.error(diagnostics, message))
    }

    /// An array of strings, each turned into `T` by `parse` and kept with its node; every bad
    /// element is reported.
    pub(crate) fn parse_each<T>(
        &self,
        diagnostics: &mut Diagnostics<'_>,
        mut parse: impl FnMut(&'a str) -> Result<T, String>,
    ) -> Result<Vec<(Node<'a, 'i>, T)>, Reported> {
        let items = self.array(diagnostics, "an array of strings")?;
        collect_all(items.into_iter().map(|item| {
            let value = item.parse(diagnostics, &mut parse)?;
            Ok((item, value))
        }))
    }
}

/// `parent.key`, quoting `key` when it is not a bare TOML key.
fn child_path(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// The known key closest to a misspelt `key`, if it is close enough to be a typo.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let key = key.to_ascii_lowercase();
    let threshold = (key.chars().count() / 3).max(1);
    known
        .iter()
        .map(|candidate| (edit_distance(&key, candidate), *candidate))
        .filter(|(distance, _)| *distance <= threshold)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn key_paths_quote_keys_that_are_not_bare() {
        assert_eq!(child_path("", "ca"), "ca");
        assert_eq!(child_path("ca[0]", "eab_kid"), "ca[0].eab_kid");
        assert_eq!(child_path("http01", "a b"), "http01.\"a b\"");
        assert_eq!(child_path("", "x.y"), "\"x.y\"");
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let known = ["name", "directory", "eab_kid", "contact"];
        assert_eq!(closest("directroy", &known), Some("directory"));
        assert_eq!(closest("Name", &known), Some("name"));
        assert_eq!(closest("contacts", &known), Some("contact"));
        assert_eq!(closest("email", &known), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn misplaced_keys_get_their_own_message() {
        let text = "state_dir = \"x\"\ncertificat = 1\nca = []\n";
        let document = DeTable::parse(text).expect("valid TOML");
        let mut diagnostics = Diagnostics::new();
        let file = diagnostics.add_file(Path::new("conf.d/a.toml"), text);
        let root = Table::root(&document, file);
        root.reject_keys(
            &["ca", "certificate"],
            |key| (key == "state_dir").then(|| format!("{key} belongs elsewhere")),
            &mut diagnostics,
        );
        let errors = diagnostics.finish(Ok(())).expect_err("errors recorded");
        assert_eq!(
            errors.to_string(),
            [
                "conf.d/a.toml:1:1: state_dir: state_dir belongs elsewhere",
                "conf.d/a.toml:2:1: certificat: unknown key; did you mean \"certificate\"?",
            ]
            .join("\n")
        );
    }

    #[test]
    fn nodes_report_types_and_every_bad_element() {
        let text = "list = [\"a\", 2, \"c\", true]\nflag = \"yes\"\n";
        let document = DeTable::parse(text).expect("valid TOML");
        let mut diagnostics = Diagnostics::new();
        let file = diagnostics.add_file(Path::new("t.toml"), text);
        let root = Table::root(&document, file);
        let list = root.required("list", &mut diagnostics).expect("present");
        let parsed = list.parse_each(&mut diagnostics, |s| Ok(s.to_owned()));
        assert!(parsed.is_err());
        let flag = root.optional("flag", |node| node.bool(&mut diagnostics));
        assert!(flag.is_err());
        assert!(root.required("missing", &mut diagnostics).is_err());
        root.reject_unknown_keys(&["list", "flags"], &mut diagnostics);
        let errors = diagnostics.finish(Ok(())).expect_err("errors recorded");
        assert_eq!(
            errors.to_string(),
            [
                "t.toml:1:1: missing: missing required key",
                "t.toml:1:14: list[1]: expected a string, found integer",
                "t.toml:1:22: list[3]: expected a string, found boolean",
                "t.toml:2:1: flag: unknown key; did you mean \"flags\"?",
                "t.toml:2:8: flag: expected a boolean, found string",
            ]
            .join("\n")
        );
    }
}
