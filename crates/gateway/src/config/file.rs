//! The config file as written: TOML read into raw structs, with spans.
//!
//! Nothing here interprets a value. Every value is kept as TOML gave it,
//! wrapped in [`Spanned`] so that the checks that come later (durations,
//! header names, `lease` against `upstream_timeout`) can still point at its
//! line. Unknown keys are refused (`deny_unknown_fields`): a misspelt
//! `leas = "90s"` that were silently ignored would leave a route with a
//! lease the operator never chose.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Visitor};
use toml::Spanned;

use super::error::ConfigError;

/// A config file's name (for messages) and its text.
pub(crate) struct Source<'a> {
    /// The name as the operator gave it.
    pub(crate) name: &'a str,
    /// The whole file.
    pub(crate) text: &'a str,
}

impl Source<'_> {
    /// The 1-based line of byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// The text of the line that holds byte `offset`, trimmed and cut short.
    fn excerpt(&self, offset: usize) -> &str {
        let end = offset.min(self.text.len());
        // Searched as bytes: `end` need not be a char boundary, and the byte
        // after a newline always is.
        let start = self.text.as_bytes()[..end]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let line = self.text[start..].lines().next().unwrap_or("").trim();
        match line.char_indices().nth(60) {
            Some((cut, _)) => &line[..cut],
            None => line,
        }
    }
}

/// The whole file. Top-level settings plus the routes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) listen: Option<Spanned<String>>,
    pub(crate) upstream: Option<Spanned<String>>,
    pub(crate) store: Option<Spanned<String>>,
    pub(crate) admin_listen: Option<Spanned<String>>,
    pub(crate) admin_token: Option<Spanned<String>>,
    pub(crate) shutdown_grace: Option<Spanned<Scalar>>,
    pub(crate) log_format: Option<Spanned<String>>,
    pub(crate) worker_threads: Option<Spanned<Whole>>,
    pub(crate) on_store_error: Option<Spanned<String>>,
    pub(crate) max_key_length: Option<Spanned<Whole>>,
    pub(crate) max_request_bytes: Option<Spanned<Scalar>>,
    pub(crate) never_stored_headers: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) client_timeout: Option<Spanned<Scalar>>,
    // The per-route settings, as defaults for every route. They are
    // repeated in `RouteFile` because serde's `flatten` cannot be combined
    // with `deny_unknown_fields`.
    pub(crate) mode: Option<Spanned<String>>,
    pub(crate) key: Option<Spanned<KeyFile>>,
    pub(crate) principal: Option<Spanned<PrincipalFile>>,
    pub(crate) fingerprint_headers: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) ttl: Option<Spanned<Scalar>>,
    pub(crate) upstream_timeout: Option<Spanned<Scalar>>,
    pub(crate) lease: Option<Spanned<Scalar>>,
    pub(crate) on_concurrent: Option<Spanned<String>>,
    pub(crate) wait_timeout: Option<Spanned<Scalar>>,
    pub(crate) release_statuses: Option<Spanned<Vec<Spanned<Whole>>>>,
    pub(crate) max_response_bytes: Option<Spanned<Scalar>>,
    /// The `[[route]]` tables, in order.
    #[serde(default, rename = "route")]
    pub(crate) routes: Vec<Spanned<RouteFile>>,
}

/// One `[[route]]` table. Its span is the `[[route]]` header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteFile {
    pub(crate) methods: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) path: Option<Spanned<String>>,
    pub(crate) mode: Option<Spanned<String>>,
    pub(crate) key: Option<Spanned<KeyFile>>,
    pub(crate) principal: Option<Spanned<PrincipalFile>>,
    pub(crate) fingerprint_headers: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) ttl: Option<Spanned<Scalar>>,
    pub(crate) upstream_timeout: Option<Spanned<Scalar>>,
    pub(crate) lease: Option<Spanned<Scalar>>,
    pub(crate) on_concurrent: Option<Spanned<String>>,
    pub(crate) wait_timeout: Option<Spanned<Scalar>>,
    pub(crate) release_statuses: Option<Spanned<Vec<Spanned<Whole>>>>,
    pub(crate) max_response_bytes: Option<Spanned<Scalar>>,
}

