//! Child processes the driver starts, and the guard that always ends them.
//!
//! Every server the benchmark starts is a [`Proc`]: its stderr goes to a log
//! file in the run's work directory, its stdout is read line by line on a
//! thread (so that the child never blocks on a full pipe), and dropping the
//! guard ends it, on success, on error and on panic alike: `SIGTERM` first,
//! so that nginx's master takes its worker with it and the embedded store
//! closes its file, then `SIGKILL` if it has not exited after a grace
//! period.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;

/// How long a process gets to exit after `SIGTERM`.
const GRACE: Duration = Duration::from_secs(5);
/// How often an exiting process is looked at.
const POLL: Duration = Duration::from_millis(20);

/// A running child process, ended when dropped.
pub(crate) struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    lines: Receiver<String>,
}

/// Why a process did not come up.
#[derive(Debug)]
pub(crate) enum StartError {
    /// It exited first, with this status and the end of its stderr.
    Exited { status: ExitStatus, stderr: String },
    /// It printed nothing recognisable in time.
    Timeout(Duration),
    /// Something else went wrong (spawning, reading).
    Other(anyhow::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Exited { status, stderr } => write!(f, "exited with {status}: {stderr}"),
            StartError::Timeout(limit) => write!(f, "did not start within {limit:?}"),
            StartError::Other(error) => write!(f, "{error:#}"),
        }
    }
}

impl std::error::Error for StartError {}

impl Proc {
    /// Starts `command` with stdout piped and stderr to `LOGS/NAME.log`.
    pub(crate) fn spawn(name: &str, mut command: Command, logs: &Path) -> anyhow::Result<Self> {
        let log = logs.join(format!("{name}.log"));
        let stderr = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        let (tx, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            thread::spawn(move || {
                // Keeps reading after the receiver is gone, until the child
                // closes stdout, so that the child never blocks writing.
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
            lines,
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name it was started under.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Waits for a stdout line that starts with `prefix` and returns the
    /// rest of it, trimmed.
    pub(crate) fn wait_for_line(
        &mut self,
        prefix: &str,
        limit: Duration,
    ) -> Result<String, StartError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited()? {
                return Err(StartError::Exited {
                    status,
                    stderr: self.stderr_tail(),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StartError::Timeout(limit));
            }
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.trim().to_owned());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // Stdout closed: the next look finds the exit status.
                Err(RecvTimeoutError::Disconnected) => thread::sleep(POLL),
            }
        }
    }

    /// Its exit status, if it has exited.
    pub(crate) fn has_exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn exited(&mut self) -> Result<Option<ExitStatus>, StartError> {
        self.child
            .try_wait()
            .map_err(|e| StartError::Other(anyhow::anyhow!("waiting for {}: {e}", self.name)))
    }

    /// The last lines of its stderr, for an error message.
    pub(crate) fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    /// Ends the process: `SIGTERM`, then `SIGKILL` after the grace period.
    pub(crate) fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // std only sends SIGKILL; `kill -TERM` asks politely without any
        // unsafe code. Only this child's own pid is ever signalled.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(POLL);
        }
        eprintln!("idem-bench: {} ignored SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// What a bounded command printed.
pub(crate) struct Output {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Output {
    /// The last non-empty line of stderr, else of stdout: usually the
    /// error.
    pub(crate) fn last_line(&self) -> &str {
        [&self.stderr, &self.stdout]
            .iter()
            .find_map(|text| text.lines().rev().find(|l| !l.trim().is_empty()))
            .unwrap_or("")
    }
}

/// Runs a command to completion with a time limit, its output captured.
/// A command that overstays is killed.
pub(crate) fn run_bounded(mut command: Command, limit: Duration) -> anyhow::Result<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    // Both pipes are drained on threads, so a chatty command cannot block.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!(
                "{:?} did not finish within {limit:?}",
                command.get_program()
            );
        }
        thread::sleep(POLL);
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}
