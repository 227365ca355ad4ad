//! The command line, declared with clap. Each subcommand maps to a module in `commands/`.

use std::path::PathBuf;

use certkeeper_core::{LifecycleAction, RevocationReason};
use clap::{Parser, Subcommand, ValueEnum};

/// Keeps TLS certificates issued and renewed through ACME (RFC 8555), with nobody watching.
#[derive(Debug, Parser)]
#[command(
    name = "certkeeper",
    version,
    after_help = "Exit codes: 0 success, 1 a certificate or the command failed, 2 usage error, \
                  3 this node is behind its fleet (cluster status), 69 the fleet's database is \
                  unreachable, 75 another certkeeper holds the state directory, 77 the fleet's \
                  database refused the login, 78 invalid configuration (or a wrong fleet key, \
                  or a fleet schema newer than this certkeeper)."
)]
pub struct Cli {
    /// The inventory file.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "CERTKEEPER_CONFIG",
        default_value = certkeeper_config::DEFAULT_PATH,
        value_name = "FILE"
    )]
    pub config: PathBuf,

    /// Log filter, e.g. `info`, `debug`, `certkeeper_acme=debug` (default: info, or $RUST_LOG).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// Log line format on stderr (ignored when logging to journald).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the renewal daemon: keep every certificate valid, reload on SIGHUP or config edits.
    Run,
    /// Validate the inventory and print a summary (exit 78 when invalid).
    Check,
    /// Obtain missing certificates and renew those that are due.
    Renew(RenewArgs),
    /// Revoke a lineage's current certificate and stop renewing it.
    Revoke(RevokeArgs),
    /// Show every certificate: names, expiry, issuer, serial, state.
    Status(StatusArgs),
    /// Move from certbot: adopt its lineages into the state directory (nothing is re-issued
    /// before it is due) and write the equivalent inventory; needs no existing inventory.
    ImportCertbot(ImportCertbotArgs),
    /// Notifications to the `[[notify]]` targets.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Fleet mode: this node and the fleet it shares certificates with (`[cluster]`).
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Show the fleet's nodes and leases, and for every certificate whether this node's
    /// `live/` holds the fleet's newest version; exits 0 when in sync, 3 when behind (or
    /// holding a certificate not published yet), 69 when the database is unreachable, 77
    /// when it refuses the login, 78 for a wrong fleet key or a newer schema.
    Status(ClusterStatusArgs),
    /// Move this node's certificates (with their keys) and ACME accounts into the fleet's
    /// database: each live certificate the fleet lacks (or holds an older one of) is
    /// published under its lease; running it again publishes nothing.
    Import,
}

#[derive(Debug, clap::Args)]
pub struct ClusterStatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum NotifyCommand {
    /// Send a test notice now, bypassing the outbox, to one target or every target; prints
    /// `TARGET: delivered` or `TARGET: failed: ERROR` for each and exits 1 when one failed.
    Test(NotifyTestArgs),
}

#[derive(Debug, clap::Args)]
pub struct NotifyTestArgs {
    /// Only this target (its `name`; default: every target).
    #[arg(value_name = "TARGET")]
    pub target: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RenewArgs {
    /// Only these lineages (default: all in the inventory).
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Renew even when not due.
    #[arg(long)]
    pub force: bool,
    /// Renew now (as --force) with a new private key, even for certificates with
    /// `reuse_key = true`; later renewals reuse the new key. An order in flight that reuses
    /// the live key is dropped for a new one.
    #[arg(long)]
    pub new_key: bool,
    /// DigiCert lifecycle action for these renewals, overriding each certificate's `action`.
    #[arg(long, value_parser = parse_action)]
    pub action: Option<LifecycleAction>,
    /// Run no hooks (pre, deploy, reload, post) in this pass.
    #[arg(long)]
    pub no_hooks: bool,
    /// Give up waiting for the CA on one order after this many seconds.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// The lineage to revoke.
    pub name: String,
    /// unspecified, keyCompromise, affiliationChanged, superseded or cessationOfOperation
    /// (case-insensitive; certbot's spellings such as `keycompromise` work).
    #[arg(long, default_value = "unspecified", value_parser = parse_reason)]
    pub reason: RevocationReason,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    ///
    /// An array with one object per certificate, holding what the table shows and more; its
    /// `notices_undelivered` maps every `[[notify]]` target to the number of the
    /// certificate's notices still waiting in the outbox for it; in a fleet, `fleet` says
    /// whether this node's live certificate is the fleet's newest (`in sync`, `behind`,
    /// `not yet published`, `not issued yet`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ImportCertbotArgs {
    /// certbot's configuration directory (with renewal/, live/, archive/, accounts/).
    #[arg(long, default_value = "/etc/letsencrypt", value_name = "DIR")]
    pub certbot_dir: PathBuf,
    /// Write the inventory to this new file (never overwritten) instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// certkeeper's state directory: the lineages are adopted into it, and the inventory's
    /// `state_dir` names it.
    #[arg(long, default_value = "/var/lib/certkeeper", value_name = "DIR")]
    pub state_dir: PathBuf,
}

fn parse_action(text: &str) -> Result<LifecycleAction, String> {
    match text.parse::<LifecycleAction>() {
        Ok(LifecycleAction::Auto) => {
            Err("`auto` is the default; pass renew, reissue or duplicate to override".to_owned())
        }
        Ok(action) => Ok(action),
        Err(err) => Err(err.to_string()),
    }
}

fn parse_reason(text: &str) -> Result<RevocationReason, String> {
    text.parse::<RevocationReason>()
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn reasons_and_actions_parse_like_certbot() {
        let cli = Cli::try_parse_from([
            "certkeeper",
            "revoke",
            "www",
            "--reason",
            "cessationofoperation",
        ])
        .expect("parses");
        let Command::Revoke(args) = cli.command else {
            panic!("expected revoke");
        };
        assert_eq!(args.reason, RevocationReason::CessationOfOperation);
        assert!(Cli::try_parse_from(["certkeeper", "renew", "--action", "auto"]).is_err());
        assert!(Cli::try_parse_from(["certkeeper", "renew", "--action", "Reissue"]).is_ok());
    }
}
