//! Store URLs: which backend keeps the records, and where.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::store_tuning::StoreTuning;

/// The store the gateway keeps its records in.
///
/// Parsed from `memory:`, `embedded:PATH`, `redis://HOST:PORT/DB`,
/// `redis+cluster://H1:P1,H2:P2` or `postgres://…`. A shared store's URL may
/// carry idem's own `prefix=NAME` query parameter: the prefix of every Redis
/// key (default `idem:`) or of PostgreSQL's table names (default `idem_`), so
/// that several deployments can share one server. Both may carry idem's
/// `batch_lanes=` and `max_batch=`, and a PostgreSQL URL also `pool_size=`
/// ([`StoreTuning`]); a PostgreSQL URL's other query parameters go to the
/// driver, and a Redis URL takes no others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `memory:`: in this process only; nothing survives a restart.
    Memory,
    /// `embedded:PATH`: durable on disk, in the directory `PATH`.
    Embedded(PathBuf),
    /// `redis://…` or `redis+cluster://…`: shared by many gateways.
    Redis {
        /// The URL without idem's own query parameters; it may carry a
        /// password, so it is never printed.
        url: String,
        /// The key prefix, if the URL named one.
        prefix: Option<String>,
        /// The batching settings the URL named.
        tuning: StoreTuning,
    },
    /// `postgres://…`: shared by many gateways.
    Postgres {
        /// The URL without idem's own query parameters; it may carry a
        /// password, so it is never printed.
        url: String,
        /// The table-name prefix, if the URL named one.
        prefix: Option<String>,
        /// The pool and batching settings the URL named.
        tuning: StoreTuning,
    },
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
            StoreUrl::Redis {
                url,
                prefix,
                tuning,
            }
            | StoreUrl::Postgres {
                url,
                prefix,
                tuning,
            } => write_shared(f, url, prefix, &tuning.to_string()),
        }
    }
}

/// A shared store's URL without its password, then idem's own parameters.
fn write_shared(
    f: &mut fmt::Formatter<'_>,
    url: &str,
    prefix: &Option<String>,
    tuning: &str,
) -> fmt::Result {
    f.write_str(&redact(url))?;
    let mut separator = if url.contains('?') { '&' } else { '?' };
    for param in [
        prefix.as_ref().map(|p| format!("prefix={p}")),
        Some(tuning.to_owned()),
    ]
    .into_iter()
    .flatten()
    .filter(|p| !p.is_empty())
    {
        write!(f, "{separator}{param}")?;
        separator = '&';
    }
    Ok(())
}

/// Why a store URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreUrlError(String);

impl StoreUrlError {
    pub(crate) fn new(message: String) -> Self {
        Self(message)
    }
}

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
            "redis" | "redis+cluster" => {
                let mut tuning = StoreTuning::default();
                let (url, prefix) = split_params(text, &mut tuning, Driver::Redis)?;
                Ok(StoreUrl::Redis {
                    url,
                    prefix,
                    tuning,
                })
            }
            "postgres" | "postgresql" => {
                let mut tuning = StoreTuning::default();
                let (url, prefix) = split_params(text, &mut tuning, Driver::Postgres)?;
                Ok(StoreUrl::Postgres {
                    url,
                    prefix,
                    tuning,
                })
            }
            "rediss" => err(
                "TLS to Redis (rediss://) is not built into this version of idem; \
                 use redis:// on a trusted network"
                    .to_owned(),
            ),
            _ => err(format!(
                "unknown store {scheme:?}; use memory: or embedded:PATH"
            )),
        }
    }
}

/// Which driver a shared store's URL goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Driver {
    Redis,
    Postgres,
}

/// Takes idem's own query parameters off a shared store's URL: `prefix=`
/// and the tuning (`pool_size=` for PostgreSQL only). Other parameters stay
/// on a PostgreSQL URL (its driver reads them) and are refused on a Redis
/// one (the client takes none).
fn split_params(
    text: &str,
    tuning: &mut StoreTuning,
    driver: Driver,
) -> Result<(String, Option<String>), StoreUrlError> {
    let Some((base, query)) = text.split_once('?') else {
        return Ok((text.to_owned(), None));
    };
    let mut prefix = None;
    let mut others = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "prefix" if !value.is_empty() && !value.contains(['{', '}']) => {
                prefix = Some(value.to_owned());
            }
            "prefix" => {
                return Err(StoreUrlError(
                    "prefix= must be non-empty and must not contain '{' or '}'".to_owned(),
                ));
            }
            "pool_size" if driver == Driver::Redis => {
                return Err(StoreUrlError(
                    "a redis store has no pool (one connection per server carries every \
                     operation); it takes prefix=, batch_lanes= and max_batch="
                        .to_owned(),
                ));
            }
            _ if tuning.take(name, value)? => {}
            _ if driver == Driver::Postgres => others.push(pair),
            _ => {
                return Err(StoreUrlError(
                    "a redis store URL takes only the query parameters prefix=, \
                     batch_lanes= and max_batch="
                        .to_owned(),
                ));
            }
        }
    }
    let url = if others.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", others.join("&"))
    };
    Ok((url, prefix))
}

