//! Reading the Prometheus text that `/metrics` serves.

use std::collections::BTreeMap;

/// One sample: its metric name, labels and value.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

/// Parses the exposition format's sample lines (comments skipped). Label
/// values here never hold `,` or `"` escapes except the route ids, which
/// hold spaces, `/` and `{}` but no quotes, so a small parser does.
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let value: f64 = value.parse().expect("a number");
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => {
                let rest = rest.strip_suffix('}').expect("closing brace");
                (name.to_owned(), labels(rest))
            }
        };
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

fn labels(mut rest: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("label=\"");
        let end = after.find('"').expect("closing quote");
        out.insert(key.to_owned(), after[..end].to_owned());
        rest = after[end + 1..].trim_start_matches(',');
    }
    out
}

/// The sum of the samples of `name` whose labels include `labels` (0 when
/// there is none: a counter never incremented is not exported).
pub(crate) fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// Every value of `label` among the samples of `name` matching `labels`,
/// with its summed value.
pub(crate) fn by_label(
    samples: &[Sample],
    name: &str,
    labels: &[(&str, &str)],
    label: &str,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in samples.iter().filter(|s| s.name == name) {
        let matches = labels
            .iter()
            .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v));
        if let (true, Some(key)) = (matches, s.labels.get(label)) {
            *out.entry(key.clone()).or_insert(0.0) += s.value;
        }
    }
    out
}
