//! Man pages and shell completions, generated and checked in under `packaging/`.
//!
//! Nothing here is written twice: `certkeeper(8)`, the `certkeeper-COMMAND(8)` pages and the
//! bash, zsh and fish completions come from the clap definition in [`crate::cli`], and
//! `certkeeper.toml(5)` comes from the comments of `config/certkeeper.toml`, the annotated
//! example that the test suite also loads. Only what neither source says (signals, files,
//! environment) is written here, once.
//!
//! The files are checked in so that packaging needs no build step of its own and a review
//! shows what users will read. The test below fails when a checked-in file is stale;
//! regenerate them all with
//!
//! ```sh
//! CERTKEEPER_BLESS=1 cargo test -p certkeeper --bin certkeeper docs
//! ```
//!
//! The module is compiled for tests only, so the shipped binary carries no generator.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use roff::{Roff, bold, italic, roman};

use crate::cli::Cli;

/// The regeneration command, for failure messages.
pub const BLESS: &str = "CERTKEEPER_BLESS=1 cargo test -p certkeeper --bin certkeeper docs";

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every generated file: (path relative to the repository root, contents).
pub fn generate() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let command = documented_command();
    files.push((
        "packaging/man/certkeeper.8".to_owned(),
        main_page(&command).into_bytes(),
    ));
    for sub in command.get_subcommands() {
        let name = format!("certkeeper-{}", sub.get_name());
        let page = subcommand_page(sub, &name);
        files.push((format!("packaging/man/{name}.8"), page.into_bytes()));
        // `notify test`, `cluster status`: the pages the command's SUBCOMMANDS name.
        for nested in sub.get_subcommands() {
            let name = format!("{name}-{}", nested.get_name());
            let page = subcommand_page(nested, &name);
            files.push((format!("packaging/man/{name}.8"), page.into_bytes()));
        }
    }
    let example = std::fs::read_to_string(root().join("config/certkeeper.toml"))
        .expect("config/certkeeper.toml is readable");
    let dns = std::fs::read_to_string(root().join("config/dns-01.toml"))
        .expect("config/dns-01.toml is readable");
    let notify = std::fs::read_to_string(root().join("config/notify.toml"))
        .expect("config/notify.toml is readable");
    let fleet = std::fs::read_to_string(root().join("config/fleet.toml"))
        .expect("config/fleet.toml is readable");
    files.push((
        "packaging/man/certkeeper.toml.5".to_owned(),
        config_page(&example, &dns, &notify, &fleet).into_bytes(),
    ));
    for (shell, file) in [
        (Shell::Bash, "certkeeper.bash"),
        (Shell::Zsh, "_certkeeper"),
        (Shell::Fish, "certkeeper.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "certkeeper", &mut out);
        files.push((format!("packaging/completions/{file}"), out));
    }
    files
}

/// The command as documented: without clap's `help` subcommand, which would otherwise get a
/// page of its own.
fn documented_command() -> clap::Command {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    command
}

fn version() -> String {
    format!("certkeeper {}", env!("CARGO_PKG_VERSION"))
}

/// Render `roff` without the apostrophe preamble (the page's first part already has it).
fn body(roff: &Roff) -> String {
    let preamble = Roff::new().render();
    let text = roff.render();
    text.strip_prefix(&preamble).unwrap_or(&text).to_owned()
}

