//! `purge_expired`: deleting records whose `expires_at` has passed, by the
//! caller's clock.
//!
//! Redis deletes records by itself (each record hash has a native TTL), so
//! in a deployment whose clocks agree a purge mostly finds nothing. It still
//! does what the trait says for records that have expired by the caller's
//! `now` but not yet by Redis's (a caller whose clock runs ahead, tests that
//! pass their own times), and it cleans the expiry indexes of entries whose
//! records Redis already removed.
//!
//! One purge reads every bucket's expiry index for entries scored at or
//! before `now` (a read, many buckets at a time) and then runs
//! `purge_one.lua` on each candidate, which decides again, atomically, on
//! the record as it is then: a record claimed afresh since the read is
//! never purged. Scripts run at most as many at a time as deletions are
//! still allowed, so a purge never deletes more than `limit`.
//!
//! Cost: one short read per bucket (1024) per call, whatever the number of
//! records, plus one script per candidate. The operation timeout applies to
//! each round trip, not to the whole purge.

use futures_util::future::join_all;
use idem_core::Timestamp;
use tokio::time::Instant;

use crate::error::Failure;
use crate::keys::{BUCKETS, BucketKeys};
use crate::reply;
use crate::scripts::{self, PURGE_ONE};
use crate::store::RedisStore;

/// How many buckets are read at once.
const BUCKETS_AT_ONCE: u16 = 128;
/// The most candidates read from one bucket at a time.
const PAGE: usize = 256;
/// The most purge scripts in flight at once.
const SCRIPTS_AT_ONCE: usize = 32;

impl RedisStore {
    /// See the module docs.
    pub(crate) async fn purge(&self, now: Timestamp, limit: usize) -> Result<usize, Failure> {
        let mut deleted = 0;
        if limit == 0 {
            return Ok(0);
        }
        let mut first = 0;
        while first < BUCKETS {
            let last = (first + BUCKETS_AT_ONCE).min(BUCKETS);
            let page = (limit - deleted).min(PAGE);
            let deadline = self.conn.deadline();
            let reads = (first..last).map(|b| {
                let keys = self.keys.bucket(b);
                async move {
                    let members = self.expired_members(&keys, now, page, deadline).await?;
                    Ok::<_, Failure>((keys, members))
                }
            });
            for read in join_all(reads).await {
                let (keys, mut members) = read?;
                loop {
                    let full = members.len() == page;
                    deleted += self
                        .purge_members(&keys, &members, now, limit - deleted)
                        .await?;
                    if deleted == limit {
                        return Ok(deleted);
                    }
                    if !full {
                        break;
                    }
                    // A full page: the bucket may hold more. Each candidate
                    // was deleted or had its entry dropped or rescored past
                    // `now`, so the next read makes progress.
                    let deadline = self.conn.deadline();
                    members = self.expired_members(&keys, now, page, deadline).await?;
                }
            }
            first = last;
        }
        Ok(deleted)
    }

    /// Up to `page` members of the bucket's expiry index scored at or
    /// before `now` (the boundary counts as expired).
    async fn expired_members(
        &self,
        keys: &BucketKeys,
        now: Timestamp,
        page: usize,
        deadline: Instant,
    ) -> Result<Vec<String>, Failure> {
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(&keys.expiry)
            .arg("-inf")
            .arg(now.as_millis())
            .arg("LIMIT")
            .arg(0)
            .arg(page);
        reply::strings(self.conn.query(&cmd, deadline).await?)
    }

    /// Runs `purge_one.lua` on `members`, deleting at most `budget`.
    async fn purge_members(
        &self,
        keys: &BucketKeys,
        members: &[String],
        now: Timestamp,
        budget: usize,
    ) -> Result<usize, Failure> {
        let now = now.as_millis().to_string();
        let mut deleted = 0;
        let mut rest = members;
        while !rest.is_empty() && deleted < budget {
            // Each script deletes at most one record, so running no more at
            // once than the budget left can never overshoot it.
            let take = rest.len().min(budget - deleted).min(SCRIPTS_AT_ONCE);
            let (batch, later) = rest.split_at(take);
            rest = later;
            let deadline = self.conn.deadline();
            let runs = batch.iter().map(|member| {
                let record = self.keys.record_in(keys.bucket, member.clone());
                let now = now.as_str();
                async move {
                    let script_keys = [
                        record.record.as_str(),
                        record.expiry.as_str(),
                        record.in_flight.as_str(),
                    ];
                    let args: [&[u8]; 2] = [now.as_bytes(), record.member.as_bytes()];
                    let value =
                        scripts::eval(&self.conn, &PURGE_ONE, &script_keys, &args, deadline)
                            .await?;
                    reply::int(&value)
                }
            });
            for run in join_all(runs).await {
                if run? > 0 {
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }
}
