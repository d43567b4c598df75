//! The LogQL evaluator: log queries scan the store once in the requested direction and stop
//! at the limit; metric queries scan each range aggregation's whole span once (forward),
//! keep the extracted samples per series, and evaluate every step from them. Windows are
//! left-open, right-closed: `(t - offset - range, t - offset]`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use sextant_storage::logs::{Direction, LogQuery, LogSource};
use sextant_storage::{Labels, MatchOp};

use super::ast::*;
use super::needles::needles;
use super::pipeline::{self, Category, ERROR_DETAILS_LABEL, ERROR_LABEL};
use super::{
    LogqlError, LogqlOptions, LogqlStats, MetricSample, MetricSeries, ResultEntry, StreamResult,
};

/// One evaluation: the source, limits and running statistics.
pub(crate) struct Evaluator<'a> {
    pub src: &'a dyn LogSource,
    pub opts: &'a LogqlOptions,
    pub started: Instant,
    pub stats: LogqlStats,
}

/// A value at every step: a scalar (the same at all steps) or one vector per step.
pub(crate) enum Val {
    Scalar(f64),
    Vectors(Vec<Vec<(Labels, f64)>>),
}

impl Evaluator<'_> {
    fn check_timeout(&self) -> Result<(), LogqlError> {
        if self.started.elapsed() >= self.opts.timeout {
            return Err(LogqlError::Timeout);
        }
        Ok(())
    }

    /// A log query over `[start_ns, end_ns)`: at most `limit` entries in `direction` order,
    /// grouped into streams by their full label set. `interval_ns > 0` keeps, per stream,
    /// only entries at least that far apart.
    pub fn log_query(
        &mut self,
        e: &LogExpr,
        start_ns: i64,
        end_ns: i64,
        interval_ns: i64,
        limit: usize,
        direction: Direction,
    ) -> Result<Vec<StreamResult>, LogqlError> {
        self.check_timeout()?;
        let needles = needles(&e.stages);
        let query = LogQuery {
            matchers: &e.matchers,
            start_ns,
            end_ns,
            direction,
            needles: &needles,
        };
        let mut groups: HashMap<Labels, usize> = HashMap::new();
        let mut out: Vec<StreamResult> = Vec::new();
        let mut last_ts: Vec<i64> = Vec::new();
        let mut kept = 0usize;
        let mut timed_out = false;
        let mut streams_seen: HashSet<Labels> = HashSet::new();
        let stats = &mut self.stats;
        let (started, timeout) = (self.started, self.opts.timeout);
        if limit == 0 {
            return Ok(out);
        }
        self.src.scan(&query, &mut |labels, entry| {
            stats.lines_processed += 1;
            stats.bytes_processed += entry.line.len() as u64;
            if stats.lines_processed.is_multiple_of(4096) && started.elapsed() >= timeout {
                timed_out = true;
                return false;
            }
            if !streams_seen.contains(labels) {
                streams_seen.insert(labels.clone());
            }
            let Some(p) =
                pipeline::run(&e.stages, labels, entry.ts_ns, &entry.line, &entry.metadata)
            else {
                return true;
            };
            let all = p.labels.all();
            let idx = match groups.get(&all) {
                Some(i) => *i,
                None => {
                    out.push(StreamResult {
                        labels: all.clone(),
                        stream_labels: p.labels.category(Category::Stream),
                        entries: Vec::new(),
                    });
                    last_ts.push(i64::MIN);
                    groups.insert(all, out.len() - 1);
                    out.len() - 1
                }
            };
            if interval_ns > 0
                && last_ts[idx] != i64::MIN
                && (entry.ts_ns - last_ts[idx]).abs() < interval_ns
            {
                return true;
            }
            last_ts[idx] = entry.ts_ns;
            out[idx].entries.push(ResultEntry {
                ts_ns: entry.ts_ns,
                line: p.line,
                metadata: p.labels.pairs(Category::Metadata),
                parsed: p.labels.pairs(Category::Parsed),
            });
            kept += 1;
            kept < limit
        })?;
        if timed_out {
            return Err(LogqlError::Timeout);
        }
        self.stats.streams_touched = streams_seen.len() as u64;
        self.stats.entries_returned = kept as u64;
        out.retain(|s| !s.entries.is_empty());
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Evaluates a metric expression at every step.
    pub fn metric(&mut self, e: &MetricExpr, steps: &[i64]) -> Result<Val, LogqlError> {
        self.check_timeout()?;
        match e {
            MetricExpr::Literal(v) => Ok(Val::Scalar(*v)),
            MetricExpr::VectorFn(v) => Ok(Val::Vectors(
                steps.iter().map(|_| vec![(Labels::empty(), *v)]).collect(),
            )),
            MetricExpr::Paren(inner) => self.metric(inner, steps),
            MetricExpr::LabelReplace(l) => match self.metric(&l.inner, steps)? {
                Val::Scalar(v) => Ok(Val::Scalar(v)),
                Val::Vectors(vs) => Ok(Val::Vectors(
                    vs.into_iter()
                        .map(|vec| {
                            vec.into_iter()
                                .map(|(lbl, v)| (label_replace(l, lbl), v))
                                .collect()
                        })
                        .collect(),
                )),
            },
            MetricExpr::Range(r) => self.range_agg(r, steps, None),
            MetricExpr::Vector(v) => {
                let inner = match pushable_range(v) {
                    Some((r, g)) => self.range_agg(r, steps, Some(&g))?,
                    None => self.metric(&v.inner, steps)?,
                };
                let inner = match inner {
                    Val::Vectors(vs) => vs,
                    Val::Scalar(_) => {
                        return Err(LogqlError::BadRequest(format!(
                            "unexpected literal for {} aggregation",
                            v.op.as_str()
                        )))
                    }
                };
                Ok(Val::Vectors(
                    inner.into_iter().map(|vec| vector_agg(v, vec)).collect(),
                ))
            }
            MetricExpr::Binary(b) => {
                let lhs = self.metric(&b.lhs, steps)?;
                let rhs = self.metric(&b.rhs, steps)?;
                binary(b, lhs, rhs, steps.len())
            }
        }
    }

    /// Evaluates a range aggregation at every step. `inject` is the grouping of an enclosing
    /// `sum` that can be applied while extracting (see [`pushable_range`]).
    fn range_agg(
        &mut self,
        r: &RangeAgg,
        steps: &[i64],
        inject: Option<&Grouping>,
    ) -> Result<Val, LogqlError> {
        let grouping = r.grouping.as_ref().or(inject);
        let (Some(first), Some(last)) = (steps.first(), steps.last()) else {
            return Ok(Val::Vectors(Vec::new()));
        };
        let needles = needles(&r.log.stages);
        let query = LogQuery {
            matchers: &r.log.matchers,
            start_ns: first
                .saturating_sub(r.offset_ns)
                .saturating_sub(r.range_ns)
                .saturating_add(1),
            end_ns: last.saturating_sub(r.offset_ns).saturating_add(1),
            direction: Direction::Forward,
            needles: &needles,
        };
        let mut series: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
        // Stream labels → grouped series labels, for the fast path with a grouping.
        let mut group_cache: HashMap<Labels, Labels> = HashMap::new();
        let stats = &mut self.stats;
        let (started, timeout, max_series) =
            (self.started, self.opts.timeout, self.opts.max_series);
        let mut failure: Option<LogqlError> = None;
        let grid = CellGrid::for_query(r, steps);
        let grid = grid.as_ref();
        // Fast path: a pipeline of line filters only, no unwrap: the series is the stream
        // (when the entry has no structured metadata), found without building labels.
        let only_line_filters = r.unwrap.is_none()
            && r.log
                .stages
                .iter()
                .all(|s| matches!(s, Stage::LineFilter(_)));
        let plain_value = |line: &str| match r.op {
            RangeOp::BytesOverTime | RangeOp::BytesRate => line.len() as f64,
            _ => 1.0,
        };
        self.src.scan(&query, &mut |labels, entry| {
            stats.lines_processed += 1;
            stats.bytes_processed += entry.line.len() as u64;
            if stats.lines_processed.is_multiple_of(4096) && started.elapsed() >= timeout {
                failure = Some(LogqlError::Timeout);
                return false;
            }
            if only_line_filters && entry.metadata.is_empty() {
                let keep = r.log.stages.iter().all(|s| match s {
                    Stage::LineFilter(f) => pipeline::line_filter_matches(f, &entry.line),
                    _ => true,
                });
                if !keep {
                    return true;
                }
                let key = match grouping {
                    None => Some(labels),
                    Some(_) => group_cache.get(labels),
                };
                if let Some(s) = key.and_then(|k| series.get_mut(k)) {
                    push_sample(s, grid, entry.ts_ns, plain_value(&entry.line));
                    return true;
                }
            }
            let Some(mut p) = pipeline::run(
                &r.log.stages,
                labels,
                entry.ts_ns,
                &entry.line,
                &entry.metadata,
            ) else {
                return true;
            };
            let value = match &r.unwrap {
                None => plain_value(&p.line),
                Some(u) => {
                    let raw = p.labels.get(&u.label).unwrap_or("").to_string();
                    let v = match convert(u.conv, &raw) {
                        Ok(v) => v,
                        Err(details) => {
                            if !p.labels.has_error() {
                                p.labels.set_error("SampleExtractionErr", details);
                            }
                            0.0
                        }
                    };
                    if !pipeline::apply_label_filters(&u.post_filters, &mut p.labels) {
                        return true;
                    }
                    p.labels.remove(&u.label);
                    v
                }
            };
            let mut key = p.labels.all();
            if let Some(g) = grouping {
                key = group_labels(&key, g);
                if only_line_filters && entry.metadata.is_empty() {
                    group_cache.insert(labels.clone(), key.clone());
                }
            }
            let labels = key;
            match series.get_mut(&labels) {
                Some(s) => push_sample(s, grid, entry.ts_ns, value),
                None => {
                    if series.len() >= max_series.saturating_mul(10).max(1000) {
                        failure = Some(series_limit(max_series));
                        return false;
                    }
                    let mut s = Vec::new();
                    push_sample(&mut s, grid, entry.ts_ns, value);
                    series.insert(labels, s);
                }
            }
            true
        })?;
        if let Some(f) = failure {
            return Err(f);
        }
        // Samples from one scan are in time order per series already; keep that invariant
        // even if a source breaks ties differently.
        for s in series.values_mut() {
            if !s.is_sorted_by_key(|(t, _)| *t) {
                s.sort_by_key(|(t, _)| *t);
                if grid.is_some() {
                    merge_cells(s);
                }
            }
        }
        let mut sorted: Vec<(Labels, Vec<(i64, f64)>)> = series.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some((labels, _)) = sorted.iter().find(|(l, _)| l.get(ERROR_LABEL).is_some()) {
            return Err(pipeline_error(labels));
        }
        let range_s = r.range_ns as f64 / 1e9;
        if let Some(grid) = grid {
            return self.cell_windows(r, steps, grid, &sorted, range_s);
        }
        let mut out = Vec::with_capacity(steps.len());
        for &t in steps {
            let hi_t = t.saturating_sub(r.offset_ns);
            let lo_t = hi_t.saturating_sub(r.range_ns);
            let mut vec = Vec::new();
            for (labels, samples) in &sorted {
                let lo = samples.partition_point(|(ts, _)| *ts <= lo_t);
                let hi = samples.partition_point(|(ts, _)| *ts <= hi_t);
                let window = &samples[lo..hi];
                if window.is_empty() {
                    continue;
                }
                if let Some(v) = range_value(r, window, range_s, lo_t, hi_t) {
                    vec.push((labels.clone(), v));
                }
            }
            if r.op == RangeOp::AbsentOverTime {
                vec = if vec.is_empty() {
                    vec![(absent_labels(&r.log), 1.0)]
                } else {
                    Vec::new()
                };
            }
            if vec.len() > max_series {
                return Err(series_limit(max_series));
            }
            out.push(vec);
        }
        Ok(Val::Vectors(out))
    }
}

