//! OpenSLO conformance: every file under `../shared/conformance/slo/openslo/` (the
//! specification's budgeting-method examples and the Go SDK's examples of every kind in
//! `v1`, `v1alpha` and `v2alpha`) loads; SLOs on non-Prometheus sources load as unsupported
//! with a reason and generate no rules; references resolve across files of one load.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::budget::slo_state;
use super::parse::{load_slo_files_detailed, LoadOptions, Loaded};
use super::spec::{AlignedUnit, BudgetingMethod, Period, Sli, SpecKind};
use super::{rule_groups, SloSpec};
use crate::rules::RuleKind;

fn openslo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/slo/openslo")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            yaml_files(&e, out);
        } else if matches!(e.extension().and_then(|x| x.to_str()), Some("yml" | "yaml")) {
            out.push(e);
        }
    }
}

fn load(paths: &[PathBuf]) -> Loaded {
    match load_slo_files_detailed(paths, &LoadOptions::default()) {
        Ok(l) => l,
        Err(e) => panic!("{paths:?} does not load: {e:#?}"),
    }
}

fn one(rel: &str) -> Loaded {
    load(&[openslo_dir().join(rel)])
}

fn by_name<'a>(l: &'a Loaded, name: &str) -> &'a SloSpec {
    match l.slos.iter().find(|s| s.name == name) {
        Some(s) => s,
        None => panic!("no SLO {name:?} in {:?}", l.slos),
    }
}

#[test]
fn every_openslo_file_loads_on_its_own_and_per_version() {
    let dir = openslo_dir();
    assert!(dir.is_dir(), "{} is missing", dir.display());
    let mut files = Vec::new();
    yaml_files(&dir, &mut files);
    assert_eq!(files.len(), 20, "{files:?}");
    for f in &files {
        let l = load(std::slice::from_ref(f));
        // Whatever loads generates rules only for what can be evaluated.
        for g in rule_groups(&l.slos) {
            assert!(
                l.slos
                    .iter()
                    .any(|s| s.unsupported().is_none() && g.name.ends_with(&s.id())),
                "rules generated for an unsupported SLO: {}",
                g.name
            );
        }
    }
    // Each Go SDK version directory as one load (references resolve across its files).
    for v in ["v1", "v1alpha", "v2alpha"] {
        let l = load(&[dir.join("go-sdk-examples").join(v)]);
        assert!(!l.slos.is_empty(), "{v}");
    }
    let l = load(&[dir.join("go-sdk-examples/v1")]);
    // The policies, conditions and targets are accepted and reported as not used.
    for name in [
        "low-priority",
        "cpu-usage-breach",
        "pd-on-call-notification",
    ] {
        assert!(
            l.warnings
                .iter()
                .any(|w| w.contains(&format!("{name:?} is accepted but not used"))),
            "{name}: {:?}",
            l.warnings
        );
    }
}

