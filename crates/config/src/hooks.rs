//! The hook keys: `hooks_dir`, `hook_timeout`, `[hooks]`, `[reload.NAME]`, and each
//! certificate's `pre_hook`, `deploy_hook`, `post_hook` and `reload`.
//!
//! Every place that takes a hook accepts the same three forms, so there is one rule to learn:
//! a string (a command line for `/bin/sh -c`), an array of strings (program and arguments,
//! executed without a shell), or a table `{ command = <string or array>, timeout = "30s" }`.
//! A string is the explicit way to ask for a shell; an array is never re-split or re-quoted.
//!
//! Defaults are resolved here, once: a certificate's [`CertHooks`] holds its own hook for each
//! key it sets (`false` for none), the `[hooks]` default otherwise, and every hook carries its
//! effective timeout (its own, `hook_timeout`, or [`DEFAULT_HOOK_TIMEOUT`]).
//!
//! Reload targets are referred to by name; a certificate's `reload` list is checked against
//! every `[reload.*]` key as written, even broken ones, so one mistake in a target does not
//! also make every certificate that uses it "unknown".

use std::io::ErrorKind;
use std::path::PathBuf;
use std::time::Duration;

use certkeeper_core::hooks::{DEFAULT_HOOK_TIMEOUT, check_reload_name};
use certkeeper_core::{CertHooks, Hook, HookCommand, ReloadTarget};
use toml::de::DeValue;

use crate::Context;
use crate::diagnostic::{Diagnostics, Reported, collect_all};
use crate::values::{duration, path};
use crate::walk::{Node, Table};

pub(crate) const HOOKS_DIR_KEY: &str = "hooks_dir";
pub(crate) const HOOK_TIMEOUT_KEY: &str = "hook_timeout";
pub(crate) const HOOKS_KEY: &str = "hooks";
/// `[reload.NAME]` at the top level; `reload = [NAME, ...]` in `[hooks]` and certificates.
pub(crate) const RELOAD_KEY: &str = "reload";
const PRE_HOOK: &str = "pre_hook";
const DEPLOY_HOOK: &str = "deploy_hook";
const POST_HOOK: &str = "post_hook";
/// The hook keys of `[hooks]` and `[[certificate]]`.
pub(crate) const CERTIFICATE_HOOK_KEYS: [&str; 4] = [PRE_HOOK, DEPLOY_HOOK, POST_HOOK, RELOAD_KEY];
/// The table form of a hook, and a `[reload.NAME]` table.
const COMMAND_TABLE_KEYS: [&str; 2] = ["command", "timeout"];

const COMMAND_FORMS: &str = "a command: a string (run by /bin/sh -c), an array of strings (program and arguments), or a table with command and timeout";
const COMMAND_FORMS_OR_FALSE: &str = "a command: a string (run by /bin/sh -c), an array of strings (program and arguments), a table with command and timeout, or false for none";
const ARGV_EXAMPLE: &str = "[\"systemctl\", \"reload\", \"nginx\"]";

/// The hook settings of the main file, which certificates inherit.
#[derive(Debug)]
pub(crate) struct HookSettings<'a> {
    pub(crate) hooks_dir: Result<Option<PathBuf>, Reported>,
    /// The effective `hook_timeout`.
    pub(crate) timeout: Result<Duration, Reported>,
    pub(crate) reload_targets: Result<Vec<ReloadTarget>, Reported>,
    /// `[hooks]`: what a certificate gets for each key it does not set.
    defaults: Result<CertHooks, Reported>,
    known: KnownTargets<'a>,
}

/// Reload target names as written, valid or not, for reference checks.
#[derive(Debug)]
struct KnownTargets<'a> {
    names: Vec<&'a str>,
    /// Set when `reload` itself is not a table: any name may have been meant to be in it.
    broken: Option<Reported>,
}

/// Check the main file's hook settings.
pub(crate) fn settings<'a>(
    root: &Table<'a, '_>,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> HookSettings<'a> {
    let hooks_dir = root.optional(HOOKS_DIR_KEY, |node| hooks_dir(node, context, diagnostics));
    let timeout = root
        .optional(HOOK_TIMEOUT_KEY, |node| duration(node, diagnostics))
        .map(|timeout| timeout.unwrap_or(DEFAULT_HOOK_TIMEOUT));
    // Hooks are checked with the default timeout when `hook_timeout` is broken: that is
    // reported already and refuses the inventory.
    let effective_timeout = timeout.unwrap_or(DEFAULT_HOOK_TIMEOUT);
    let (known, reload_targets) = reload_targets(root, effective_timeout, diagnostics);
    let defaults = root
        .optional(HOOKS_KEY, |node| {
            let table = node.table(diagnostics)?;
            table.reject_unknown_keys(&CERTIFICATE_HOOK_KEYS, diagnostics);
            let empty = CertHooks::default();
            hook_keys(
                &table,
                &empty,
                effective_timeout,
                &known,
                false,
                diagnostics,
            )
        })
        .map(Option::unwrap_or_default);
    HookSettings {
        hooks_dir,
        timeout,
        reload_targets,
        defaults,
        known,
    }
}