impl Evaluator<'_> {
    /// Window values from per-cell totals (see [`CellGrid`]): each window is a run of whole
    /// cells, summed exactly through prefix sums.
    fn cell_windows(
        &self,
        r: &RangeAgg,
        steps: &[i64],
        grid: &CellGrid,
        sorted: &[(Labels, Vec<(i64, f64)>)],
        range_s: f64,
    ) -> Result<Val, LogqlError> {
        let first = steps.first().copied().unwrap_or_default();
        let prefixes: Vec<Vec<f64>> = sorted
            .iter()
            .map(|(_, cells)| {
                let mut p = Vec::with_capacity(cells.len() + 1);
                let mut acc = 0.0;
                p.push(acc);
                for (_, v) in cells {
                    acc += v;
                    p.push(acc);
                }
                p
            })
            .collect();
        let mut out = Vec::with_capacity(steps.len());
        for &t in steps {
            let d = t - first;
            let lo_c = d / grid.width;
            let hi_c = (d + r.range_ns) / grid.width;
            let mut vec = Vec::new();
            for ((labels, cells), prefix) in sorted.iter().zip(&prefixes) {
                let lo = cells.partition_point(|(c, _)| *c < lo_c);
                let hi = cells.partition_point(|(c, _)| *c < hi_c);
                if lo == hi {
                    continue;
                }
                let total = prefix[hi] - prefix[lo];
                let v = match r.op {
                    RangeOp::Rate | RangeOp::BytesRate => total / range_s,
                    _ => total,
                };
                vec.push((labels.clone(), v));
            }
            if r.op == RangeOp::AbsentOverTime {
                vec = if vec.is_empty() {
                    vec![(absent_labels(&r.log), 1.0)]
                } else {
                    Vec::new()
                };
            }
            if vec.len() > self.opts.max_series {
                return Err(series_limit(self.opts.max_series));
            }
            out.push(vec);
        }
        Ok(Val::Vectors(out))
    }
}