fn render_with(man: &clap_mangen::Man, parts: &[ManPart]) -> String {
    let mut out = Vec::new();
    for part in parts {
        let mut piece = Vec::new();
        let result = match part {
            ManPart::Title => man.render_title(&mut piece),
            ManPart::Name => man.render_name_section(&mut piece),
            ManPart::Synopsis => man.render_synopsis_section(&mut piece),
            ManPart::Description => man.render_description_section(&mut piece),
            ManPart::Options => man.render_options_section(&mut piece),
            ManPart::Subcommands => man.render_subcommands_section(&mut piece),
        };
        result.expect("rendering into memory");
        let text = String::from_utf8(piece).expect("clap_mangen writes UTF-8");
        if out.is_empty() {
            out.extend(text.into_bytes());
        } else {
            let preamble = Roff::new().render();
            out.extend(text.strip_prefix(&preamble).unwrap_or(&text).as_bytes());
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

enum ManPart {
    Title,
    Name,
    Synopsis,
    Description,
    Options,
    Subcommands,
}

fn man(command: clap::Command, name: &str) -> clap_mangen::Man {
    clap_mangen::Man::new(command.name(name.to_owned()))
        .section("8")
        .source(version())
        .manual("System Administration")
}

/// `certkeeper(8)`: the clap definition, then exit codes (from the command's own help),
/// signals, environment and files.
fn main_page(command: &clap::Command) -> String {
    let man = man(command.clone().after_help(None::<&str>), "certkeeper");
    let mut page = render_with(
        &man,
        &[
            ManPart::Title,
            ManPart::Name,
            ManPart::Synopsis,
            ManPart::Description,
            ManPart::Options,
            ManPart::Subcommands,
        ],
    );
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    let exit_codes = command
        .get_after_help()
        .map(ToString::to_string)
        .unwrap_or_default();
    roff.text([roman(exit_codes)]);
    roff.control("PP", []);
    roff.text([roman(
        "The unit file pairs 78 with RestartPreventExitStatus=78, so a broken \
         configuration does not restart in a loop.",
    )]);

    roff.control("SH", ["SIGNALS"]);
    for (signal, meaning) in [
        (
            "SIGHUP",
            "certkeeper run: re-read and validate the configuration and apply it; an invalid \
             configuration is logged and the previous one stays in force. Edits to the \
             configuration files trigger the same reload.",
        ),
        (
            "SIGTERM, SIGINT",
            "start nothing new, give orders in flight 30 seconds to finish, exit 0. A second \
             signal stops at once.",
        ),
    ] {
        roff.control("TP", []);
        roff.text([bold(signal)]);
        roff.text([roman(meaning)]);
    }

    roff.control("SH", ["ENVIRONMENT"]);
    for (variable, meaning) in [
        ("CERTKEEPER_CONFIG", "the inventory file, as --config."),
        (
            "RUST_LOG",
            "the log filter when --log-level is not given (default info).",
        ),
        (
            "NOTIFY_SOCKET, WATCHDOG_USEC",
            "set by systemd: certkeeper run reports READY=1, STATUS=, RELOADING=1, STOPPING=1 \
             and WATCHDOG=1.",
        ),
        (
            "JOURNAL_STREAM",
            "set by systemd when stderr is the journal: logs then go to journald natively, \
             with fields such as CERT and DOMAINS.",
        ),
        (
            "CREDENTIALS_DIRECTORY",
            "set by systemd with LoadCredential=: where eab_hmac_key_credential is read from.",
        ),
    ] {
        roff.control("TP", []);
        roff.text([bold(variable)]);
        roff.text([roman(meaning)]);
    }

    roff.control("SH", ["FILES"]);
    for (path, meaning) in [
        (
            "/etc/certkeeper/certkeeper.toml",
            "the inventory; see certkeeper.toml(5).",
        ),
        (
            "/var/lib/certkeeper",
            "the default state directory: accounts/, archive/NAME/, live/NAME/ (certbot's \
             layout: cert.pem, chain.pem, fullchain.pem, privkey.pem), state/ and the lock.",
        ),
        (
            "/lib/systemd/system/certkeeper.service",
            "the hardened unit running certkeeper run as the certkeeper user.",
        ),
        (
            "/lib/systemd/system/certkeeper-reload@.path",
            "with certkeeper-reload@.service: root enables certkeeper-reload@NAME.path once per \
             web or mail server; a reload target writing /run/certkeeper/reload/NAME then makes \
             root reload NAME.service, and nothing else.",
        ),
    ] {
        roff.control("TP", []);
        roff.text([italic(path)]);
        roff.text([roman(meaning)]);
    }

    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "certkeeper.toml(5), certkeeper-run(8), certkeeper-renew(8), \
         certkeeper-import-certbot(8), certkeeper-cluster(8), systemd.service(5), journalctl(1)",
    )]);
    page.push_str(&body(&roff));
    page
}

/// `certkeeper-COMMAND(8)`; a command with subcommands of its own (`notify`, `cluster`)
/// lists them.
fn subcommand_page(sub: &clap::Command, name: &str) -> String {
    let man = man(sub.clone(), name);
    let mut parts = vec![
        ManPart::Title,
        ManPart::Name,
        ManPart::Synopsis,
        ManPart::Description,
        ManPart::Options,
    ];
    if sub.has_subcommands() {
        parts.push(ManPart::Subcommands);
    }
    let mut page = render_with(&man, &parts);
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman("certkeeper(8), certkeeper.toml(5)")]);
    page.push_str(&body(&roff));
    page
}

