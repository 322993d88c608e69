//! `list_in_flight`: in-flight records in record-id order, a page at a time.
//!
//! Each bucket's index scores an in-flight record's entry `-expires_at` and
//! a completed one's `+expires_at` (see `keys.rs`), so `ZRANGEBYSCORE idx
//! -inf 0` reads a bucket's in-flight ids. They come in expiry order, not
//! id order, so a page reads every bucket's in-flight ids (a read per
//! bucket, many buckets at a time), keeps those after `after`, sorts them
//! and reads records in that order until `limit` are found. An id whose
//! record Redis has since deleted by TTL, or that completed in between, is
//! skipped and the next id read instead, so that a short page still means
//! the last one.
//!
//! Cost: one read per bucket (1024) per page, whose replies hold all the
//! in-flight ids (32 bytes each), plus one read per listed record. Records
//! stay in flight only while they execute or, after an upstream timeout,
//! until they expire, so that set is small next to the completed ones; an
//! index ordered by id as well would cost every claim a second write, and
//! listing is for operators.
//!
//! Like every listing in the trait it is not a snapshot across pages, and
//! it reads without writing or holding anything up.

use futures_util::future::join_all;
use idem_core::{Record, RecordId, RecordState};

use crate::error::Failure;
use crate::keys::BUCKETS;
use crate::reply;
use crate::store::RedisStore;

/// How many buckets are read at once.
const BUCKETS_AT_ONCE: u16 = 128;

impl RedisStore {
    /// See the module docs.
    pub(crate) async fn list(
        &self,
        after: Option<RecordId>,
        limit: usize,
    ) -> Result<Vec<(RecordId, Record)>, Failure> {
        let mut found = Vec::new();
        if limit == 0 {
            return Ok(found);
        }
        let candidates = self.in_flight_ids(after).await?;
        let mut rest = candidates.as_slice();
        while found.len() < limit && !rest.is_empty() {
            let (batch, later) = rest.split_at((limit - found.len()).min(rest.len()));
            rest = later;
            let reads = batch.iter().map(|id| async move {
                let record = self.get_record(&self.keys.record(id)).await?;
                Ok::<_, Failure>((*id, record))
            });
            for read in join_all(reads).await {
                if let (id, Some(record)) = read?
                    && matches!(record.state, RecordState::InFlight { .. })
                {
                    found.push((id, record));
                }
            }
        }
        Ok(found)
    }

    /// Every in-flight id after `after`, over all buckets, in id order.
    async fn in_flight_ids(&self, after: Option<RecordId>) -> Result<Vec<RecordId>, Failure> {
        let mut ids = Vec::new();
        let mut first = 0;
        while first < BUCKETS {
            let last = (first + BUCKETS_AT_ONCE).min(BUCKETS);
            let deadline = self.conn.deadline();
            let reads = (first..last).map(|b| {
                let index = &self.keys.bucket(b).index;
                async move {
                    let mut cmd = redis::cmd("ZRANGEBYSCORE");
                    // Inclusive of 0: an in-flight record that expires at
                    // the epoch scores -0; a completed one there would be
                    // read and skipped, never listed.
                    cmd.arg(index).arg("-inf").arg(0);
                    reply::byte_strings(self.conn.query(&cmd, deadline).await?)
                }
            });
            for read in join_all(reads).await {
                for member in read? {
                    let id = <[u8; 32]>::try_from(member.as_slice()).map_err(|_| {
                        Failure::Reply("an index member is not a record id".to_owned())
                    })?;
                    let id = RecordId::from_bytes(id);
                    if after.is_none_or(|after| id > after) {
                        ids.push(id);
                    }
                }
            }
            first = last;
        }
        ids.sort_unstable();
        Ok(ids)
    }
}
