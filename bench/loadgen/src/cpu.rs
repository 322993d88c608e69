//! CPU time of processes, from `/proc/<pid>/stat`.
//!
//! `utime + stime` of a process covers all its threads, live and exited, in
//! clock ticks (`USER_HZ`, 100 on every mainstream Linux). Over a window of
//! several seconds that resolution (10 ms) is well under 1% of what a busy
//! server uses, which is why the benchmark measures windows, not requests.

use std::fs;
use std::process::Command;

/// Ticks per second of `/proc` CPU times.
pub fn clock_ticks_per_second() -> u64 {
    // `getconf` asks sysconf(_SC_CLK_TCK) without any unsafe code here.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks: &u64| ticks > 0)
        .unwrap_or(100)
}

/// The fields of `/proc/<pid>/stat` after the command name, which is in
/// parentheses and may itself contain spaces and parentheses.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// `utime + stime` of one process, in ticks. Field 14 and 15 of the file
/// are 11 and 12 after the command name (field 3, `state`, is index 0).
pub fn process_ticks(pid: u32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The direct children of `pid` (nginx's workers under its master).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            // Field 4, `ppid`, is index 1 after the command name.
            stat_fields(child)
                .and_then(|f| f.get(1)?.parse::<u32>().ok())
                .is_some_and(|ppid| ppid == pid)
        })
        .collect()
}

/// The resident set of a process in bytes (`VmRSS`), if it is running.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_readable() {
        let me = std::process::id();
        // Only that the fields parse: a test this short may not have used
        // one whole tick.
        assert!(process_ticks(me).is_some());
        assert!(rss_bytes(me).is_some_and(|rss| rss > 0));
        assert!(clock_ticks_per_second() > 0);
    }
}
