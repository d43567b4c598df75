//! Validation of one remote-write series: what makes it unstorable, and why.

use sextant_storage::{Label, Labels, METRIC_NAME};

use super::proto;

/// Limits on one series' labels, configurable per server.
#[derive(Clone, Debug)]
pub struct RemoteWriteLimits {
    /// Largest accepted body after snappy decompression (default 32 MiB).
    pub max_decompressed_bytes: usize,
    /// Most labels on one series, `__name__` included (default 64).
    pub max_labels_per_series: usize,
    /// Longest label name in bytes (default 1024).
    pub max_label_name_bytes: usize,
    /// Longest label value in bytes (default 4096).
    pub max_label_value_bytes: usize,
}

impl Default for RemoteWriteLimits {
    fn default() -> Self {
        RemoteWriteLimits {
            max_decompressed_bytes: 32 * 1024 * 1024,
            max_labels_per_series: 64,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 4096,
        }
    }
}

/// Why a whole series was refused. `reason()` is the metric label; `Display` the message.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SeriesError {
    #[error("series has no labels")]
    NoLabels,
    #[error("series has no metric name (empty or missing __name__)")]
    MissingMetricName,
    #[error("label {index} has an empty name")]
    EmptyLabelName { index: usize },
    #[error("label name is not valid UTF-8: {0:?}")]
    InvalidUtf8Name(String),
    #[error("value of label {name:?} is not valid UTF-8: {lossy:?}")]
    InvalidUtf8Value { name: String, lossy: String },
    #[error("labels are not sorted by name: {before:?} comes before {after:?}")]
    NotSorted { before: String, after: String },
    #[error("duplicate label name {0:?}")]
    Duplicate(String),
    #[error("series has {count} labels, more than the limit of {limit}")]
    TooManyLabels { count: usize, limit: usize },
    #[error("label name {name:?} is {len} bytes long, more than the limit of {limit}")]
    NameTooLong {
        name: String,
        len: usize,
        limit: usize,
    },
    #[error("value of label {name:?} is {len} bytes long, more than the limit of {limit}")]
    ValueTooLong {
        name: String,
        len: usize,
        limit: usize,
    },
}

impl SeriesError {
    pub fn reason(&self) -> &'static str {
        match self {
            SeriesError::NoLabels | SeriesError::MissingMetricName => "missing_metric_name",
            SeriesError::EmptyLabelName { .. } => "empty_label_name",
            SeriesError::InvalidUtf8Name(_) | SeriesError::InvalidUtf8Value { .. } => {
                "invalid_utf8"
            }
            SeriesError::NotSorted { .. } => "labels_not_sorted",
            SeriesError::Duplicate(_) => "duplicate_label_name",
            SeriesError::TooManyLabels { .. } => "too_many_labels",
            SeriesError::NameTooLong { .. } => "label_name_too_long",
            SeriesError::ValueTooLong { .. } => "label_value_too_long",
        }
    }
}

/// Checks a series' labels and converts them. Labels with empty values are dropped, as
/// Prometheus treats an empty value as an absent label.
pub fn series_labels(
    labels: &[proto::Label],
    limits: &RemoteWriteLimits,
) -> Result<Labels, SeriesError> {
    if labels.is_empty() {
        return Err(SeriesError::NoLabels);
    }
    if labels.len() > limits.max_labels_per_series {
        return Err(SeriesError::TooManyLabels {
            count: labels.len(),
            limit: limits.max_labels_per_series,
        });
    }
    let mut out: Vec<Label> = Vec::with_capacity(labels.len());
    let mut has_name = false;
    for (index, l) in labels.iter().enumerate() {
        if l.name.is_empty() {
            return Err(SeriesError::EmptyLabelName { index });
        }
        let name = std::str::from_utf8(&l.name).map_err(|_| {
            SeriesError::InvalidUtf8Name(String::from_utf8_lossy(&l.name).into_owned())
        })?;
        let value = std::str::from_utf8(&l.value).map_err(|_| SeriesError::InvalidUtf8Value {
            name: name.to_string(),
            lossy: String::from_utf8_lossy(&l.value).into_owned(),
        })?;
        if name.len() > limits.max_label_name_bytes {
            return Err(SeriesError::NameTooLong {
                name: truncate(name),
                len: name.len(),
                limit: limits.max_label_name_bytes,
            });
        }
        if value.len() > limits.max_label_value_bytes {
            return Err(SeriesError::ValueTooLong {
                name: name.to_string(),
                len: value.len(),
                limit: limits.max_label_value_bytes,
            });
        }
        if let Some(prev) = labels.get(index.wrapping_sub(1)).filter(|_| index > 0) {
            match prev.name.as_slice().cmp(l.name.as_slice()) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Err(SeriesError::Duplicate(name.to_string())),
                std::cmp::Ordering::Greater => {
                    return Err(SeriesError::NotSorted {
                        before: String::from_utf8_lossy(&prev.name).into_owned(),
                        after: name.to_string(),
                    })
                }
            }
        }
        if name == METRIC_NAME {
            has_name = !value.is_empty();
        }
        if !value.is_empty() {
            out.push(Label::new(name, value));
        }
    }
    if !has_name {
        return Err(SeriesError::MissingMetricName);
    }
    Ok(Labels::from_sorted(out))
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(n: &[u8], v: &[u8]) -> proto::Label {
        proto::Label {
            name: n.to_vec(),
            value: v.to_vec(),
        }
    }

    #[test]
    fn each_defect_has_its_reason() {
        let lim = RemoteWriteLimits {
            max_labels_per_series: 3,
            max_label_name_bytes: 8,
            max_label_value_bytes: 8,
            ..Default::default()
        };
        let cases: Vec<(Vec<proto::Label>, &str)> = vec![
            (vec![], "missing_metric_name"),
            (vec![l(b"job", b"x")], "missing_metric_name"),
            (
                vec![l(b"__name__", b""), l(b"job", b"x")],
                "missing_metric_name",
            ),
            (
                vec![l(b"__name__", b"up"), l(b"", b"x")],
                "empty_label_name",
            ),
            (
                vec![l(b"__name__", b"up"), l(b"job", b"\xff")],
                "invalid_utf8",
            ),
            (
                vec![l(b"__name__", b"up"), l(b"\xc3\x28", b"x")],
                "invalid_utf8",
            ),
            (
                vec![l(b"job", b"x"), l(b"__name__", b"up")],
                "labels_not_sorted",
            ),
            (
                vec![l(b"__name__", b"up"), l(b"a", b"1"), l(b"a", b"2")],
                "duplicate_label_name",
            ),
            (
                vec![
                    l(b"__name__", b"up"),
                    l(b"a", b"1"),
                    l(b"b", b"1"),
                    l(b"c", b"1"),
                ],
                "too_many_labels",
            ),
            (
                vec![l(b"__name__", b"up"), l(b"abcdefghi", b"1")],
                "label_name_too_long",
            ),
            (
                vec![l(b"__name__", b"up"), l(b"a", b"123456789")],
                "label_value_too_long",
            ),
        ];
        for (labels, reason) in cases {
            let err = series_labels(&labels, &lim).unwrap_err();
            assert_eq!(err.reason(), reason, "{err}");
        }
    }

    #[test]
    fn empty_values_are_dropped() {
        let got = series_labels(
            &[l(b"__name__", b"up"), l(b"a", b""), l(b"job", b"x")],
            &RemoteWriteLimits::default(),
        )
        .unwrap();
        assert_eq!(got.to_string(), r#"up{job="x"}"#);
    }
}
