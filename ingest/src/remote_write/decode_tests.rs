//! The wire decoder against a reference (prost decoding plus per-series validation): same
//! verdicts on random requests, no panics on random, truncated or corrupted bytes.

use std::collections::BTreeMap;

use proptest::prelude::*;
use prost::Message;
use sextant_storage::labels::hash_pairs;
use sextant_storage::{Db, SeriesLabels};

use super::histogram::RawHistogram;
use super::proto::{
    histogram as ph, BucketSpan, Histogram, Label, MetricMetadata, Sample, TimeSeries, WriteRequest,
};
use super::validate::{series_labels, RemoteWriteLimits};
use super::*;

pub(super) type Pairs = Vec<(String, String)>;
/// Labels, float samples (value bits), histograms (`Debug` text, so NaN equals NaN).
pub(super) type SeriesSummary = (Pairs, Vec<(i64, u64)>, Vec<String>);

/// What a request decodes to, in comparable form.
#[derive(Debug, PartialEq)]
pub(super) struct Summary {
    pub series: Vec<SeriesSummary>,
    pub by_reason: BTreeMap<&'static str, usize>,
    pub first_invalid: Option<String>,
    pub metadata: Vec<(i32, String, String, String)>,
    /// Exemplars of valid series in request order (`Debug` text), and the dropped ones.
    pub exemplars: Vec<String>,
    pub invalid_exemplars: usize,
}

/// A decoded request (1.0 or 2.0) in comparable form; also checks each series' hash.
pub(super) fn summarize(d: &mut Decoded<'_>) -> Summary {
    let series = d
        .series()
        .iter()
        .map(|s| {
            assert_eq!(s.hash64(), hash_pairs(s.pairs()), "hash matches storage's");
            let pairs = s
                .labels()
                .iter()
                .map(|&(n, v)| (n.to_string(), v.to_string()))
                .collect();
            let samples = s.samples().iter().map(|x| (x.t, x.v.to_bits())).collect();
            let hists = s.histograms().iter().map(|h| format!("{h:?}")).collect();
            (pairs, samples, hists)
        })
        .collect();
    let metadata = d
        .metadata()
        .iter()
        .map(|m| {
            let s = |x: &str| x.to_string();
            (m.metric_type, s(m.family), s(m.help), s(m.unit))
        })
        .collect();
    let exemplars = d
        .series()
        .iter()
        .flat_map(|s| s.exemplars().iter().map(|e| format!("{e:?}")))
        .collect();
    let invalid_exemplars = d.invalid_exemplars();
    let report = d.take_report();
    Summary {
        exemplars,
        invalid_exemplars,
        series,
        by_reason: report.by_reason,
        first_invalid: report.first_invalid,
        metadata,
    }
}

/// The decoder under test.
fn ours(raw: &[u8], limits: &RemoteWriteLimits) -> Result<Summary, WireError> {
    decode_with(raw, limits, summarize)
}

/// The previous implementation: prost, then validation of each decoded series.
fn reference(raw: &[u8], limits: &RemoteWriteLimits) -> Result<Summary, prost::DecodeError> {
    let req = WriteRequest::decode(raw)?;
    let mut report = report::Rejections::default();
    let mut series = Vec::new();
    let (mut exemplars, mut invalid_exemplars) = (Vec::new(), 0);
    for ts in &req.timeseries {
        let mut hists = Vec::new();
        for h in &ts.histograms {
            match RawHistogram::from(h).into_sample() {
                Ok(h) => hists.push(format!("{h:?}")),
                Err(e) => report.reject_histogram(&e),
            }
        }
        let mut exs = Vec::new();
        for bytes in &ts.exemplars {
            let e = super::proto::Exemplar::decode(bytes.as_slice())?;
            let pairs: Option<Vec<(String, String)>> = e
                .labels
                .iter()
                .map(|l| {
                    Some((
                        String::from_utf8(l.name.clone()).ok()?,
                        String::from_utf8(l.value.clone()).ok()?,
                    ))
                })
                .collect();
            match pairs {
                Some(pairs) => exs.push(format!(
                    "{:?}",
                    sextant_storage::Exemplar {
                        labels: sextant_storage::Labels::from_pairs(pairs),
                        value: e.value,
                        t: e.timestamp,
                    }
                )),
                None => invalid_exemplars += 1,
            }
        }
        let n = ts.samples.len() + hists.len();
        let valid = series_labels(&ts.labels, limits);
        match &valid {
            Ok(_) => exemplars.extend(exs.iter().cloned()),
            Err(_) => invalid_exemplars += exs.len(),
        }
        match valid {
            Ok(_) if n + exs.len() == 0 => {}
            Ok(labels) => series.push((
                labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect(),
                ts.samples
                    .iter()
                    .map(|s| (s.timestamp, s.value.to_bits()))
                    .collect(),
                hists,
            )),
            Err(e) => {
                report.add(e.reason(), n);
                if report.first_invalid.is_none() {
                    report.first_invalid = Some(e.to_string());
                }
            }
        }
    }
    let metadata = req
        .metadata
        .iter()
        .map(|m| {
            (
                m.r#type,
                m.metric_family_name.clone(),
                m.help.clone(),
                m.unit.clone(),
            )
        })
        .collect();
    Ok(Summary {
        exemplars,
        invalid_exemplars,
        series,
        by_reason: report.by_reason,
        first_invalid: report.first_invalid,
        metadata,
    })
}