#[test]
fn budgeting_method_examples_load_as_unsupported_with_their_methods() {
    // `type: Any` metric sources cannot be evaluated, but every other field is read.
    let l = one("examples/budgeting-method/occurences-slo.yaml");
    let s = by_name(&l, "search-slo-0");
    assert_eq!(s.service, "web-shop");
    assert_eq!(s.objective, 99.0);
    assert_eq!(s.budgeting, BudgetingMethod::Occurrences);
    assert_eq!(s.period, Period::Rolling(Duration::from_secs(14 * 86_400)));
    assert!(s.unsupported().is_some_and(|r| r.contains("\"Any\"")));
    assert!(
        l.warnings
            .iter()
            .any(|w| w.contains("\"search-slo-0\" is loaded but cannot be evaluated")),
        "{:?}",
        l.warnings
    );
    assert!(rule_groups(&l.slos).is_empty());

    let l = one("examples/budgeting-method/ratio-timeslices.yaml");
    let s = by_name(&l, "main-page-0");
    assert_eq!(
        s.budgeting,
        BudgetingMethod::RatioTimeslices {
            slice: Duration::from_secs(60)
        }
    );

    let l = one("examples/budgeting-method/timeslices-slo.yaml");
    assert_eq!(l.slos.len(), 2);
    let s = by_name(&l, "service-availability-0");
    assert_eq!(s.objective, 99.5);
    assert_eq!(
        s.budgeting,
        BudgetingMethod::Timeslices {
            slice: Duration::from_secs(60),
            slice_target: 0.99
        }
    );
    // `1m`, not rolling: calendar-aligned one-minute windows from the start time.
    assert_eq!(
        s.period,
        Period::Aligned {
            count: 1,
            unit: AlignedUnit::Minute,
            anchor: "2022-01-01 12:00:00".into(),
            time_zone: "America/New_York".into()
        }
    );
    assert_eq!(by_name(&l, "service-availability-1").objective, 99.0);

    let l = one("examples/treat-low-traffic-as-equally-important/timeslices-slo.yaml");
    let s = by_name(&l, "service-availability-0");
    assert!(matches!(
        s.period,
        Period::Aligned {
            unit: AlignedUnit::Week,
            ..
        }
    ));
    assert!((s.objective - 99.95).abs() < 1e-9);
}

#[test]
fn go_sdk_v1_prometheus_slo_is_evaluated_with_time_slices() {
    let l = one("go-sdk-examples/v1/slos.yaml");
    let s = by_name(&l, "web-availability-0");
    assert_eq!(s.kind, SpecKind::OpenSloV1);
    assert_eq!(s.service, "web");
    assert_eq!(s.unsupported(), None);
    // `counter: true` queries without `{{.window}}` are counters: their increase per window.
    match &s.sli {
        Sli::GoodTotal {
            good_query,
            total_query,
        } => {
            assert_eq!(
                good_query,
                "increase((sum(http_requests{k8s_cluster=\"prod\",component=\"web\",code=~\"2xx|4xx\"}))[{{.window}}:])"
            );
            assert!(total_query.starts_with("increase((sum(http_requests{"));
        }
        other => panic!("{other:?}"),
    }
    let groups = rule_groups(&l.slos);
    let slices = groups
        .iter()
        .find(|g| g.name == "sextant-slo-timeslice-recordings-web-web-availability-0");
    let Some(slices) = slices else {
        panic!("{:?}", groups.iter().map(|g| &g.name).collect::<Vec<_>>())
    };
    assert_eq!(slices.interval, Some(Duration::from_secs(60)));
    assert_eq!(
        slices.rules[0].kind,
        RuleKind::Record("slo:timeslice_error:ratio".into())
    );
    assert!(slices.rules[0].expr.ends_with("< bool 0.95"));
    // Every generated expression parses.
    for g in &groups {
        for r in &g.rules {
            if let Err(e) = sextant_query::promql::parse(&r.expr) {
                panic!("{}: {e}\n{}", g.name, r.expr);
            }
        }
    }
    let sli = groups
        .iter()
        .flat_map(|g| g.rules.iter())
        .find(|r| r.kind == RuleKind::Record("slo:sli_error:ratio_rate1h".into()));
    assert_eq!(
        sli.map(|r| r.expr.as_str()),
        Some("avg_over_time(slo:timeslice_error:ratio{sloth_id=\"web-web-availability-0\", sloth_service=\"web\", sloth_slo=\"web-availability-0\"}[1h])")
    );
}

