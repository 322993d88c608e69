//! The admin API and `idem keys` against a running gateway: the token, the
//! refusal to start on a public address without one, paging, and resolving
//! a record whose outcome is unknown (released, or marked completed).

use std::process::{Command, Output};
use std::time::Duration;

use http::Method;
use serde_json::Value;

use crate::gateway::{Gateway, Setup, TempDir};

const TOKEN: &str = "e2e-admin-token-0123456789";

/// Runs `idem keys ARGS` against `gateway`'s admin listener, off the async
/// runtime (the test upstream runs on it).
async fn keys(gateway: &Gateway, token: &str, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_idem"));
    command
        .arg("keys")
        .args(args)
        .args(["--admin", &format!("http://{}", gateway.admin)])
        .args(["--token", token, "--actor", "e2e"])
        .env_remove("IDEM_ADMIN_TOKEN")
        .env_remove("IDEM_ADMIN_URL");
    tokio::task::spawn_blocking(move || command.output().expect("idem keys runs"))
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "idem keys failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("--json prints JSON")
}

#[tokio::test]
async fn the_admin_api_answers_401_without_the_token() {
    let s = Setup::new(None, &["--admin-token", TOKEN]).await;
    let g = &s.gateway;
    let list = |auth: Option<&str>| {
        let call = g
            .admin_request(Method::GET, "/admin/v1/in-flight")
            .header("x-idem-actor", "e2e");
        match auth {
            Some(auth) => call.header("authorization", auth),
            None => call,
        }
    };
    let none = list(None).send().await;
    assert_eq!(none.status, 401, "{}", none.text());
    assert_eq!(
        none.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(
        list(Some("Bearer wrong-token-0123456789"))
            .send()
            .await
            .status,
        401
    );
    let ok = list(Some(&format!("Bearer {TOKEN}"))).send().await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    // Health, metrics and the document stay open for probes and scrapers.
    for path in ["/livez", "/readyz", "/metrics", "/openapi.json"] {
        let reply = g.admin_request(Method::GET, path).send().await;
        assert_eq!(reply.status, 200, "{path}");
    }
    // `idem keys` says what to do about a wrong token, and fails.
    let refused = keys(g, "wrong-token-0123456789", &["list", "--in-flight"]).await;
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    assert!(stderr.contains("--token"), "{stderr}");
    // Refusals are logged, without the token that was tried.
    let log = g.log();
    assert!(log.contains("admin request refused"), "{log}");
    assert!(!log.contains(TOKEN), "the token is never logged");
}

#[test]
fn a_public_admin_address_without_a_token_is_refused_before_binding() {
    let dir = TempDir::new();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let output = Command::new(env!("CARGO_BIN_EXE_idem"))
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", "0.0.0.0:0"])
        .args(["--upstream", "http://127.0.0.1:1", "--store", "memory:"])
        .env_remove("IDEM_ADMIN_TOKEN")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "usage exit code: {stderr}");
    assert!(
        stderr.contains("--admin-listen / IDEM_ADMIN_LISTEN"),
        "{stderr}"
    );
    assert!(stderr.contains("admin_token"), "{stderr}");
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "the gateway's port was never bound"
    );
    // With a token, the same address starts.
    let mut child = Command::new(env!("CARGO_BIN_EXE_idem"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0"])
        .args(["--upstream", "http://127.0.0.1:1", "--store", "memory:"])
        .args(["--admin-token", TOKEN])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("idem admin listening on 0.0.0.0:"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_records_page_through_the_admin_api_and_idem_keys() {
    let s = Setup::new(None, &["--admin-token", TOKEN]).await;
    let g = &s.gateway;
    let mut running = Vec::new();
    for n in 0..5 {
        let call = g
            .post("/v1/charges")
            .key(&format!("page-{n}"))
            .header("x-delay-ms", "3000")
            .json("{}");
        running.push(tokio::spawn(async move { call.send().await }));
    }
    // A completed record, which is never listed.
    assert_eq!(
        g.post("/v1/charges")
            .key("done")
            .json("{}")
            .send()
            .await
            .status,
        201
    );
    s.upstream.wait_for_executions(6).await;

    let auth = format!("Bearer {TOKEN}");
    let mut ids = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let path = format!("/admin/v1/in-flight?limit=2&after={after}");
        let page = g
            .admin_request(Method::GET, &path)
            .header("authorization", &auth)
            .header("x-idem-actor", "e2e")
            .send()
            .await;
        assert_eq!(page.status, 200, "{}", page.text());
        pages += 1;
        let body: Value = serde_json::from_slice(&page.body).unwrap();
        for record in body["records"].as_array().unwrap() {
            assert_eq!(record["state"], "in_flight");
            assert_eq!(record["lease_lapsed"], false);
            ids.push(record["id"].as_str().unwrap().to_owned());
        }
        match body["next_after"].as_str() {
            Some(next) => after = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 3, "pages of 2, 2 and 1");
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "five distinct records, by id");
    assert_eq!(ids.len(), 5);

    // The same through `idem keys`, following the pages.
    let all = json(
        &keys(
            g,
            TOKEN,
            &["list", "--in-flight", "--limit", "2", "--all", "--json"],
        )
        .await,
    );
    let listed: Vec<&str> = all["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids);
    let table = keys(g, TOKEN, &["list", "--in-flight", "--limit", "2"]).await;
    let table = stdout(&table);
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.contains("more: idem keys list --in-flight --after "),
        "{table}"
    );

    for task in running {
        assert_eq!(task.await.unwrap().status, 201);
    }
    let empty = json(&keys(g, TOKEN, &["list", "--in-flight", "--json"]).await);
    assert_eq!(empty["records"].as_array().map(Vec::len), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releasing_an_unknown_outcome_lets_exactly_one_retry_execute() {
    // A long lease: without the operator, a retry would get 409 for a
    // minute.
    let config = "upstream_timeout = \"500ms\"\nlease = \"60s\"\n";
    let s = Setup::new(Some(config), &["--admin-token", TOKEN]).await;
    let g = &s.gateway;
    let charge = || g.post("/v1/charges").key("lost-1").json("{\"amount\":5}");
    let timed_out = charge().header("x-delay-ms", "1500").send().await;
    timed_out.assert_problem(504, "upstream-timeout");
    charge().send().await.assert_problem(409, "in-flight");

    // The operator finds the record by its key and looks at it.
    let found = json(
        &keys(
            g,
            TOKEN,
            &["get", "--route", "*", "--key", "lost-1", "--json"],
        )
        .await,
    );
    assert_eq!(found["state"], "in_flight");
    let id = found["id"].as_str().unwrap().to_owned();
    let shown = keys(g, TOKEN, &["get", &id]).await;
    let shown = stdout(&shown);
    assert!(shown.contains("in_flight"), "{shown}");
    assert!(shown.contains(&id), "{shown}");

    let released = keys(g, TOKEN, &["release", &id]).await;
    assert!(released.status.success(), "{:?}", released);
    assert!(
        stdout(&released).contains("released"),
        "{}",
        stdout(&released)
    );
    // Releasing again finds nothing.
    let again = keys(g, TOKEN, &["release", &id]).await;
    assert_eq!(again.status.code(), Some(1));

    // Five retries at once: exactly one executes, the others wait their
    // turn (409) or replay it.
    let before = s.upstream.executions_of("lost-1");
    assert_eq!(before, 1);
    let mut retries = Vec::new();
    for _ in 0..5 {
        let call = charge().header("x-delay-ms", "200");
        retries.push(tokio::spawn(async move { call.send().await }));
    }
    let mut executed = 0;
    for retry in retries {
        let reply = retry.await.unwrap();
        match reply.status.as_u16() {
            201 if !reply.is_replay() => executed += 1,
            201 | 409 => {}
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    assert_eq!(executed, 1, "exactly one retry executed");
    assert!(charge().send().await.is_replay());
    assert_eq!(
        s.upstream.executions_of("lost-1"),
        2,
        "the first attempt and one retry"
    );

    // Every admin action was logged with who did it.
    let log = g.log();
    let actions: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("admin action") && l.contains("actor=e2e"))
        .collect();
    assert!(
        actions
            .iter()
            .any(|l| l.contains("action=\"release\"") && l.contains(&id)),
        "{log}"
    );
    assert!(
        actions.iter().all(|l| l.contains("peer=127.0.0.1:")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marking_an_unknown_outcome_completed_makes_every_retry_replay_it() {
    // The operator learns what happened (the processor charged the card)
    // and stores that outcome: no retry may charge again. A long lease
    // keeps retries at 409 meanwhile; the holder is done once its upstream
    // timeout has passed, plus a grace of 5 s for its own store write.
    let config = "upstream_timeout = \"300ms\"\nlease = \"60s\"\n\
                  never_stored_headers = [\"x-internal\"]\n";
    let s = Setup::new(Some(config), &["--admin-token", TOKEN]).await;
    let g = &s.gateway;
    let charge = || g.post("/v1/charges").key("lost-2").json("{\"amount\":7}");
    charge()
        .header("x-delay-ms", "1500")
        .send()
        .await
        .assert_problem(504, "upstream-timeout");
    let found = json(
        &keys(
            g,
            TOKEN,
            &["get", "--route", "*", "--key", "lost-2", "--json"],
        )
        .await,
    );
    assert_eq!(found["state"], "in_flight");
    let id = found["id"].as_str().unwrap().to_owned();
    let fence = found["fence"].to_string();
    let body = "{\"id\":\"ch_lost_2\",\"status\":\"succeeded\"}";
    let resolve = |extra: &'static [&'static str]| {
        let (id, fence) = (id.clone(), fence.clone());
        async move {
            let mut args = vec![
                "complete",
                &id,
                "--status",
                "201",
                "--header",
                "content-type: application/json",
                "--body",
                body,
                "--fence",
                &fence,
            ];
            args.extend_from_slice(extra);
            keys(g, TOKEN, &args).await
        }
    };
    let refusal = |output: &Output| String::from_utf8_lossy(&output.stderr).into_owned();

    // Right after the timeout the holder could, as far as the admin API
    // can tell, still be writing the real outcome.
    let early = resolve(&[]).await;
    assert_eq!(early.status.code(), Some(1), "{early:?}");
    let said = refusal(&early);
    assert!(
        said.contains("409") && said.contains("may still be written"),
        "{said}"
    );
    // A header this gateway never stores is refused, not dropped.
    let denied = resolve(&["--header", "x-internal: 1"]).await;
    assert!(
        refusal(&denied).contains("never_stored_headers"),
        "{denied:?}"
    );
    // Meanwhile retries are held off by the lease.
    charge().send().await.assert_problem(409, "in-flight");

    let started = std::time::Instant::now();
    let marked = loop {
        let attempt = resolve(&[]).await;
        if attempt.status.success() || started.elapsed() > Duration::from_secs(15) {
            break attempt;
        }
        assert!(
            refusal(&attempt).contains("may still be written"),
            "{attempt:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(marked.status.success(), "{marked:?}");
    assert!(
        stdout(&marked).contains("completed with status 201"),
        "{}",
        stdout(&marked)
    );

    // Retries at once, and later: all replay the operator's response.
    let mut retries = Vec::new();
    for _ in 0..5 {
        let call = charge();
        retries.push(tokio::spawn(async move { call.send().await }));
    }
    for retry in retries {
        let reply = retry.await.unwrap();
        assert_eq!(reply.status, 201, "{}", reply.text());
        assert!(reply.is_replay());
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.text(), body);
    }
    assert_eq!(
        s.upstream.executions_of("lost-2"),
        1,
        "only the first attempt ran"
    );
    // A second resolution is refused; the stored outcome stands.
    let again = resolve(&[]).await;
    assert_eq!(again.status.code(), Some(1));
    let said = refusal(&again);
    assert!(
        said.contains("409") && said.contains("already completed"),
        "{said}"
    );
    assert!(charge().send().await.is_replay());
    let log = g.log();
    assert!(
        log.lines().any(|l| l.contains("admin action")
            && l.contains("action=\"mark-completed\"")
            && l.contains(&id)
            && l.contains("actor=e2e")),
        "{log}"
    );
}

#[tokio::test]
async fn deleting_a_completed_record_makes_the_key_execute_again() {
    let s = Setup::new(None, &["--admin-token", TOKEN]).await;
    let g = &s.gateway;
    let charge = || g.post("/v1/charges").key("del-1").json("{}");
    assert_eq!(charge().send().await.status, 201);
    let found = json(
        &keys(
            g,
            TOKEN,
            &["get", "--route", "*", "--key", "del-1", "--body", "--json"],
        )
        .await,
    );
    assert_eq!(found["state"], "completed");
    assert_eq!(found["response"]["status"], 201);
    assert_eq!(found["response"]["body"]["encoding"], "utf-8");
    let id = found["id"].as_str().unwrap().to_owned();
    // A completed record cannot be released: its outcome is stored.
    let refused = keys(g, TOKEN, &["release", &id]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("409"));
    let deleted = json(&keys(g, TOKEN, &["delete", &id, "--json"]).await);
    assert_eq!(deleted["deleted"], true);
    let again = charge().send().await;
    assert_eq!(again.status, 201);
    assert!(!again.is_replay(), "executed afresh after the delete");
    assert_eq!(s.upstream.executions_of("del-1"), 2);
}