/// For range aggregations whose window value is an integer total (`count_over_time`,
/// `rate`, `bytes_over_time`, `bytes_rate`, `absent_over_time` without unwrap), samples are
/// summed into cells of `gcd(range, step)` nanoseconds as they are read: every window is a
/// whole number of cells, so memory is bounded by non-empty cells rather than lines, and
/// totals stay exact. Cell `c` covers `(base + c·width, base + (c+1)·width]` with
/// `base = first step - offset - range`.
#[derive(Clone, Copy, Debug)]
struct CellGrid {
    base: i64,
    width: i64,
}

impl CellGrid {
    fn for_query(r: &RangeAgg, steps: &[i64]) -> Option<CellGrid> {
        let integral = matches!(
            r.op,
            RangeOp::CountOverTime
                | RangeOp::Rate
                | RangeOp::BytesOverTime
                | RangeOp::BytesRate
                | RangeOp::AbsentOverTime
        );
        if !integral || r.unwrap.is_some() || r.range_ns <= 0 {
            return None;
        }
        let first = *steps.first()?;
        let last = *steps.last()?;
        let step = match steps.get(1) {
            Some(second) => second - first,
            None => r.range_ns,
        };
        let width = gcd(r.range_ns, step);
        if width <= 0 {
            return None;
        }
        let cells = (i128::from(last) - i128::from(first)) / i128::from(width)
            + i128::from(r.range_ns / width);
        if cells > 4 * steps.len() as i128 + 1024 {
            return None;
        }
        let base = first.checked_sub(r.offset_ns)?.checked_sub(r.range_ns)?;
        Some(CellGrid { base, width })
    }