/// One line of the example configuration.
#[derive(Debug, PartialEq, Eq)]
enum ExampleLine<'a> {
    Blank,
    /// A `# ----` rule between groups of settings.
    Rule,
    /// Comment text without the `#` and one following space.
    Comment(&'a str),
    /// `[name]` or `[[name]]`.
    Table(&'a str),
    /// `key = value`.
    Setting {
        key: &'a str,
        line: &'a str,
    },
}

fn classify(line: &str) -> ExampleLine<'_> {
    let trimmed = line.trim_end();
    if trimmed.is_empty() {
        ExampleLine::Blank
    } else if let Some(comment) = trimmed.strip_prefix('#') {
        if comment.trim_start().starts_with("----") {
            ExampleLine::Rule
        } else {
            ExampleLine::Comment(comment.strip_prefix(' ').unwrap_or(comment))
        }
    } else if trimmed.starts_with('[') {
        ExampleLine::Table(trimmed)
    } else {
        let key = trimmed.split('=').next().unwrap_or(trimmed).trim();
        ExampleLine::Setting { key, line: trimmed }
    }
}

/// Comment lines that are examples rather than prose: indented, or commented-out TOML.
fn is_literal(text: &str) -> bool {
    if text.starts_with("  ") {
        return true;
    }
    let toml_like = text.starts_with('[') && text.ends_with(']');
    let setting = text.split_once(" = ").is_some_and(|(key, _)| {
        !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    });
    toml_like || setting
}

/// A comment block that describes an optional setting and ends with it commented out:
/// (key, the setting line, the description).
fn commented_out_setting<'a, 'b>(
    lines: &'b [&'a str],
) -> Option<(&'a str, &'a str, &'b [&'a str])> {
    let (last, prose) = lines.split_last()?;
    let (key, _) = last.split_once(" = ")?;
    let is_key = !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    let described = prose
        .iter()
        .any(|line| !line.trim().is_empty() && !is_literal(line));
    let single = !prose
        .iter()
        .any(|line| line.split_once(" = ").is_some_and(|(k, _)| k == key));
    (is_key && described && single).then_some((key, *last, prose))
}

/// Append comment lines as paragraphs: prose lines are joined (troff fills them), literal
/// lines are kept as they are, an empty comment line starts a new paragraph.
fn push_comment(roff: &mut Roff, lines: &[&str], paragraph: &str) {
    let mut literal = false;
    let mut first = true;
    for line in lines {
        if line.trim().is_empty() {
            if literal {
                roff.control("fi", []);
                literal = false;
            }
            first = true;
            continue;
        }
        if first {
            roff.control(paragraph, []);
            first = false;
        }
        match (is_literal(line), literal) {
            (true, false) => {
                roff.control("nf", []);
                literal = true;
            }
            (false, true) => {
                roff.control("fi", []);
                literal = false;
            }
            _ => {}
        }
        roff.text([roman(*line)]);
    }
    if literal {
        roff.control("fi", []);
    }
}

/// The part of `dns-01.toml` that defines providers: from the comment block above its first
/// `[dns.` table to the next rule.
fn dns_providers(example: &str) -> &str {
    example_part(example, "\n[dns.")
}

/// The part of `notify.toml` that defines notification targets: from the comment block
/// above its first `[[notify]]` table to the next rule (the end of the file).
fn notify_targets(example: &str) -> &str {
    example_part(example, "\n[[notify]]")
}

/// The part of `fleet.toml` that makes a node part of a fleet: from the comment block above
/// `[cluster]` to the next rule (the end of the file).
fn cluster_table(example: &str) -> &str {
    example_part(example, "\n[cluster]")
}

/// The part of an example from the rule above the first `table` to the next rule.
fn example_part<'e>(example: &'e str, table: &str) -> &'e str {
    let Some(table) = example.find(table) else {
        return "";
    };
    // The rule that opens the providers' part, so its comment block comes along.
    let start = example[..table]
        .rfind("\n# ---")
        .map_or(table, |rule| rule + 1);
    let after_rule = example[start..]
        .find('\n')
        .map_or(example.len(), |end| start + end + 1);
    let end = example[after_rule..]
        .find("\n# ---")
        .map_or(example.len(), |end| after_rule + end + 1);
    &example[after_rule..end]
}

