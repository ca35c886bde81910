//! What the person chose for tasks that the sync core does not remember across starts
//! (paused tasks, receive-only tasks): noted as it is said to the core, and said again to
//! a new core after a reset, before anything else.

use std::collections::BTreeSet;

use qsync_base::TaskId;
use qsync_core::Input;

/// The tasks paused here and the receive-only ones.
#[derive(Debug, Default)]
pub(crate) struct Standing {
    paused: BTreeSet<TaskId>,
    receive_only: BTreeSet<TaskId>,
}

impl Standing {
    /// Note what `input` says of a task, if it is such a choice.
    pub(crate) fn note(&mut self, input: &Input) {
        let (set, task, on) = match input {
            Input::Pause { task, paused } => (&mut self.paused, task, *paused),
            Input::ReceiveOnly { task, on } => (&mut self.receive_only, task, *on),
            _ => return,
        };
        if on {
            set.insert(*task);
        } else {
            set.remove(task);
        }
    }

    /// What a new core is told first.
    pub(crate) fn replay(&self) -> Vec<Input> {
        let paused = self.paused.iter().map(|task| Input::Pause {
            task: *task,
            paused: true,
        });
        let receive_only = self.receive_only.iter().map(|task| Input::ReceiveOnly {
            task: *task,
            on: true,
        });
        paused.chain(receive_only).collect()
    }
}
