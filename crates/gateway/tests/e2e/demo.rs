//! `idem demo`, the first command a newcomer runs, keeps its promises.

use std::process::Command;

#[test]
fn the_demo_plays_its_scenario_and_every_promise_holds() {
    let output = Command::new(env!("CARGO_BIN_EXE_idem"))
        .args(["demo", "--no-serve", "--listen", "127.0.0.1:0"])
        .env("IDEM_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("All promises kept"), "{stdout}");
    for expected in [
        "| double-clicked Pay    | click 2: POST /v1/payments",
        "409  Request with this key is in progress",
        "201 replayed  charge ch_0002",
        "422  Idempotency key reused with a different request",
        "200 replayed  handled_event 1",
        "charges 2 · orders 1 · emails 1 · events 1",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
}
