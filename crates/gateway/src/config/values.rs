//! Parsers for setting values, shared by the file, the environment and flags.
//!
//! Each takes the value as text and returns either the typed value or a
//! message that says what is wrong and what would be right. The caller adds
//! where the value came from (file and line, or flag and variable), so the
//! same bad value gets the same message wherever it was written.

use std::net::SocketAddr;
use std::time::Duration;

use idem_core::{Mode, OnConcurrent, OnStoreError};

use crate::logging::LogFormat;

/// The shortest duration accepted. Records count time in milliseconds, so a
/// shorter one would round to zero.
const MIN_DURATION: Duration = Duration::from_millis(1);

/// The longest duration accepted: 100 years of 365.25 days. Nothing needs
/// more, and much more overflows what the durations are added to: a
/// deadline on the monotonic clock (a panic), an HTTP date (which ends in
/// the year 9999), a Redis expiry (signed milliseconds).
const MAX_DURATION: Duration = Duration::from_secs(36_525 * 86_400);

/// A duration such as `30s`, `250ms`, `24h` or `1h30m`, from 1ms to 100
/// years.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration (e.g. 30s, 24h, 1h30m): {e}"))?;
    if d < MIN_DURATION {
        return Err(format!("must be at least 1ms, got {text:?}"));
    }
    if d > MAX_DURATION {
        return Err(format!("must be at most 100 years, got {text:?}"));
    }
    Ok(d)
}

/// A duration as messages print it: `30s`, `1h 30m`.
pub(crate) fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A size in bytes: `2048`, `512KiB`, `1MiB`, `1GiB` (powers of 1024) or
/// `1KB`, `1MB`, `1GB` (powers of 1000). Units are case-insensitive and may
/// follow a space; fractions are not accepted. Must be more than 0.
pub(crate) fn size(text: &str) -> Result<usize, String> {
    let bad = || format!("{text:?} is not a size (e.g. 2048, 512KiB, 1MiB, 1MB)");
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    if number.is_empty() {
        return Err(bad());
    }
    let multiplier: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    let too_large = || format!("{text:?} is too large");
    let bytes = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(too_large)?;
    if bytes == 0 {
        return Err("must be more than 0 bytes".to_owned());
    }
    usize::try_from(bytes).map_err(|_| too_large())
}

/// A whole number from `min` to `max`.
pub(crate) fn count(text: &str, min: usize, max: usize) -> Result<usize, String> {
    let n: i128 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))?;
    match usize::try_from(n) {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("must be from {min} to {max}, got {n}")),
    }
}

/// An IP address and port, such as `127.0.0.1:8080` or `[::1]:8080`.
pub(crate) fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!("{text:?} is not an IP address and port (e.g. 127.0.0.1:8080 or [::1]:8080)")
    })
}

/// `off`, `optional` or `required`.
pub(crate) fn mode(text: &str) -> Result<Mode, String> {
    match text {
        "off" => Ok(Mode::Off),
        "optional" => Ok(Mode::Optional),
        "required" => Ok(Mode::Required),
        _ => Err(format!(
            "{text:?} is not a mode; use off, optional or required"
        )),
    }
}

/// `reject` or `wait`.
pub(crate) fn on_concurrent(text: &str) -> Result<OnConcurrent, String> {
    match text {
        "reject" => Ok(OnConcurrent::Reject),
        "wait" => Ok(OnConcurrent::Wait),
        _ => Err(format!("{text:?} is not reject or wait")),
    }
}

/// `fail-closed` or `pass-through`.
pub(crate) fn on_store_error(text: &str) -> Result<OnStoreError, String> {
    match text {
        "fail-closed" => Ok(OnStoreError::FailClosed),
        "pass-through" => Ok(OnStoreError::PassThrough),
        _ => Err(format!("{text:?} is not fail-closed or pass-through")),
    }
}

/// `human` or `json`.
pub(crate) fn log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "human" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("{text:?} is not a log format; use human or json")),
    }
}

/// An HTTP status code from 100 to 599.
pub(crate) fn status(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(code) if (100..=599).contains(&code) => Ok(code),
        _ => Err(format!("{text:?} is not a status code from 100 to 599")),
    }
}

/// A header name, lowercased (the form the core compares with).
pub(crate) fn header_name(text: &str) -> Result<String, String> {
    http::HeaderName::from_bytes(text.as_bytes())
        .map(|name| name.as_str().to_owned())
        .map_err(|_| format!("{text:?} is not a valid header name"))
}

