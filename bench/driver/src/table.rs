//! The markdown report of a run: the tables `docs/performance.md` quotes.

use std::fmt::Write;

use crate::batching::Batching;
use crate::ceiling;
use crate::results::{Results, ScenarioResult, Summary};
use crate::scenarios::{NGINX, PASS_THROUGH, PGBENCH_SUFFIX};

/// A 1-minute load average above this before the run marks the numbers
/// preliminary: something else was using the cores.
const BUSY_LOAD: f64 = 0.5;

/// Renders the whole report.
pub(crate) fn render(results: &Results) -> String {
    let mut out = String::new();
    header(&mut out, results);
    throughput(&mut out, &results.scenarios);
    ceilings(&mut out, results);
    peers(&mut out, &results.scenarios);
    memory(&mut out, results);
    targets(&mut out, results);
    problems(&mut out, &results.scenarios);
    out
}

fn header(out: &mut String, r: &Results) {
    let m = &r.machine_before;
    let busy = m.load[0] > BUSY_LOAD;
    let _ = writeln!(out, "# idem benchmark, {}\n", r.started);
    if busy {
        let _ = writeln!(
            out,
            "> **Preliminary**: the machine was busy before the run (1-minute load \
             average {:.2} on {} cores), so absolute numbers are low and noisy; \
             the ratios, taken in alternating rounds, are the part to read.\n",
            m.load[0], m.cores
        );
    }
    let _ = writeln!(out, "- command: `{}`", r.command);
    let _ = writeln!(out, "- revision: {} ({} build)", r.revision, r.profile);
    let _ = writeln!(out, "- idem binary: {}", r.idem_binary);
    let _ = writeln!(
        out,
        "- machine: {} cores, {}, Linux {}",
        m.cores, m.cpu, m.kernel
    );
    let _ = writeln!(
        out,
        "- load average (1/5/15 min): before {:.2} / {:.2} / {:.2}, after {:.2} / {:.2} / {:.2}",
        m.load[0], m.load[1], m.load[2], r.load_after[0], r.load_after[1], r.load_after[2]
    );
    let s = &r.settings;
    let _ = writeln!(
        out,
        "- load: {} keep-alive connections ({} for concurrent duplicates), warm-up {:.0} s, \
         {:.0} s measured, {} rounds in alternating order; {}",
        s.connections, s.group, s.warmup_s, s.duration_s, s.rounds, s.loadgen
    );
    let _ = writeln!(
        out,
        "- every request: `POST /v1/charges`, 87-byte JSON body, `Authorization` and a \
         `Idempotency-Key`; the upstream answers 99 bytes of JSON"
    );
    match &r.round_trips {
        Some(Ok(rt)) => {
            let _ = writeln!(
                out,
                "- loopback round trip between two processes (1 byte, mean of 20,000): \
                 {:.1} µs across cores 0 and 1, {:.1} µs on one core",
                rt.across_cores_us, rt.same_core_us
            );
        }
        Some(Err(why)) => {
            let _ = writeln!(out, "- loopback round trip between two processes: {why}");
        }
        None => {}
    }
    for (name, version) in &r.versions {
        let _ = writeln!(out, "- {name}: {version}");
    }
    let _ = writeln!(out, "- whole run: {:.0} s\n", r.elapsed_s);
}

fn ms(us: f64) -> String {
    format!("{:.2}", us / 1000.0)
}

fn ratio(summary: &Summary, base: Option<&Summary>) -> String {
    base.filter(|b| b.rps > 0.0)
        .map_or("–".into(), |b| format!("{:.2}x", summary.rps / b.rps))
}

fn answers(s: &Summary) -> String {
    let total: u64 = s.statuses.values().sum();
    if total == 0 {
        return "none".into();
    }
    let mut parts: Vec<String> = s
        .statuses
        .iter()
        .map(|(status, n)| format!("{status}: {:.1}%", *n as f64 * 100.0 / total as f64))
        .collect();
    if s.replayed > 0 {
        parts.push(format!(
            "replayed {:.1}%",
            s.replayed as f64 * 100.0 / total as f64
        ));
    }
    if s.errors > 0 {
        parts.push(format!("**{} errors**", s.errors));
    }
    if s.unexpected > 0 {
        parts.push(format!("**{} unexpected**", s.unexpected));
    }
    if let Some(batching) = s.batching.as_ref().and_then(Batching::describe) {
        parts.push(batching);
    }
    if let Some(us) = s.store_server_cpu_us {
        parts.push(format!("store server {us:.1} CPU µs/req"));
    }
    parts.join(", ")
}

fn find(results: &[ScenarioResult], id: &str) -> Option<Summary> {
    results.iter().find(|r| r.id == id)?.summary()
}

