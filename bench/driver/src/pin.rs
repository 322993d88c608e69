//! Which core each process runs on.
//!
//! On the 2-core reference machine, the system under test (idem, nginx, a
//! peer app, or the upstream when it is measured directly) gets core 1 to
//! itself, and the load generator and the upstream share core 0. Every
//! proxy then gets the same one core, which is what a comparison against a
//! one-worker nginx needs, and the load generator never steals its cycles.
//! Pinning is done with `taskset` (util-linux), which execs the program, so
//! the pid the driver watches is the program's own.

use std::path::Path;
use std::process::Command;

/// What a process is in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The process being measured.
    Subject,
    /// The load generator, and the upstream behind a proxy.
    Load,
}

/// Whether and how processes are pinned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pinning {
    enabled: bool,
}

impl Pinning {
    /// Pins when asked to, `taskset` exists and there are at least 2 cores.
    pub(crate) fn detect(wanted: bool) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let taskset = Command::new("taskset")
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success());
        Self {
            enabled: wanted && taskset && cores >= 2,
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// A command that runs `program` on the core for `role`.
    pub(crate) fn command(&self, role: Role, program: &Path) -> Command {
        if !self.enabled {
            return Command::new(program);
        }
        let core = match role {
            Role::Subject => "1",
            Role::Load => "0",
        };
        let mut command = Command::new("taskset");
        command.args(["-c", core]).arg(program);
        command
    }

    /// How a role was placed, for the table.
    pub(crate) fn describe(&self, role: Role) -> &'static str {
        match (self.enabled, role) {
            (false, _) => "unpinned",
            (true, Role::Subject) => "core 1",
            (true, Role::Load) => "core 0",
        }
    }
}
