//! `idem-bench instructions`: instructions per request, counted by
//! callgrind, for the scenarios whose cost is idem's own CPU.
//!
//! Requests per second on a shared or virtual machine move with whatever
//! else the host runs: the same binary has measured 28,000 and 54,000
//! pass-through requests per second minutes apart. callgrind counts the
//! instructions the gateway executes, which the same binary and the same
//! load reproduce to within a fraction of a percent however busy the
//! machine is. So this is the measure to compare two commits with on a
//! noisy machine, and to find where a request's instructions go
//! (`callgrind_annotate` on the files it keeps).
//!
//! For each scenario: the upstream, and `idem serve` under `valgrind
//! --tool=callgrind`; a warm-up load; `callgrind_control --zero`; the
//! measured load; `callgrind_control --dump`. The count is the dump's
//! total divided by the requests the measured load got answered (its
//! priming requests included). Connection set-up of the measured load is
//! in the count too: 32 connections against tens of thousands of requests.
//!
//! What it does not count: time in the kernel (the sockets, `fsync`), time
//! waiting, and the cost of cache misses. It is not a substitute for the
//! full run's ratios, only a steadier view of idem's own work. Under
//! valgrind, SHA-256 runs its portable code (about 24,000 instructions per
//! keyed request here), where the CPU would use its SHA extensions; the
//! table shows those instructions apart, and the counts without them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use idem_loadgen::KeyMode;
use serde::Serialize;

use crate::binaries;
use crate::cli::InstructionsArgs;
use crate::context::{Ctx, Load};
use crate::load::{self, LoadSpec};
use crate::machine;
use crate::output;
use crate::pin::{Pinning, Role};
use crate::process::run_bounded;
use crate::servers::{self, Gateway, GatewaySpec};

/// valgrind is slow to start a large binary: the gateway gets this long to
/// print its addresses.
const START_UNDER_VALGRIND: Duration = Duration::from_secs(60);

/// A scenario counted.
struct Scenario {
    id: &'static str,
    title: &'static str,
    /// `None`: the embedded store, in a fresh directory.
    store: Option<&'static str>,
    off: bool,
    mode: KeyMode,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        id: "off",
        title: "idem, all routes off",
        store: Some("memory:"),
        off: true,
        mode: KeyMode::Fresh,
    },
    Scenario {
        id: "fresh-memory",
        title: "fresh keys, memory",
        store: Some("memory:"),
        off: false,
        mode: KeyMode::Fresh,
    },
    Scenario {
        id: "replay-memory",
        title: "replays of one key, memory",
        store: Some("memory:"),
        off: false,
        mode: KeyMode::Fixed,
    },
    Scenario {
        id: "fresh-embedded",
        title: "fresh keys, embedded",
        store: None,
        off: false,
        mode: KeyMode::Fresh,
    },
];

/// One scenario's count.
#[derive(Debug, Serialize)]
struct Counted {
    id: &'static str,
    title: &'static str,
    requests: u64,
    instructions: u64,
    per_request: u64,
    /// Of `per_request`, SHA-256's portable code (see the module docs), if
    /// `callgrind_annotate` could say.
    sha256_per_request: Option<u64>,
    /// Where callgrind's profile of the measured window is.
    profile: PathBuf,
}

/// `idem-bench instructions`.
pub(crate) fn command(args: InstructionsArgs) -> anyhow::Result<()> {
    ensure_tool("valgrind", "--version")?;
    ensure_tool("callgrind_control", "--help")?;
    let bins = binaries::build(args.no_build, args.idem.as_deref())?;
    let stamp = output::stamp();
    let work = output::work_dir(&format!("instructions-{stamp}"))?;
    let load = Load {
        warmup: args.warmup,
        duration: args.duration,
        connections: 32,
        group: 64,
        request_timeout: Duration::from_secs(30),
    };
    // Pinned as in the full run, so that the load side never competes with
    // the gateway for a core.
    let ctx = Ctx::new(bins, Pinning::detect(true), work.clone(), load);
    let mut counted = Vec::new();
    for scenario in SCENARIOS.iter().filter(|s| selected(s, &args.only)) {
        eprintln!("idem-bench: counting {} under callgrind", scenario.id);
        let count = count(&ctx, scenario)
            .with_context(|| format!("counting {}", scenario.id))
            .inspect_err(|_| output::finish_work(&work, true))?;
        eprintln!(
            "idem-bench:   {} instructions per request ({} requests)",
            count.per_request, count.requests
        );
        counted.push(count);
    }
    let markdown = render(&counted, &ctx);
    println!("{markdown}");
    let out = binaries::workspace_root().join(&args.out);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let md = out.join(format!("{stamp}-instructions.md"));
    std::fs::write(&md, &markdown)?;
    let json = out.join(format!("{stamp}-instructions.json"));
    std::fs::write(&json, serde_json::to_string_pretty(&counted)?)?;
    eprintln!("idem-bench: wrote {} and {}", md.display(), json.display());
    eprintln!(
        "idem-bench: callgrind's profiles are in {} (callgrind_annotate FILE)",
        work.display()
    );
    Ok(())
}