fn throughput(out: &mut String, results: &[ScenarioResult]) {
    let base = find(results, PASS_THROUGH);
    let nginx = find(results, NGINX);
    let _ = writeln!(out, "## Throughput and latency\n");
    let _ = writeln!(
        out,
        "| scenario | req/s | spread | p50 ms | p99 ms | p99.9 ms | CPU µs/req | req/s per core | cores: tested / load | vs idem off | vs nginx | answers | what ran |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|");
    for result in results.iter().filter(|r| !is_peer(r)) {
        row(out, result, base.as_ref(), nginx.as_ref());
    }
    let _ = writeln!(
        out,
        "\nspread: lowest–highest round. CPU: user+system time of the system under \
         test (nginx: master and worker) over the window, per answered request; \
         req/s per core is its inverse, what one core of the tested system could serve. \
         cores: the average number of cores kept busy by the system under test, and \
         by the load side (load generator plus upstream, which share one core when \
         pinned): a load side near 1.0 was saturated, and the row's throughput is \
         then a floor for the system under test. store server: the CPU time of the \
         Redis or PostgreSQL server (postmaster and backends) over the same window, \
         per answered request, where it runs on this machine.\n"
    );
}

fn row(out: &mut String, r: &ScenarioResult, base: Option<&Summary>, nginx: Option<&Summary>) {
    let Some(s) = r.summary() else {
        let why = r
            .skipped
            .clone()
            .or_else(|| r.failures.first().cloned())
            .unwrap_or_else(|| "did not run".into());
        // Thirteen cells, the reason under "answers".
        let _ = writeln!(
            out,
            "| {} | – | | | | | | | | | | {} | {} |",
            r.title,
            why.replace('|', "/"),
            r.system
        );
        return;
    };
    let cpu = s.subject_cpu_us.map_or("–".into(), |c| format!("{c:.1}"));
    let capacity = s
        .subject_cpu_us
        .filter(|c| *c > 0.0)
        .map_or("–".into(), |c| format!("{:.0}", 1e6 / c));
    // pgbench's CPU is not watched (nor the server's): no cores to show.
    let cores = if r.runs.iter().all(|run| run.report.cpu.is_empty()) {
        "–".to_owned()
    } else {
        format!("{:.2} / {:.2}", s.subject_cores, s.load_side_cores)
    };
    let answers = if is_pgbench(r) {
        format!(
            "{} transactions, each a claim + a complete (one request)",
            s.requests
        )
    } else {
        answers(&s)
    };
    let _ = writeln!(
        out,
        "| {} | {:.0} | {:.0}–{:.0} | {} | {} | {} | {} | {capacity} | {cores} | {} | {} | {answers} | {} |",
        r.title,
        s.rps,
        s.rps_min,
        s.rps_max,
        ms(s.p50_us),
        ms(s.p99_us),
        ms(s.p999_us),
        cpu,
        ratio(&s, base),
        ratio(&s, nginx),
        r.system
    );
}

/// Each row's CPU per request, split by process, and the throughput
/// the machine's cores would allow at those costs (see [`ceiling`]).
fn ceilings(out: &mut String, r: &Results) {
    let cores = r.machine_before.cores;
    let pinned = r.settings.pinned;
    let base = find(&r.scenarios, PASS_THROUGH);
    let rows: Vec<(&ScenarioResult, Summary, ceiling::Ceiling)> = r
        .scenarios
        .iter()
        .filter(|s| !is_peer(s) && !is_pgbench(s))
        .filter_map(|s| {
            let summary = s.summary()?;
            let ceiling = ceiling::of(&summary, cores, pinned)?;
            Some((s, summary, ceiling))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "## What {cores} cores allow at the measured costs\n");
    let _ = writeln!(
        out,
        "| scenario | req/s | CPU µs/req: tested / load side / store server | ceiling req/s | measured / ceiling | ceiling vs idem off |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|");
    for (result, s, c) in rows {
        let store = if s.store_server_cpu_us.is_some() {
            format!("{:.1}", c.store_us)
        } else {
            "–".into()
        };
        let vs_off = base
            .as_ref()
            .filter(|b| b.rps > 0.0)
            .map_or("–".into(), |b| format!("{:.2}x", c.rps / b.rps));
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.1} / {:.1} / {store} | {:.0} | {:.2} | {vs_off} |",
            result.title,
            s.rps,
            c.subject_us,
            c.load_us,
            c.rps,
            s.rps / c.rps,
        );
    }
    let placement = if pinned {
        "the tested process has core 1 alone and the load side core 0 alone, so \
         neither can use more than one core; the store's server (not pinned) can \
         use what they leave on either"
    } else {
        "the processes were not pinned and share all the cores"
    };
    let _ = writeln!(
        out,
        "\nceiling: the throughput at which the cores would be full if no process \
         ever waited, at this row's CPU costs per request: {placement}. A row \
         far below its ceiling is waiting (round trips, fsyncs, connections \
         moving in groups); a target above a row's ceiling cannot be met on \
         this machine without cheaper work per request. The ceiling is of the \
         costs measured, not a bound on any implementation.\n"
    );
}

fn is_pgbench(r: &ScenarioResult) -> bool {
    r.id.ends_with(PGBENCH_SUFFIX)
}