    fn cell(&self, ts: i64) -> i64 {
        (ts - self.base - 1).div_euclid(self.width)
    }
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs()
}

/// Appends a sample, or adds it to the current cell in cell mode.
fn push_sample(s: &mut Vec<(i64, f64)>, grid: Option<&CellGrid>, ts: i64, value: f64) {
    match grid {
        None => s.push((ts, value)),
        Some(g) => {
            let c = g.cell(ts);
            match s.last_mut() {
                Some((lc, v)) if *lc == c => *v += value,
                _ => s.push((c, value)),
            }
        }
    }
}

/// Merges equal adjacent cells of a sorted cell list.
fn merge_cells(s: &mut Vec<(i64, f64)>) {
    let mut out: Vec<(i64, f64)> = Vec::with_capacity(s.len());
    for &(c, v) in s.iter() {
        match out.last_mut() {
            Some((lc, lv)) if *lc == c => *lv += v,
            _ => out.push((c, v)),
        }
    }
    *s = out;
}

fn label_replace(l: &LabelReplace, mut labels: Labels) -> Labels {
    let src = labels.get(&l.src).unwrap_or("").to_string();
    if let Some(caps) = l.regex.captures(&src) {
        let mut out = String::new();
        caps.expand(&l.replacement, &mut out);
        labels.set(&l.dst, &out);
    }
    labels
}

