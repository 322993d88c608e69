//! Where each value came from, so that an error can point at it.
//!
//! A value is a flag or environment variable (clap has already let the flag
//! win), a line of the config file, or the built-in default. Values are
//! kept as text with their origin until a parser from [`super::values`]
//! reads them, so that the file, the environment and flags share one
//! parser and one set of messages.

use std::borrow::Cow;

use toml::Spanned;

use super::error::{ConfigError, env_name, flag_name};
use super::file::{AsText, Source};

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The built-in default.
    Default,
    /// The flag or environment variable of this top-level setting.
    Arg(&'static str),
    /// This 1-based line of the config file.
    File(usize),
}

/// A value and its origin.
#[derive(Debug, Clone)]
pub(crate) struct Sourced<T> {
    pub(crate) value: T,
    pub(crate) origin: Origin,
}

/// A value as text, before parsing.
pub(crate) type Raw<'a> = Sourced<Cow<'a, str>>;

/// A list as text: the whole list's origin, and each item's (the items of
/// a multi-line TOML array have lines of their own).
pub(crate) type RawList<'a> = Sourced<Vec<Raw<'a>>>;

/// Turns spans into origins and origins into errors.
pub(crate) struct Ctx<'a> {
    source: Option<&'a Source<'a>>,
}

impl<'a> Ctx<'a> {
    /// A context for values from `source`, if a file was given.
    pub(crate) fn new(source: Option<&'a Source<'a>>) -> Self {
        Self { source }
    }

    /// The origin of a value read from the file.
    pub(crate) fn origin<T>(&self, value: &Spanned<T>) -> Origin {
        // Spanned values only come from a file, so `source` is set; the
        // default is there only so that no path can panic.
        self.source.map_or(Origin::Default, |s| {
            Origin::File(s.line(value.span().start))
        })
    }

    /// An error about `setting` (e.g. `route[1].lease`), pointing at
    /// `origin`.
    pub(crate) fn error(
        &self,
        origin: Origin,
        setting: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let message = message.into();
        match origin {
            Origin::File(line) => ConfigError::File {
                file: self.file_name().unwrap_or_default(),
                line: Some(line),
                setting: setting.to_owned(),
                message,
            },
            Origin::Arg(top) => ConfigError::Arg {
                flag: flag_name(top),
                env: env_name(top),
                message,
            },
            Origin::Default => ConfigError::Setting {
                file: self.file_name(),
                setting: setting.to_owned(),
                message,
            },
        }
    }

    /// The config file's name, if there is one.
    pub(crate) fn file_name(&self) -> Option<String> {
        self.source.map(|s| s.name.to_owned())
    }

    /// A top-level value: the flag or variable if given, else the file's.
    pub(crate) fn pick<'v, F: AsText>(
        &self,
        setting: &'static str,
        arg: &'v Option<String>,
        file: Option<&'v Spanned<F>>,
    ) -> Option<Raw<'v>> {
        match arg {
            Some(text) => Some(Sourced {
                value: Cow::Borrowed(text.as_str()),
                origin: Origin::Arg(setting),
            }),
            None => self.in_file(file),
        }
    }

    /// A value from the file only (route settings have no flags).
    pub(crate) fn in_file<'v, F: AsText>(&self, file: Option<&'v Spanned<F>>) -> Option<Raw<'v>> {
        file.map(|v| Sourced {
            value: v.get_ref().as_text(),
            origin: self.origin(v),
        })
    }

    /// A top-level list: the flag or variable (comma-separated) if given,
    /// else the file's array.
    pub(crate) fn pick_list<'v, F: AsText>(
        &self,
        setting: &'static str,
        arg: &'v Option<String>,
        file: Option<&'v Spanned<Vec<Spanned<F>>>>,
    ) -> Option<RawList<'v>> {
        let Some(text) = arg else {
            return self.in_file_list(file);
        };
        let origin = Origin::Arg(setting);
        let items = super::values::split_list(text)
            .into_iter()
            .map(|item| Sourced {
                value: Cow::Borrowed(item),
                origin,
            })
            .collect();
        Some(Sourced {
            value: items,
            origin,
        })
    }

    /// A list from the file only.
    pub(crate) fn in_file_list<'v, F: AsText>(
        &self,
        file: Option<&'v Spanned<Vec<Spanned<F>>>>,
    ) -> Option<RawList<'v>> {
        file.map(|list| Sourced {
            value: list
                .get_ref()
                .iter()
                .filter_map(|v| self.in_file(Some(v)))
                .collect(),
            origin: self.origin(list),
        })
    }

    /// A table value from the file (`key`, `principal`), cloned with its
    /// origin.
    pub(crate) fn in_file_table<T: Clone>(&self, file: Option<&Spanned<T>>) -> Option<Sourced<T>> {
        file.map(|v| Sourced {
            value: v.get_ref().clone(),
            origin: self.origin(v),
        })
    }

    /// Parses `raw` with `parser`, naming `setting` if it is refused.
    pub(crate) fn parse<T>(
        &self,
        setting: &str,
        raw: &Raw<'_>,
        parser: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        parser(&raw.value).map_err(|message| self.error(raw.origin, setting, message))
    }

    /// Picks and parses a top-level scalar setting; `None` if it is set
    /// nowhere.
    pub(crate) fn top<T, F: AsText>(
        &self,
        setting: &'static str,
        arg: &Option<String>,
        file: Option<&Spanned<F>>,
        parser: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<Sourced<T>>, ConfigError> {
        self.pick(setting, arg, file)
            .map(|raw| {
                let value = self.parse(setting, &raw, parser)?;
                Ok(Sourced {
                    value,
                    origin: raw.origin,
                })
            })
            .transpose()
    }
}
