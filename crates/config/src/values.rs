//! Typed values read from a node of the configuration, shared by the tables that use them:
//! durations as operators write them and paths relative to the file that names them.

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
