//! Turning one scrape's exposition into stored samples: target labels merged per
//! `honor_labels`, `metric_relabel_configs`, `sample_limit`, staleness markers for series that
//! disappeared, and the report series (`up`, `scrape_duration_seconds`, …).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use sextant_storage::{Db, Exemplar, Labels, Sample, SeriesLabels, STALE_NAN_BITS};

use super::config::JobSettings;
use super::parse::{parse, Exposition, FamilyMetadata, Format};
use super::relabel::{process, LabelSet};
use super::target::Target;

/// What one scrape leaves behind for the next: the series it stored.
#[derive(Debug, Default)]
pub struct SeriesCache {
    /// Series stored at the scrape's own time (no exposition timestamp): they get a staleness
    /// marker when they disappear.
    tracked: HashMap<u64, Labels>,
    /// Every series of the last scrape, for `scrape_series_added`.
    seen: HashSet<u64>,
    /// True once the report series were written (so a stopped target marks them stale).
    reported: bool,
    metadata: Vec<(String, FamilyMetadata)>,
}

/// Counts for the report series and the targets API.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScrapeCounts {
    pub scraped: usize,
    pub post_relabel: usize,
    pub series_added: usize,
}

pub const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// Stores one scrape taken at `ts` (ms). `body` is `Err` when the scrape itself failed. Returns
/// the counts and the error that makes the target down, if any. A failed scrape (including a
/// parse error or an exceeded `sample_limit`) stores nothing but staleness markers for the
/// previous scrape's series, as Prometheus does.
pub fn store_scrape(
    db: &Db,
    job: &JobSettings,
    target: &Target,
    cache: &mut SeriesCache,
    body: Result<(String, Format), String>,
    ts: i64,
) -> (ScrapeCounts, Option<String>) {
    let mut counts = ScrapeCounts::default();
    let result = match body {
        Ok((text, format)) => match parse(&text, format) {
            Ok(exposition) => store_exposition(db, job, target, cache, exposition, ts, &mut counts),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => (counts, None),
        Err(e) => {
            counts.series_added = 0;
            mark_stale(db, cache, ts);
            cache.seen.clear();
            (counts, Some(e))
        }
    }
}

fn target_merge<'a>(job: &JobSettings, target: &'a Target, lb: &mut LabelSet<'a>) {
    for (name, value) in &target.labels {
        if job.honor_labels {
            if !lb.has(name) {
                lb.set(name.as_str(), value.as_str());
            }
            continue;
        }
        let existing = lb.get(name);
        if !existing.is_empty() {
            // Conflicting exposed labels are kept as `exported_<name>` (more prefixes if
            // that is taken too).
            let existing = existing.to_string();
            let mut renamed = format!("exported_{name}");
            while lb.has(&renamed) {
                renamed = format!("exported_{renamed}");
            }
            lb.set(renamed, existing);
        }
        lb.set(name.as_str(), value.as_str());
    }
}

