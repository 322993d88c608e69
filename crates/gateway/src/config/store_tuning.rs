//! idem's own tuning parameters on a shared store's URL: the batching of
//! claims and completions (PostgreSQL and Redis) and the pool size
//! (PostgreSQL only; see docs/stores-postgres.md and docs/stores-redis.md).
//! They are taken off the URL before it reaches the driver, which would
//! refuse them.

use std::fmt;

use super::store::StoreUrlError;

/// The largest `max_batch` the gateway accepts: one statement or script
/// run with more operations gains nothing, and holds Redis (which runs a
/// script alone) for longer.
const MAX_BATCH: usize = 1024;

/// Settings of a shared store given on its URL; `None` keeps the store's
/// default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreTuning {
    /// `pool_size=N`: the most connections the pool opens (PostgreSQL
    /// only; default 16).
    pub pool_size: Option<usize>,
    /// `batch_lanes=N`: batches of claims (and of completions) in flight at
    /// once (default 2).
    pub batch_lanes: Option<usize>,
    /// `max_batch=N`: the most operations one batch statement or script
    /// run carries (default 64, at most 1024; 1 turns batching off).
    pub max_batch: Option<usize>,
}

impl StoreTuning {
    /// Takes `name=value` if it is one of these parameters. `Ok(false)`:
    /// not one of ours, it goes to the driver.
    pub(crate) fn take(&mut self, name: &str, value: &str) -> Result<bool, StoreUrlError> {
        let (slot, max) = match name {
            "pool_size" => (&mut self.pool_size, usize::MAX),
            "batch_lanes" => (&mut self.batch_lanes, usize::MAX),
            "max_batch" => (&mut self.max_batch, MAX_BATCH),
            _ => return Ok(false),
        };
        match value.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => {
                *slot = Some(n);
                Ok(true)
            }
            _ if max == usize::MAX => Err(StoreUrlError::new(format!(
                "{name}= must be a whole number of at least 1"
            ))),
            _ => Err(StoreUrlError::new(format!(
                "{name}= must be a whole number from 1 to {max}"
            ))),
        }
    }
}

/// The parameters that were set, as `name=value` joined by `&`.
impl fmt::Display for StoreTuning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = [
            ("pool_size", self.pool_size),
            ("batch_lanes", self.batch_lanes),
            ("max_batch", self.max_batch),
        ];
        let mut first = true;
        for (name, value) in set {
            if let Some(value) = value {
                if !first {
                    f.write_str("&")?;
                }
                write!(f, "{name}={value}")?;
                first = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_taken_checked_and_shown() {
        let mut tuning = StoreTuning::default();
        assert_eq!(tuning.take("sslmode", "disable"), Ok(false));
        assert_eq!(tuning.take("pool_size", "32"), Ok(true));
        assert_eq!(tuning.take("max_batch", "1"), Ok(true));
        assert_eq!(tuning.batch_lanes, None);
        assert_eq!(tuning.to_string(), "pool_size=32&max_batch=1");
        for (name, value, message) in [
            (
                "pool_size",
                "0",
                "pool_size= must be a whole number of at least 1",
            ),
            (
                "batch_lanes",
                "x",
                "batch_lanes= must be a whole number of at least 1",
            ),
            (
                "max_batch",
                "1025",
                "max_batch= must be a whole number from 1 to 1024",
            ),
            (
                "max_batch",
                "-1",
                "max_batch= must be a whole number from 1 to 1024",
            ),
        ] {
            let error = tuning.take(name, value).unwrap_err();
            assert_eq!(error.to_string(), message);
        }
        assert_eq!(StoreTuning::default().to_string(), "");
    }
}
