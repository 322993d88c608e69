//! Start-up: bad configuration stops the gateway before it binds anything.

use std::process::Command;

use crate::gateway::TempDir;

#[test]
fn a_config_error_names_file_line_and_setting_and_binds_nothing() {
    let dir = TempDir::new();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let path = dir.path().join("idem.toml");
    std::fs::write(
        &path,
        format!("listen = \"127.0.0.1:{port}\"\nupstream = \"http://127.0.0.1:1\"\n\n[[route]]\npath = \"/v1/charges\"\nlease = \"forever\"\n"),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_idem"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "usage exit code; stderr: {stderr}"
    );
    assert!(
        stderr.contains("idem.toml:6"),
        "names file and line: {stderr}"
    );
    assert!(stderr.contains("lease"), "names the setting: {stderr}");
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "the listen port was never bound"
    );
}

#[test]
fn an_unknown_flag_value_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_idem"))
        .args([
            "serve",
            "--upstream",
            "http://127.0.0.1:1",
            "--store",
            "memory:",
            "--lease",
            "soon",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--lease"), "{stderr}");
}
