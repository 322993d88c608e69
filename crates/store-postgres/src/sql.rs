//! The store's SQL, read from the `.sql` files beside this one and bound to
//! one store's object names.
//!
//! Object names cannot be statement parameters, so they are spliced into the
//! text once, at construction. That is safe because `PostgresOptions`
//! admits only lowercase ASCII letters, digits and `_` in the schema and the
//! prefix, and every name is double-quoted besides.

use crate::options::PostgresOptions;

/// The qualified names of one store's objects.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// The schema, quoted.
    pub(crate) schema: String,
    /// The schema, unquoted (for catalog look-ups).
    pub(crate) schema_plain: String,
    /// The table prefix, unquoted.
    pub(crate) prefix: String,
    /// The records table, qualified and quoted.
    pub(crate) records: String,
    /// The fence sequence, qualified and quoted.
    pub(crate) fence_seq: String,
    /// The schema version table, qualified and quoted.
    pub(crate) versions: String,
    /// The expiry index, quoted (an index lives in its table's schema).
    pub(crate) expires_index: String,
    /// The partial index of in-flight records, quoted.
    pub(crate) in_flight_index: String,
}

impl Names {
    pub(crate) fn new(options: &PostgresOptions) -> Self {
        let schema = &options.schema;
        let prefix = &options.table_prefix;
        Self {
            schema: format!("\"{schema}\""),
            schema_plain: schema.clone(),
            prefix: prefix.clone(),
            records: format!("\"{schema}\".\"{prefix}records\""),
            fence_seq: format!("\"{schema}\".\"{prefix}fence_seq\""),
            versions: format!("\"{schema}\".\"{prefix}schema_version\""),
            expires_index: format!("\"{prefix}records_expires_at_idx\""),
            in_flight_index: format!("\"{prefix}records_in_flight_idx\""),
        }
    }

    /// `text` with every `{name}` placeholder replaced.
    pub(crate) fn bind(&self, text: &str) -> String {
        text.replace("{schema}", &self.schema)
            .replace("{prefix}", &self.prefix)
            .replace("{records}", &self.records)
            .replace("{fence_seq}", &self.fence_seq)
            .replace("{versions}", &self.versions)
            .replace("{expires_index}", &self.expires_index)
            .replace("{in_flight_index}", &self.in_flight_index)
    }
}

/// The statements of the `Store` operations, bound to one store's names.
/// Each is prepared once per connection (deadpool's statement cache).
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) claim: String,
    pub(crate) claim_many: String,
    pub(crate) complete: String,
    pub(crate) complete_many: String,
    pub(crate) release: String,
    pub(crate) get: String,
    pub(crate) delete: String,
    pub(crate) purge: String,
    pub(crate) list_in_flight: String,
}

impl Statements {
    pub(crate) fn new(names: &Names) -> Self {
        Self {
            claim: names.bind(include_str!("sql/claim.sql")),
            claim_many: names.bind(include_str!("sql/claim_many.sql")),
            complete: names.bind(include_str!("sql/complete.sql")),
            complete_many: names.bind(include_str!("sql/complete_many.sql")),
            release: names.bind(include_str!("sql/release.sql")),
            get: names.bind(include_str!("sql/get.sql")),
            delete: names.bind(include_str!("sql/delete.sql")),
            purge: names.bind(include_str!("sql/purge.sql")),
            list_in_flight: names.bind(include_str!("sql/list_in_flight.sql")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_bound() {
        let options = PostgresOptions {
            schema: "s1".to_owned(),
            table_prefix: "p_".to_owned(),
            ..PostgresOptions::default()
        };
        let names = Names::new(&options);
        let s = Statements::new(&names);
        for text in [
            &s.claim,
            &s.claim_many,
            &s.complete,
            &s.complete_many,
            &s.release,
            &s.get,
            &s.delete,
            &s.purge,
            &s.list_in_flight,
        ] {
            assert!(!text.contains('{'), "an unbound placeholder in:\n{text}");
            assert!(text.contains("\"s1\".\"p_records\""), "{text}");
        }
        assert!(s.claim.contains("nextval('\"s1\".\"p_fence_seq\"')"));
        assert!(s.claim_many.contains("nextval('\"s1\".\"p_fence_seq\"')"));
    }
}
