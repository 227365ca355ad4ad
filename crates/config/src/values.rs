//! Typed values read from a node of the configuration, shared by the tables that use them:
//! durations as operators write them, paths relative to the file that names them, and ACME
//! profile names.

use std::path::PathBuf;
use std::time::Duration;

use crate::Context;
use crate::diagnostic::{Diagnostics, Reported};
use crate::duration::parse_duration;
use crate::walk::Node;

/// A duration string such as `"30d"`; zero is refused.
pub(crate) fn duration(
    node: &Node<'_, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<Duration, Reported> {
    if !node.value().is_str() {
        return Err(node.wrong_type(diagnostics, "a duration string such as \"30d\""));
    }
    node.parse(diagnostics, |text| {
        parse_duration(text).map_err(|err| format!("invalid duration {text:?}: {err}"))
    })
}

/// A path value; relative paths resolve against the config file's directory.
pub(crate) fn path(
    node: &Node<'_, '_>,
    context: &Context<'_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<PathBuf, Reported> {
    node.parse(diagnostics, |text| {
        if text.is_empty() {
            Err("must not be empty".to_owned())
        } else {
            Ok(context.resolve(text))
        }
    })
}

/// The longest ACME profile name accepted: profile names are short tokens (`shortlived`,
/// `tlsserver`); anything longer is a mistake, not a profile.
const PROFILE_MAX_LEN: usize = 64;

/// `profile`: the name of an ACME profile (draft-ietf-acme-profiles), a token of ASCII
/// letters, digits, '.', '_' and '-'. Whether the CA offers it is only known from its
/// directory, so that is checked when an order is placed, not here. An empty string is an
/// error rather than "no profile": leaving the key out says that.
/// `preferred_chain`: an issuer common name, compared exactly with the CA's chains' when a
/// certificate is downloaded.
pub(crate) fn preferred_chain(
    node: &Node<'_, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<String, Reported> {
    node.parse(diagnostics, |text| {
        if text.trim().is_empty() {
            Err(
                "must not be empty; leave preferred_chain out to use the CA's default chain"
                    .to_owned(),
            )
        } else {
            Ok(text.to_owned())
        }
    })
}

pub(crate) fn profile(
    node: &Node<'_, '_>,
    diagnostics: &mut Diagnostics<'_>,
) -> Result<String, Reported> {
    node.parse(diagnostics, |text| {
        if text.is_empty() {
            return Err(
                "must not be empty; leave profile out to use the CA's default profile".to_owned(),
            );
        }
        let length = text.chars().count();
        if length > PROFILE_MAX_LEN {
            return Err(format!(
                "invalid profile: at most {PROFILE_MAX_LEN} characters (found {length})"
            ));
        }
        match text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            Some(found) => Err(format!(
                "invalid profile {text:?}: may only contain ASCII letters, digits, '.', '_' and '-' (found {found:?})"
            )),
            None => Ok(text.to_owned()),
        }
    })
}
