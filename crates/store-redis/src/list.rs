//! `list_in_flight`: in-flight records in record-id order, a page at a time.
//!
//! Each bucket keeps the ids of its in-flight records in a sorted set whose
//! scores are all 0, so `ZRANGEBYLEX` reads them in id order (lowercase hex
//! sorts like the id's bytes). A page takes, from every bucket, its first
//! `limit` ids after `after`, merges them and keeps the first `limit`; then
//! it reads those records. An id whose record Redis has since deleted by
//! TTL, or that completed in between, is skipped and the page is topped up
//! from the next ids, so that a short page still means the last one.
//!
//! Like every listing in the trait it is not a snapshot across pages, and
//! it reads without holding anything up. Cost: one read per bucket (1024)
//! per round, one read per listed record.

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
        let mut cursor = after.map(|id| id.to_string());
        while found.len() < limit {
            let need = limit - found.len();
            let candidates = self.next_ids(cursor.as_deref(), need).await?;
            let Some(last) = candidates.last() else {
                break;
            };
            cursor = Some(last.clone());
            let exhausted = candidates.len() < need;
            let deadline = self.conn.deadline();
            let reads = candidates.iter().map(|member| async move {
                let id = RecordId::from_hex(member).ok_or_else(|| {
                    Failure::Reply("an in-flight index member is not a record id".to_owned())
                })?;
                let keys = self.keys.record(&id);
                let mut cmd = redis::cmd("HGETALL");
                cmd.arg(&keys.record);
                let value = self.conn.query(&cmd, deadline).await?;
                let record = crate::codec::decode_record(reply::hash(value)?, keys.bucket)?;
                Ok::<_, Failure>((id, record))
            });
            for read in join_all(reads).await {
                if let (id, Some(record)) = read?
                    && matches!(record.state, RecordState::InFlight { .. })
                {
                    found.push((id, record));
                }
            }
            if exhausted {
                break;
            }
        }
        Ok(found)
    }

    /// The first `need` in-flight ids after `after`, over all buckets.
    async fn next_ids(&self, after: Option<&str>, need: usize) -> Result<Vec<String>, Failure> {
        let min = match after {
            Some(id) => format!("({id}"),
            None => "-".to_owned(),
        };
        let mut ids = Vec::new();
        let mut first = 0;
        while first < BUCKETS {
            let last = (first + BUCKETS_AT_ONCE).min(BUCKETS);
            let deadline = self.conn.deadline();
            let reads = (first..last).map(|b| {
                let keys = self.keys.bucket(b);
                let min = min.as_str();
                async move {
                    let mut cmd = redis::cmd("ZRANGEBYLEX");
                    cmd.arg(&keys.in_flight)
                        .arg(min)
                        .arg("+")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(need);
                    reply::strings(self.conn.query(&cmd, deadline).await?)
                }
            });
            for read in join_all(reads).await {
                ids.extend(read?);
            }
            first = last;
        }
        ids.sort_unstable();
        ids.truncate(need);
        Ok(ids)
    }
}
