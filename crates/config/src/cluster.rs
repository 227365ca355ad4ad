//! `[cluster]`: the PostgreSQL database a fleet of certkeeper nodes shares.
//!
//! - `postgres`: a `postgres://` or `postgresql://` URL naming the user, host, port and
//!   database. A password written into it is refused (the file is often world-readable, and
//!   the URL reaches messages): it comes from exactly one of `password_file`, `password_env`
//!   or `password_credential`, like the other secrets.
//! - `tls`: `"verify"` (the default: TLS, the server's certificate checked against `ca_file`
//!   or the system's roots) or `"none"`, accepted for a database on this host only (localhost or a loopback
//!   address).
//! - `node`: this node's name, default the host name.
//! - the fleet key, 32 bytes as base64 (`openssl rand -base64 32`) or 64 hex digits, from
//!   exactly one of `fleet_key_file`, `fleet_key_env` or `fleet_key_credential`: it encrypts
//!   the private keys the database holds, so every node needs it and the database never has it.
//! - `lease` (default 60s) and `sync_interval` (default 5m).

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use certkeeper_core::Secret;
use certkeeper_core::cluster::{
    ClusterSpec, ClusterTls, DEFAULT_LEASE, DEFAULT_SYNC_INTERVAL, FLEET_KEY_LEN,
};
use certkeeper_core::hooks::check_reload_name;
use url::Url;

use crate::Context;
use crate::diagnostic::{Diagnostics, Reported};
use crate::inventory::check_readable_file;
use crate::secrets::{SecretKeys, Sources, decode_password, secret_keys};
use crate::values::{duration, path};
use crate::walk::Node;

/// `[cluster]` at the top level.
pub(crate) const CLUSTER_KEY: &str = "cluster";

/// The keys that set the database password.
const PASSWORD: SecretKeys = secret_keys! {
    prefix: "password",
    inline: false,
    what: "database password",
    example_env: "CERTKEEPER_DB_PASSWORD",
    example_file: "/etc/certkeeper/db.password",
    example_credential: "db-password",
};
/// The keys that set the fleet key.
const FLEET_KEY: SecretKeys = secret_keys! {
    prefix: "fleet_key",
    inline: false,
    what: "fleet key",
    example_env: "CERTKEEPER_FLEET_KEY",
    example_file: "/etc/certkeeper/fleet.key",
    example_credential: "fleet-key",
};
const CLUSTER_KEYS: [&str; 12] = [
    "postgres",
    "tls",
    "ca_file",
    "node",
    "lease",
    "sync_interval",
    PASSWORD.file,
    PASSWORD.env,
    PASSWORD.credential,
    FLEET_KEY.file,
    FLEET_KEY.env,
    FLEET_KEY.credential,
];

/// The shortest `lease`: renewing it every third of its length must leave room for a slow
/// database.
const MIN_LEASE: Duration = Duration::from_secs(5);

