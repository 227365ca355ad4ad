//! The hook provider: an operator's command adds and removes the record.
//!
//! Two conventions that scripts already exist for are served at once:
//!
//! - lego's `exec` provider: the command gets `present FQDN VALUE` or `cleanup FQDN VALUE` as
//!   arguments (`FQDN` absolute, with its trailing dot). An argv command gets them appended; a
//!   shell command (a string, run by `/bin/sh -c`) sees them as `$1`, `$2`, `$3`.
//! - certbot's `--manual-auth-hook`/`--manual-cleanup-hook`: `CERTBOT_DOMAIN` (the domain
//!   under validation, without `_acme-challenge.` and `*.`), `CERTBOT_VALIDATION`,
//!   `CERTBOT_ALL_DOMAINS` (comma separated), `CERTBOT_REMAINING_CHALLENGES`, and for cleanup
//!   `CERTBOT_AUTH_OUTPUT`, what the present run printed on stdout.
//!
//! certbot users with two scripts keep them unchanged behind one shell command that picks
//! by the action: `case "$1" in present) exec /etc/letsencrypt/auth.sh ;; cleanup) exec
//! /etc/letsencrypt/cleanup.sh ;; esac`.
//!
//! certkeeper's own variables are `CERTKEEPER_DNS_FQDN` (where the record goes, after CNAME
//! delegation), `CERTKEEPER_DNS_VALUE` and `CERTKEEPER_NAME` (the certificate). A certbot
//! script that writes `_acme-challenge.$CERTBOT_DOMAIN` itself ignores CNAME delegation;
//! scripts that honour it use `CERTKEEPER_DNS_FQDN` or the FQDN argument.
//!
//! The command runs through `certkeeper_hooks::run`, like every other hook: a cleared
//! environment with a short pass-through list, its own process group, the configured timeout
//! and a SIGTERM/SIGKILL of the whole group when it runs over, output logged line by line.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use certkeeper_core::{Hook, HookCommand};
use certkeeper_hooks::{HookRun, Stream, run};

use crate::error::DnsError;
use crate::provider::{DnsProvider, ProviderFuture, TxtRecord};

/// Output lines of a failed hook kept in its error.
const ERROR_LINES: usize = 5;

/// Adds and removes TXT records by running a command.
#[derive(Debug)]
pub struct HookProvider {
    name: String,
    hook: Hook,
    /// stdout of each present run, keyed by (fqdn, value), for `CERTBOT_AUTH_OUTPUT`.
    auth_output: Mutex<HashMap<(String, String), String>>,
}

impl HookProvider {
    /// A provider called `name` (its configured name) that runs `hook`.
    #[must_use]
    pub fn new(name: impl Into<String>, hook: Hook) -> Self {
        Self {
            name: name.into(),
            hook,
            auth_output: Mutex::default(),
        }
    }

    async fn run(&self, action: &str, record: &TxtRecord) -> Result<String, DnsError> {
        let key = (record.fqdn.clone(), record.value.clone());
        let mut env = environment(record);
        if action == "cleanup" {
            let output = self.outputs().remove(&key).unwrap_or_default();
            env.push(("CERTBOT_AUTH_OUTPUT".to_owned(), output));
        }
        let hook = Hook {
            command: with_arguments(&self.hook.command, action, record),
            timeout: self.hook.timeout,
        };
        let label = format!("dns:{}:{action}", self.name);
        let outcome = run(HookRun::new(&label, &hook, &env))
            .await
            .map_err(|source| DnsError::HookRun { source })?;
        if !outcome.success {
            let skip = outcome.output.len().saturating_sub(ERROR_LINES);
            return Err(DnsError::HookFailed {
                label,
                outcome: outcome.to_string(),
                output: outcome
                    .output
                    .iter()
                    .skip(skip)
                    .map(|line| line.text.clone())
                    .collect(),
            });
        }
        let stdout: Vec<&str> = outcome
            .output
            .iter()
            .filter(|line| line.stream == Stream::Stdout)
            .map(|line| line.text.as_str())
            .collect();
        Ok(stdout.join("\n"))
    }

