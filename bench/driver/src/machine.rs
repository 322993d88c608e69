//! What the machine was doing: cores, load, versions. A benchmark table
//! is only as good as the conditions it was taken in, so they are recorded
//! next to it.

use std::process::Command;

use serde::Serialize;

/// The machine and its load at one moment.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) cpu: String,
    pub(crate) kernel: String,
    /// 1, 5 and 15 minute load averages.
    pub(crate) load: [f64; 3],
}

impl Machine {
    pub(crate) fn now() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu: cpu_model(),
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            load: load_average(),
        }
    }
}

/// The load averages from `/proc/loadavg`; zeros if unreadable.
pub(crate) fn load_average() -> [f64; 3] {
    let text = read_trimmed("/proc/loadavg");
    let mut fields = text.split_whitespace().map(|f| f.parse().unwrap_or(0.0));
    [
        fields.next().unwrap_or(0.0),
        fields.next().unwrap_or(0.0),
        fields.next().unwrap_or(0.0),
    ]
}

fn cpu_model() -> String {
    read_trimmed("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
        .unwrap_or_default()
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_owned())
        .unwrap_or_default()
}

/// The first line a program prints for `args` (stdout or stderr, since
/// `nginx -v` uses stderr), or `None` if it cannot run.
pub(crate) fn version_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
}

/// The commit the workspace is at, and whether it has local changes
/// (read-only git commands).
pub(crate) fn git_revision() -> String {
    let root = crate::binaries::workspace_root();
    let head = Command::new("git")
        .current_dir(&root)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let dirty = Command::new("git")
        .current_dir(&root)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    if dirty {
        format!("{head} (with uncommitted changes)")
    } else {
        head
    }
}
