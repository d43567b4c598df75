//! Evaluator tests with native histogram samples, over an in-memory source that serves
//! histograms (independent of the storage engine).

use sextant_storage::{
    FloatHistogram, HistogramSample, Labels, Matcher, Sample as StSample, Series as StSeries,
    SeriesSource, Span, StorageError, STALE_NAN_BITS,
};

use super::*;
use crate::promql::parse;

/// Series served as they are, filtered by matchers and time.
struct Source(Vec<StSeries>);

impl SeriesSource for Source {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<StSeries>, StorageError> {
        let mut out = Vec::new();
        for s in &self.0 {
            if !matchers.iter().all(|m| m.matches_labels(&s.labels)) {
                continue;
            }
            let in_range = |t: i64| t >= mint && t <= maxt;
            let samples: Vec<StSample> = s
                .samples
                .iter()
                .filter(|p| in_range(p.t))
                .cloned()
                .collect();
            let histograms: Vec<HistogramSample> = s
                .histograms
                .iter()
                .filter(|p| in_range(p.t))
                .cloned()
                .collect();
            if samples.is_empty() && histograms.is_empty() {
                continue;
            }
            out.push(StSeries {
                labels: s.labels.clone(),
                samples,
                histograms,
            });
        }
        Ok(out)
    }

