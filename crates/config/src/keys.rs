//! The private key keys: `reuse_key` and `key_group`, at the top level (the defaults of every
//! certificate) and in each `[[certificate]]` (its own).
//!
//! `key_group` is resolved to a group number here, when the configuration is loaded, so an
//! unknown group is a configuration error naming the key, reported with every other
//! problem, and never a surprise at the next renewal. Whether certkeeper may give its files
//! to that group (being a member, or root) is only known when it writes one; the store says
//! so then.

use certkeeper_core::KeyGroup;

use crate::Context;
use crate::diagnostic::{Diagnostics, Reported};
use crate::walk::{Node, Table};

pub(crate) const REUSE_KEY_KEY: &str = "reuse_key";
pub(crate) const KEY_GROUP_KEY: &str = "key_group";
/// The key settings of the top level and of `[[certificate]]`.
pub(crate) const CERTIFICATE_KEY_KEYS: [&str; 2] = [REUSE_KEY_KEY, KEY_GROUP_KEY];

/// The key settings certificates inherit from the top level of the main file.
#[derive(Debug)]
pub(crate) struct KeySettings {
    reuse_key: Result<Option<bool>, Reported>,
    key_group: Result<Option<KeyGroup>, Reported>,
}

impl KeySettings {
    /// The top-level `reuse_key` and `key_group` of `root`.
    pub(crate) fn read(
        root: &Table<'_, '_>,
        context: &Context<'_>,
        diagnostics: &mut Diagnostics<'_>,
    ) -> Self {
        Self {
            reuse_key: root.optional(REUSE_KEY_KEY, |node| node.bool(diagnostics)),
            key_group: root.optional(KEY_GROUP_KEY, |node| key_group(node, context, diagnostics)),
        }
    }

    /// Whether the top-level settings are valid (their errors are reported already).
    pub(crate) fn check(&self) -> Result<(), Reported> {
        self.reuse_key.map(drop)?;
        self.key_group
            .as_ref()
            .map(drop)
            .map_err(|reported| *reported)
    }
}

/// A certificate's effective `reuse_key` and `key_group`: its own, else the top level's,
/// else a new key for every order, readable by certkeeper only.
pub(crate) fn certificate_keys(
    table: &Table<'_, '_>,
    defaults: &KeySettings,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<(bool, Option<KeyGroup>), Reported> {
    let reuse_key = table.optional(REUSE_KEY_KEY, |node| node.bool(diagnostics));
    let key_group = table.optional(KEY_GROUP_KEY, |node| key_group(node, context, diagnostics));
    // A broken default is reported where it is written, once; it refuses the inventory.
    let reuse_key =
        reuse_key?.unwrap_or_else(|| defaults.reuse_key.ok().flatten().unwrap_or(false));
    let key_group = match key_group? {
        Some(group) => Some(group),
        None => defaults.key_group.clone().ok().flatten(),
    };
    Ok((reuse_key, key_group))
}

/// `key_group`: the name of an existing group.
fn key_group(
    node: &Node<'_, '_>,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<KeyGroup, Reported> {
    node.parse(diagnostics, |name| {
        if name.is_empty() {
            return Err(format!(
                "must not be empty; leave {KEY_GROUP_KEY} out to keep private keys readable by certkeeper only"
            ));
        }
        match context.env.group_id(name) {
            Ok(Some(gid)) => Ok(KeyGroup {
                name: name.to_owned(),
                gid,
            }),
            Ok(None) => Err(format!(
                "unknown group {name:?}; create it (groupadd --system {name}) and add the users that read the keys to it, or set {KEY_GROUP_KEY} to an existing group (getent group lists them)"
            )),
            Err(err) => Err(format!("cannot look up group {name:?}: {err}")),
        }
    })
}
