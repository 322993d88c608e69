//! `idem keys complete`: the flags turned into the admin API's request
//! body (see `POST /admin/v1/records/{id}/complete` in `/openapi.json`).

use std::io::Read;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::cli::KeysCompleteArgs;

/// The JSON body for the flags given. Header values and the body go as
/// text when they are UTF-8 and as base64 otherwise, as the API shows them.
pub(super) fn request_body(args: &KeysCompleteArgs) -> anyhow::Result<Value> {
    let mut body = Map::new();
    body.insert("status".into(), args.status.into());
    let mut headers = Vec::with_capacity(args.headers.len());
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            anyhow::bail!("--header {header:?}: write it as \"name: value\"");
        };
        headers.push(json!({ "name": name.trim(), "value": value.trim() }));
    }
    body.insert("headers".into(), headers.into());
    let content = match (&args.body, &args.body_file) {
        (Some(text), _) => Some(text.clone().into_bytes()),
        (None, Some(path)) => Some(read(path)?),
        (None, None) => None,
    };
    if let Some(content) = content {
        let encoded = match String::from_utf8(content) {
            Ok(text) => json!({ "encoding": "utf-8", "data": text }),
            Err(e) => json!({ "encoding": "base64", "data": BASE64.encode(e.into_bytes()) }),
        };
        body.insert("body".into(), encoded);
    }
    body.insert("fence".into(), args.fence.into());
    if let Some(ttl) = args.ttl {
        if ttl.subsec_nanos() != 0 || ttl.as_secs() == 0 {
            anyhow::bail!(
                "--ttl {}: give whole seconds, at least 1s",
                humantime::format_duration(ttl)
            );
        }
        body.insert("ttl_seconds".into(), ttl.as_secs().into());
    }
    Ok(Value::Object(body))
}

fn read(path: &str) -> anyhow::Result<Vec<u8>> {
    if path == "-" {
        let mut content = Vec::new();
        std::io::stdin()
            .read_to_end(&mut content)
            .context("reading the body from standard input")?;
        return Ok(content);
    }
    std::fs::read(path).with_context(|| format!("reading the body from {path}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, KeysCommand};

    fn parse(args: &[&str]) -> KeysCompleteArgs {
        let argv = ["idem", "keys", "complete", "ab"].iter().chain(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Keys(keys) => match keys.command {
                KeysCommand::Complete(complete) => complete,
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_become_the_apis_body() {
        let args = parse(&[
            "--status",
            "201",
            "--header",
            "content-type: application/json",
            "--header",
            "x-request-id:abc:def",
            "--body",
            "{\"charged\":true}",
            "--fence",
            "7",
            "--ttl",
            "2h",
        ]);
        let body = request_body(&args).unwrap();
        assert_eq!(
            body,
            json!({
                "status": 201,
                "headers": [
                    { "name": "content-type", "value": "application/json" },
                    { "name": "x-request-id", "value": "abc:def" },
                ],
                "body": { "encoding": "utf-8", "data": "{\"charged\":true}" },
                "fence": 7,
                "ttl_seconds": 7200,
            })
        );
    }

    #[test]
    fn a_binary_body_file_goes_as_base64_and_bad_flags_are_refused() {
        let file = std::env::temp_dir().join(format!("idem-keys-body-{}", std::process::id()));
        std::fs::write(&file, [0xFF, 0x00]).unwrap();
        let path = file.to_str().unwrap();
        let args = parse(&["--fence", "3", "--status", "200", "--body-file", path]);
        let body = request_body(&args).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(
            body["body"],
            json!({ "encoding": "base64", "data": "/wA=" })
        );
        assert!(body.get("ttl_seconds").is_none());

        let args = parse(&["--fence", "3", "--status", "200", "--header", "no-colon"]);
        let error = request_body(&args).unwrap_err().to_string();
        assert!(error.contains("name: value"), "{error}");
        for ttl in ["500ms", "1s 500ms"] {
            let args = parse(&["--fence", "3", "--status", "200", "--ttl", ttl]);
            let error = request_body(&args).unwrap_err().to_string();
            assert!(error.contains("whole seconds"), "{error}");
        }
        let refused = |args: &[&str]| {
            let argv = ["idem", "keys", "complete", "ab"].iter().chain(args);
            Cli::try_parse_from(argv).is_err()
        };
        assert!(refused(&["--status", "200"]), "--fence is required");
        assert!(
            refused(&[
                "--fence",
                "3",
                "--status",
                "200",
                "--body",
                "a",
                "--body-file",
                "b"
            ]),
            "--body and --body-file together"
        );
    }
}
