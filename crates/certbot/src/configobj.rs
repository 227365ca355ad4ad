//! The subset of Python's configobj INI dialect that certbot writes to `renewal/NAME.conf`.
//!
//! certbot writes these files with configobj: `key = value` lines, `# comments`, sections as
//! `[name]` and nested sections as `[[name]]` (one more bracket per level; `[[webroot_map]]`
//! lives inside `[renewalparams]`). An unquoted value with a comma is a list (`webroot_path =
//! /var/www/html,` is a one-item list); configobj quotes a value that contains a comma, a
//! `#` or surrounding spaces, so an unquoted value ends at the first `#`. Multi-line
//! (triple-quoted) values are not used by certbot and are refused rather than misread.
//!
//! Sections are kept flat under their dotted path (`renewalparams.webroot_map`), which is all
//! the importer needs.

use std::collections::BTreeMap;

use thiserror::Error;

/// One value: a string, or a list when the unquoted text held a comma.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    List(Vec<String>),
}

impl Value {
    /// The value as one string: a list's items joined with `, `.
    #[must_use]
    pub fn joined(&self) -> String {
        match self {
            Value::Str(text) => text.clone(),
            Value::List(items) => items.join(", "),
        }
    }

    /// The value as a list: a string is a list of one (none when empty).
    #[must_use]
    pub fn items(&self) -> Vec<String> {
        match self {
            Value::Str(text) if text.is_empty() => Vec::new(),
            Value::Str(text) => vec![text.clone()],
            Value::List(items) => items.clone(),
        }
    }
}

/// A parsed file: top-level keys and every section by dotted path, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigObj {
    pub top: BTreeMap<String, Value>,
    pub sections: BTreeMap<String, BTreeMap<String, Value>>,
}

impl ConfigObj {
    /// A top-level string value (a list is joined).
    #[must_use]
    pub fn top_str(&self, key: &str) -> Option<String> {
        self.top.get(key).map(Value::joined)
    }

    /// A value of `section`, as a string (a list is joined); `None` when absent or when it is
    /// configobj's spelling of Python's `None`.
    #[must_use]
    pub fn get_str(&self, section: &str, key: &str) -> Option<String> {
        self.sections
            .get(section)
            .and_then(|values| values.get(key))
            .map(Value::joined)
            .filter(|text| text != "None")
    }

    /// A value of `section`, as a list.
    #[must_use]
    pub fn get_list(&self, section: &str, key: &str) -> Vec<String> {
        self.sections
            .get(section)
            .and_then(|values| values.get(key))
            .map(Value::items)
            .unwrap_or_default()
    }
}

/// A line that is not configobj as certbot writes it. The message describes the problem and
/// never quotes the line: the file being read may not be what it claims to be (a link to
/// another root-only file), and its content must not reach a terminal or a log.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parse configobj text.
///
/// # Errors
/// The first line that is neither blank, a comment, a section header nor `key = value`, or
/// that has an unterminated quote.
pub fn parse(text: &str) -> Result<ConfigObj, ParseError> {
    let mut parsed = ConfigObj::default();
    // The open sections, outermost first; empty at top level.
    let mut path: Vec<String> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let fail = |message: String| ParseError { line, message };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if trimmed.starts_with('[') {
            let depth = trimmed.chars().take_while(|c| *c == '[').count();
            let closing = trimmed.chars().rev().take_while(|c| *c == ']').count();
            let name = trimmed[depth..trimmed.len() - closing].trim();
            if depth != closing || name.is_empty() {
                return Err(fail("a malformed section header".to_owned()));
            }
            if depth > path.len() + 1 {
                return Err(fail(
                    "a section nested deeper than the section it is in".to_owned(),
                ));
            }
            path.truncate(depth - 1);
            path.push(unquote_name(name).to_owned());
            parsed.sections.entry(path.join(".")).or_default();
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            return Err(fail("expected `key = value`".to_owned()));
        };
        let key = unquote_name(key.trim()).to_owned();
        if key.is_empty() {
            return Err(fail("a value without a key".to_owned()));
        }
        let value = parse_value(value.trim()).map_err(fail)?;
        if path.is_empty() {
            parsed.top.insert(key, value);
        } else {
            parsed
                .sections
                .entry(path.join("."))
                .or_default()
                .insert(key, value);
        }
    }
    Ok(parsed)
}

fn unquote_name(name: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = name
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner;
        }
    }
    name
}

