//! A secret that is one `key = value` line of an INI file: certbot's credentials files.
//!
//! certbot's DNS plugins keep their settings and secret together in one INI file, which
//! certbot reads with Python's configobj (`dns_rfc2136_secret = BASE64` next to the server,
//! the key name and the algorithm). `PREFIX_ini_key` names the key to read, so certkeeper
//! reads the secret where certbot keeps it and `import-certbot` never copies it: there stays
//! one copy of the secret to protect and to rotate.
//!
//! Only what certbot's files use is accepted, as configobj reads it: `# comments`, blank
//! lines, top-level `key = value` lines, a value in single or double quotes or unquoted up to
//! a `#`. Keys under a `[section]` are not top-level and are not looked at. A line configobj
//! would refuse (no `=`, an unterminated quote), a multi-line value, a list (a comma outside
//! quotes, which certbot would hand on as a list) and the key set twice (configobj refuses
//! the file) are errors, so certkeeper never reads a secret certbot could not have used.
//!
//! The file holds a secret and any of its lines may be it, so a problem is described by its
//! line number and the configured key's name only, never by any of the text.

use thiserror::Error;

/// The value of the key, and the line it is on (1-based).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct IniValue {
    pub(crate) text: String,
    pub(crate) line: usize,
}

/// Why the key's value could not be read. No variant holds any of the file's text; `key` is
/// the configured name, which is checked to be a plain name before it is looked up.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum IniProblem {
    #[error(
        "line {line} is neither `key = value`, a [section] header nor a # comment (the line is not shown)"
    )]
    NotKeyValue { line: usize },
    #[error("line {line} has a value with an unterminated quote (the line is not shown)")]
    UnterminatedQuote { line: usize },
    #[error("line {line} has text after the closing quote of its value (the line is not shown)")]
    TextAfterQuote { line: usize },
    #[error("line {line} has a multi-line (triple-quoted) value, which certbot does not write")]
    MultiLine { line: usize },
    #[error(
        "line {line}: {key} holds a list (a comma outside quotes), not one secret; quote the value"
    )]
    List { key: String, line: usize },
    #[error("the file sets {key} twice, on lines {first} and {second}; keep one")]
    Duplicate {
        key: String,
        first: usize,
        second: usize,
    },
    #[error("the file has no `{key} = ...` line at its top level (before any [section])")]
    Missing { key: String },
}

/// The value of top-level `key` in INI `text`.
///
/// # Errors
/// The first line configobj would not read, a value of `key` that is a list, `key` set twice,
/// or `key` absent.
pub(crate) fn value_of(text: &str, key: &str) -> Result<IniValue, IniProblem> {
    let mut found: Option<IniValue> = None;
    let mut top_level = true;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let raw = if index == 0 {
            raw.trim_start_matches('\u{feff}')
        } else {
            raw
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if trimmed.starts_with('[') {
            if !trimmed.ends_with(']') {
                return Err(IniProblem::NotKeyValue { line });
            }
            top_level = false;
            continue;
        }
        let Some((name, value)) = trimmed.split_once('=') else {
            return Err(IniProblem::NotKeyValue { line });
        };
        let name = unquote(name.trim());
        if name.is_empty() {
            return Err(IniProblem::NotKeyValue { line });
        }
        let value = parse_value(value.trim(), line);
        if !top_level || name != key {
            // Other lines only need to be readable, as configobj reads the whole file; a list
            // is a value like any other there.
            if let Err(ValueProblem::Line(problem)) = value {
                return Err(problem);
            }
            continue;
        }
        let text = value.map_err(|problem| problem.for_key(key))?;
        if let Some(first) = &found {
            return Err(IniProblem::Duplicate {
                key: key.to_owned(),
                first: first.line,
                second: line,
            });
        }
        found = Some(IniValue { text, line });
    }
    found.ok_or_else(|| IniProblem::Missing {
        key: key.to_owned(),
    })
}

