//! Keys taken from another header, a JSON body field or a path parameter.

use crate::gateway::Setup;

const ROUTES: &str = r#"
[[route]]
methods = ["POST"]
path = "/webhooks/github"
mode = "required"
key = { header = "X-GitHub-Delivery" }

[[route]]
methods = ["POST"]
path = "/v1/orders"
key = { json = "/order_id" }

[[route]]
methods = ["POST"]
path = "/v1/signup"
mode = "required"
key = { json = "/user/id" }

[[route]]
methods = ["POST"]
path = "/v1/carts/{cart}/checkout"
mode = "required"
key = { path = "cart" }
"#;

#[tokio::test]
async fn webhook_redeliveries_are_deduplicated_by_their_delivery_header() {
    let s = Setup::new(Some(ROUTES), &[]).await;
    let deliver = || {
        s.gateway
            .post("/webhooks/github")
            .header("x-github-delivery", "72d3162e")
            .json(r#"{"action":"opened"}"#)
    };
    assert_eq!(deliver().send().await.status, 201);
    assert!(deliver().send().await.is_replay());
    assert_eq!(
        s.upstream.executions_of("72d3162e"),
        1,
        "forwarded as Idempotency-Key"
    );
    let missing = s.gateway.post("/webhooks/github").json("{}").send().await;
    missing.assert_problem(400, "key-missing");
}

#[tokio::test]
async fn json_field_keys_deduplicate_and_absent_fields_follow_the_mode() {
    let s = Setup::new(Some(ROUTES), &[]).await;
    let order = r#"{"order_id":"ord_1","items":[1,2]}"#;
    assert_eq!(
        s.gateway.post("/v1/orders").json(order).send().await.status,
        201
    );
    assert!(
        s.gateway
            .post("/v1/orders")
            .json(order)
            .send()
            .await
            .is_replay()
    );
    assert_eq!(s.upstream.executions_of("ord_1"), 1);
    // Optional route, no field: passed through, every time.
    s.gateway
        .post("/v1/orders")
        .json(r#"{"items":[]}"#)
        .send()
        .await;
    s.gateway
        .post("/v1/orders")
        .json(r#"{"items":[]}"#)
        .send()
        .await;
    assert_eq!(s.upstream.executions(), 3);
    // Required route, no field: 400.
    let reply = s
        .gateway
        .post("/v1/signup")
        .json(r#"{"user":{}}"#)
        .send()
        .await;
    reply.assert_problem(400, "key-missing");
    // A nested field works, numbers too.
    assert_eq!(
        s.gateway
            .post("/v1/signup")
            .json(r#"{"user":{"id":42}}"#)
            .send()
            .await
            .status,
        201
    );
    assert!(
        s.gateway
            .post("/v1/signup")
            .json(r#"{"user":{"id":42}}"#)
            .send()
            .await
            .is_replay()
    );
    // A body that is not JSON cannot yield a key.
    let reply = s
        .gateway
        .post("/v1/signup")
        .json(r#"{"user":"#)
        .send()
        .await;
    reply.assert_problem(400, "body-not-json");
    let reply = s
        .gateway
        .post("/v1/signup")
        .json(r#"{"user":{"id":{"x":1}}}"#)
        .send()
        .await;
    reply.assert_problem(400, "key-invalid");
}

#[tokio::test]
async fn path_parameter_keys_deduplicate_per_value() {
    let s = Setup::new(Some(ROUTES), &[]).await;
    assert_eq!(
        s.gateway
            .post("/v1/carts/c1/checkout")
            .json("{}")
            .send()
            .await
            .status,
        201
    );
    assert!(
        s.gateway
            .post("/v1/carts/c1/checkout")
            .json("{}")
            .send()
            .await
            .is_replay()
    );
    assert!(
        !s.gateway
            .post("/v1/carts/c2/checkout")
            .json("{}")
            .send()
            .await
            .is_replay()
    );
    assert_eq!(s.upstream.executions_of("c1"), 1);
    assert_eq!(s.upstream.executions_of("c2"), 1);
}
