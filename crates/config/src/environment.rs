//! The process environment the loader may read secrets from, passed in explicitly.
//!
//! `eab_hmac_key_env` and `eab_hmac_key_credential` name places outside the file, and a
//! maintenance window without `timezone` follows the system's local time zone. Reading them
//! through an [`Environment`] value instead of `std::env` and `/etc/localtime` keeps the
//! loader a function of its inputs: tests build the environment they need, and nothing
//! depends on the variables or the time zone of whoever runs the test suite. Group names
//! (`key_group`) are resolved the same way: the system's groups for the process, the groups
//! a test names for a test.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use jiff::tz::TimeZone;

/// Variable systemd sets to the directory holding a unit's credentials.
const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// Environment variables, the systemd credentials directory and the local time zone.
///
/// `Debug` prints variable names only: values may be secrets.
#[derive(Clone)]
pub struct Environment {
    pub vars: HashMap<String, String>,
    /// `$CREDENTIALS_DIRECTORY`, where systemd places `LoadCredential=`/`SetCredential=` files.
    pub credentials_directory: Option<PathBuf>,
    /// The zone maintenance windows are evaluated in when the configuration sets no
    /// `timezone`.
    pub local_timezone: TimeZone,
    /// Where group names are looked up.
    pub groups: Groups,
}

/// Where [`Environment::group_id`] looks group names up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Groups {
    /// The system's group database (`getgrnam_r(3)`: `/etc/group`, or whatever NSS adds).
    System,
    /// These groups only (tests).
    Fixed(HashMap<String, u32>),
}

impl Default for Environment {
    fn default() -> Self {
        Self::empty()
    }
}

impl Environment {
    /// The current process's environment. Variables whose name or value is not valid
    /// UTF-8 are left out. The local time zone is the system's (`TZ`, else
    /// `/etc/localtime`), read now: a daemon that keeps this value across reloads keeps the
    /// zone it started with. When it cannot be determined, UTC is used.
    #[must_use]
    pub fn from_process() -> Self {
        let vars: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        let credentials_directory = std::env::var_os(CREDENTIALS_DIRECTORY)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from);
        Self {
            vars,
            credentials_directory,
            local_timezone: TimeZone::system(),
            groups: Groups::System,
        }
    }

    /// No variables, no credentials directory, UTC as the local time zone, and no groups.
    #[must_use]
    pub fn empty() -> Self {
        Self {
            vars: HashMap::new(),
            credentials_directory: None,
            local_timezone: TimeZone::UTC,
            groups: Groups::Fixed(HashMap::new()),
        }
    }

    /// Know group `name` as `gid` (which makes the lookup one of fixed groups).
    #[must_use]
    pub fn with_group(mut self, name: impl Into<String>, gid: u32) -> Self {
        match &mut self.groups {
            Groups::Fixed(groups) => {
                groups.insert(name.into(), gid);
            }
            Groups::System => self.groups = Groups::Fixed(HashMap::from([(name.into(), gid)])),
        }
        self
    }

    /// The number of group `name`; `Ok(None)` when there is no such group.
    ///
    /// # Errors
    /// The system's group database could not be asked (the message of `getgrnam_r(3)`).
    pub fn group_id(&self, name: &str) -> Result<Option<u32>, String> {
        match &self.groups {
            Groups::Fixed(groups) => Ok(groups.get(name).copied()),
            Groups::System => nix::unistd::Group::from_name(name)
                .map(|group| group.map(|group| group.gid.as_raw()))
                .map_err(|errno| errno.desc().to_owned()),
        }
    }

    #[must_use]
    pub fn with_var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    #[must_use]
    pub fn with_local_timezone(mut self, timezone: TimeZone) -> Self {
        self.local_timezone = timezone;
        self
    }

    #[must_use]
    pub fn with_credentials_directory(mut self, directory: impl Into<PathBuf>) -> Self {
        self.credentials_directory = Some(directory.into());
        self
    }

    /// The value of variable `name`, if set.
    #[must_use]
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Environment")
            .field("vars", &names)
            .field("credentials_directory", &self.credentials_directory)
            .field(
                "local_timezone",
                &self.local_timezone.iana_name().unwrap_or("(unnamed)"),
            )
            .field("groups", &self.groups)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_names_not_values() {
        let env = Environment::empty()
            .with_var("CERTKEEPER_HMAC", "c2VjcmV0LXZhbHVl")
            .with_credentials_directory("/run/credentials/certkeeper.service");
        let printed = format!("{env:?}");
        assert!(printed.contains("CERTKEEPER_HMAC"), "{printed}");
        assert!(!printed.contains("c2VjcmV0LXZhbHVl"), "{printed}");
        assert_eq!(env.var("CERTKEEPER_HMAC"), Some("c2VjcmV0LXZhbHVl"));
        assert_eq!(env.var("OTHER"), None);
    }

    #[test]
    fn groups_are_the_fixed_ones_or_the_systems() {
        let env = Environment::empty().with_group("ssl-cert", 4242);
        assert_eq!(env.group_id("ssl-cert"), Ok(Some(4242)));
        assert_eq!(env.group_id("root"), Ok(None));
        // Every system has group 0, root.
        assert_eq!(Environment::from_process().group_id("root"), Ok(Some(0)));
        assert_eq!(
            Environment::from_process().group_id("certkeeper-no-such-group"),
            Ok(None)
        );
    }
}