/// Split a value into its comma-separated items, honouring quotes and stopping at a comment.
fn parse_value(text: &str) -> Result<Value, String> {
    if text.starts_with("\"\"\"") || text.starts_with("'''") {
        return Err("multi-line (triple-quoted) values are not supported".to_owned());
    }
    let mut items: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut quoted_item = false;
    let mut saw_comma = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' if current.trim().is_empty() && !quoted_item => {
                current.clear();
                let mut closed = false;
                for inner in chars.by_ref() {
                    if inner == c {
                        closed = true;
                        break;
                    }
                    current.push(inner);
                }
                if !closed {
                    return Err(format!("an unterminated {c} quote"));
                }
                quoted_item = true;
            }
            ',' => {
                saw_comma = true;
                // configobj's empty list is a lone `,`; empty unquoted items are dropped.
                if quoted_item || !current.trim().is_empty() {
                    items.push(finish_item(&current, quoted_item));
                }
                current.clear();
                quoted_item = false;
            }
            '#' => break,
            _ if quoted_item => {
                if !c.is_whitespace() {
                    // Not quoted: the line may be a secret (credentials files are read with
                    // this parser too).
                    return Err("text after a closing quote".to_owned());
                }
            }
            _ => current.push(c),
        }
    }
    let last = finish_item(&current, quoted_item);
    if !saw_comma {
        return Ok(Value::Str(last));
    }
    // A trailing comma ends the list without an empty last item (`a,` is `["a"]`).
    if !last.is_empty() || quoted_item {
        items.push(last);
    }
    Ok(Value::List(items))
}

fn finish_item(text: &str, quoted: bool) -> String {
    if quoted {
        text.to_owned()
    } else {
        text.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn str_value(text: &str) -> Value {
        Value::Str(text.to_owned())
    }

    fn list(items: &[&str]) -> Value {
        Value::List(items.iter().map(|item| (*item).to_owned()).collect())
    }

    #[test]
    fn values_strings_lists_quotes_and_comments() {
        let cases: &[(&str, Value)] = &[
            ("plain", str_value("plain")),
            ("", str_value("")),
            (
                "systemctl reload nginx",
                str_value("systemctl reload nginx"),
            ),
            ("/var/www/html,", list(&["/var/www/html"])),
            ("a, b ,c", list(&["a", "b", "c"])),
            ("\"a, b\"", str_value("a, b")),
            ("'x # y'", str_value("x # y")),
            ("value # comment", str_value("value")),
            ("\"a\", 'b',", list(&["a", "b"])),
            (",", list(&[])),
            (
                "https://one.digicert.com/dir?action=renew&orderId=1",
                str_value("https://one.digicert.com/dir?action=renew&orderId=1"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_value(text).as_ref(), Ok(expected), "{text:?}");
        }
        assert!(parse_value("\"open").is_err());
        assert_eq!(
            parse_value("\"a\" secret"),
            Err("text after a closing quote".to_owned()),
            "the text is not quoted"
        );
        assert!(parse_value("'''multi").is_err());
    }

    #[test]
    fn sections_nest_by_bracket_count() {
        let parsed = parse(
            "# renew_before_expiry = 30 days\nversion = 2.1.0\n\n[renewalparams]\n\
             authenticator = webroot\n[[webroot_map]]\nexample.com = /var/www/html\n\
             [other]\nkey = 'v'\n",
        )
        .expect("parses");
        assert_eq!(parsed.top_str("version").as_deref(), Some("2.1.0"));
        assert_eq!(
            parsed.get_str("renewalparams", "authenticator").as_deref(),
            Some("webroot")
        );
        assert_eq!(
            parsed
                .get_str("renewalparams.webroot_map", "example.com")
                .as_deref(),
            Some("/var/www/html")
        );
        assert_eq!(parsed.get_str("other", "key").as_deref(), Some("v"));
    }

    #[test]
    fn python_none_reads_as_absent() {
        let parsed = parse("[renewalparams]\npre_hook = None\n").expect("parses");
        assert_eq!(parsed.get_str("renewalparams", "pre_hook"), None);
    }

    #[test]
    fn malformed_lines_name_their_line() {
        for (text, line) in [
            ("a = 1\nnot a pair\n", 2),
            ("[a]\n[[[b]]]\n", 2),
            ("[a]]\n", 1),
            ("k = \"open\n", 1),
        ] {
            assert_eq!(parse(text).map_err(|err| err.line), Err(line), "{text:?}");
        }
    }
}