fn selected(scenario: &Scenario, only: &[String]) -> bool {
    only.is_empty() || only.iter().any(|o| scenario.id.contains(o.as_str()))
}

fn ensure_tool(name: &str, probe: &str) -> anyhow::Result<()> {
    let found = Command::new(name)
        .arg(probe)
        .output()
        .is_ok_and(|out| out.status.success());
    anyhow::ensure!(
        found,
        "{name} was not found: install valgrind (Debian: apt-get install valgrind)"
    );
    Ok(())
}

/// Runs one scenario under callgrind and counts its measured window.
fn count(ctx: &Ctx, scenario: &Scenario) -> anyhow::Result<Counted> {
    let dir = ctx.fresh_dir(scenario.id)?;
    let upstream = servers::upstream(ctx, &dir, Role::Load)?;
    let store_dir = dir.join("store");
    let store = match scenario.store {
        Some(store) => store.to_owned(),
        None => format!("embedded:{}", store_dir.display()),
    };
    let profile = dir.join("callgrind.out");
    let spec = GatewaySpec {
        store: &store,
        off: scenario.off,
        worker_threads: 1,
        callgrind: Some(&profile),
    };
    let gateway =
        match servers::gateway_within(ctx, &dir, upstream.addr, &spec, START_UNDER_VALGRIND)? {
            Gateway::Up(server) => server,
            Gateway::Refused(why) => anyhow::bail!("idem refused {store}: {why}"),
        };
    let pid = gateway.proc.pid();
    let run_id = ctx.run_id(scenario.id);
    let mut warm = LoadSpec::measured(
        ctx,
        gateway.addr,
        scenario.mode,
        ctx.load.connections,
        run_id.clone(),
    );
    warm.warmup = Duration::ZERO;
    warm.duration = ctx.load.warmup;
    load::run(ctx, &warm).context("the warm-up load failed")?;

    control(pid, "--zero")?;
    let mut measured = LoadSpec::measured(
        ctx,
        gateway.addr,
        scenario.mode,
        ctx.load.connections,
        run_id,
    );
    measured.warmup = Duration::ZERO;
    let report = load::run(ctx, &measured).context("the measured load failed")?;
    control(pid, "--dump")?;
    let dumped = dump_of(&profile)?;
    let instructions = total_instructions(&dumped)?;
    let sha256 = sha256_instructions(&dumped);
    drop(gateway);
    drop(upstream);

    anyhow::ensure!(
        report.errors.total() == 0 && report.statuses.keys().all(|s| *s == 200),
        "the measured load got errors or statuses other than 200: {:?}, {:?}",
        report.statuses,
        report.errors
    );
    let requests = report.total_answered;
    anyhow::ensure!(requests > 0, "no request was answered");
    Ok(Counted {
        id: scenario.id,
        title: scenario.title,
        requests,
        instructions,
        per_request: instructions / requests,
        sha256_per_request: sha256.map(|n| n / requests),
        profile: dumped,
    })
}

/// Sends a command to the callgrind instance `pid`.
fn control(pid: u32, what: &str) -> anyhow::Result<()> {
    let mut command = Command::new("callgrind_control");
    command.arg(what).arg(pid.to_string());
    let output = run_bounded(command, Duration::from_secs(60))?;
    anyhow::ensure!(
        output.status.success(),
        "callgrind_control {what} failed: {}",
        output.last_line()
    );
    Ok(())
}

/// The file of the one dump asked for: callgrind numbers the dumps of a
/// run after the output file's name (`callgrind.out.1`).
fn dump_of(profile: &Path) -> anyhow::Result<PathBuf> {
    let name = profile
        .file_name()
        .context("the profile has no file name")?
        .to_string_lossy()
        .into_owned();
    let dir = profile.parent().context("the profile has no directory")?;
    let mut dumps: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .and_then(|n| n.strip_prefix(&format!("{name}.")).map(str::to_owned))
                .is_some_and(|suffix| suffix.chars().all(|c| c.is_ascii_digit()))
        })
        .collect();
    dumps.sort();
    dumps
        .pop()
        .with_context(|| format!("callgrind wrote no dump next to {}", profile.display()))
}

/// The `summary:` (or, in older files, `totals:`) line of a callgrind
/// profile: the instructions of everything it covers.
fn total_instructions(profile: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(profile)
        .with_context(|| format!("reading {}", profile.display()))?;
    parse_total(&text).with_context(|| format!("no total in {}", profile.display()))
}