#[test]
fn non_prometheus_and_unresolved_sources_are_unsupported_with_reasons() {
    let l = one("go-sdk-examples/v1alpha/slos.yaml");
    assert_eq!(l.slos.len(), 2);
    assert!(by_name(&l, "web-latency-threshold-0")
        .unsupported()
        .is_some_and(|r| r.contains("thresholdMetric")));
    assert!(by_name(&l, "web-availability-ratio-0")
        .unsupported()
        .is_some_and(|r| r.contains("\"datadog\"")));

    let l = one("go-sdk-examples/v2alpha/slos.yaml");
    let s = by_name(&l, "web-availability-0");
    assert_eq!(s.kind, SpecKind::OpenSloV2Alpha);
    assert!(s
        .unsupported()
        .is_some_and(|r| r.contains("\"my-prometheus\" names no DataSource")));

    // The budget state says why, with no figures.
    let db = sextant_storage::Db::in_memory();
    let engine = sextant_query::promql::Engine::new(Default::default());
    let st = match slo_state(&engine, &db, s, 1_710_115_200_000) {
        Ok(st) => st,
        Err(e) => panic!("{e}"),
    };
    assert!(st.unsupported.is_some());
    assert_eq!(st.budget.consumed, None);
    assert_eq!(st.budgeting_method, "Timeslices");
    assert!(st.warnings[0].starts_with("the SLO cannot be evaluated"));
    let json = serde_json::to_value(&st).unwrap_or_default();
    assert!(json["unsupported"]
        .as_str()
        .is_some_and(|r| r.contains("my-prometheus")));
}

#[test]
fn data_sources_resolve_references_across_files() {
    let dir = tempfile::tempdir().ok();
    let Some(dir) = dir else { panic!("tempdir") };
    // The v2alpha SLO names `my-prometheus`; a DataSource of that name makes it Prometheus.
    let ds = dir.path().join("ds.yaml");
    let text = "- apiVersion: openslo.com/v2alpha\n  kind: DataSource\n  metadata: {name: my-prometheus}\n  spec: {type: Prometheus}\n";
    if std::fs::write(&ds, text).is_err() {
        panic!("write");
    }
    let l = load(&[
        ds.clone(),
        openslo_dir().join("go-sdk-examples/v2alpha/slos.yaml"),
    ]);
    let s = by_name(&l, "web-availability-0");
    assert_eq!(s.unsupported(), None, "{:?}", s.sli);
    assert!(!rule_groups(&l.slos).is_empty());

    // v1: an SLO with an indicatorRef to an SLI whose source is a reference only.
    let slo = dir.path().join("slo.yaml");
    let text = r#"apiVersion: openslo/v1
kind: SLO
metadata: {name: wifi}
spec:
  service: net
  indicatorRef: wifi-sli
  timeWindow: [{duration: 7d, isRolling: true}]
  objectives: [{target: 0.9}]
---
apiVersion: openslo/v1
kind: SLI
metadata: {name: wifi-sli}
spec:
  ratioMetric:
    bad: {metricSource: {metricSourceRef: prom, spec: {query: 'sum(rate(bad[{{.window}}]))'}}}
    total: {metricSource: {metricSourceRef: prom, spec: {query: 'sum(rate(all[{{.window}}]))'}}}
---
apiVersion: openslo/v1
kind: DataSource
metadata: {name: prom}
spec: {type: Prometheus}
"#;
    if std::fs::write(&slo, text).is_err() {
        panic!("write");
    }
    let l = load(std::slice::from_ref(&slo));
    let s = by_name(&l, "wifi-0");
    assert_eq!(
        s.sli,
        Sli::Events {
            error_query: "sum(rate(bad[{{.window}}]))".into(),
            total_query: "sum(rate(all[{{.window}}]))".into()
        }
    );
    assert_eq!(s.period, Period::Rolling(Duration::from_secs(7 * 86_400)));
    // A dangling indicatorRef is still an error.
    let text = std::fs::read_to_string(&slo)
        .unwrap_or_default()
        .replace("indicatorRef: wifi-sli", "indicatorRef: nope");
    if std::fs::write(&slo, text).is_err() {
        panic!("write");
    }
    let err = load_slo_files_detailed(&[slo], &LoadOptions::default());
    assert!(
        err.as_ref()
            .err()
            .is_some_and(|e| e[0].contains("indicatorRef \"nope\" names no SLI")),
        "{err:?}"
    );
}
