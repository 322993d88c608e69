//! Building the binaries the benchmark runs, and finding them.
//!
//! The driver builds `idem`, the upstream and the load generator with the
//! same profile it was built with itself (release for the benchmark, debug
//! for the CI smoke run, which then reuses the test build), and finds them
//! next to its own executable, in the same target directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::process::run_bounded;

/// How long the build may take on a busy 2-core machine.
const BUILD_LIMIT: Duration = Duration::from_secs(1500);

/// The programs a run starts.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    pub(crate) idem: PathBuf,
    pub(crate) upstream: PathBuf,
    pub(crate) loadgen: PathBuf,
}

/// The workspace root, known at compile time.
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What the report says about the `idem` binary it ran: its path, size and
/// modification time. The revision alone cannot tell a build of that
/// revision from one of an experiment left in the target directory and run
/// with `--no-build`; a time later than the reader's last build can.
pub(crate) fn describe(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(meta) => {
            let modified = meta
                .modified()
                .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                .unwrap_or_else(|_| "unknown".to_owned());
            format!(
                "`{}`, {} bytes, modified {modified}",
                path.display(),
                meta.len()
            )
        }
        Err(error) => format!("`{}` ({error})", path.display()),
    }
}

/// Whether this driver is a release build (and so builds the others so).
pub(crate) fn release() -> bool {
    !cfg!(debug_assertions)
}

/// Builds the binaries (unless `skip`) and returns their paths. With
/// `idem`, that `idem` binary is measured instead of this workspace's (to
/// compare two builds, or a build from another checkout).
pub(crate) fn build(skip: bool, idem: Option<&Path>) -> anyhow::Result<Binaries> {
    if !skip {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command.current_dir(workspace_root()).args([
            "build",
            "-p",
            "idem-bench-upstream",
            "-p",
            "idem-loadgen",
        ]);
        if idem.is_none() {
            command.args(["-p", "idem-gateway"]);
        }
        if release() {
            command.arg("--release");
        }
        eprintln!(
            "idem-bench: building idem, the upstream and the load generator ({})",
            if release() { "release" } else { "debug" }
        );
        let output = run_bounded(command, BUILD_LIMIT)?;
        anyhow::ensure!(
            output.status.success(),
            "cargo build failed:\n{}",
            output.stderr
        );
    }
    let exe = std::env::current_exe().context("locating idem-bench itself")?;
    let dir = exe
        .parent()
        .context("idem-bench has no parent directory")?
        .to_path_buf();
    let find = |name: &str| -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        anyhow::ensure!(
            path.is_file(),
            "{} is missing; build it or drop --no-build",
            path.display()
        );
        Ok(path)
    };
    let idem = match idem {
        Some(path) => {
            anyhow::ensure!(path.is_file(), "{} is not a file", path.display());
            // Absolute: the gateway is started from a scenario's own
            // directory, where a relative path would name nothing.
            std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))?
        }
        None => find("idem")?,
    };
    Ok(Binaries {
        idem,
        upstream: find("idem-bench-upstream")?,
        loadgen: find("idem-loadgen")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_is_described_by_size_and_time_and_a_missing_one_by_its_error() {
        let here = workspace_root().join("Cargo.toml");
        let size = std::fs::metadata(&here).unwrap().len();
        let described = describe(&here);
        assert!(
            described.contains(&format!("{size} bytes, modified 20")),
            "{described}"
        );
        let missing = describe(Path::new("/nonexistent/idem"));
        assert!(missing.contains("No such file"), "{missing}");
    }
}