/// A certificate's effective hooks: the keys it sets, the `[hooks]` defaults for the rest.
pub(crate) fn certificate_hooks(
    table: &Table<'_, '_>,
    settings: &HookSettings<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<CertHooks, Reported> {
    let timeout = settings
        .timeout
        .as_ref()
        .copied()
        .unwrap_or(DEFAULT_HOOK_TIMEOUT);
    let empty = CertHooks::default();
    let defaults = settings.defaults.as_ref().unwrap_or(&empty);
    let hooks = hook_keys(table, defaults, timeout, &settings.known, true, diagnostics)?;
    // A broken `[hooks]` is reported there; certificates built on it are not valid either.
    settings.defaults.as_ref().map_err(|reported| *reported)?;
    Ok(hooks)
}

/// `pre_hook`, `deploy_hook`, `post_hook` and `reload` of `table`, each falling back to
/// `defaults` when absent. `false` ("none") is accepted where there is a default to undo.
fn hook_keys(
    table: &Table<'_, '_>,
    defaults: &CertHooks,
    timeout: Duration,
    known: &KnownTargets<'_>,
    allow_false: bool,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<CertHooks, Reported> {
    let mut one = |key: &str, default: &Option<Hook>| {
        table
            .optional(key, |node| hook(node, timeout, allow_false, diagnostics))
            .map(|own| own.unwrap_or_else(|| default.clone()))
    };
    let pre = one(PRE_HOOK, &defaults.pre);
    let deploy = one(DEPLOY_HOOK, &defaults.deploy);
    let post = one(POST_HOOK, &defaults.post);
    let reload = table
        .optional(RELOAD_KEY, |node| reload_list(node, known, diagnostics))
        .map(|own| own.unwrap_or_else(|| defaults.reload.clone()));
    Ok(CertHooks {
        pre: pre?,
        deploy: deploy?,
        post: post?,
        reload: reload?,
    })
}

/// `hooks_dir`: a directory. A missing one is only a warning: it is read each time hooks
/// run, so it may be created later (and an empty setup is normal).
fn hooks_dir(
    node: &Node<'_, '_>,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<PathBuf, Reported> {
    let dir = path(node, context, diagnostics)?;
    match std::fs::metadata(&dir) {
        Ok(metadata) if metadata.is_dir() => Ok(dir),
        Ok(_) => Err(node.error(diagnostics, format!("{dir:?} is not a directory"))),
        Err(err) if err.kind() == ErrorKind::NotFound => {
            node.warning(
                diagnostics,
                format!(
                    "{dir:?} does not exist; no hooks run from it until it is created (with pre/, deploy/ and post/ folders)"
                ),
            );
            Ok(dir)
        }
        Err(err) => Err(node.error(
            diagnostics,
            format!("cannot read hooks directory {dir:?}: {err}"),
        )),
    }
}

/// `[reload]`: named targets, each any hook form. Returns the names as written (for
/// reference checks) and the validated targets, in file order.
fn reload_targets<'a>(
    root: &Table<'a, '_>,
    timeout: Duration,
    diagnostics: &mut Diagnostics<'_>,
) -> (KnownTargets<'a>, Result<Vec<ReloadTarget>, Reported>) {
    let Some(node) = root.get(RELOAD_KEY) else {
        let none = KnownTargets {
            names: Vec::new(),
            broken: None,
        };
        return (none, Ok(Vec::new()));
    };
    let table = match node.table(diagnostics) {
        Ok(table) => table,
        Err(reported) => {
            let broken = KnownTargets {
                names: Vec::new(),
                broken: Some(reported),
            };
            return (broken, Err(reported));
        }
    };
    let entries = table.entries();
    let names = entries.iter().map(|(name, _)| *name).collect();
    let targets = collect_all(entries.iter().map(|(name, node)| {
        let checked = check_reload_name(name).map_err(|err| {
            node.error(
                diagnostics,
                format!("invalid reload target name {name:?}: {err}"),
            )
        });
        let hook = hook(node, timeout, false, diagnostics);
        checked?;
        Ok(ReloadTarget {
            name: (*name).to_owned(),
            // Without `false`, `hook` always returns a hook.
            hook: hook?.ok_or_else(|| node.wrong_type(diagnostics, COMMAND_FORMS))?,
        })
    }));
    let known = KnownTargets {
        names,
        broken: None,
    };
    (known, targets)
}

/// A hook in any of its forms; `Ok(None)` for `false` where `allow_false`.
fn hook(
    node: &Node<'_, '_>,
    default_timeout: Duration,
    allow_false: bool,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<Option<Hook>, Reported> {
    let expected = if allow_false {
        COMMAND_FORMS_OR_FALSE
    } else {
        COMMAND_FORMS
    };
    match node.value() {
        DeValue::Boolean(false) if allow_false => Ok(None),
        DeValue::Boolean(false) => Err(node.error(
            diagnostics,
            "false (no hook) is only accepted in a [[certificate]], to drop a [hooks] default",
        )),
        DeValue::String(_) | DeValue::Array(_) => Ok(Some(Hook {
            command: command(node, diagnostics)?,
            timeout: default_timeout,
        })),
        DeValue::Table(_) => {
            let table = node.table(diagnostics)?;
            table.reject_unknown_keys(&COMMAND_TABLE_KEYS, diagnostics);
            let command = table
                .required("command", diagnostics)
                .and_then(|node| command_value(&node, diagnostics));
            let timeout = table.optional("timeout", |node| duration(node, diagnostics));
            Ok(Some(Hook {
                command: command?,
                timeout: timeout?.unwrap_or(default_timeout),
            }))
        }
        _ => Err(node.wrong_type(diagnostics, expected)),
    }
}

/// The `command` of a hook table (or of a `[dns.NAME]` hook provider): a string or an array
/// of strings, not another table.
pub(crate) fn command_value(
    node: &Node<'_, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<HookCommand, Reported> {
    if matches!(node.value(), DeValue::String(_) | DeValue::Array(_)) {
        command(node, diagnostics)
    } else {
        Err(node.wrong_type(
            diagnostics,
            "a string (run by /bin/sh -c) or an array of strings (program and arguments)",
        ))
    }
}

/// A string or an array of strings; callers check the type first.
fn command(
    node: &Node<'_, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<HookCommand, Reported> {
    if let DeValue::String(line) = node.value() {
        return if line.trim().is_empty() {
            Err(node.error(
                diagnostics,
                format!(
                    "must not be empty; write a command line for /bin/sh -c, or an array such as {ARGV_EXAMPLE}"
                ),
            ))
        } else {
            Ok(HookCommand::Shell(line.to_string()))
        };
    }
    let argv = node.parse_each(diagnostics, |item| Ok(item.to_owned()))?;
    match argv.first() {
        None => Err(node.error(
            diagnostics,
            format!("must name the program to run, as in {ARGV_EXAMPLE}"),
        )),
        Some((program, text)) if text.trim().is_empty() => Err(program.error(
            diagnostics,
            "the program must not be empty; it is executed directly, without a shell",
        )),
        Some(_) => Ok(HookCommand::Argv(
            argv.into_iter().map(|(_, item)| item).collect(),
        )),
    }
}

/// `reload = ["nginx", ...]`: names of `[reload.*]` targets, each at most once.
fn reload_list(
    node: &Node<'_, '_>,
    known: &KnownTargets<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<Vec<String>, Reported> {
    let items = node.parse_each(diagnostics, Ok)?;
    let mut names: Vec<String> = Vec::new();
    let checked = collect_all(items.iter().map(|(item, name)| {
        if names.iter().any(|seen| seen == name) {
            return Err(item.error(
                diagnostics,
                format!("reload target {name:?} is listed twice"),
            ));
        }
        names.push((*name).to_owned());
        if known.names.contains(name) {
            return Ok(());
        }
        if let Some(reported) = known.broken {
            // `[reload]` itself is broken and reported; the name may be meant to be there.
            return Err(reported);
        }
        let message = if known.names.is_empty() {
            format!(
                "unknown reload target {name:?}: no [reload.*] target is configured; add [reload.{name}] with a command"
            )
        } else {
            let listed: Vec<String> = known.names.iter().map(|n| format!("{n:?}")).collect();
            format!(
                "unknown reload target {name:?}; configured targets: {}",
                listed.join(", ")
            )
        };
        Err(item.error(diagnostics, message))
    }));
    checked?;
    Ok(names)
}