fn is_peer(r: &ScenarioResult) -> bool {
    r.id.ends_with("-with") || r.id.ends_with("-without")
}

fn peers(out: &mut String, results: &[ScenarioResult]) {
    if !results.iter().any(is_peer) {
        return;
    }
    let _ = writeln!(out, "## Peers: in-process middlewares, with and without\n");
    let _ = writeln!(
        out,
        "| stack | without: req/s | with: req/s | with / without | p99 ms without | p99 ms with | CPU µs/req with | notes |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|---|");
    let pairs = [
        (
            "idem gateway (fresh keys, memory store vs all routes off)",
            PASS_THROUGH,
            "fresh-memory",
        ),
        (
            "Express + express-idempotency",
            "express-without",
            "express-with",
        ),
        (
            "Starlette + asgi-idempotency-header",
            "starlette-without",
            "starlette-with",
        ),
    ];
    for (name, without, with) in pairs {
        let a = results.iter().find(|r| r.id == without);
        let b = results.iter().find(|r| r.id == with);
        let (Some(a), Some(b)) = (a, b) else {
            continue;
        };
        match (a.summary(), b.summary()) {
            (Some(sa), Some(sb)) => {
                let cpu = sb.subject_cpu_us.map_or("–".into(), |c| format!("{c:.1}"));
                let _ = writeln!(
                    out,
                    "| {name} | {:.0} | {:.0} | {:.2}x | {} | {} | {cpu} | {} |",
                    sa.rps,
                    sb.rps,
                    sb.rps / sa.rps,
                    ms(sa.p99_us),
                    ms(sb.p99_us),
                    answers(&sb)
                );
            }
            _ => {
                let why = [a, b]
                    .iter()
                    .find_map(|r| r.skipped.clone().or_else(|| r.failures.first().cloned()))
                    .unwrap_or_else(|| "did not run".into());
                let _ = writeln!(
                    out,
                    "| {name} | – | – | – | | | | {} |",
                    why.replace('|', "/")
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "\nThe peers' apps answer in-process; idem's rows include a proxy hop to a \
         separate upstream. The with/without ratio is the comparable number: what \
         adding idempotency costs each stack.\n"
    );
}

fn memory(out: &mut String, r: &Results) {
    let _ = writeln!(out, "## Memory and disk per record\n");
    match &r.memory {
        None => {}
        Some(Err(why)) => {
            let _ = writeln!(out, "- memory store: not measured: {why}");
        }
        Some(Ok(m)) => {
            let last = m.points.last();
            let _ = writeln!(
                out,
                "- memory store: RSS grew {:.0} B per completed record from {} to {} records \
                 ({:.1} MiB at the end; filled at {:.0} records/s); the stored response is {} B \
                 ({}), so the overhead is **{:.0} B per record**. {}",
                m.slope_bytes,
                m.points.first().map_or(0, |p| p.records),
                last.map_or(0, |p| p.records),
                last.map_or(0.0, |p| p.rss_bytes as f64 / 1048576.0),
                m.fill_rps,
                m.stored_bytes,
                m.stored_detail,
                m.overhead_bytes,
                m.note
            );
            let points: Vec<String> = m
                .points
                .iter()
                .map(|p| format!("{} → {:.1} MiB", p.records, p.rss_bytes as f64 / 1048576.0))
                .collect();
            let _ = writeln!(out, "  - RSS by records: {}", points.join(", "));
        }
    }
    match &r.disk {
        None => {}
        Some(Err(why)) => {
            let _ = writeln!(out, "- embedded store: not measured: {why}");
        }
        Some(Ok(d)) => {
            let _ = writeln!(
                out,
                "- embedded store: {} records in {:.1} MiB on disk ({:.0} B per record): the \
                 journal {:.1} MiB (bounded by its size limit, not per record) and the tables \
                 **{:.0} B per record** (stored response {} B; filled at {:.0} records/s)",
                d.records,
                d.bytes as f64 / 1048576.0,
                d.bytes_per_record,
                d.journal_bytes as f64 / 1048576.0,
                d.table_bytes_per_record,
                d.stored_bytes,
                d.fill_rps
            );
        }
    }
    let _ = writeln!(out);
}

fn targets(out: &mut String, r: &Results) {
    let _ = writeln!(out, "## Targets (issue 4)\n");
    let _ = writeln!(out, "| target | goal | measured | |");
    let _ = writeln!(out, "|---|---|---|---|");
    for t in &r.targets {
        let verdict = match t.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "not measured",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {verdict} |",
            t.what,
            t.goal,
            t.measured.as_deref().unwrap_or("–")
        );
    }
    let _ = writeln!(out);
}

fn problems(out: &mut String, results: &[ScenarioResult]) {
    let failed: Vec<&ScenarioResult> = results.iter().filter(|r| !r.failures.is_empty()).collect();
    if failed.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Failed rounds\n");
    for r in failed {
        for failure in &r.failures {
            let _ = writeln!(out, "- {}: {failure}", r.id);
        }
    }
    let _ = writeln!(out);
}