    fn outputs(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), String>> {
        // Nothing panics while holding the lock.
        self.auth_output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl DnsProvider for HookProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn add_txt<'a>(&'a self, record: &'a TxtRecord) -> ProviderFuture<'a> {
        Box::pin(async move {
            let stdout = self.run("present", record).await?;
            self.outputs()
                .insert((record.fqdn.clone(), record.value.clone()), stdout);
            Ok(())
        })
    }

    fn remove_txt<'a>(&'a self, record: &'a TxtRecord) -> ProviderFuture<'a> {
        Box::pin(async move { self.run("cleanup", record).await.map(drop) })
    }
}

/// `command` with `ACTION FQDN VALUE` as its arguments.
fn with_arguments(command: &HookCommand, action: &str, record: &TxtRecord) -> HookCommand {
    let arguments = [action.to_owned(), record.fqdn.clone(), record.value.clone()];
    match command {
        HookCommand::Argv(argv) => {
            HookCommand::Argv(argv.iter().cloned().chain(arguments).collect())
        }
        // `sh -c LINE NAME ARGS...`: the line sees the arguments as $1, $2, $3.
        HookCommand::Shell(line) => HookCommand::Argv(
            [
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                line.clone(),
                "certkeeper-dns-hook".to_owned(),
            ]
            .into_iter()
            .chain(arguments)
            .collect(),
        ),
    }
}

/// The variables both runs get (cleanup adds `CERTBOT_AUTH_OUTPUT`).
fn environment(record: &TxtRecord) -> Vec<(String, String)> {
    let context = &record.context;
    let domain = if context.domain.is_empty() {
        base_domain(&record.fqdn)
    } else {
        context.domain.clone()
    };
    let all_domains = if context.all_domains.is_empty() {
        domain.clone()
    } else {
        context.all_domains.join(",")
    };
    [
        ("CERTBOT_DOMAIN", domain),
        ("CERTBOT_VALIDATION", record.value.clone()),
        ("CERTBOT_ALL_DOMAINS", all_domains),
        (
            "CERTBOT_REMAINING_CHALLENGES",
            context.remaining_challenges.to_string(),
        ),
        ("CERTKEEPER_DNS_FQDN", record.fqdn.clone()),
        ("CERTKEEPER_DNS_VALUE", record.value.clone()),
        (
            "CERTKEEPER_NAME",
            context.certificate.clone().unwrap_or_default(),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

/// `_acme-challenge.www.example.org.` -> `www.example.org`.
fn base_domain(fqdn: &str) -> String {
    let name = fqdn.trim_end_matches('.');
    name.strip_prefix("_acme-challenge.")
        .unwrap_or(name)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::provider::RecordContext;

    fn record(context: RecordContext) -> TxtRecord {
        TxtRecord {
            fqdn: "_acme-challenge.example.test.".to_owned(),
            value: "digest".to_owned(),
            context,
        }
    }

    #[test]
    fn lego_arguments_for_argv_and_shell() {
        let record = record(RecordContext::default());
        assert_eq!(
            with_arguments(
                &HookCommand::Argv(vec!["/usr/local/bin/dns".to_owned(), "-v".to_owned()]),
                "present",
                &record
            ),
            HookCommand::Argv(
                [
                    "/usr/local/bin/dns",
                    "-v",
                    "present",
                    "_acme-challenge.example.test.",
                    "digest"
                ]
                .map(str::to_owned)
                .to_vec()
            )
        );
        assert_eq!(
            with_arguments(
                &HookCommand::Shell("echo \"$1\"".to_owned()),
                "cleanup",
                &record
            ),
            HookCommand::Argv(
                [
                    "/bin/sh",
                    "-c",
                    "echo \"$1\"",
                    "certkeeper-dns-hook",
                    "cleanup",
                    "_acme-challenge.example.test.",
                    "digest"
                ]
                .map(str::to_owned)
                .to_vec()
            )
        );
    }

    #[test]
    fn certbot_environment() {
        let env = environment(&record(RecordContext {
            domain: "example.test".to_owned(),
            certificate: Some("www".to_owned()),
            all_domains: vec!["example.test".to_owned(), "*.example.test".to_owned()],
            remaining_challenges: 1,
        }));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            env,
            [
                ("CERTBOT_DOMAIN", "example.test"),
                ("CERTBOT_VALIDATION", "digest"),
                ("CERTBOT_ALL_DOMAINS", "example.test,*.example.test"),
                ("CERTBOT_REMAINING_CHALLENGES", "1"),
                ("CERTKEEPER_DNS_FQDN", "_acme-challenge.example.test."),
                ("CERTKEEPER_DNS_VALUE", "digest"),
                ("CERTKEEPER_NAME", "www"),
            ]
        );
        // A stale record knows only its name.
        let env = environment(&record(RecordContext::default()));
        assert_eq!(
            env[0],
            ("CERTBOT_DOMAIN".to_owned(), "example.test".to_owned())
        );
    }

    #[tokio::test]
    async fn a_failing_hook_is_an_error_with_its_last_output() {
        let provider = HookProvider::new(
            "script",
            Hook {
                command: HookCommand::Shell("echo \"no API token for $2\" >&2; exit 3".to_owned()),
                timeout: Duration::from_secs(10),
            },
        );
        let err = provider
            .add_txt(&record(RecordContext::default()))
            .await
            .expect_err("exit 3");
        assert_eq!(
            err.to_string(),
            "DNS hook dns:script:present exited with code 3; last output: no API token for \
             _acme-challenge.example.test."
        );
    }
}
