//! What the store's batching gathered in a scenario, read from the
//! gateway's `/metrics` after the load ran: operations per batch, and for
//! the embedded store operations per `fdatasync`. The embedded,
//! PostgreSQL and (one-server) Redis stores batch; for the others there is
//! nothing to read. Also how long a claim and a completion took on
//! average, from submitting it to the store to its answer (batching's
//! waits included): on a shared store, what a request spends waiting.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::Serialize;

/// The store's batching counters since the gateway started (warm-up
/// included), summed over kinds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Batching {
    pub(crate) batches: u64,
    pub(crate) operations: u64,
    /// The embedded store's syncs; `None` for PostgreSQL and Redis.
    pub(crate) syncs: Option<u64>,
    /// Claims' time in the store.
    pub(crate) claims: Wait,
    /// Completions' time in the store.
    pub(crate) completions: Wait,
}

/// The total time and the number of one kind of store operation.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Wait {
    pub(crate) seconds: f64,
    pub(crate) count: u64,
}

impl Wait {
    fn add(self, other: Wait) -> Wait {
        Wait {
            seconds: self.seconds + other.seconds,
            count: self.count + other.count,
        }
    }

    /// The mean, as "1.44 ms" or, under a tenth of one, "12 µs".
    fn describe(&self) -> Option<String> {
        if self.count == 0 {
            return None;
        }
        let mean = self.seconds / self.count as f64;
        Some(if mean < 1e-4 {
            format!("{:.0} µs", mean * 1e6)
        } else {
            format!("{:.2} ms", mean * 1e3)
        })
    }
}

impl Batching {
    /// Adds another round's counters.
    pub(crate) fn add(self, other: Batching) -> Batching {
        Batching {
            batches: self.batches + other.batches,
            operations: self.operations + other.operations,
            syncs: match (self.syncs, other.syncs) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
            },
            claims: self.claims.add(other.claims),
            completions: self.completions.add(other.completions),
        }
    }

    /// For the table: "11.6 store ops per batch, 11.6 per sync, claim
    /// 1.44 ms / completion 1.41 ms".
    pub(crate) fn describe(&self) -> Option<String> {
        let per = |n: u64| self.operations as f64 / n as f64;
        let mut parts = Vec::new();
        if self.batches > 0 {
            parts.push(format!("{:.1} store ops per batch", per(self.batches)));
            if let Some(syncs) = self.syncs.filter(|&s| s > 0) {
                parts.push(format!("{:.1} per sync", per(syncs)));
            }
        }
        match (self.claims.describe(), self.completions.describe()) {
            (Some(claim), Some(completion)) => {
                parts.push(format!("claim {claim} / completion {completion}"))
            }
            (Some(claim), None) => parts.push(format!("claim {claim}")),
            _ => {}
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// Reads the counters from the admin listener at `admin`. `None` when the
/// store does not batch, or `/metrics` could not be read (the table then
/// says nothing about batching; the run itself is not affected).
pub(crate) fn scrape(admin: SocketAddr) -> Option<Batching> {
    parse(&fetch_metrics(admin).ok()?)
}

fn fetch_metrics(admin: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&admin, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    // HTTP/1.0: the server closes the connection after the answer, so
    // reading to the end reads exactly the answer.
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

/// Sums the batching samples of a Prometheus text page.
fn parse(text: &str) -> Option<Batching> {
    let mut found = Batching::default();
    let mut any = false;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let name = series.split('{').next().unwrap_or_default();
        let op = if series.contains("op=\"claim\"") {
            Some(&mut found.claims)
        } else if series.contains("op=\"complete\"") {
            Some(&mut found.completions)
        } else {
            None
        };
        match (name, op) {
            ("idem_store_op_duration_seconds_sum", Some(wait)) => wait.seconds += value,
            ("idem_store_op_duration_seconds_count", Some(wait)) => wait.count += value as u64,
            ("idem_store_batches_total", _) => found.batches += value as u64,
            ("idem_store_batched_operations_total", _) => found.operations += value as u64,
            ("idem_store_syncs_total", _) => *found.syncs.get_or_insert(0) += value as u64,
            _ => continue,
        }
        any = true;
    }
    any.then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_kinds_and_reads_the_syncs() {
        let page = "HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\n\
            # HELP idem_store_batches_total Batches.\n\
            idem_store_batches_total{store=\"postgres\",kind=\"claim\"} 10\n\
            idem_store_batches_total{store=\"postgres\",kind=\"completion\"} 5\n\
            idem_store_batched_operations_total{store=\"postgres\",kind=\"claim\"} 40\n\
            idem_store_batched_operations_total{store=\"postgres\",kind=\"completion\"} 20\n\
            idem_requests_total{route=\"x\"} 99\n";
        let b = parse(page).expect("batching samples");
        assert_eq!((b.batches, b.operations, b.syncs), (15, 60, None));
        assert_eq!(b.describe().as_deref(), Some("4.0 store ops per batch"));

        let timed = format!(
            "{page}idem_store_op_duration_seconds_sum{{store=\"postgres\",op=\"claim\"}} 0.288\n\
             idem_store_op_duration_seconds_count{{store=\"postgres\",op=\"claim\"}} 200\n\
             idem_store_op_duration_seconds_sum{{store=\"postgres\",op=\"complete\"}} 0.002\n\
             idem_store_op_duration_seconds_count{{store=\"postgres\",op=\"complete\"}} 100\n\
             idem_store_op_duration_seconds_sum{{store=\"postgres\",op=\"purge\"}} 9\n\
             idem_store_op_duration_seconds_count{{store=\"postgres\",op=\"purge\"}} 1\n"
        );
        let b = parse(&timed).expect("batching samples");
        assert_eq!(
            b.describe().as_deref(),
            Some("4.0 store ops per batch, claim 1.44 ms / completion 20 µs"),
            "purges are not claims or completions"
        );

        let embedded = "idem_store_batches_total{kind=\"write\"} 4\n\
            idem_store_batched_operations_total{kind=\"write\"} 12\n\
            idem_store_syncs_total 3\n";
        let b = parse(embedded).expect("batching samples");
        assert_eq!(
            b.describe().as_deref(),
            Some("3.0 store ops per batch, 4.0 per sync")
        );
        assert!(parse("idem_requests_total 3\n").is_none(), "memory store");
    }

    #[test]
    fn rounds_add_up() {
        let wait = |seconds, count| Wait { seconds, count };
        let a = Batching {
            batches: 2,
            operations: 6,
            syncs: Some(2),
            claims: wait(0.5, 10),
            completions: wait(0.25, 5),
        };
        let b = Batching {
            batches: 1,
            operations: 5,
            syncs: Some(1),
            claims: wait(0.5, 30),
            completions: Wait::default(),
        };
        let sum = a.add(b);
        assert_eq!((sum.batches, sum.operations, sum.syncs), (3, 11, Some(3)));
        assert_eq!((sum.claims.seconds, sum.claims.count), (1.0, 40));
        assert_eq!((sum.completions.seconds, sum.completions.count), (0.25, 5));
    }
}