/// An HTTP method, uppercased. Methods are tokens (RFC 9110, section 5.6.2);
/// uppercasing lets `post` in a file mean the `POST` every client sends.
pub(crate) fn method(text: &str) -> Result<String, String> {
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if text.is_empty() || !text.bytes().all(is_tchar) {
        return Err(format!("{text:?} is not an HTTP method"));
    }
    Ok(text.to_ascii_uppercase())
}

/// The items of a comma-separated flag value; blanks are skipped, so an
/// empty value is an empty list.
pub(crate) fn split_list(text: &str) -> Vec<&str> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("30s", 30_000),
            ("250ms", 250),
            ("24h", 86_400_000),
            ("1h30m", 5_400_000),
            ("1h 30m", 5_400_000),
            (" 1ms ", 1),
        ];
        for (text, millis) in ok {
            assert_eq!(duration(text), Ok(Duration::from_millis(millis)), "{text}");
        }
        for text in ["", "30", "abc", "-1s", "0s", "0", "500us", "5 parsecs"] {
            assert!(duration(text).is_err(), "{text}");
        }
        // humantime's year is 365.25 days, as the limit's is.
        assert_eq!(duration("100y"), Ok(Duration::from_secs(36_525 * 86_400)));
        for text in ["100y 1s", "8000y", "300000000000y"] {
            assert_eq!(
                duration(text),
                Err(format!("must be at most 100 years, got {text:?}")),
                "{text}"
            );
        }
        assert_eq!(show(Duration::from_secs(90)), "1m 30s");
    }

    #[test]
    fn sizes() {
        let ok = [
            ("2048", 2048),
            ("1B", 1),
            ("512KiB", 512 << 10),
            ("1MiB", 1 << 20),
            ("1 mib", 1 << 20),
            ("2GiB", 2 << 30),
            ("1KB", 1000),
            ("1MB", 1_000_000),
            ("1gb", 1_000_000_000),
        ];
        for (text, bytes) in ok {
            assert_eq!(size(text), Ok(bytes), "{text}");
        }
        let bad = [
            "",
            "MiB",
            "0",
            "0MiB",
            "1.5MiB",
            "-1",
            "1 MegaByte",
            "1MiBs",
            "99999999999999999999",
            "18446744073709551615GiB",
        ];
        for text in bad {
            assert!(size(text).is_err(), "{text}");
        }
    }

    #[test]
    fn counts() {
        assert_eq!(count("4", 1, 1024), Ok(4));
        assert_eq!(count("1", 1, 1), Ok(1));
        for text in [
            "0",
            "1025",
            "-3",
            "x",
            "",
            "1e3",
            "99999999999999999999999999",
        ] {
            assert!(count(text, 1, 1024).is_err(), "{text}");
        }
    }

    #[test]
    fn words() {
        assert_eq!(mode("required"), Ok(Mode::Required));
        assert!(mode("Required").is_err());
        assert_eq!(on_concurrent("wait"), Ok(OnConcurrent::Wait));
        assert!(on_concurrent("queue").is_err());
        assert_eq!(
            on_store_error("pass-through"),
            Ok(OnStoreError::PassThrough)
        );
        assert!(on_store_error("pass_through").is_err());
        assert_eq!(log_format("json"), Ok(LogFormat::Json));
        assert!(log_format("JSON").is_err());
    }

    #[test]
    fn statuses_methods_headers_addresses() {
        assert_eq!(status("503"), Ok(503));
        for text in ["99", "600", "x", "-1", "70000"] {
            assert!(status(text).is_err(), "{text}");
        }
        assert_eq!(method("post").as_deref(), Ok("POST"));
        for text in ["", "PO ST", "GET/", "ПОСТ"] {
            assert!(method(text).is_err(), "{text}");
        }
        assert_eq!(
            header_name("X-GitHub-Delivery").as_deref(),
            Ok("x-github-delivery")
        );
        for text in ["", "a b", "x:y", "é"] {
            assert!(header_name(text).is_err(), "{text}");
        }
        assert!(socket_addr("[::1]:80").is_ok());
        assert!(socket_addr("localhost:80").is_err());
        assert_eq!(split_list(" 408, 429 ,,"), ["408", "429"]);
        assert!(split_list("").is_empty());
    }
}