fn limits() -> RemoteWriteLimits {
    RemoteWriteLimits {
        max_labels_per_series: 4,
        max_label_name_bytes: 8,
        max_label_value_bytes: 8,
        ..Default::default()
    }
}

fn bytes_from(choices: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(choices).prop_map(<[u8]>::to_vec)
}

fn label() -> impl Strategy<Value = Label> {
    let names: &'static [&'static [u8]] = &[
        b"__name__",
        b"__name__",
        b"a",
        b"b",
        b"job",
        b"",
        b"\xc3\xa9",
        b"\xff",
        b"longlabelname",
    ];
    let values: &'static [&'static [u8]] = &[
        b"up",
        b"x",
        b"",
        b"\xc3\xa9t\xc3\xa9",
        b"\xfe",
        b"a-long-value",
    ];
    (bytes_from(names), bytes_from(values)).prop_map(|(name, value)| Label { name, value })
}

fn spans() -> impl Strategy<Value = Vec<BucketSpan>> {
    prop::collection::vec(
        (-2..3i32, 0..3u32).prop_map(|(offset, length)| BucketSpan { offset, length }),
        0..3,
    )
}

/// Histograms that are mostly nearly valid, so that every rule is hit now and then.
pub(super) fn histogram() -> impl Strategy<Value = Histogram> {
    let counts = prop::sample::select(&[-1.0, 0.0, 1.5, 2.0, f64::NAN][..]);
    let bounds = prop::sample::select(&[-1.0, 0.5, 1.0, 2.0, f64::INFINITY][..]);
    (
        (
            prop::option::of(prop_oneof![
                (0..8u64).prop_map(ph::Count::CountInt),
                prop::sample::select(&[-1.0, 0.0, 3.0, 6.5][..]).prop_map(ph::Count::CountFloat),
            ]),
            prop::sample::select(&[0.0, 1.5, f64::NAN][..]),
            prop::sample::select(&[-53, -5, -4, 0, 3, 8, 9][..]),
            prop::sample::select(&[0.0, 0.001][..]),
            prop::option::of(prop_oneof![
                (0..3u64).prop_map(ph::ZeroCount::ZeroCountInt),
                prop::sample::select(&[0.0, 1.0][..]).prop_map(ph::ZeroCount::ZeroCountFloat),
            ]),
        ),
        (
            spans(),
            prop::collection::vec(-2..4i64, 0..4),
            prop::collection::vec(counts.clone(), 0..4),
            spans(),
            prop::collection::vec(-2..4i64, 0..4),
            prop::collection::vec(counts, 0..4),
        ),
        (0..5i32, any::<i64>(), prop::collection::vec(bounds, 0..3)),
    )
        .prop_map(
            |(
                (count, sum, schema, zero_threshold, zero_count),
                (
                    negative_spans,
                    negative_deltas,
                    negative_counts,
                    positive_spans,
                    positive_deltas,
                    positive_counts,
                ),
                (reset_hint, timestamp, custom_values),
            )| Histogram {
                count,
                sum,
                schema,
                zero_threshold,
                zero_count,
                negative_spans,
                negative_deltas,
                negative_counts,
                positive_spans,
                positive_deltas,
                positive_counts,
                reset_hint,
                timestamp,
                custom_values,
            },
        )
}

fn time_series() -> impl Strategy<Value = TimeSeries> {
    (
        prop::collection::vec(label(), 0..6),
        any::<bool>(),
        prop::collection::vec((any::<i64>(), any::<f64>()), 0..3),
        prop::collection::vec((any::<bool>(), -2i64..3), 0..3),
        prop::collection::vec(histogram(), 0..3),
    )
        .prop_map(|(mut labels, sort, samples, ex, histograms)| {
            if sort {
                labels.sort_by(|a, b| a.name.cmp(&b.name));
            }
            TimeSeries {
                labels,
                samples: samples
                    .into_iter()
                    .map(|(timestamp, value)| Sample { timestamp, value })
                    .collect(),
                exemplars: ex
                    .into_iter()
                    .map(|(utf8, t)| {
                        let value: &[u8] = if utf8 { b"4bf92f35" } else { b"\xff" };
                        super::proto::Exemplar {
                            labels: vec![Label {
                                name: b"trace_id".to_vec(),
                                value: value.to_vec(),
                            }],
                            value: t as f64 / 2.0,
                            timestamp: t,
                        }
                        .encode_to_vec()
                    })
                    .collect(),
                histograms,
            }
        })
}

