//! Races: many requests on one key, exactly one execution.

use crate::gateway::Setup;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_with_one_key_execute_once() {
    let s = Setup::plain().await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let call = s
            .gateway
            .post("/v1/charges")
            .key("race")
            .header("x-delay-ms", "200")
            .json(r#"{"amount":1}"#);
        tasks.push(tokio::spawn(async move { call.send().await }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status.as_u16() {
            201 if !reply.is_replay() => created += 1,
            201 => {}
            409 => conflicts += 1,
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    assert_eq!(created, 1, "exactly one request executed");
    assert_eq!(s.upstream.executions(), 1);
    assert!(conflicts > 0, "the duplicates raced the first one");
    // Afterwards, everyone gets the replay.
    let reply = s
        .gateway
        .post("/v1/charges")
        .key("race")
        .json(r#"{"amount":1}"#)
        .send()
        .await;
    assert!(reply.is_replay());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_keys_at_once_each_execute_once() {
    let s = Setup::plain().await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let call = s
            .gateway
            .post("/v1/charges")
            .key(&format!("k{}", i % 20))
            .json("{}");
        tasks.push(tokio::spawn(async move { call.send().await }));
    }
    for task in tasks {
        let status = task.await.unwrap().status.as_u16();
        assert!(status == 201 || status == 409, "{status}");
    }
    for i in 0..20 {
        assert_eq!(s.upstream.executions_of(&format!("k{i}")), 1, "k{i}");
    }
}