fn store_exposition(
    db: &Db,
    job: &JobSettings,
    target: &Target,
    cache: &mut SeriesCache,
    exposition: Exposition<'_>,
    ts: i64,
    counts: &mut ScrapeCounts,
) -> Result<(), String> {
    counts.scraped = exposition.samples.len();
    let mut batch: Vec<(LabelSet<'_>, [Sample; 1])> = Vec::with_capacity(exposition.samples.len());
    // Exemplars by position in `batch`; without a timestamp they take their sample's, as in
    // Prometheus.
    let mut exemplars: Vec<(usize, [Exemplar; 1])> = Vec::new();
    for s in &exposition.samples {
        let mut lb = LabelSet::with_capacity(s.labels.len() + target.labels.len() + 1);
        lb.set(Cow::Borrowed("__name__"), s.name.as_ref());
        for (n, v) in &s.labels {
            lb.set(n.as_ref(), v.as_ref());
        }
        target_merge(job, target, &mut lb);
        if !process(&mut lb, &job.metric_relabel) || lb.is_empty() {
            continue;
        }
        let t = match s.timestamp {
            Some(t) if job.honor_timestamps => t,
            _ => ts,
        };
        if let Some(e) = &s.exemplar {
            exemplars.push((
                batch.len(),
                [Exemplar {
                    labels: Labels::from_pairs(
                        e.labels.iter().map(|(n, v)| (n.as_ref(), v.as_ref())),
                    ),
                    value: e.value,
                    t: e.timestamp.unwrap_or(t),
                }],
            ));
        }
        batch.push((lb, [Sample { t, v: s.value }]));
    }
    counts.post_relabel = batch.len();
    if job.sample_limit > 0 && batch.len() as u64 > job.sample_limit {
        return Err("sample limit exceeded".into());
    }
    let mut tracked = HashMap::with_capacity(cache.tracked.len());
    let mut seen = HashSet::with_capacity(batch.len());
    for (labels, sample) in &batch {
        let h = labels.hash64();
        if !cache.seen.contains(&h) && !seen.contains(&h) {
            counts.series_added += 1;
        }
        seen.insert(h);
        if sample[0].t == ts {
            let owned = cache
                .tracked
                .remove(&h)
                .unwrap_or_else(|| labels.to_labels());
            tracked.insert(h, owned);
        }
    }
    // What is left of the previous scrape's tracked series has disappeared.
    let gone: Vec<(Labels, [Sample; 1])> = cache
        .tracked
        .drain()
        .map(|(_, l)| {
            (
                l,
                [Sample {
                    t: ts,
                    v: f64::from_bits(STALE_NAN_BITS),
                }],
            )
        })
        .collect();
    append_logged(db, batch.iter().map(|(l, s)| (l, s.as_slice())));
    append_logged(db, gone.iter().map(|(l, s)| (l, s.as_slice())));
    if !exemplars.is_empty() {
        let stored =
            db.append_exemplars(exemplars.iter().map(|(i, e)| (&batch[*i].0, e.as_slice())));
        match stored {
            Ok(out) => {
                crate::remote_write::count_exemplar_refusals(db, &out, 0);
            }
            Err(e) => tracing::error!(error = %e, "scrape: storing exemplars failed"),
        }
    }
    cache.tracked = tracked;
    cache.seen = seen;

    let metadata: Vec<(String, FamilyMetadata)> = exposition
        .metadata
        .into_iter()
        .map(|(n, m)| (n.into_owned(), m))
        .collect();
    if metadata != cache.metadata {
        for (name, m) in &metadata {
            db.set_metadata(
                name,
                sextant_storage::MetricMetadata {
                    metric_type: if m.metric_type.is_empty() {
                        "unknown".into()
                    } else {
                        m.metric_type.clone()
                    },
                    help: m.help.clone(),
                    unit: m.unit.clone(),
                },
            );
        }
        target.set_metadata(metadata.clone());
        cache.metadata = metadata;
    }
    Ok(())
}

fn append_logged<'a, L: SeriesLabels + 'a>(
    db: &Db,
    batch: impl Iterator<Item = (&'a L, &'a [Sample])>,
) {
    match db.append_series(batch) {
        Ok(outcome) if outcome.rejected_total() > 0 => {
            tracing::debug!(rejected = ?outcome.rejected, "scrape: some samples were refused");
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "scrape: storing samples failed"),
    }
}

/// Staleness markers at `ts` for every tracked series: a failed scrape, or a target that
/// went away.
pub fn mark_stale(db: &Db, cache: &mut SeriesCache, ts: i64) {
    let stale = [Sample {
        t: ts,
        v: f64::from_bits(STALE_NAN_BITS),
    }];
    let gone: Vec<Labels> = cache.tracked.drain().map(|(_, l)| l).collect();
    append_logged(db, gone.iter().map(|l| (l, stale.as_slice())));
}

/// Appends the report series for one scrape.
pub fn store_report(
    db: &Db,
    target: &Target,
    cache: &mut SeriesCache,
    ts: i64,
    up: bool,
    duration_s: f64,
    counts: &ScrapeCounts,
) {
    let values = [
        if up { 1.0 } else { 0.0 },
        duration_s,
        counts.scraped as f64,
        counts.post_relabel as f64,
        counts.series_added as f64,
    ];
    let batch: Vec<(Labels, [Sample; 1])> = REPORT_SERIES
        .iter()
        .zip(values)
        .map(|(name, v)| (report_labels(target, name), [Sample { t: ts, v }]))
        .collect();
    append_logged(db, batch.iter().map(|(l, s)| (l, s.as_slice())));
    cache.reported = true;
}

/// Staleness markers for everything a stopped target wrote, report series included.
pub fn end_of_run(db: &Db, target: &Target, cache: &mut SeriesCache, ts: i64) {
    mark_stale(db, cache, ts);
    if cache.reported {
        let stale = [Sample {
            t: ts,
            v: f64::from_bits(STALE_NAN_BITS),
        }];
        let labels: Vec<Labels> = REPORT_SERIES
            .iter()
            .map(|n| report_labels(target, n))
            .collect();
        append_logged(db, labels.iter().map(|l| (l, stale.as_slice())));
    }
}

fn report_labels(target: &Target, name: &str) -> Labels {
    Labels::from_pairs(
        target
            .labels
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain([("__name__", name)]),
    )
}
