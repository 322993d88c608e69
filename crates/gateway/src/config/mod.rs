//! The gateway's configuration: one TOML file, flags and `IDEM_*`
//! environment variables, resolved into validated [`Settings`].
//!
//! Precedence, highest first: flag, environment variable, file, default
//! (clap merges the first two). Top-level settings are the defaults of every
//! route; a `[[route]]` may override the per-route ones. Every value is
//! checked before the gateway binds a port, and a bad one is a
//! [`ConfigError`] that names the file, line and setting, or the flag and
//! variable. `docs/configuration.md` is the reference for every setting.
//!
//! The parts: `file` reads the TOML as written (with spans), `values` parses
//! single values, `origin` tracks where each came from, `policy` applies one
//! level of per-route settings, `routes` builds the routes, `settings`
//! resolves the whole, `store` and `upstream` parse the two URLs, and
//! `admin` holds the admin token and the rule that guards a public admin
//! address.

mod admin;
mod error;
mod file;
mod origin;
mod policy;
mod routes;
mod settings;
mod store;
mod store_tuning;
mod upstream;
mod values;

#[cfg(test)]
mod tests;

pub use admin::AdminToken;
pub use error::ConfigError;
pub use settings::Settings;
pub use store::{StoreUrl, StoreUrlError};
pub use store_tuning::StoreTuning;

#[cfg(test)]
pub(crate) use error::{env_name, flag_name};

use crate::cli::ServeArgs;

/// The top-level settings, each also a flag (`--max-key-length`) and an
/// environment variable (`IDEM_MAX_KEY_LENGTH`).
#[cfg(test)]
pub(crate) const SETTINGS: &[&str] = &[
    "listen",
    "upstream",
    "store",
    "admin_listen",
    "admin_token",
    "shutdown_grace",
    "log_format",
    "worker_threads",
    "on_store_error",
    "max_key_length",
    "max_request_bytes",
    "never_stored_headers",
    "client_timeout",
    "mode",
    "key",
    "principal",
    "fingerprint_headers",
    "ttl",
    "upstream_timeout",
    "lease",
    "on_concurrent",
    "wait_timeout",
    "release_statuses",
    "max_response_bytes",
];

/// Loads the settings: reads `args.config` if given, then applies the flags
/// and environment variables in `args` over it, then checks everything.
///
/// Nothing is bound or opened besides reading the file, so a caller can
/// load, report an error and exit before it binds any port.
pub fn load(args: &ServeArgs) -> Result<Settings, ConfigError> {
    let Some(path) = &args.config else {
        return settings::resolve(args, None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.clone(),
        source,
    })?;
    let name = path.display().to_string();
    settings::resolve(
        args,
        Some(&file::Source {
            name: &name,
            text: &text,
        }),
    )
}

/// Resolves `args` over a config file given as text, named `name`.
#[cfg(test)]
pub(crate) fn resolve_str(
    args: &ServeArgs,
    name: &str,
    text: &str,
) -> Result<Settings, ConfigError> {
    settings::resolve(args, Some(&file::Source { name, text }))
}
