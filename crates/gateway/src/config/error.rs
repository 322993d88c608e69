//! Configuration errors, each naming where the bad value came from.

use std::path::PathBuf;

/// Why the configuration was refused. The gateway does not start.
///
/// Every message names the place to fix: the file, its line (1-based) and
/// the setting (`idem.toml:7: route[1].lease: ...`, where `route[1]` is the
/// second `[[route]]` table, counting from 0 as TOML paths do), or the flag
/// and environment variable that carried the value
/// (`--lease / IDEM_LEASE: ...`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{}: cannot read the config file: {source}", .file.display())]
    Read {
        /// The path as given.
        file: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("{file}{}: invalid TOML: {message}", at_line(*.line))]
    Syntax {
        /// The file's name as given.
        file: String,
        /// The 1-based line of the problem, when the parser knows it.
        line: Option<usize>,
        /// What is wrong, and the offending line.
        message: String,
    },
    /// A setting in the config file is unknown, of the wrong type or has a
    /// bad value.
    #[error("{file}{}: {setting}: {message}", at_line(*.line))]
    File {
        /// The file's name as given.
        file: String,
        /// The 1-based line of the value (or of the key, or of its
        /// `[[route]]` header), when known.
        line: Option<usize>,
        /// The setting's path, e.g. `route[1].lease`.
        setting: String,
        /// What is wrong.
        message: String,
    },
    /// A flag or environment variable has a bad value.
    #[error("{flag} / {env}: {message}")]
    Arg {
        /// The flag, e.g. `--lease`.
        flag: String,
        /// The environment variable, e.g. `IDEM_LEASE`.
        env: String,
        /// What is wrong.
        message: String,
    },
    /// A required setting is missing, or a default value conflicts with
    /// nothing to point at.
    #[error("{}{setting}: {message}", in_file(.file))]
    Setting {
        /// The config file, if one was given.
        file: Option<String>,
        /// The setting, e.g. `upstream`.
        setting: String,
        /// What is wrong.
        message: String,
    },
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

fn in_file(file: &Option<String>) -> String {
    file.as_ref().map(|f| format!("{f}: ")).unwrap_or_default()
}

/// The flag that carries top-level `setting`: `max_key_length` is
/// `--max-key-length`.
pub(crate) fn flag_name(setting: &str) -> String {
    format!("--{}", setting.replace('_', "-"))
}

/// The environment variable that carries top-level `setting`:
/// `max_key_length` is `IDEM_MAX_KEY_LENGTH`.
pub(crate) fn env_name(setting: &str) -> String {
    format!("IDEM_{}", setting.to_ascii_uppercase())
}
