//! Store URLs: which backend keeps the records, and where.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The store the gateway keeps its records in.
///
/// Parsed from `memory:` or `embedded:PATH`. The `redis://`,
/// `redis+cluster://` and `postgres://` stores of the SPEC are recognised
/// and refused as not built into this version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `memory:`: in this process only; nothing survives a restart.
    Memory,
    /// `embedded:PATH`: durable on disk, in the directory `PATH`.
    Embedded(PathBuf),
}

impl StoreUrl {
    /// The default store, `embedded:./idem-data`.
    pub const DEFAULT: &'static str = "embedded:./idem-data";
}

impl Default for StoreUrl {
    fn default() -> Self {
        StoreUrl::Embedded(PathBuf::from("./idem-data"))
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Memory => f.write_str("memory:"),
            StoreUrl::Embedded(path) => write!(f, "embedded:{}", path.display()),
        }
    }
}

/// Why a store URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreUrlError(String);

impl FromStr for StoreUrl {
    type Err = StoreUrlError;

    /// Parses a store URL. Messages name the scheme but never echo the rest
    /// of a URL that has one: a database URL may carry a password.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |m: String| Err(StoreUrlError(m));
        let Some((scheme, rest)) = text.split_once(':') else {
            return err(format!(
                "{text:?} is not a store URL; use memory: or embedded:PATH"
            ));
        };
        match scheme {
            "memory" if rest.is_empty() => Ok(StoreUrl::Memory),
            "memory" => err("the memory store takes no path; use memory:".to_owned()),
            "embedded" if rest.is_empty() => {
                err("the embedded store needs a directory, e.g. embedded:./idem-data".to_owned())
            }
            "embedded" => Ok(StoreUrl::Embedded(PathBuf::from(rest))),
            "redis" | "rediss" | "redis+cluster" | "postgres" | "postgresql" => err(format!(
                "the {scheme} store is not built into this version of idem; \
                 use memory: or embedded:PATH"
            )),
            _ => err(format!(
                "unknown store {scheme:?}; use memory: or embedded:PATH"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        let ok = [
            ("memory:", StoreUrl::Memory),
            ("embedded:./idem-data", StoreUrl::default()),
            (
                "embedded:/var/lib/idem",
                StoreUrl::Embedded("/var/lib/idem".into()),
            ),
            (StoreUrl::DEFAULT, StoreUrl::default()),
        ];
        for (text, url) in ok {
            assert_eq!(text.parse::<StoreUrl>(), Ok(url.clone()), "{text}");
            assert_eq!(url.to_string().parse::<StoreUrl>(), Ok(url), "round trip");
        }
        let bad = [
            ("memory", "not a store URL"),
            ("memory:x", "takes no path"),
            ("embedded:", "needs a directory"),
            ("redis://h:6379/0", "the redis store is not built"),
            (
                "redis+cluster://a:1,b:2",
                "the redis+cluster store is not built",
            ),
            (
                "postgres://u:secret@h/db",
                "the postgres store is not built",
            ),
            ("ftp://x", "unknown store \"ftp\""),
        ];
        for (text, message) in bad {
            let err = text.parse::<StoreUrl>().expect_err(text).to_string();
            assert!(err.contains(message), "{text}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