/// Loki's grouping pushdown: `sum by (g) (op(...))` for an op whose per-series values add up
/// (`count_over_time`, `rate`, `bytes_over_time`, `bytes_rate`, `sum_over_time`) can group
/// while extracting, so high-cardinality labels (trace ids in structured metadata) never
/// become series. Returns the range aggregation and the grouping to inject.
fn pushable_range(v: &VectorAgg) -> Option<(&RangeAgg, Grouping)> {
    if v.op != VecOp::Sum {
        return None;
    }
    let mut inner = &v.inner;
    while let MetricExpr::Paren(e) = inner {
        inner = e;
    }
    let MetricExpr::Range(r) = inner else {
        return None;
    };
    let summable = matches!(
        r.op,
        RangeOp::CountOverTime
            | RangeOp::Rate
            | RangeOp::BytesOverTime
            | RangeOp::BytesRate
            | RangeOp::SumOverTime
    );
    if !summable || r.grouping.is_some() {
        return None;
    }
    let g = v.grouping.clone().unwrap_or(Grouping {
        without: false,
        labels: Vec::new(),
    });
    Some((r, g))
}

fn series_limit(max: usize) -> LogqlError {
    LogqlError::Limit(format!(
        "maximum number of series ({max}) reached for a single query; consider reducing query \
         cardinality by adding more filters or aggregations"
    ))
}

fn pipeline_error(labels: &Labels) -> LogqlError {
    let kind = labels.get(ERROR_LABEL).unwrap_or_default();
    let shown: Labels = labels.drop_names(&[ERROR_DETAILS_LABEL.to_string()]);
    LogqlError::Pipeline(format!(
        "pipeline error: '{kind}' for series: '{shown}'.\nUse a label filter to intentionally \
         skip this error. (e.g | __error__!=\"{kind}\").\nTo skip all potential errors you can \
         match empty errors.(e.g __error__=\"\")\nThe label filter can also be specified after \
         unwrap. (e.g | unwrap latency | __error__=\"\" )"
    ))
}

/// `absent_over_time`'s labels: the selector's equality matchers.
fn absent_labels(log: &LogExpr) -> Labels {
    let mut seen = HashSet::new();
    Labels::from_pairs(
        log.matchers
            .iter()
            .filter(|m| m.op == MatchOp::Equal && seen.insert(m.name.clone()))
            .map(|m| (m.name.clone(), m.value.clone())),
    )
}

fn convert(conv: Conversion, raw: &str) -> Result<f64, String> {
    let v = raw.trim();
    match conv {
        Conversion::None => v
            .parse::<f64>()
            .map_err(|_| format!("strconv.ParseFloat: parsing {v:?}: invalid syntax")),
        Conversion::Duration | Conversion::DurationSeconds => super::parser::parse_duration_ns(v)
            .map(|ns| ns as f64 / 1e9)
            .ok_or_else(|| format!("time: invalid duration {v:?}")),
        Conversion::Bytes => {
            super::parser::parse_bytes(v).ok_or_else(|| format!("invalid bytes value {v:?}"))
        }
    }
}

fn group_labels(labels: &Labels, g: &Grouping) -> Labels {
    if g.without {
        labels.drop_names(&g.labels)
    } else {
        labels.keep_only(&g.labels)
    }
}