fn request() -> impl Strategy<Value = WriteRequest> {
    (
        prop::collection::vec(time_series(), 0..6),
        prop::collection::vec((0..9i32, "[a-z_]{0,6}", ".{0,4}"), 0..2),
    )
        .prop_map(|(timeseries, md)| WriteRequest {
            timeseries,
            metadata: md
                .into_iter()
                .map(|(r#type, name, help)| MetricMetadata {
                    r#type,
                    metric_family_name: name,
                    help,
                    unit: String::new(),
                })
                .collect(),
        })
}

/// Both decoders accept and refuse the same bytes, and agree on what they accept.
fn agree(raw: &[u8]) -> Result<(), TestCaseError> {
    let lim = limits();
    match (ours(raw, &lim), reference(raw, &lim)) {
        (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        (a, b) => prop_assert!(false, "decoders disagree: ours {:?}, prost {:?}", a, b),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matches_the_reference_on_valid_requests(req in request()) {
        agree(&req.encode_to_vec())?;
    }

    #[test]
    fn truncated_or_corrupted_requests_never_panic(
        req in request(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut raw = req.encode_to_vec();
        for (at, byte) in flips {
            if !raw.is_empty() {
                let i = at.index(raw.len());
                raw[i] = byte;
            }
        }
        let keep = if raw.is_empty() { 0 } else { cut.index(raw.len() + 1) };
        raw.truncate(keep);
        agree(&raw)?;
    }

    #[test]
    fn random_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = ours(&raw, &limits());
    }
}

#[test]
fn unknown_fields_and_groups_are_skipped() {
    let req = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![Label {
                name: b"__name__".to_vec(),
                value: b"up".to_vec(),
            }],
            samples: vec![Sample {
                value: 1.0,
                timestamp: 5,
            }],
            exemplars: vec![],
            histograms: vec![],
        }],
        metadata: vec![],
    };
    let mut raw = req.encode_to_vec();
    // Field 9 (varint), field 10 (group holding field 1 varint), field 11 (fixed32).
    raw.extend_from_slice(&[0x48, 0x05, 0x53, 0x08, 0x01, 0x54, 0x5d, 1, 2, 3, 4]);
    let got = ours(&raw, &limits()).unwrap();
    assert_eq!(got.series.len(), 1);
    agree(&raw).unwrap();
}

#[test]
fn a_known_field_with_the_wrong_wire_type_is_malformed() {
    // TimeSeries whose samples field (2) is a varint.
    let raw = [0x0a, 0x02, 0x10, 0x01];
    assert_eq!(
        ours(&raw, &limits()).unwrap_err(),
        WireError::UnexpectedWireType { field: 2, got: 0 }
    );
    assert!(reference(&raw, &limits()).is_err());
}

#[test]
fn buffers_are_reused_between_requests() {
    let req = WriteRequest {
        timeseries: (0..100)
            .map(|i| TimeSeries {
                labels: vec![
                    Label {
                        name: b"__name__".to_vec(),
                        value: format!("m{i}").into_bytes(),
                    },
                    Label {
                        name: b"job".to_vec(),
                        value: b"x".to_vec(),
                    },
                ],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1,
                }],
                exemplars: vec![],
                histograms: vec![],
            })
            .collect(),
        metadata: vec![],
    };
    let raw = req.encode_to_vec();
    let lim = RemoteWriteLimits::default();
    assert_eq!(decode_validate_count(&raw, &lim), Ok(100));
    let scratch = decode::Scratch::take();
    let caps = scratch.capacities();
    scratch.put();
    assert!(caps.iter().all(|&c| c >= 100), "{caps:?}");
    assert_eq!(decode_validate_count(&raw, &lim), Ok(100));
    let scratch = decode::Scratch::take();
    assert_eq!(scratch.capacities(), caps, "no regrowth");
    scratch.put();
}

#[test]
fn appends_through_borrowed_labels() {
    let db = Db::in_memory();
    let req = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                Label {
                    name: b"__name__".to_vec(),
                    value: b"up".to_vec(),
                },
                Label {
                    name: b"job".to_vec(),
                    value: b"a".to_vec(),
                },
            ],
            samples: vec![Sample {
                value: 1.0,
                timestamp: 5,
            }],
            exemplars: vec![],
            histograms: vec![],
        }],
        metadata: vec![],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let lim = RemoteWriteLimits::default();
    assert_eq!(ingest_body(&db, &lim, &body).unwrap().appended, 1);
    // The same series again, later: found, not created.
    let mut later = req.clone();
    later.timeseries[0].samples[0].timestamp = 10;
    let body = snap::raw::Encoder::new()
        .compress_vec(&later.encode_to_vec())
        .unwrap();
    assert_eq!(ingest_body(&db, &lim, &body).unwrap().appended, 1);
    assert_eq!(db.head_stats().num_series, 1);
    assert_eq!(db.head_stats().num_samples, 2);
}