    fn label_names(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, StorageError> {
        Ok(Vec::new())
    }

    fn label_values(
        &self,
        _: &str,
        _: &[Matcher],
        _: i64,
        _: i64,
    ) -> Result<Vec<String>, StorageError> {
        Ok(Vec::new())
    }

    fn series(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<Labels>, StorageError> {
        Ok(Vec::new())
    }
}

fn hist(count: f64, sum: f64) -> FloatHistogram {
    FloatHistogram {
        schema: 0,
        count,
        sum,
        zero_threshold: 0.001,
        positive_spans: vec![Span {
            offset: 0,
            length: 1,
        }],
        positive_buckets: vec![count],
        ..FloatHistogram::default()
    }
}

fn series(name: &str, floats: &[(i64, f64)], hists: &[(i64, FloatHistogram)]) -> StSeries {
    StSeries {
        labels: Labels::from_pairs([("__name__", name)]),
        samples: floats.iter().map(|&(t, v)| StSample { t, v }).collect(),
        histograms: hists
            .iter()
            .map(|(t, h)| HistogramSample {
                t: *t,
                h: h.clone(),
            })
            .collect(),
    }
}

fn source() -> Source {
    Source(vec![
        // A float, then histograms, then a float, then a staleness marker.
        series(
            "switch",
            &[
                (0, 1.0),
                (180_000, 5.0),
                (240_000, f64::from_bits(STALE_NAN_BITS)),
            ],
            &[(60_000, hist(3.0, 4.0)), (120_000, hist(4.0, 6.0))],
        ),
        series("h", &[], &[(0, hist(2.0, 3.0)), (60_000, hist(3.0, 4.0))]),
        series("f", &[(0, 10.0), (60_000, 20.0)], &[]),
    ])
}

fn opts() -> EngineOptions {
    EngineOptions {
        delayed_name_removal: true,
        ..EngineOptions::default()
    }
}

fn instant(q: &str, t: i64) -> QueryResult {
    let expr = parse(q).unwrap();
    Engine::new(opts())
        .instant_query(&source(), q, &expr, t)
        .unwrap()
}

fn vector(r: &QueryResult) -> &[VectorSample] {
    match &r.value {
        Value::Vector(v) => v,
        other => panic!("expected a vector, got {other:?}"),
    }
}

#[test]
fn instant_selector_picks_the_newest_sample_of_either_kind() {
    let r = instant("switch", 30_000);
    assert_eq!(vector(&r)[0].h, None);
    assert_eq!(vector(&r)[0].v, 1.0);
    let r = instant("switch", 90_000);
    assert_eq!(vector(&r)[0].h.as_ref().map(|h| h.count), Some(3.0));
    let r = instant("switch", 200_000);
    assert_eq!(vector(&r)[0].h, None);
    assert_eq!(vector(&r)[0].v, 5.0);
    // The staleness marker ends the series.
    assert!(vector(&instant("switch", 250_000)).is_empty());
}

#[test]
fn range_selector_returns_both_kinds() {
    let r = instant("switch[5m]", 200_000);
    let Value::Matrix(m) = &r.value else {
        panic!("expected a matrix");
    };
    assert_eq!(m[0].points, vec![(0, 1.0), (180_000, 5.0)]);
    let ts: Vec<i64> = m[0].histograms.iter().map(|(t, _)| *t).collect();
    assert_eq!(ts, vec![60_000, 120_000]);
}

#[test]
fn range_query_carries_histograms() {
    let expr = parse("h").unwrap();
    let r = Engine::new(opts())
        .range_query(&source(), "h", &expr, 0, 60_000, 30_000)
        .unwrap();
    let Value::Matrix(m) = &r.value else {
        panic!("expected a matrix");
    };
    assert!(m[0].points.is_empty());
    assert_eq!(m[0].histograms.len(), 3);
}

#[test]
fn incompatible_operand_types_drop_the_sample_with_an_info() {
    let r = instant("h + 1", 60_000);
    assert!(vector(&r).is_empty());
    assert_eq!(
        r.infos,
        vec![
            "PromQL info: incompatible sample types encountered for binary operator \"+\": histogram + float (1:1)"
                .to_string()
        ]
    );
    let r = instant("f > h", 60_000);
    assert!(vector(&r).is_empty());
    assert!(r.infos[0].contains("float > histogram"), "{:?}", r.infos);
    let r = instant("h * h", 60_000);
    assert!(vector(&r).is_empty());
    assert!(
        r.infos[0].contains("histogram * histogram"),
        "{:?}",
        r.infos
    );
}

#[test]
fn histogram_scaling_and_equality_keep_histograms() {
    let r = instant("h * 2", 60_000);
    assert!(vector(&r)[0].h.is_some());
    let r = instant("2 * h", 60_000);
    assert!(vector(&r)[0].h.is_some());
    let r = instant("h / 2", 60_000);
    assert!(vector(&r)[0].h.is_some());
    let r = instant("h == h", 60_000);
    assert!(vector(&r)[0].h.is_some());
    assert!(r.infos.is_empty());
    let r = instant("h != bool h", 60_000);
    assert_eq!(vector(&r)[0].h, None);
    assert_eq!(vector(&r)[0].v, 0.0);
}

#[test]
fn float_functions_skip_histograms() {
    assert!(vector(&instant("abs(h)", 60_000)).is_empty());
    assert_eq!(vector(&instant("abs(f)", 60_000))[0].v, 20.0);
}

#[test]
fn aggregations_over_histograms() {
    assert_eq!(vector(&instant("count(h)", 60_000))[0].v, 1.0);
    assert!(vector(&instant("sum(h)", 60_000))[0].h.is_some());

    let r = instant("max(h)", 60_000);
    assert!(vector(&r).is_empty());
    assert_eq!(
        r.infos,
        vec!["PromQL info: ignored histogram in max aggregation (1:5)".to_string()]
    );

    let r = instant("sum({__name__=~\"h|f\"})", 60_000);
    assert!(vector(&r).is_empty());
    assert_eq!(
        r.warnings,
        vec![
            "PromQL warning: encountered a mix of histograms and floats for aggregation (1:5)"
                .to_string()
        ]
    );

    let r = instant("topk(1, {__name__=~\"h|f\"})", 60_000);
    assert_eq!(vector(&r).len(), 1);
    assert_eq!(vector(&r)[0].h, None);
    assert!(r.infos[0].contains("ignored histogram in topk aggregation (1:1)"));

    let r = instant("limitk(5, h)", 60_000);
    assert!(vector(&r)[0].h.is_some());
}
