//! `idem keys`: inspect and resolve records through a gateway's admin API,
//! for the operator who has to find a stuck key at 3 a.m.
//!
//! Every subcommand is one or a few admin API calls (see `/openapi.json`);
//! the output is a table for people, or the API's own JSON with `--json`
//! for scripts. A refused call (no such record, wrong token, a completed
//! record that cannot be released) prints the API's explanation and exits
//! with status 1.

mod client;
mod complete;
mod table;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::{KeysArgs, KeysCommand, KeysGetArgs, KeysListArgs};
use client::{AdminClient, Answer};

/// Runs one `idem keys` subcommand, printing its result to stdout.
pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    let actor = match args.actor.clone().or_else(|| std::env::var("USER").ok()) {
        Some(actor) if !actor.trim().is_empty() => actor,
        _ => anyhow::bail!(
            "say who you are with --actor NAME (or IDEM_ACTOR): the gateway logs it with every admin action"
        ),
    };
    let client = AdminClient::new(&args.admin, args.token.clone(), actor)?;
    match &args.command {
        KeysCommand::Get(get) => show(&client, &args, get).await,
        KeysCommand::List(list) => list_in_flight(&client, &args, list).await,
        KeysCommand::Release(target) => {
            let path = format!("/admin/v1/records/{}/release", target.id);
            let answer = ok(client.call(Method::POST, &path, None).await?)?;
            print(&args, &answer.body, || {
                format!(
                    "released {} (fence {}): the next retry with its key executes afresh\n",
                    target.id, answer.body["fence"]
                )
            });
            Ok(())
        }
        KeysCommand::Complete(resolution) => {
            let path = format!("/admin/v1/records/{}/complete", resolution.id);
            let body = complete::request_body(resolution)?;
            let answer = ok(client.call(Method::POST, &path, Some(&body)).await?)?;
            print(&args, &answer.body, || {
                format!(
                    "marked {} completed with status {} (fence {}), kept until {}: retries with its key replay it\n",
                    resolution.id,
                    answer.body["status"],
                    answer.body["fence"],
                    answer.body["expires_at"].as_str().unwrap_or("?"),
                )
            });
            Ok(())
        }
        KeysCommand::Delete(target) => {
            let path = format!("/admin/v1/records/{}", target.id);
            let answer = ok(client.call(Method::DELETE, &path, None).await?)?;
            print(&args, &answer.body, || {
                format!(
                    "deleted {}: the next request with its key executes\n",
                    target.id
                )
            });
            Ok(())
        }
        KeysCommand::PurgeExpired => {
            let answer = ok(client
                .call(Method::POST, "/admin/v1/purge-expired", None)
                .await?)?;
            print(&args, &answer.body, || {
                format!("purged {} expired records\n", answer.body["purged"])
            });
            Ok(())
        }
    }
}

async fn show(client: &AdminClient, args: &KeysArgs, get: &KeysGetArgs) -> anyhow::Result<()> {
    let query = if get.body { "?body=true" } else { "" };
    let answer = match (&get.id, &get.route, &get.key) {
        (Some(id), _, _) => {
            let path = format!("/admin/v1/records/{id}{query}");
            client.call(Method::GET, &path, None).await?
        }
        (None, Some(route), Some(key)) => {
            let body = json!({ "route": route, "key": key, "principal": get.principal });
            let path = format!("/admin/v1/records/lookup{query}");
            client.call(Method::POST, &path, Some(&body)).await?
        }
        // clap requires an id, or a route and a key.
        _ => anyhow::bail!("give a record id, or --route and --key"),
    };
    let answer = ok(answer)?;
    print(args, &answer.body, || table::record(&answer.body));
    Ok(())
}

async fn list_in_flight(
    client: &AdminClient,
    args: &KeysArgs,
    list: &KeysListArgs,
) -> anyhow::Result<()> {
    let mut after = list.after.clone();
    let mut records: Vec<Value> = Vec::new();
    let next_after = loop {
        let mut path = format!("/admin/v1/in-flight?limit={}", list.limit);
        if let Some(after) = &after {
            path.push_str(&format!("&after={after}"));
        }
        let answer = ok(client.call(Method::GET, &path, None).await?)?;
        if let Some(page) = answer.body["records"].as_array() {
            records.extend(page.iter().cloned());
        }
        let next = answer.body["next_after"].as_str().map(str::to_owned);
        match next {
            Some(next) if list.all => after = Some(next),
            next => break next,
        }
    };
    let body = json!({ "records": records, "next_after": next_after });
    print(args, &body, || {
        table::in_flight(&records, next_after.as_deref())
    });
    Ok(())
}

/// The answer if it is a success; the API's explanation as the error
/// otherwise.
fn ok(answer: Answer) -> anyhow::Result<Answer> {
    if answer.status.is_success() {
        return Ok(answer);
    }
    let hint = match answer.status {
        StatusCode::UNAUTHORIZED => " (pass --token or set IDEM_ADMIN_TOKEN)",
        _ => "",
    };
    anyhow::bail!("{}: {}{hint}", answer.status, answer.detail())
}

/// Prints JSON with `--json`, the human rendering otherwise.
fn print(args: &KeysArgs, body: &Value, human: impl FnOnce() -> String) {
    if args.json {
        println!("{}", serde_json::to_string_pretty(body).unwrap_or_default());
    } else {
        print!("{}", human());
    }
}