fn parse_total(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line
            .strip_prefix("summary:")
            .or_else(|| line.strip_prefix("totals:"))?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The instructions `profile` spent in SHA-256's block function, from
/// `callgrind_annotate`'s per-function totals (one line per source file
/// the inlined function came from). `None` if it could not be run.
fn sha256_instructions(profile: &Path) -> Option<u64> {
    let mut command = Command::new("callgrind_annotate");
    command.args(["--auto=no", "--threshold=100"]).arg(profile);
    let output = run_bounded(command, Duration::from_secs(120)).ok()?;
    output
        .status
        .success()
        .then(|| sum_of_function(&output.stdout, "sha2::sha256::compress256"))
}

/// Sums the counts of `callgrind_annotate` lines of the function `name`
/// (`  1,234 (0.5%)  /path/file.rs:name [binary]`).
fn sum_of_function(annotated: &str, name: &str) -> u64 {
    let suffix = format!(":{name}");
    annotated
        .lines()
        .filter(|line| {
            // After the percentage, before the binary's name.
            let Some((_, rest)) = line.split_once(')') else {
                return false;
            };
            let function = rest.split(" [").next().unwrap_or("").trim();
            function.ends_with(&suffix)
        })
        .filter_map(|line| {
            line.split_whitespace()
                .next()?
                .replace(',', "")
                .parse::<u64>()
                .ok()
        })
        .sum()
}

fn render(counted: &[Counted], ctx: &Ctx) -> String {
    let revision = machine::git_revision();
    let binary = binaries::describe(&ctx.bins.idem);
    let mut md = String::from("# idem instructions per request (callgrind)\n\n");
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    md.push_str(&format!(
        "- command: `{command}`\n- revision: {revision}\n- idem binary: {binary}\n\
         - load: {} keep-alive connections, {} s warm-up, then {} s counted\n\
         - gateway: one worker thread, under `valgrind --tool=callgrind`\n\n",
        ctx.load.connections,
        ctx.load.warmup.as_secs_f64(),
        ctx.load.duration.as_secs_f64(),
    ));
    md.push_str(
        "| scenario | requests counted | instructions per request | of which SHA-256 (portable) | \
         without SHA-256 | without SHA-256, vs all routes off |\n",
    );
    md.push_str("|---|--:|--:|--:|--:|--:|\n");
    let without = |c: &Counted| c.sha256_per_request.map(|sha| c.per_request - sha);
    let off = counted.iter().find(|c| c.id == "off").and_then(without);
    for c in counted {
        let dash = || "–".to_owned();
        let sha = c.sha256_per_request.map_or_else(dash, |n| n.to_string());
        let rest = without(c).map_or_else(dash, |n| n.to_string());
        let ratio = match (without(c), off) {
            (Some(n), Some(off)) if off > 0 => format!("{:.2}x", n as f64 / off as f64),
            _ => dash(),
        };
        md.push_str(&format!(
            "| {} | {} | {} | {sha} | {rest} | {ratio} |\n",
            c.title, c.requests, c.per_request
        ));
    }
    md.push_str(
        "\nInstructions in idem's process only, from the end of the warm-up to the end of \
         the measured load, divided by the requests that load got answered. Kernel time, \
         waiting and cache misses are not counted. Under valgrind SHA-256 runs its portable \
         code where the CPU would use its SHA extensions, so its instructions are also shown \
         apart, and left out of the last two columns. See \
         `bench/driver/src/instructions.rs`.\n",
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_read_from_the_summary_line() {
        let text = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 123456\n\
                    fn=(1) main\n1 5\n";
        assert_eq!(parse_total(text), Some(123_456));
        assert_eq!(parse_total("events: Ir\ntotals: 42\n"), Some(42));
        assert_eq!(parse_total("events: Ir\n"), None);
    }

    #[test]
    fn a_functions_lines_are_summed_across_its_source_files() {
        let annotated = "\
--------------------------------------------------------------------------------
Ir                   file:function
--------------------------------------------------------------------------------
78,716,442 (12.02%)  /r/sha2-0.10.9/src/sha256/soft.rs:sha2::sha256::compress256
46,245,318 ( 7.06%)  /rustc/x/library/core/src/intrinsics/mod.rs:sha2::sha256::compress256 [/b/idem]
38,448,010 ( 5.87%)  ./string/memmove.S:__memcpy_avx_unaligned_erms [/usr/lib/libc.so.6]
 5,000 ( 0.01%)  /r/sha2-0.10.9/src/sha256.rs:sha2::sha256::compress256_other
";
        assert_eq!(
            sum_of_function(annotated, "sha2::sha256::compress256"),
            78_716_442 + 46_245_318
        );
    }

    #[test]
    fn scenarios_are_chosen_by_part_of_their_id() {
        let only = vec!["memory".to_owned()];
        let chosen: Vec<_> = SCENARIOS
            .iter()
            .filter(|s| selected(s, &only))
            .map(|s| s.id)
            .collect();
        assert_eq!(chosen, ["fresh-memory", "replay-memory"]);
        assert_eq!(SCENARIOS.iter().filter(|s| selected(s, &[])).count(), 4);
    }
}