/// `[cluster]`.
pub(crate) fn cluster(
    node: &Node<'_, '_>,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<ClusterSpec, Reported> {
    let table = node.table(diagnostics)?;
    table.reject_keys(
        &CLUSTER_KEYS,
        |key| {
            [&PASSWORD, &FLEET_KEY]
                .into_iter()
                .find(|keys| key == keys.prefix)
                .map(|keys| {
                    format!(
                        "the {} cannot be written in the config file; put it in a file, an environment variable or a systemd credential and name it with {}, {} or {}",
                        keys.what, keys.file, keys.env, keys.credential
                    )
                })
        },
        diagnostics,
    );
    let postgres_node = table.required("postgres", diagnostics);
    let postgres = postgres_node
        .as_ref()
        .map_err(|reported| *reported)
        .and_then(|node| node.parse(diagnostics, postgres_url));
    let tls = table
        .optional("tls", |node| {
            node.parse(diagnostics, |text| {
                ClusterTls::ALL
                    .into_iter()
                    .find(|tls| tls.as_str() == text)
                    .ok_or_else(|| {
                        format!(
                            "unknown tls {text:?}; expected \"verify\" (TLS with the server's certificate checked, the default) or \"none\" (a database on this host only)"
                        )
                    })
            })
        })
        .map(Option::unwrap_or_default);
    let ca_file = table.optional("ca_file", |node| {
        let path = path(node, context, diagnostics)?;
        check_readable_file(&path)
            .map(|()| path)
            .map_err(|message| node.error(diagnostics, message))
    });
    let node_name = table.optional("node", |node| {
        node.parse(diagnostics, |name| {
            check_reload_name(name)
                .map(|()| name.to_owned())
                .map_err(|err| format!("invalid node name {name:?}: {err}"))
        })
    });
    let lease = table
        .optional("lease", |node| {
            let lease = duration(node, diagnostics)?;
            if lease < MIN_LEASE {
                return Err(node.error(
                    diagnostics,
                    format!(
                        "a lease shorter than {}s expires while it is being renewed; write at least \"{}s\"",
                        MIN_LEASE.as_secs(),
                        MIN_LEASE.as_secs()
                    ),
                ));
            }
            Ok(lease)
        })
        .map(|lease| lease.unwrap_or(DEFAULT_LEASE));
    let sync_interval = table
        .optional("sync_interval", |node| duration(node, diagnostics))
        .map(|interval| interval.unwrap_or(DEFAULT_SYNC_INTERVAL));
    let password = Sources::of(&PASSWORD, &table)
        .read(context, diagnostics)
        .and_then(|text| {
            text.map(|text| text.decode(diagnostics, decode_password))
                .transpose()
        });
    let fleet_key = Sources::of(&FLEET_KEY, &table)
        .read(context, diagnostics)
        .and_then(|text| match text {
            Some(text) => text.decode(diagnostics, decode_fleet_key),
            None => Err(table.error(
                diagnostics,
                FLEET_KEY.file,
                format!(
                    "missing required key: the fleet key, which encrypts the private keys the database holds; make one with `openssl rand -base64 32 > {}` (0600), copy it to every node, and set one of {}, {} or {}",
                    FLEET_KEY.example_file, FLEET_KEY.file, FLEET_KEY.env, FLEET_KEY.credential
                ),
            )),
        });

    let (postgres, tls) = (postgres?, tls?);
    if tls == ClusterTls::None && !on_this_host(&postgres) {
        // `tls` was set (the default verifies), so its node exists.
        if let Some(node) = table.get("tls") {
            return Err(node.error(
                diagnostics,
                "tls = \"none\" sends the database password and the certificates in the clear; it is accepted only for a database on this host (localhost or a loopback address). Remove it to verify the server's certificate",
            ));
        }
    }
    Ok(ClusterSpec {
        postgres,
        password: password?,
        tls,
        ca_file: ca_file?,
        node: node_name?,
        fleet_key: fleet_key?,
        lease: lease?,
        sync_interval: sync_interval?,
    })
}

/// A `postgres://` URL with a host and a database, and no password. Messages never quote the
/// URL: a password may be in it.
fn postgres_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|err| {
        format!("invalid URL (not shown): {err}; write it as postgres://USER@HOST:PORT/DATABASE")
    })?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "invalid database URL: expected postgres://USER@HOST:PORT/DATABASE, not {}:",
            url.scheme()
        ));
    }
    if url.password().is_some() {
        return Err(format!(
            "the database password cannot be written in the URL; remove it from there and name where it is with {}, {} or {}",
            PASSWORD.file, PASSWORD.env, PASSWORD.credential
        ));
    }
    if url.host_str().is_none_or(str::is_empty) && !url.query_pairs().any(|(key, _)| key == "host")
    {
        return Err(
            "invalid database URL: it names no host; write postgres://USER@HOST:PORT/DATABASE"
                .to_owned(),
        );
    }
    if url.username().is_empty() {
        return Err(
            "invalid database URL: it names no user; write postgres://USER@HOST:PORT/DATABASE"
                .to_owned(),
        );
    }
    if url.path().trim_start_matches('/').is_empty() {
        return Err(
            "invalid database URL: it names no database; write postgres://USER@HOST:PORT/DATABASE"
                .to_owned(),
        );
    }
    Ok(url)
}

/// Whether `url` reaches a database on this host: `localhost` or a loopback address.
fn on_this_host(url: &Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// The fleet key: 32 bytes written as base64 or as 64 hex digits, surrounding whitespace
/// ignored. Problems are described without quoting the text.
fn decode_fleet_key(text: &str) -> Result<Secret, &'static str> {
    const WRONG: &str = "is not 32 bytes written as base64 (44 characters, as `openssl rand -base64 32` prints) or as 64 hex digits";
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty");
    }
    let bytes = if text.len() == 2 * FLEET_KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..FLEET_KEY_LEN)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| WRONG)?
    } else {
        BASE64_STANDARD.decode(text).map_err(|_| WRONG)?
    };
    if bytes.len() != FLEET_KEY_LEN {
        return Err(WRONG);
    }
    Ok(Secret::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert!(postgres_url("postgres://certkeeper@db.example.com:5432/certkeeper").is_ok());
        assert!(postgres_url("postgresql://certkeeper@127.0.0.1/certs?sslmode=require").is_ok());
        for (text, says) in [
            (
                "postgres://certkeeper:hunter2@db/certs",
                "cannot be written in the URL",
            ),
            ("mysql://certkeeper@db/certs", "not mysql:"),
            ("postgres://db.example.com/certs", "no user"),
            ("postgres://certkeeper@db.example.com", "no database"),
            ("not a url", "not shown"),
        ] {
            let err = postgres_url(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn this_host() {
        for (text, local) in [
            ("postgres://u@localhost/d", true),
            ("postgres://u@127.0.0.1:5433/d", true),
            ("postgres://u@[::1]/d", true),
            ("postgres://u@db.example.com/d", false),
            ("postgres://u@10.0.0.5/d", false),
        ] {
            let url = Url::parse(text).expect("url");
            assert_eq!(on_this_host(&url), local, "{text}");
        }
    }

    #[test]
    fn fleet_keys() {
        let base64 = BASE64_STANDARD.encode([7u8; 32]);
        assert_eq!(
            decode_fleet_key(&format!("{base64}\n"))
                .expect("base64")
                .expose(),
            &[7u8; 32]
        );
        let hex = "0f".repeat(32);
        assert_eq!(decode_fleet_key(&hex).expect("hex").expose(), &[15u8; 32]);
        assert!(decode_fleet_key("").is_err());
        assert!(decode_fleet_key(&BASE64_STANDARD.encode([7u8; 16])).is_err());
        assert!(decode_fleet_key(&"0g".repeat(32)).is_err());
    }
}
