//! The demo's scripted client: plays the four cases against the gateway and
//! prints what happened as a table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::sample_api::SideEffects;

/// One request the client sent and what came back.
struct Row {
    case: &'static str,
    request: String,
    outcome: String,
    effects: String,
}

/// A request of the scenario.
struct Step {
    method: Method,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Step {
    fn post(path: &'static str, body: impl Into<String>) -> Self {
        Self {
            method: Method::POST,
            path,
            headers: vec![("content-type", "application/json".to_owned())],
            body: body.into(),
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// What one request got.
enum Got {
    Status {
        status: StatusCode,
        replayed: bool,
        detail: String,
    },
    GaveUp,
}

struct DemoClient {
    client: Client<HttpConnector, Full<Bytes>>,
    gateway: SocketAddr,
}

impl DemoClient {
    async fn send(&self, step: &Step, give_up_after: Option<Duration>) -> anyhow::Result<Got> {
        let mut builder = Request::builder()
            .method(step.method.clone())
            .uri(format!("http://{}{}", self.gateway, step.path));
        for (name, value) in &step.headers {
            builder = builder.header(*name, value);
        }
        let request = builder.body(Full::new(Bytes::from(step.body.clone())))?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let replayed = response.headers().contains_key("idempotent-replayed");
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response.into_body().collect().await?.to_bytes();
            let detail = summarize(status, &body, retry_after);
            anyhow::Ok(Got::Status {
                status,
                replayed,
                detail,
            })
        };
        match give_up_after {
            None => exchange.await,
            Some(after) => match tokio::time::timeout(after, exchange).await {
                Ok(got) => got,
                Err(_) => Ok(Got::GaveUp),
            },
        }
    }
}

/// A short, readable account of a response body.
fn summarize(status: StatusCode, body: &[u8], retry_after: Option<String>) -> String {
    let text = String::from_utf8_lossy(body);
    if status.is_client_error() || status.is_server_error() {
        let title = text
            .split("\"title\":\"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .unwrap_or("");
        return match retry_after {
            Some(secs) => format!("{title} (Retry-After: {secs})"),
            None => title.to_owned(),
        };
    }
    for field in ["charge", "placed_order", "welcome_email", "handled_event"] {
        let marker = format!("\"{field}\":");
        if let Some(rest) = text.split(&marker).nth(1) {
            let value: String = rest
                .chars()
                .take_while(|c| *c != ',' && *c != '}')
                .collect();
            return format!("{field} {}", value.trim_matches('"'));
        }
    }
    String::new()
}

/// The outcome of the whole scenario, checked against what idem promises.
pub(crate) struct Report {
    pub(crate) table: String,
    pub(crate) failures: Vec<String>,
}

/// Plays the scenario against the gateway at `gateway`.
pub(crate) async fn play(
    gateway: SocketAddr,
    effects: Arc<SideEffects>,
    run_id: &str,
) -> anyhow::Result<Report> {
    let client = DemoClient {
        client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        gateway,
    };
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let count = |e: &SideEffects| {
        format!(
            "charges {} · orders {} · emails {} · events {}",
            e.charges.load(Ordering::SeqCst),
            e.orders.load(Ordering::SeqCst),
            e.welcome_emails.load(Ordering::SeqCst),
            e.webhook_events.load(Ordering::SeqCst)
        )
    };
    let mut expect = |what: &str, ok: bool| {
        if !ok {
            failures.push(what.to_owned());
        }
    };

    // 1. A double-clicked "Pay": two identical requests at once.
    let pay = || {
        Step::post("/v1/payments", r#"{"amount":4200,"currency":"eur"}"#)
            .header("idempotency-key", format!("pay-{run_id}"))
            .header("x-demo-slow-ms", "300")
    };
    let (click1, click2) = (pay(), pay());
    let (a, b) = tokio::join!(client.send(&click1, None), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.send(&click2, None).await
    });
    for (i, got) in [a?, b?].into_iter().enumerate() {
        rows.push(row(
            "double-clicked Pay",
            &format!("click {}: POST /v1/payments", i + 1),
            &got,
            count(&effects),
        ));
    }
    let third = client.send(&pay(), None).await?;
    rows.push(row(
        "double-clicked Pay",
        "click 3, later: same request",
        &third,
        count(&effects),
    ));
    expect(
        "a double-clicked payment charges once",
        effects.charges.load(Ordering::SeqCst) == 1,
    );
    expect(
        "the later click is a replay",
        matches!(third, Got::Status { replayed: true, .. }),
    );

    // 2. A client times out, then retries.
    let slow = || {
        Step::post("/v1/payments", r#"{"amount":1500,"currency":"eur"}"#)
            .header("idempotency-key", format!("retry-{run_id}"))
            .header("x-demo-slow-ms", "1200")
    };
    let first = client
        .send(&slow(), Some(Duration::from_millis(300)))
        .await?;
    rows.push(row(
        "retry after a timeout",
        "POST /v1/payments (client gives up)",
        &first,
        count(&effects),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let retry = client.send(&slow(), None).await?;
    rows.push(row(
        "retry after a timeout",
        "same request, 1.5 s later",
        &retry,
        count(&effects),
    ));
    expect(
        "the retry after a timeout is a replay",
        matches!(retry, Got::Status { replayed: true, .. }),
    );
    expect(
        "the timed-out payment charges once",
        effects.charges.load(Ordering::SeqCst) == 2,
    );

    // 3. The same key with a different amount.
    let changed = Step::post("/v1/payments", r#"{"amount":9900,"currency":"eur"}"#)
        .header("idempotency-key", format!("retry-{run_id}"));
    let got = client.send(&changed, None).await?;
    rows.push(row(
        "changed payload",
        "same key, amount 9900",
        &got,
        count(&effects),
    ));
    expect(
        "a changed payload is refused with 422",
        matches!(got, Got::Status { status, .. } if status == StatusCode::UNPROCESSABLE_ENTITY),
    );

    // 4. Checkout keyed by the order id in the body, serialised two ways.
    let order_a = format!(r#"{{"order_id":"ord-{run_id}","total":2599}}"#);
    let order_b = format!(r#"{{ "total": 2599, "order_id": "ord-{run_id}" }}"#);
    for (label, body) in [
        ("POST /v1/checkout", order_a),
        ("same order, keys reordered", order_b),
    ] {
        let got = client.send(&Step::post("/v1/checkout", body), None).await?;
        rows.push(row("checkout by order_id", label, &got, count(&effects)));
    }
    expect(
        "one order is placed once",
        effects.orders.load(Ordering::SeqCst) == 1,
    );

    // 5. Sign-up keyed by a client-provided user id.
    for label in ["POST /v1/signup", "signup submitted again"] {
        let body = format!(r#"{{"user_id":"usr-{run_id}","email":"ada@example.com"}}"#);
        let got = client.send(&Step::post("/v1/signup", body), None).await?;
        rows.push(row("sign-up by user_id", label, &got, count(&effects)));
    }
    expect(
        "one sign-up sends one welcome email",
        effects.welcome_emails.load(Ordering::SeqCst) == 1,
    );

    // 6. A webhook provider redelivers an event.
    for label in ["POST /webhooks/payments", "provider redelivers it"] {
        let step = Step::post("/webhooks/payments", r#"{"type":"payment.succeeded"}"#)
            .header("webhook-id", format!("msg-{run_id}"));
        let got = client.send(&step, None).await?;
        rows.push(row("webhook redelivery", label, &got, count(&effects)));
    }
    expect(
        "a redelivered webhook is handled once",
        effects.webhook_events.load(Ordering::SeqCst) == 1,
    );

    Ok(Report {
        table: render(&rows),
        failures,
    })
}

fn row(case: &'static str, request: &str, got: &Got, effects: String) -> Row {
    let outcome = match got {
        Got::GaveUp => "client gave up waiting".to_owned(),
        Got::Status {
            status,
            replayed,
            detail,
        } => {
            let replay = if *replayed { " replayed" } else { "" };
            format!("{}{replay}  {detail}", status.as_u16())
        }
    };
    Row {
        case,
        request: request.to_owned(),
        outcome,
        effects,
    }
}

fn render(rows: &[Row]) -> String {
    let headers = ["case", "request", "response", "side effects so far"];
    let cells: Vec<[&str; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.case,
                r.request.as_str(),
                r.outcome.as_str(),
                r.effects.as_str(),
            ]
        })
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("| {} |\n", parts.join(" | "))
    };
    let mut out = line(headers);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&format!("|-{}-|\n", rule.join("-|-")));
    for row in cells {
        out.push_str(&line(row));
    }
    out
}