/// A key written in quotes, as configobj allows.
fn unquote(name: &str) -> &str {
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

/// A value problem before it is known whether the line holds the key asked for.
enum ValueProblem {
    Line(IniProblem),
    List { line: usize },
}

impl ValueProblem {
    fn for_key(self, key: &str) -> IniProblem {
        match self {
            ValueProblem::Line(problem) => problem,
            ValueProblem::List { line } => IniProblem::List {
                key: key.to_owned(),
                line,
            },
        }
    }
}

/// One value: quoted (the text between the quotes) or unquoted (up to a `#`, trimmed).
fn parse_value(text: &str, line: usize) -> Result<String, ValueProblem> {
    if text.starts_with("\"\"\"") || text.starts_with("'''") {
        return Err(ValueProblem::Line(IniProblem::MultiLine { line }));
    }
    let mut chars = text.chars();
    match chars.next() {
        Some(quote @ ('"' | '\'')) => {
            let rest = chars.as_str();
            let Some(end) = rest.find(quote) else {
                return Err(ValueProblem::Line(IniProblem::UnterminatedQuote { line }));
            };
            let after = rest[end + quote.len_utf8()..].trim_start();
            if after.is_empty() || after.starts_with('#') {
                Ok(rest[..end].to_owned())
            } else if after.starts_with(',') {
                Err(ValueProblem::List { line })
            } else {
                Err(ValueProblem::Line(IniProblem::TextAfterQuote { line }))
            }
        }
        _ => {
            let value = text.split_once('#').map_or(text, |(value, _)| value);
            if value.contains(',') {
                return Err(ValueProblem::List { line });
            }
            Ok(value.trim().to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dns_rfc2136_secret";

    fn read(text: &str) -> Result<(String, usize), IniProblem> {
        value_of(text, KEY).map(|value| (value.text, value.line))
    }

    #[test]
    fn reads_the_key_as_certbot_writes_it() {
        let certbot = "# Target DNS server\ndns_rfc2136_server = 192.0.2.53\n\
                       dns_rfc2136_name = certbot.\n# TSIG key secret\n\
                       dns_rfc2136_secret = c2VjcmV0LXRzaWc=\ndns_rfc2136_algorithm = HMAC-SHA512\n";
        assert_eq!(read(certbot), Ok(("c2VjcmV0LXRzaWc=".to_owned(), 5)));
        let cases: &[(&str, &str)] = &[
            ("dns_rfc2136_secret=abc", "abc"),
            ("  dns_rfc2136_secret =  abc  # a comment", "abc"),
            ("dns_rfc2136_secret = \"ab c=\"", "ab c="),
            ("dns_rfc2136_secret = 'a#b' # comment", "a#b"),
            ("\"dns_rfc2136_secret\" = abc", "abc"),
            ("\u{feff}dns_rfc2136_secret = abc", "abc"),
            ("dns_rfc2136_secret = ab cd", "ab cd"),
            ("dns_rfc2136_secret =", ""),
        ];
        for (text, expected) in cases {
            assert_eq!(read(text), Ok(((*expected).to_owned(), 1)), "{text:?}");
        }
    }

    #[test]
    fn keys_in_sections_are_not_top_level() {
        assert_eq!(
            read("[other]\ndns_rfc2136_secret = abc\n"),
            Err(IniProblem::Missing {
                key: KEY.to_owned()
            })
        );
        assert_eq!(
            read("dns_rfc2136_secret = abc\n[other]\ndns_rfc2136_secret = def\n"),
            Ok(("abc".to_owned(), 1))
        );
        assert_eq!(
            read("webroot = /a, /b\ndns_rfc2136_secret = abc\n"),
            Ok(("abc".to_owned(), 2)),
            "other keys may hold lists"
        );
    }

    #[test]
    fn problems_give_a_line_and_never_the_text() {
        let secret = "c2VjcmV0LXRzaWc";
        let cases: Vec<(String, IniProblem)> = vec![
            (
                format!("a = 1\n{secret}\n"),
                IniProblem::NotKeyValue { line: 2 },
            ),
            (
                format!("dns_rfc2136_secret = \"{secret}\n"),
                IniProblem::UnterminatedQuote { line: 1 },
            ),
            (
                format!("dns_rfc2136_secret = \"{secret}\" x\n"),
                IniProblem::TextAfterQuote { line: 1 },
            ),
            (
                format!("dns_rfc2136_secret = '''{secret}\n"),
                IniProblem::MultiLine { line: 1 },
            ),
            (
                format!("dns_rfc2136_secret = {secret}, {secret}\n"),
                IniProblem::List {
                    key: KEY.to_owned(),
                    line: 1,
                },
            ),
            (
                format!("dns_rfc2136_secret = {secret}\n\ndns_rfc2136_secret = {secret}\n"),
                IniProblem::Duplicate {
                    key: KEY.to_owned(),
                    first: 1,
                    second: 3,
                },
            ),
            (
                format!("secret = {secret}\n"),
                IniProblem::Missing {
                    key: KEY.to_owned(),
                },
            ),
            (format!("= {secret}\n"), IniProblem::NotKeyValue { line: 1 }),
            (format!("[{secret}\n"), IniProblem::NotKeyValue { line: 1 }),
        ];
        for (text, expected) in cases {
            let problem = read(&text).expect_err("a problem");
            assert_eq!(problem, expected, "{text:?}");
            let message = problem.to_string();
            assert!(!message.contains(secret), "{message}");
        }
    }
}
