//! Where a run's results go: `bench/results/<stamp>.json` and `.md`, and
//! the work directory of logs and stores.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;

use crate::binaries;
use crate::results::Results;
use crate::table;

/// The current UTC time as `2026-11-01T00-33-45Z`: sortable and safe in a
/// file name.
pub(crate) fn stamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(':', "-")
}

/// `target/idem-bench/<name>`: next to the binaries, on disk (not tmpfs,
/// so that the embedded store's fsyncs cost what they cost).
pub(crate) fn work_dir(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe
        .parent()
        .and_then(|p| p.parent())
        .context("idem-bench is not inside a target directory")?;
    let dir = target.join("idem-bench").join(name);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Writes `OUT/<stamp>.json` and `OUT/<stamp>.md` and prints the markdown.
pub(crate) fn write(out: &Path, stamp: &str, results: &Results) -> anyhow::Result<()> {
    let out = if out.is_absolute() {
        out.to_path_buf()
    } else {
        binaries::workspace_root().join(out)
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let json = out.join(format!("{stamp}.json"));
    std::fs::write(&json, serde_json::to_string_pretty(results)?)?;
    let markdown = table::render(results);
    let md = out.join(format!("{stamp}.md"));
    std::fs::write(&md, &markdown)?;
    println!("{markdown}");
    eprintln!("idem-bench: wrote {} and {}", json.display(), md.display());
    Ok(())
}

/// Removes the work directory, unless it is wanted: kept when asked or
/// when something failed, so that the logs can be read.
pub(crate) fn finish_work(work: &Path, keep: bool) {
    if keep {
        eprintln!("idem-bench: logs and stores are in {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(work);
    }
}
