//! `purge_expired`: deleting records whose `expires_at` has passed, by the
//! caller's clock.
//!
//! Redis deletes records by itself (each record has a native TTL), so
//! in a deployment whose clocks agree a purge mostly finds nothing. It still
//! does what the trait says for records that have expired by the caller's
//! `now` but not yet by Redis's (a caller whose clock runs ahead, tests that
//! pass their own times), and it cleans the indexes of entries whose
//! records Redis already removed.
//!
//! One purge reads every bucket's index for entries scored in `[-now,
//! now]`, which are the records of either state that expired at or before
//! `now` (in flight scores `-expires_at`, completed `+expires_at`; see
//! `keys.rs`), a read per bucket, many buckets at a time, and then runs
//! `purge_one.lua` on each candidate, which decides again, atomically, on
//! the record as it is then: a record claimed afresh since the read is
//! never purged. Scripts run at most as many at a time as deletions are
//! still allowed, so a purge never deletes more than `limit`.
//!
//! Cost: one short read per bucket (1024) per call, whatever the number of
//! records, plus one script per candidate. The operation timeout applies to
//! each round trip, not to the whole purge.

use futures_util::future::join_all;
use idem_core::{RecordId, Timestamp};
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
                    let members = self.expired_members(keys, now, page, deadline).await?;
                    Ok::<_, Failure>((keys, members))
                }
            });
            for read in join_all(reads).await {
                let (keys, mut members) = read?;
                loop {
                    let full = members.len() == page;
                    deleted += self
                        .purge_members(keys, &members, now, limit - deleted)
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
                    members = self.expired_members(keys, now, page, deadline).await?;
                }
            }
            first = last;
        }
        Ok(deleted)
    }

    /// Up to `page` members of the bucket's index whose records expired at
    /// or before `now` (the boundary counts as expired).
    async fn expired_members(
        &self,
        keys: &BucketKeys,
        now: Timestamp,
        page: usize,
        deadline: Instant,
    ) -> Result<Vec<Vec<u8>>, Failure> {
        let now = now.as_millis();
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(&keys.index)
            .arg(format!("-{now}"))
            .arg(now)
            .arg("LIMIT")
            .arg(0)
            .arg(page);
        reply::byte_strings(self.conn.query(&cmd, deadline).await?)
    }

    /// Runs `purge_one.lua` on `members`, deleting at most `budget`.
    async fn purge_members(
        &self,
        keys: &BucketKeys,
        members: &[Vec<u8>],
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
                let now = now.as_str();
                async move {
                    let id = <[u8; 32]>::try_from(member.as_slice()).map_err(|_| {
                        Failure::Reply("an index member is not a record id".to_owned())
                    })?;
                    let record = self.keys.record(&RecordId::from_bytes(id));
                    if record.bucket.bucket != keys.bucket {
                        // Only the scripts write indexes, with the record's
                        // own bucket; running the script would cross slots.
                        return Err(Failure::Reply(
                            "an index entry in another record's bucket".to_owned(),
                        ));
                    }
                    let script_keys = [record.record.as_str(), record.bucket.index.as_str()];
                    let args: [&[u8]; 2] = [now.as_bytes(), &record.member];
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
