//! The machine's loopback round trip between two processes, across the two
//! cores the benchmark pins to and on one core.
//!
//! Every keyed request on a shared store crosses between processes several
//! times (load generator, gateway, store server, upstream), and a process
//! woken on an idle core pays that core's wake-up. On bare metal that is a
//! few microseconds; in some virtual machines it is tens, and then the
//! shared-store rows are bound by it rather than by any process's CPU. The
//! run's header gives both numbers so that a table can be read for what it
//! is.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::context::Ctx;
use crate::pin::Role;
use crate::process::{Proc, run_bounded};
use crate::servers::START_LIMIT;

/// What the echo process prints once it listens.
const ECHO_READY: &str = "rtt echo listening on ";
/// Round trips timed per measurement, after [`WARMUP_PINGS`] untimed.
const PINGS: u32 = 20_000;
const WARMUP_PINGS: u32 = 1_000;
/// How long one measurement may take (20,000 round trips of 100 µs are 2 s).
const PING_LIMIT: Duration = Duration::from_secs(30);

/// Mean loopback round trips of one byte between two processes.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct RoundTrips {
    /// The two processes on cores 0 and 1, as load and gateway are pinned.
    pub(crate) across_cores_us: f64,
    /// Both on core 1.
    pub(crate) same_core_us: f64,
}

/// `idem-bench rtt-echo`: answers each byte with itself, one connection
/// after another, until killed.
pub(crate) fn echo() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("{ECHO_READY}{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    serve(&listener)
}

fn serve(listener: &TcpListener) -> anyhow::Result<()> {
    for stream in listener.incoming() {
        let mut stream = stream?;
        stream.set_nodelay(true)?;
        let mut byte = [0u8; 1];
        while stream.read(&mut byte)? == 1 {
            stream.write_all(&byte)?;
        }
    }
    Ok(())
}

/// `idem-bench rtt-ping`: prints the mean round trip to an echo in µs.
pub(crate) fn ping(target: SocketAddr) -> anyhow::Result<()> {
    let mean_us = mean_round_trip(target, WARMUP_PINGS, PINGS)?;
    println!("{mean_us:.2}");
    Ok(())
}

/// The mean of `timed` round trips to an echo, in µs, after `warmup`.
fn mean_round_trip(target: SocketAddr, warmup: u32, timed: u32) -> anyhow::Result<f64> {
    let mut stream = TcpStream::connect(target)?;
    stream.set_nodelay(true)?;
    let mut round_trip = |n: u32| -> anyhow::Result<()> {
        // A different byte each time, so that an echo that answers
        // anything else is caught.
        let sent = [n as u8];
        let mut answer = [0u8; 1];
        stream.write_all(&sent)?;
        stream.read_exact(&mut answer)?;
        anyhow::ensure!(answer == sent, "the echo answered {answer:?} to {sent:?}");
        Ok(())
    };
    for n in 0..warmup {
        round_trip(n)?;
    }
    let started = Instant::now();
    for n in 0..timed {
        round_trip(n)?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(timed.max(1)))
}

/// Measures both round trips; needs pinning (on one unpinned machine the
/// two would be whatever the scheduler chose).
pub(crate) fn measure(ctx: &Ctx) -> Result<RoundTrips, String> {
    if !ctx.pin.enabled() {
        return Err("not measured: processes are not pinned".into());
    }
    measure_pinned(ctx).map_err(|e| format!("not measured: {e:#}"))
}

fn measure_pinned(ctx: &Ctx) -> anyhow::Result<RoundTrips> {
    let exe = std::env::current_exe().context("finding idem-bench itself")?;
    let dir = ctx.fresh_dir("rtt")?;
    let mut command = ctx.pin.command(Role::Subject, &exe);
    command.arg("rtt-echo");
    let mut echo = Proc::spawn("rtt-echo", command, &dir)?;
    let target: SocketAddr = echo
        .wait_for_line(ECHO_READY, START_LIMIT)
        .context("the echo did not start")?
        .parse()
        .context("the echo printed a bad address")?;
    let mean_from = |role: Role| -> anyhow::Result<f64> {
        let mut command = ctx.pin.command(role, &exe);
        command.arg("rtt-ping").arg(target.to_string());
        let out = run_bounded(command, PING_LIMIT)?;
        anyhow::ensure!(out.status.success(), "rtt-ping: {}", out.last_line());
        out.stdout
            .trim()
            .parse()
            .with_context(|| format!("rtt-ping printed {:?}", out.stdout))
    };
    let measured = mean_from(Role::Load).and_then(|across_cores_us| {
        Ok(RoundTrips {
            across_cores_us,
            same_core_us: mean_from(Role::Subject)?,
        })
    });
    echo.stop();
    measured
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ping_times_round_trips_through_the_echo() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap();
        std::thread::spawn(move || serve(&listener));
        let mean_us = mean_round_trip(target, 10, 300).unwrap();
        // Loopback on any machine: more than nothing, far less than 100 ms.
        assert!(mean_us > 0.0 && mean_us < 100_000.0, "{mean_us} µs");
    }

    #[test]
    fn a_ping_without_an_echo_fails() {
        // A port that was free a moment ago: nothing listens on it.
        let target = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(mean_round_trip(target, 0, 1).is_err());
    }
}