/// Render an annotated example: its opening comment a description (when `with_settings`, the
/// first rule then starts the SETTINGS section), each table a section, each setting a tagged
/// paragraph with the comment above it.
fn describe_example(roff: &mut Roff, example: &str, with_settings: bool) {
    let lines: Vec<ExampleLine<'_>> = example.lines().map(classify).collect();
    let mut pending: Vec<&str> = Vec::new();
    let mut seen_tables: Vec<&str> = Vec::new();
    let mut in_description = with_settings;
    // Whether the last thing written was a setting, so that comment lines that follow it
    // directly (alternatives to it) stay in its paragraph.
    let mut after_setting = false;
    // Inside a repeated table (a second [[certificate]]): settings are shown as an example.
    let mut repeated = false;
    for line in &lines {
        if repeated {
            // A second table of a kind already described is shown as the example it is.
            match line {
                ExampleLine::Blank | ExampleLine::Rule => roff.text([roman("")]),
                ExampleLine::Comment(text) => roff.text([roman(format!("# {text}"))]),
                ExampleLine::Table(text) | ExampleLine::Setting { line: text, .. } => {
                    roff.text([roman(*text)])
                }
            };
            continue;
        }
        match line {
            ExampleLine::Comment(text) => pending.push(text),
            ExampleLine::Blank | ExampleLine::Rule => {
                if let Some((key, setting, prose)) = commented_out_setting(&pending)
                    && !after_setting
                {
                    // An optional setting shown commented out, with its description above.
                    roff.control("TP", []);
                    roff.text([
                        bold(key),
                        roman(setting.strip_prefix(key).unwrap_or(setting)),
                        italic("  (commented out in the example)"),
                    ]);
                    push_comment(roff, prose, "IP");
                } else if !pending.is_empty() {
                    let paragraph = if after_setting { "IP" } else { "PP" };
                    push_comment(roff, &pending, paragraph);
                }
                pending.clear();
                after_setting = false;
                if *line == ExampleLine::Rule && in_description {
                    in_description = false;
                    roff.control("SH", ["SETTINGS"]);
                    roff.text([roman(
                        "Settings at the top of the file, before any table. The values shown \
                         are the annotated example's.",
                    )]);
                }
            }
            ExampleLine::Table(header) if seen_tables.contains(header) => {
                repeated = true;
                push_comment(roff, &pending, "PP");
                pending.clear();
                roff.control("SS", [format!("Another {header}").as_str()]);
                roff.control("nf", []);
                roff.text([roman(*header)]);
            }
            ExampleLine::Table(header) => {
                seen_tables.push(header);
                roff.control("SH", [*header]);
                push_comment(roff, &pending, "PP");
                pending.clear();
                after_setting = false;
            }
            ExampleLine::Setting { key, line } => {
                roff.control("TP", []);
                roff.text([bold(*key), roman(line.strip_prefix(key).unwrap_or(line))]);
                push_comment(roff, &pending, "IP");
                pending.clear();
                after_setting = true;
            }
        }
    }
    if repeated {
        roff.control("fi", []);
    } else if !pending.is_empty() {
        push_comment(roff, &pending, "PP");
    }
}

