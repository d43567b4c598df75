//! The 2.0 wire decoder against a reference (prost decoding, ref resolution, then the 1.0
//! per-series validation): same verdicts on random requests, no panics on random, truncated or
//! corrupted bytes.

use proptest::prelude::*;
use prost::Message;

use super::decode_tests::{summarize, Summary};
use super::decode_v2::{metadata_family, RefError};
use super::histogram::RawHistogram;
use super::proto::Label;
use super::proto_v2::{self as v2};
use super::report::Rejections;
use super::validate::{series_labels, RemoteWriteLimits};
use super::*;

fn ours(raw: &[u8], limits: &RemoteWriteLimits) -> Result<Summary, RequestError> {
    decode_v2_with(raw, limits, summarize)
}

/// `Err(None)`: prost refuses the bytes; `Err(Some(e))`: the request is refused as a whole.
fn reference(raw: &[u8], limits: &RemoteWriteLimits) -> Result<Summary, Option<RequestError>> {
    let req = v2::Request::decode(raw).map_err(|_| None)?;
    match req.symbols.first() {
        Some(s) if !s.is_empty() => return Err(Some(RequestError::FirstSymbol(Some(s.clone())))),
        None if !req.timeseries.is_empty() => return Err(Some(RequestError::FirstSymbol(None))),
        _ => {}
    }
    let sym = |what: &'static str, i: u32| {
        req.symbols
            .get(i as usize)
            .cloned()
            .ok_or(RefError::OutOfRange {
                what,
                index: i,
                symbols: req.symbols.len(),
            })
    };
    let mut report = Rejections::default();
    let mut series = Vec::new();
    let (mut exemplars, mut invalid_exemplars) = (Vec::new(), 0);
    let mut metadata = Vec::new();
    for ts in &req.timeseries {
        let mut hists = Vec::new();
        for h in &ts.histograms {
            match RawHistogram::from(&h.to_v1()).into_sample() {
                Ok(h) => hists.push(format!("{h:?}")),
                Err(e) => report.reject_histogram(&e),
            }
        }
        let mut exs = Vec::new();
        for e in &ts.exemplars {
            let pairs: Option<Vec<(String, String)>> = if e.labels_refs.len() % 2 == 1 {
                None
            } else {
                e.labels_refs
                    .chunks(2)
                    .map(|p| {
                        Some((
                            req.symbols.get(p[0] as usize)?.clone(),
                            req.symbols.get(p[1] as usize)?.clone(),
                        ))
                    })
                    .collect()
            };
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
        let md = ts.metadata.unwrap_or_default();
        let resolved = (|| {
            if ts.labels_refs.len() % 2 == 1 {
                return Err(RefError::OddLabelRefs(ts.labels_refs.len()));
            }
            let mut labels = Vec::new();
            for pair in ts.labels_refs.chunks(2) {
                labels.push(Label {
                    name: sym("label ref", pair[0])?.into_bytes(),
                    value: sym("label ref", pair[1])?.into_bytes(),
                });
            }
            Ok((
                labels,
                sym("help_ref", md.help_ref)?,
                sym("unit_ref", md.unit_ref)?,
            ))
        })();
        let checked =
            resolved
                .map_err(|e| (e.reason(), e.to_string()))
                .and_then(|(labels, help, unit)| {
                    series_labels(&labels, limits)
                        .map(|l| (l, help, unit))
                        .map_err(|e| (e.reason(), e.to_string()))
                });
        match checked {
            Ok((labels, help, unit)) => {
                if md.r#type != 0 || !help.is_empty() || !unit.is_empty() {
                    let name = labels.get("__name__").unwrap_or_default();
                    let family = metadata_family(name, md.r#type).to_string();
                    metadata.push((md.r#type, family, help, unit));
                }
                exemplars.extend(exs.iter().cloned());
                if n + exs.len() > 0 {
                    series.push((
                        labels
                            .iter()
                            .map(|l| (l.name.to_string(), l.value.to_string()))
                            .collect(),
                        ts.samples
                            .iter()
                            .map(|s| (s.timestamp, s.value.to_bits()))
                            .collect(),
                        hists,
                    ));
                }
            }
            Err((reason, message)) => {
                invalid_exemplars += exs.len();
                report.add(reason, n);
                if report.first_invalid.is_none() {
                    report.first_invalid = Some(message);
                }
            }
        }
    }
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

const POOL: &[&str] = &[
    "",
    "__name__",
    "a",
    "b",
    "job",
    "up",
    "x",
    "é",
    "longlabelname",
    "a-long-value",
    "foo_bucket",
    "seconds",
];

fn time_series() -> impl Strategy<Value = v2::TimeSeries> {
    let r = 0..(POOL.len() as u32 + 2);
    (
        prop::collection::vec((r.clone(), r.clone()), 0..5),
        (any::<bool>(), any::<bool>()),
        prop::collection::vec((any::<i64>(), any::<f64>(), any::<i64>()), 0..3),
        prop::collection::vec(super::decode_tests::histogram(), 0..3),
        prop::collection::vec(prop::collection::vec(r.clone(), 0..3), 0..2),
        prop::option::of((0..9i32, r.clone(), r)),
    )
        .prop_map(|(mut pairs, (sort, odd), samples, hists, exemplars, md)| {
            if sort {
                pairs.sort_by_key(|&(n, _)| POOL.get(n as usize).copied());
            }
            let mut labels_refs: Vec<u32> = pairs.into_iter().flat_map(|(n, v)| [n, v]).collect();
            if odd {
                labels_refs.push(1);
            }
            v2::TimeSeries {
                labels_refs,
                samples: samples
                    .into_iter()
                    .map(|(timestamp, value, start_timestamp)| v2::Sample {
                        value,
                        timestamp,
                        start_timestamp,
                    })
                    .collect(),
                histograms: hists.iter().map(from_v1).collect(),
                exemplars: exemplars
                    .into_iter()
                    .map(|labels_refs| v2::Exemplar {
                        labels_refs,
                        value: 1.5,
                        timestamp: 7,
                    })
                    .collect(),
                metadata: md.map(|(r#type, help_ref, unit_ref)| v2::Metadata {
                    r#type,
                    help_ref,
                    unit_ref,
                }),
            }
        })
}

fn from_v1(h: &super::proto::Histogram) -> v2::Histogram {
    v2::Histogram {
        count: h.count,
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: h.zero_count,
        negative_spans: h.negative_spans.clone(),
        negative_deltas: h.negative_deltas.clone(),
        negative_counts: h.negative_counts.clone(),
        positive_spans: h.positive_spans.clone(),
        positive_deltas: h.positive_deltas.clone(),
        positive_counts: h.positive_counts.clone(),
        reset_hint: h.reset_hint,
        timestamp: h.timestamp,
        custom_values: h.custom_values.clone(),
        start_timestamp: h.timestamp / 2,
    }
}

fn request() -> impl Strategy<Value = v2::Request> {
    (
        prop::collection::vec(time_series(), 0..5),
        0..20u8,
        0..(POOL.len() + 1),
    )
        .prop_map(|(timeseries, table, len)| {
            let mut symbols: Vec<String> = POOL.iter().map(|s| s.to_string()).collect();
            match table {
                // A wrong first symbol, or a short table (refs beyond it are out of range).
                0 => symbols[0] = "z".into(),
                1..=3 => symbols.truncate(len),
                _ => {}
            }
            v2::Request {
                symbols,
                timeseries,
            }
        })
}

fn agree(raw: &[u8]) -> Result<(), TestCaseError> {
    let lim = limits();
    match (ours(raw, &lim), reference(raw, &lim)) {
        (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
        // Bytes prost cannot decode: ours must refuse the request too, though it may notice a
        // bad symbol table before the malformed part (both answer 400, nothing stored).
        (Err(_), Err(None)) => {}
        (Err(a), Err(Some(b))) => prop_assert_eq!(a, b),
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
fn the_shared_payload_matches_the_reference() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance/remote-write/payloads/rw2-request.pb"
    );
    let raw = std::fs::read(path).expect("shared conformance payload");
    let lim = RemoteWriteLimits::default();
    let got = ours(&raw, &lim).unwrap();
    assert_eq!(got, reference(&raw, &lim).unwrap());
    assert_eq!(got.series.len(), 4);
    assert_eq!(got.metadata.len(), 4);
    assert!(got.by_reason.is_empty(), "{:?}", got.by_reason);
    assert_eq!(
        got.exemplars.len(),
        1,
        "the payload's one exemplar is decoded"
    );
    assert_eq!(got.invalid_exemplars, 0);
}

#[test]
fn label_refs_may_be_packed_or_not_and_symbols_may_come_last() {
    // Hand-encoded: a TimeSeries with unpacked refs 1, 2 and one sample, then the symbols.
    let sample = [0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x05]; // value 1.0, t 5
    let mut ts = vec![0x08, 1, 0x08, 2, 0x12, sample.len() as u8];
    ts.extend_from_slice(&sample);
    let mut raw = vec![0x2a, ts.len() as u8];
    raw.extend_from_slice(&ts);
    for s in ["", "__name__", "up"] {
        raw.push(0x22);
        raw.push(s.len() as u8);
        raw.extend_from_slice(s.as_bytes());
    }
    let got = ours(&raw, &RemoteWriteLimits::default()).unwrap();
    assert_eq!(
        got.series,
        [(
            vec![("__name__".to_string(), "up".to_string())],
            vec![(5, 1.0f64.to_bits())],
            vec![]
        )]
    );
}

#[test]
fn buffers_are_reused_between_requests() {
    let req = v2::Request {
        symbols: vec!["".into(), "__name__".into(), "up".into()],
        timeseries: vec![
            v2::TimeSeries {
                labels_refs: vec![1, 2],
                samples: vec![v2::Sample {
                    value: 1.0,
                    timestamp: 1,
                    start_timestamp: 0,
                }],
                ..Default::default()
            };
            50
        ],
    };
    let raw = req.encode_to_vec();
    let lim = RemoteWriteLimits::default();
    assert_eq!(decode_validate_count_v2(&raw, &lim), Ok(50));
    let caps = |_: ()| {
        let s = super::decode::Scratch::take();
        let c = s.capacities();
        s.put();
        c
    };
    let before = caps(());
    assert!(before.iter().all(|&c| c > 0), "{before:?}");
    assert_eq!(decode_validate_count_v2(&raw, &lim), Ok(50));
    assert_eq!(
        caps(()),
        before,
        "the second request allocates no new buffers"
    );
}

#[test]
fn metadata_families_drop_classic_histogram_suffixes() {
    assert_eq!(metadata_family("foo_bucket", 3), "foo");
    assert_eq!(metadata_family("foo_gsum", 4), "foo");
    assert_eq!(metadata_family("rpc_count", 5), "rpc");
    assert_eq!(metadata_family("_count", 5), "_count");
    assert_eq!(metadata_family("requests_count", 1), "requests_count");
}