/// The URL with its password replaced, for logs and messages.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{hosts}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_displayed() {
        let url: StoreUrl = "redis://:hunter2@h:6379/0?prefix=p:".parse().unwrap();
        assert_eq!(url.to_string(), "redis://:***@h:6379/0?prefix=p:");
        let url: StoreUrl = "postgres://app:pw@db/idem?sslmode=disable".parse().unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db/idem?sslmode=disable"
        );
    }

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
            (
                "redis://127.0.0.1:6379/0",
                StoreUrl::Redis {
                    url: "redis://127.0.0.1:6379/0".into(),
                    prefix: None,
                    tuning: StoreTuning::default(),
                },
            ),
            (
                "postgres://u@h/test?sslmode=disable&prefix=t1_",
                StoreUrl::Postgres {
                    url: "postgres://u@h/test?sslmode=disable".into(),
                    prefix: Some("t1_".into()),
                    tuning: StoreTuning::default(),
                },
            ),
            (
                "redis+cluster://a:1,b:2?prefix=t1:",
                StoreUrl::Redis {
                    url: "redis+cluster://a:1,b:2".into(),
                    prefix: Some("t1:".into()),
                    tuning: StoreTuning::default(),
                },
            ),
            (
                "redis://h:6379/0?max_batch=1&batch_lanes=3",
                StoreUrl::Redis {
                    url: "redis://h:6379/0".into(),
                    prefix: None,
                    tuning: StoreTuning {
                        pool_size: None,
                        batch_lanes: Some(3),
                        max_batch: Some(1),
                    },
                },
            ),
        ];
        for (text, url) in ok {
            assert_eq!(text.parse::<StoreUrl>(), Ok(url.clone()), "{text}");
            assert_eq!(url.to_string().parse::<StoreUrl>(), Ok(url), "round trip");
        }
        let bad = [
            ("memory", "not a store URL"),
            ("memory:x", "takes no path"),
            ("embedded:", "needs a directory"),
            ("redis://h:6379/0?db=2", "only the query parameters prefix="),
            ("redis://h:6379/0?prefix=", "prefix= must be non-empty"),
            ("redis://h:6379/0?prefix={x}", "must not contain"),
            ("redis://h:6379/0?pool_size=4", "a redis store has no pool"),
            ("redis://h:6379/0?batch_lanes=0", "batch_lanes= must be"),
            ("postgres://u:secret@h/db?pool_size=0", "pool_size= must be"),
            ("postgres://u:secret@h/db?max_batch=5000", "from 1 to 1024"),
            ("rediss://u:secret@h/0", "rediss://) is not built"),
            ("ftp://x", "unknown store \"ftp\""),
        ];
        for (text, message) in bad {
            // (A password never shows in a message.)
            let err = text.parse::<StoreUrl>().expect_err(text).to_string();
            assert!(err.contains(message), "{text}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn postgres_tuning_is_taken_off_the_url_and_shown_after_it() {
        let url: StoreUrl = "postgres://app:pw@db/idem?sslmode=disable&pool_size=32&prefix=t_&batch_lanes=2&max_batch=128"
            .parse()
            .unwrap();
        let StoreUrl::Postgres {
            url: driver_url,
            prefix,
            tuning,
        } = &url
        else {
            panic!("not postgres: {url:?}");
        };
        assert_eq!(driver_url, "postgres://app:pw@db/idem?sslmode=disable");
        assert_eq!(prefix.as_deref(), Some("t_"));
        assert_eq!(
            *tuning,
            StoreTuning {
                pool_size: Some(32),
                batch_lanes: Some(2),
                max_batch: Some(128),
            }
        );
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db/idem?sslmode=disable&prefix=t_&pool_size=32&batch_lanes=2&max_batch=128"
        );
        let plain: StoreUrl = "postgres://db/idem?max_batch=1".parse().unwrap();
        assert_eq!(plain.to_string(), "postgres://db/idem?max_batch=1");
    }
}
