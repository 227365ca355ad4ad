//! `type = "command"`: the notice handed to a command of the operator's, run by the hook
//! runner like every other hook (its own process group, a cleared environment plus the
//! contract variables, output logged under `notify:NAME`, killed at its timeout).

use certkeeper_core::Hook;
use certkeeper_hooks::{HookRun, run};

use crate::{Notice, NotifyError, root_cause};

/// Run `hook` with `notice` in its environment ([`Notice::command_env`]).
pub(crate) async fn send(name: &str, hook: &Hook, notice: &Notice) -> Result<(), NotifyError> {
    let label = format!("notify:{name}");
    let env = notice.command_env();
    let outcome =
        run(HookRun::new(&label, hook, &env))
            .await
            .map_err(|err| NotifyError::Command {
                target: name.to_owned(),
                reason: format!("{err}: {}", root_cause(&err)),
            })?;
    if outcome.success {
        Ok(())
    } else {
        let last_line = outcome
            .output
            .last()
            .map(|line| format!(" (last output: {})", line.text))
            .unwrap_or_default();
        Err(NotifyError::Command {
            target: name.to_owned(),
            reason: format!("{outcome}{last_line}"),
        })
    }
}