/// Prometheus' φ-quantile with linear interpolation.
fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0) as usize;
    let upper = (lower + 1).min(values.len() - 1);
    let weight = rank - rank.floor();
    values[lower] * (1.0 - weight) + values[upper] * weight
}

fn variance(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let (mut n, mut mean, mut m2) = (0.0, 0.0, 0.0);
    for v in values {
        n += 1.0;
        let delta = v - mean;
        mean += delta / n;
        m2 += delta * (v - mean);
    }
    if n == 0.0 {
        f64::NAN
    } else {
        m2 / n
    }
}

/// Prometheus' extrapolated counter rate over a window (for `rate_counter`).
fn counter_rate(window: &[(i64, f64)], lo_t: i64, hi_t: i64) -> Option<f64> {
    if window.len() < 2 {
        return None;
    }
    let (first_t, first_v) = window[0];
    let (last_t, last_v) = window[window.len() - 1];
    let mut increase = last_v - first_v;
    let mut prev = first_v;
    for &(_, v) in &window[1..] {
        if v < prev {
            increase += prev;
        }
        prev = v;
    }
    let range_s = (hi_t - lo_t) as f64 / 1e9;
    let sampled = (last_t - first_t) as f64 / 1e9;
    let avg = sampled / (window.len() - 1) as f64;
    let mut to_start = (first_t - lo_t) as f64 / 1e9;
    let to_end = (hi_t - last_t) as f64 / 1e9;
    if increase > 0.0 && first_v >= 0.0 {
        let to_zero = sampled * (first_v / increase);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg * 1.1;
    let mut extrapolate = sampled;
    extrapolate += if to_start < threshold {
        to_start
    } else {
        avg / 2.0
    };
    extrapolate += if to_end < threshold {
        to_end
    } else {
        avg / 2.0
    };
    Some(increase * (extrapolate / sampled) / range_s)
}

fn range_value(
    r: &RangeAgg,
    window: &[(i64, f64)],
    range_s: f64,
    lo_t: i64,
    hi_t: i64,
) -> Option<f64> {
    let vals = window.iter().map(|(_, v)| *v);
    let n = window.len() as f64;
    Some(match r.op {
        RangeOp::CountOverTime | RangeOp::AbsentOverTime => n,
        RangeOp::Rate => {
            if r.unwrap.is_some() {
                vals.sum::<f64>() / range_s
            } else {
                n / range_s
            }
        }
        RangeOp::BytesOverTime | RangeOp::SumOverTime => vals.sum(),
        RangeOp::BytesRate => vals.sum::<f64>() / range_s,
        RangeOp::AvgOverTime => vals.sum::<f64>() / n,
        RangeOp::MinOverTime => vals.fold(f64::INFINITY, f64::min),
        RangeOp::MaxOverTime => vals.fold(f64::NEG_INFINITY, f64::max),
        RangeOp::StdvarOverTime => variance(vals),
        RangeOp::StddevOverTime => variance(vals).sqrt(),
        RangeOp::QuantileOverTime => {
            let mut v: Vec<f64> = vals.collect();
            quantile(r.param.unwrap_or(f64::NAN), &mut v)
        }
        RangeOp::FirstOverTime => window[0].1,
        RangeOp::LastOverTime => window[window.len() - 1].1,
        RangeOp::RateCounter => counter_rate(window, lo_t, hi_t)?,
    })
}

fn vector_agg(v: &VectorAgg, input: Vec<(Labels, f64)>) -> Vec<(Labels, f64)> {
    let key = |l: &Labels| match &v.grouping {
        Some(g) => group_labels(l, g),
        None => Labels::empty(),
    };
    match v.op {
        VecOp::Sort | VecOp::SortDesc => {
            let mut out = input;
            out.sort_by(|a, b| {
                let o = a.1.total_cmp(&b.1);
                if v.op == VecOp::Sort {
                    o
                } else {
                    o.reverse()
                }
            });
            out
        }
        VecOp::Topk | VecOp::Bottomk => {
            let k = v.param.unwrap_or(1);
            let mut groups: BTreeMap<Labels, Vec<(Labels, f64)>> = BTreeMap::new();
            for s in input {
                groups.entry(key(&s.0)).or_default().push(s);
            }
            let mut out = Vec::new();
            for (_, mut g) in groups {
                g.sort_by(|a, b| {
                    let o = b.1.total_cmp(&a.1);
                    let o = if v.op == VecOp::Topk { o } else { o.reverse() };
                    o.then_with(|| a.0.cmp(&b.0))
                });
                g.truncate(k);
                out.extend(g);
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        _ => {
            let mut groups: BTreeMap<Labels, Vec<f64>> = BTreeMap::new();
            for (l, val) in input {
                groups.entry(key(&l)).or_default().push(val);
            }
            groups
                .into_iter()
                .map(|(l, vals)| {
                    let n = vals.len() as f64;
                    let it = vals.iter().copied();
                    let value = match v.op {
                        VecOp::Sum => it.sum(),
                        VecOp::Avg => it.sum::<f64>() / n,
                        VecOp::Min => it.fold(f64::INFINITY, f64::min),
                        VecOp::Max => it.fold(f64::NEG_INFINITY, f64::max),
                        VecOp::Count => n,
                        VecOp::Stdvar => variance(it),
                        VecOp::Stddev => variance(it).sqrt(),
                        _ => f64::NAN,
                    };
                    (l, value)
                })
                .collect()
        }
    }
}

fn arith(op: BinOp, a: f64, b: f64) -> f64 {
    op.apply(a, b)
}

/// A vector sample's value after `op` with the other operand: `None` when a comparison
/// without `bool` filters it out. `keep` is the value a passing filter keeps.
fn combine(b: &BinaryExpr, l: f64, r: f64, keep: f64) -> Option<f64> {
    let v = arith(b.op, l, r);
    if b.op.is_comparison() && !b.return_bool {
        return (v == 1.0).then_some(keep);
    }
    Some(v)
}

fn signature(l: &Labels, m: &Option<VectorMatching>) -> Labels {
    match m {
        Some(VectorMatching {
            on: true, labels, ..
        }) => l.keep_only(labels),
        Some(VectorMatching {
            on: false, labels, ..
        }) => l.drop_names(labels),
        None => l.drop_names(&[]),
    }
}

/// Many-to-one (`group_left`) or one-to-many (`group_right`) matching: every series of the
/// "many" side is combined with the single matching series of the "one" side; the result
/// keeps the many side's labels plus the `include` labels copied from the one side.
fn grouped_match(
    b: &BinaryExpr,
    g: &Group,
    lhs: Vec<(Labels, f64)>,
    rhs: Vec<(Labels, f64)>,
) -> Result<Vec<(Labels, f64)>, LogqlError> {
    let (many, one) = if g.left { (lhs, rhs) } else { (rhs, lhs) };
    let mut ones: HashMap<Labels, (Labels, f64)> = HashMap::new();
    for (l, v) in one {
        let sig = signature(&l, &b.matching);
        if ones.insert(sig.clone(), (l, v)).is_some() {
            return Err(LogqlError::BadRequest(format!(
                "found duplicate series for the match group {sig} on the {} hand-side of the \
                 operation; many-to-many matching not allowed: matching labels must be unique on \
                 one side",
                if g.left { "right" } else { "left" }
            )));
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (l, v) in many {
        let sig = signature(&l, &b.matching);
        let Some((one_labels, ov)) = ones.get(&sig) else {
            continue;
        };
        let mut labels = l;
        for name in &g.include {
            labels.set(name, one_labels.get(name).unwrap_or(""));
        }
        if !seen.insert(labels.clone()) {
            return Err(LogqlError::BadRequest(
                "multiple matches for labels: grouping labels must ensure unique matches".into(),
            ));
        }
        let (lv, rv) = if g.left { (v, *ov) } else { (*ov, v) };
        if let Some(x) = combine(b, lv, rv, lv) {
            out.push((labels, x));
        }
    }
    Ok(out)
}

fn binary(b: &BinaryExpr, lhs: Val, rhs: Val, n_steps: usize) -> Result<Val, LogqlError> {
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(arith(b.op, l, r))),
        (Val::Vectors(vs), Val::Scalar(s)) => Ok(Val::Vectors(
            vs.into_iter()
                .map(|vec| {
                    vec.into_iter()
                        .filter_map(|(l, v)| combine(b, v, s, v).map(|x| (l, x)))
                        .collect()
                })
                .collect(),
        )),
        (Val::Scalar(s), Val::Vectors(vs)) => Ok(Val::Vectors(
            vs.into_iter()
                .map(|vec| {
                    vec.into_iter()
                        .filter_map(|(l, v)| combine(b, s, v, v).map(|x| (l, x)))
                        .collect()
                })
                .collect(),
        )),
        (Val::Vectors(ls), Val::Vectors(rs)) => {
            let mut out = Vec::with_capacity(n_steps);
            for (lv, rv) in ls.into_iter().zip(rs) {
                out.push(vector_vector(b, lv, rv)?);
            }
            Ok(Val::Vectors(out))
        }
    }
}

fn vector_vector(
    b: &BinaryExpr,
    lhs: Vec<(Labels, f64)>,
    rhs: Vec<(Labels, f64)>,
) -> Result<Vec<(Labels, f64)>, LogqlError> {
    let m = &b.matching;
    match b.op {
        BinOp::And | BinOp::Unless => {
            let right: HashSet<Labels> = rhs.iter().map(|(l, _)| signature(l, m)).collect();
            let want = b.op == BinOp::And;
            return Ok(lhs
                .into_iter()
                .filter(|(l, _)| right.contains(&signature(l, m)) == want)
                .collect());
        }
        BinOp::Or => {
            let left: HashSet<Labels> = lhs.iter().map(|(l, _)| signature(l, m)).collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|(l, _)| !left.contains(&signature(l, m))),
            );
            return Ok(out);
        }
        _ => {}
    }
    if let Some(VectorMatching { group: Some(g), .. }) = m {
        return grouped_match(b, g, lhs, rhs);
    }
    let mut right: HashMap<Labels, f64> = HashMap::new();
    for (l, v) in &rhs {
        let sig = signature(l, m);
        if right.insert(sig.clone(), *v).is_some() {
            return Err(LogqlError::BadRequest(format!(
                "found duplicate series for the match group {sig} on the right hand-side of the \
                 operation; many-to-many matching not allowed: matching labels must be unique on \
                 one side"
            )));
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (l, v) in lhs {
        let sig = signature(&l, m);
        let Some(r) = right.get(&sig) else { continue };
        if !seen.insert(sig.clone()) {
            return Err(LogqlError::BadRequest(format!(
                "multiple matches for labels: many-to-one matching must be explicit \
                 (group_left/group_right) for {sig}"
            )));
        }
        let labels = match m {
            Some(VectorMatching {
                on: true, labels, ..
            }) => l.keep_only(labels),
            Some(VectorMatching {
                on: false, labels, ..
            }) => l.drop_names(labels),
            None => l,
        };
        if let Some(x) = combine(b, v, *r, v) {
            out.push((labels, x));
        }
    }
    Ok(out)
}

/// Turns per-step vectors into series (sorted by labels).
pub(crate) fn to_matrix(steps: &[i64], val: Val) -> Vec<MetricSeries> {
    match val {
        Val::Scalar(v) => vec![MetricSeries {
            labels: Labels::empty(),
            points: steps.iter().map(|t| (*t, v)).collect(),
        }],
        Val::Vectors(vs) => {
            let mut series: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
            for (t, vec) in steps.iter().zip(vs) {
                for (l, v) in vec {
                    series.entry(l).or_default().push((*t, v));
                }
            }
            series
                .into_iter()
                .map(|(labels, points)| MetricSeries { labels, points })
                .collect()
        }
    }
}

pub(crate) fn to_vector(ts_ns: i64, vec: Vec<(Labels, f64)>) -> Vec<MetricSample> {
    vec.into_iter()
        .map(|(labels, value)| MetricSample {
            labels,
            ts_ns,
            value,
        })
        .collect()
}