/// `certkeeper.toml(5)` from the annotated example: its opening comment is the description,
/// each table a section, each setting a tagged paragraph with the comment above it, and the
/// example values as written.
///
/// The `[dns.NAME]` provider tables are documented in `dns-01.toml` (certkeeper.toml only
/// points there); their part of that example, from its first `[dns.` table to the rule after
/// the providers, becomes the page's DNS PROVIDERS section the same way; the `[[notify]]`
/// part of `notify.toml` its NOTIFICATIONS section, the `[cluster]` part of `fleet.toml` its
/// FLEET MODE section.
fn config_page(
    example: &str,
    dns_example: &str,
    notify_example: &str,
    fleet_example: &str,
) -> String {
    let mut roff = Roff::new();
    roff.control(
        "TH",
        [
            "CERTKEEPER.TOML",
            "5",
            "",
            version().as_str(),
            "File Formats",
        ],
    );
    roff.control("SH", ["NAME"]);
    roff.text([roman(
        "certkeeper.toml \\- the certkeeper inventory: ACME CAs and the certificates to keep",
    )]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([italic("/etc/certkeeper/certkeeper.toml")]);
    roff.control("SH", ["DESCRIPTION"]);

    describe_example(&mut roff, example, true);
    roff.control("SH", ["DNS PROVIDERS"]);
    roff.text([roman(
        "From dns-01.toml, the annotated example of certificates validated through DNS: \
         the [dns.NAME] tables that certificates name with dns = \"NAME\".",
    )]);
    describe_example(&mut roff, dns_providers(dns_example), false);
    roff.control("SH", ["NOTIFICATIONS"]);
    roff.text([roman(
        "From notify.toml, the annotated example of notification targets: the [[notify]] \
         tables, webhooks, e-mail and commands.",
    )]);
    describe_example(&mut roff, notify_targets(notify_example), false);
    roff.control("SH", ["FLEET MODE"]);
    roff.text([roman(
        "From fleet.toml, the annotated example of a node in a fleet: the [cluster] table, \
         the PostgreSQL database that several nodes share their certificates through \
         (see certkeeper-cluster(8)).",
    )]);
    describe_example(&mut roff, cluster_table(fleet_example), false);
    roff.control("SH", ["FILES"]);
    roff.control("TP", []);
    roff.text([italic("/etc/certkeeper/certkeeper.toml")]);
    roff.text([roman(
        "the inventory certkeeper reads unless --config or CERTKEEPER_CONFIG names another.",
    )]);
    roff.control("TP", []);
    roff.text([italic("/usr/share/doc/certkeeper/examples/certkeeper.toml")]);
    roff.text([roman("the annotated example this page is made from.")]);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman("certkeeper(8), certkeeper-check(8), systemd.exec(5)")]);
    roff.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in man pages and completions are what the sources generate; with
    /// `CERTKEEPER_BLESS=1` they are rewritten instead.
    #[test]
    fn docs_are_current() {
        let bless = std::env::var_os("CERTKEEPER_BLESS").is_some();
        let mut stale = Vec::new();
        for (path, contents) in generate() {
            let full = root().join(&path);
            let current = std::fs::read(&full).ok();
            if current.as_deref() == Some(contents.as_slice()) {
                continue;
            }
            if bless {
                std::fs::create_dir_all(full.parent().expect("a parent directory"))
                    .expect("create the directory");
                std::fs::write(&full, &contents).expect("write the generated file");
            } else {
                stale.push(path);
            }
        }
        assert!(
            stale.is_empty(),
            "generated files are stale: {stale:?}\nregenerate them with: {BLESS}"
        );
    }

    #[test]
    fn config_page_documents_every_setting_of_the_example() {
        let page = String::from_utf8(
            generate()
                .into_iter()
                .find(|(path, _)| path.ends_with("certkeeper.toml.5"))
                .expect("the page is generated")
                .1,
        )
        .expect("UTF-8");
        for key in [
            "state_dir",
            "include",
            "window",
            "timezone",
            "urgent_before",
            "listen",
            "eab_kid",
            "eab_hmac_key_env",
            "root_ca_file",
            "terms_of_service_agreed",
            "order_id",
            "renew_before",
            "profile",
        ] {
            assert!(
                page.contains(&format!("\\fB{key}\\fR")),
                "{key} is not documented"
            );
        }
        for key in [
            "type",
            "server",
            "tls",
            "username",
            "password_credential",
            "from",
            "to",
            "events",
        ] {
            assert!(
                page.contains(&format!("\\fB{key}\\fR")),
                "notify key {key} is not documented"
            );
        }
        for key in [
            "postgres",
            "password_credential",
            "tls",
            "node",
            "fleet_key_credential",
            "lease",
            "sync_interval",
        ] {
            assert!(
                page.contains(&format!("\\fB{key}\\fR")),
                "cluster key {key} is not documented"
            );
        }
        for section in [
            ".SH [[ca]]",
            ".SH [[certificate]]",
            ".SH [http01]",
            ".SH NOTIFICATIONS",
            ".SH [[notify]]",
            ".SH \"FLEET MODE\"",
            ".SH [cluster]",
        ] {
            assert!(page.contains(section), "missing {section}");
        }
    }

    #[test]
    fn literal_lines_are_recognised() {
        assert!(is_literal("  auto      (default) send none"));
        assert!(is_literal(
            "eab_hmac_key_file = \"/etc/certkeeper/digicert.hmac\""
        ));
        assert!(is_literal("[[ca]]"));
        assert!(!is_literal(
            "Required. The lineage name, used as a directory name."
        ));
        assert!(!is_literal("Default false; most CAs refuse = to create"));
    }
}
