//! Choosing each request's key, per [`KeyMode`].
//!
//! Keys are `RUN-...`: the run id keeps runs against a durable store
//! apart. They are plain visible ASCII, well under any key length limit.

use crate::config::{Config, KeyMode};

/// The keys of one connection.
pub(crate) struct Keys {
    run_id: String,
    conn: usize,
    counter: u64,
    mode: KeyMode,
    replay_keys: u64,
    fresh_every: u64,
    /// xorshift state: picks which warm key a mix request replays, spread
    /// evenly without a dependency on a random number crate.
    rng: u64,
}

impl Keys {
    pub(crate) fn new(config: &Config, conn: usize) -> Self {
        Self {
            run_id: config.run_id.clone(),
            conn,
            counter: 0,
            mode: config.mode,
            replay_keys: config.replay_keys.max(1) as u64,
            fresh_every: config.fresh_every.max(1),
            // Never zero (xorshift would stay at zero), different per
            // connection.
            rng: 0x9E37_79B9_7F4A_7C15 ^ ((conn as u64 + 1) << 17),
        }
    }

    /// The key of the next request. Not used for [`KeyMode::Dup`], whose
    /// key comes from the group round.
    pub(crate) fn next(&mut self) -> String {
        self.counter += 1;
        match self.mode {
            KeyMode::Fresh | KeyMode::Dup => self.fresh(),
            KeyMode::Fixed => fixed_key(&self.run_id),
            KeyMode::Mix if self.counter.is_multiple_of(self.fresh_every) => self.fresh(),
            KeyMode::Mix => {
                let index = self.random() % self.replay_keys;
                warm_key(&self.run_id, index)
            }
        }
    }

    fn fresh(&self) -> String {
        format!("{}-c{}-{}", self.run_id, self.conn, self.counter)
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// The one key of [`KeyMode::Fixed`].
pub(crate) fn fixed_key(run_id: &str) -> String {
    format!("{run_id}-fixed")
}

/// The `index`-th pre-completed key of [`KeyMode::Mix`].
pub(crate) fn warm_key(run_id: &str, index: u64) -> String {
    format!("{run_id}-warm-{index}")
}

/// The key of one group of [`KeyMode::Dup`].
pub(crate) fn group_key(run_id: &str, round: u64) -> String {
    format!("{run_id}-dup-{round}")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn config(mode: KeyMode) -> Config {
        Config {
            target: "127.0.0.1:1".parse().expect("addr"),
            path: "/".into(),
            mode,
            connections: 2,
            warmup: std::time::Duration::ZERO,
            duration: std::time::Duration::from_secs(1),
            max_requests: None,
            request_timeout: std::time::Duration::from_secs(1),
            replay_keys: 10,
            fresh_every: 10,
            run_id: "r".into(),
            cpu: vec![],
            threads: 1,
        }
    }

    #[test]
    fn fresh_keys_never_repeat_across_connections() {
        let cfg = config(KeyMode::Fresh);
        let mut seen = HashSet::new();
        for conn in 0..3 {
            let mut keys = Keys::new(&cfg, conn);
            for _ in 0..1000 {
                assert!(seen.insert(keys.next()));
            }
        }
    }

    #[test]
    fn the_mix_is_nine_replays_to_one_fresh_key() {
        let cfg = config(KeyMode::Mix);
        let mut keys = Keys::new(&cfg, 0);
        let warm: HashSet<String> = (0..10).map(|i| warm_key("r", i)).collect();
        let replays = (0..1000).filter(|_| warm.contains(&keys.next())).count();
        assert_eq!(replays, 900);
    }

    #[test]
    fn fixed_is_one_key() {
        let mut keys = Keys::new(&config(KeyMode::Fixed), 3);
        assert_eq!(keys.next(), keys.next());
    }
}
