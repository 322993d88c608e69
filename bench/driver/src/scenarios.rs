//! The scenarios: what runs behind the load generator, and how keys are
//! chosen.

use idem_loadgen::KeyMode;

use crate::peers::Peer;

/// Where idem keeps its records in a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Store {
    Memory,
    /// A fresh directory per run.
    Embedded,
    /// A shared store given on the command line (`redis://`, `postgres://`):
    /// its short name and its URL.
    Url {
        name: String,
        url: String,
    },
}

impl Store {
    pub(crate) fn name(&self) -> &str {
        match self {
            Store::Memory => "memory",
            Store::Embedded => "embedded",
            Store::Url { name, .. } => name,
        }
    }
}

/// What serves the load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum System {
    /// The benchmark upstream itself.
    Upstream,
    /// nginx in front of the upstream.
    Nginx,
    /// idem in front of the upstream.
    Idem { store: Store, off: bool },
    /// A peer app, with or without its idempotency middleware.
    Peer { peer: Peer, with: bool },
    /// No HTTP: `pgbench` running the PostgreSQL store's two statements per
    /// fresh request on the server at this store URL (see `pgbench/`).
    Pgbench { url: String },
}

/// One scenario.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    /// Stable id, used in the JSON and for ratios.
    pub(crate) id: String,
    /// What the table calls it.
    pub(crate) title: String,
    pub(crate) system: System,
    pub(crate) mode: KeyMode,
    /// Whether it uses the group size instead of the usual connections.
    pub(crate) grouped: bool,
}

impl Scenario {
    fn new(id: &str, title: &str, system: System, mode: KeyMode) -> Self {
        Self {
            id: id.to_owned(),
            title: title.to_owned(),
            system,
            mode,
            grouped: mode == KeyMode::Dup,
        }
    }

    /// The statuses this scenario may answer with; anything else is a
    /// failure of the system under test (or of the harness).
    pub(crate) fn expected(&self) -> &'static [u16] {
        match self.mode {
            // A duplicate of a request still running gets 409 by default.
            KeyMode::Dup => &[200, 409],
            KeyMode::Fresh | KeyMode::Fixed | KeyMode::Mix => &[200],
        }
    }
}

/// The ids of the references the ratios are taken against.
pub(crate) const PASS_THROUGH: &str = "idem-off";
pub(crate) const NGINX: &str = "nginx";
/// The id of a PostgreSQL store's pgbench comparison is its fresh-key
/// scenario's id with this added, so that `--only fresh-postgres` selects
/// both.
pub(crate) const PGBENCH_SUFFIX: &str = "-pgbench";

/// Whether a store URL names PostgreSQL.
pub(crate) fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The URL of a shared store that is PostgreSQL.
fn postgres_url(store: &Store) -> Option<String> {
    match store {
        Store::Url { url, .. } if is_postgres(url) => Some(url.clone()),
        _ => None,
    }
}

/// Every scenario of a full run, in the order of the first round: the
/// references first, then idem's keyed scenarios per store, then the
/// peers.
pub(crate) fn all(extra_stores: &[Store], peers: bool) -> Vec<Scenario> {
    use KeyMode::{Dup, Fixed, Fresh, Mix};
    let mut list = vec![
        Scenario::new("upstream", "upstream direct", System::Upstream, Fresh),
        Scenario::new(NGINX, "nginx bare proxy", System::Nginx, Fresh),
        Scenario::new(
            PASS_THROUGH,
            "idem, all routes off",
            System::Idem {
                store: Store::Memory,
                off: true,
            },
            Fresh,
        ),
    ];
    let stores = [Store::Memory, Store::Embedded]
        .into_iter()
        .chain(extra_stores.iter().cloned());
    for store in stores {
        let name = store.name().to_owned();
        let postgres = postgres_url(&store);
        let idem = System::Idem { store, off: false };
        list.push(Scenario::new(
            &format!("fresh-{name}"),
            &format!("fresh keys, {name}"),
            idem.clone(),
            Fresh,
        ));
        // Right after the gateway's fresh keys, so that both run close in
        // time in every round.
        if let Some(url) = postgres {
            list.push(Scenario::new(
                &format!("fresh-{name}{PGBENCH_SUFFIX}"),
                &format!("pgbench, same two statements, {name}"),
                System::Pgbench { url },
                Fresh,
            ));
        }
        list.push(Scenario::new(
            &format!("replay-{name}"),
            &format!("replays of one key, {name}"),
            idem.clone(),
            Fixed,
        ));
        list.push(Scenario::new(
            &format!("mix-{name}"),
            &format!("90% replays / 10% fresh, {name}"),
            idem.clone(),
            Mix,
        ));
        list.push(Scenario::new(
            &format!("dup-{name}"),
            &format!("concurrent duplicates, {name}"),
            idem,
            Dup,
        ));
    }
    if peers {
        for peer in Peer::ALL {
            for with in [false, true] {
                let id = format!("{}-{}", peer.id(), if with { "with" } else { "without" });
                let title = format!(
                    "{} {} middleware, fresh keys",
                    peer.id(),
                    if with { "with" } else { "without" }
                );
                list.push(Scenario::new(
                    &id,
                    &title,
                    System::Peer { peer, with },
                    Fresh,
                ));
            }
        }
    }
    list
}