/// `key = { header = "..." }`, `{ json = "/ptr" }` or `{ path = "name" }`.
/// Exactly one must be set; that is checked later, with the line at hand.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { header = \"Idempotency-Key\" }"
)]
pub(crate) struct KeyFile {
    pub(crate) header: Option<String>,
    pub(crate) json: Option<String>,
    pub(crate) path: Option<String>,
}

/// `principal = { header = "..." }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { header = \"Authorization\" }"
)]
pub(crate) struct PrincipalFile {
    pub(crate) header: Option<String>,
}

/// A value that TOML may give as a string or an integer: sizes
/// (`2048` or `"1MiB"`) and durations (`"30s"`; a bare `30` is read so that
/// the duration parser can say that a unit is missing, rather than serde
/// saying "expected a string").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scalar(pub(crate) String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string such as \"30s\" or \"1MiB\", or a whole number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// A whole number (`worker_threads = 4`, a status code). Its own type only
/// so that a wrong type reads "expected a whole number", not "expected i64".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Whole(pub(crate) i64);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WholeVisitor;
        impl Visitor<'_> for WholeVisitor {
            type Value = Whole;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Whole, E> {
                Ok(Whole(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Whole, E> {
                i64::try_from(v)
                    .map(Whole)
                    .map_err(|_| E::custom("the number is too large"))
            }
        }
        deserializer.deserialize_i64(WholeVisitor)
    }
}

/// A raw file value that reads as text, for the parsers that flags and
/// environment variables share.
pub(crate) trait AsText {
    /// The value as a flag would have spelt it.
    fn as_text(&self) -> Cow<'_, str>;
}

impl AsText for String {
    fn as_text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl AsText for Scalar {
    fn as_text(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.0)
    }
}

impl AsText for Whole {
    fn as_text(&self) -> Cow<'_, str> {
        Cow::Owned(self.0.to_string())
    }
}

/// Reads `source` into a [`FileConfig`]: syntax errors, unknown keys and
/// values of the wrong type are refused here, with their line and path.
pub(crate) fn parse(source: &Source<'_>) -> Result<FileConfig, ConfigError> {
    let deserializer = toml::de::Deserializer::parse(source.text).map_err(|e| {
        let offset = e.span().map(|s| s.start);
        let excerpt = offset.map(|o| source.excerpt(o)).unwrap_or_default();
        let message = if excerpt.is_empty() {
            e.message().trim_end().to_owned()
        } else {
            format!("{} (in `{excerpt}`)", e.message().trim_end())
        };
        ConfigError::Syntax {
            file: source.name.to_owned(),
            line: offset.map(|o| source.line(o)),
            message,
        }
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let setting = setting_path(e.path());
        let inner = e.into_inner();
        ConfigError::File {
            file: source.name.to_owned(),
            line: inner.span().map(|s| source.line(s.start)),
            setting,
            message: inner.message().trim_end().to_owned(),
        }
    })
}

/// `route[0].lease` from serde's path, without the private segments that
/// [`Spanned`] adds (`$__serde_spanned_private_value`).
fn setting_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if key.starts_with("$__") {
                    continue;
                }
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    if out.is_empty() {
        out.push_str("(top level)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Source<'_> {
        Source {
            name: "idem.toml",
            text,
        }
    }

    #[test]
    fn lines_count_from_one() {
        let text = "a = 1\nb = 2\r\n\nc = 3";
        let cases = [(0, 1), (5, 1), (6, 2), (13, 3), (14, 4), (99, 4)];
        for (offset, line) in cases {
            assert_eq!(source(text).line(offset), line, "{offset}");
        }
    }

    #[test]
    fn excerpts_are_one_trimmed_line() {
        let long = format!("x = \"{}\"", "é".repeat(100));
        let text = format!("  a = b  \n{long}\n");
        assert_eq!(source(&text).excerpt(4), "a = b");
        assert_eq!(source(&text).excerpt(12).chars().count(), 60);
        // An offset inside a multi-byte character does not panic.
        assert_eq!(source("é = 1").excerpt(1), "é = 1");
    }

    #[test]
    fn scalars_read_strings_and_integers() {
        #[derive(Deserialize)]
        struct T {
            a: Scalar,
            b: Scalar,
        }
        let t: T = toml::from_str("a = \"1MiB\"\nb = 2048").expect("valid");
        assert_eq!(t.a, Scalar("1MiB".into()));
        assert_eq!(t.b, Scalar("2048".into()));
        assert!(toml::from_str::<T>("a = [1]\nb = 1").is_err());
    }
}
