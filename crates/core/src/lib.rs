//! The pure core of idem: key parsing, principal scoping, fingerprints,
//! policy, route matching and the claim state machine, plus the `Store`
//! trait that every backend implements.
//!
//! Nothing here performs I/O or reads a clock: times are passed in as
//! [`Timestamp`]s, so every decision is a function of its inputs and can be
//! tested as a table.

#![deny(unreachable_pub)]
#![warn(missing_docs)]

mod decision;
mod digest;
mod fingerprint;
pub mod json;
mod key;
mod policy;
mod record;
mod route;
mod scope;
mod store;
mod time;

pub use decision::{ClaimDecision, FenceRejection, check_fence, decide_claim};
pub use fingerprint::{Fingerprint, FingerprintBuilder};
pub use key::{IdempotencyKey, KeyError};
pub use policy::{
    GlobalPolicy, KeySource, Mode, OnConcurrent, OnStoreError, PrincipalSource, RoutePolicy,
    StatusSet,
};
pub use record::{Fence, Record, RecordState, StoredBody, StoredResponse};
pub use route::{PathTemplate, Route, RouteIndex, RouteTable, TemplateError};
pub use scope::{Principal, RecordId};
pub use store::{
    BoxError, BoxFuture, ClaimOutcome, ClaimRequest, Completion, Store, StoreError, WriteError,
};
pub use time::Timestamp;
