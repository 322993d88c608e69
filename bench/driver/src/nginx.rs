//! nginx as the bare reverse proxy of reference: one worker process,
//! `proxy_pass` to the same upstream with a pool of keep-alive connections.
//!
//! If nginx is not installed, the driver installs Debian's `nginx-light`
//! when it runs as root and the machine is set up so that installing a
//! service does not start it (`/usr/sbin/policy-rc.d`, as in containers);
//! otherwise the nginx row is skipped and says why. `--no-install` never
//! installs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::context::Ctx;
use crate::pin::Role;
use crate::process::{Proc, run_bounded};
use crate::servers::{START_LIMIT, Server, free_port, wait_for_port};

/// How long `apt-get` may take.
const INSTALL_LIMIT: Duration = Duration::from_secs(300);

/// nginx's path, or why there is none.
pub(crate) fn find_or_install(install: bool) -> Result<PathBuf, String> {
    if let Some(path) = find() {
        return Ok(path);
    }
    if !install {
        return Err("nginx is not installed (and --no-install was given)".into());
    }
    if !is_root() || !Path::new("/usr/sbin/policy-rc.d").exists() {
        return Err(
            "nginx is not installed; `apt-get install nginx-light` to get the reference row".into(),
        );
    }
    eprintln!("idem-bench: installing nginx-light from Debian");
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run_bounded(command, INSTALL_LIMIT)
    };
    let install_args = ["install", "-y", "--no-install-recommends", "nginx-light"];
    let installed = match apt(&install_args) {
        Ok(output) if output.status.success() => true,
        // The package lists may be missing on a fresh machine.
        _ => {
            let _ = apt(&["update"]);
            matches!(apt(&install_args), Ok(output) if output.status.success())
        }
    };
    match (installed, find()) {
        (true, Some(path)) => Ok(path),
        _ => Err("nginx is not installed and `apt-get install nginx-light` failed".into()),
    }
}

fn find() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The configuration: everything under `dir`, one worker, no logging of
/// requests, keep-alive on both sides without a request cap (nginx closes a
/// client connection after 1000 requests by default, which idem does not
/// do, and the reconnects would be measured as nginx's).
fn config(dir: &Path, listen: SocketAddr, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 65s;
    upstream api {{
        server {upstream};
        keepalive 128;
        keepalive_requests 100000000;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
    }}
}}
"
    )
}

/// Starts nginx on a free port in front of `upstream`.
pub(crate) fn start(
    ctx: &Ctx,
    nginx: &Path,
    dir: &Path,
    upstream: SocketAddr,
) -> anyhow::Result<Server> {
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config(dir, listen, upstream))?;
    let mut command = ctx.pin.command(Role::Subject, nginx);
    command
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
        .arg("-c")
        .arg(&conf);
    let mut proc = Proc::spawn("nginx", command, dir)?;
    wait_for_port(&mut proc, listen, START_LIMIT)?;
    Ok(Server {
        proc,
        addr: listen,
        admin: None,
    })
}
