//! Aggregation operators (`sum`, `avg`, `topk`, `count_values`, `limit_ratio`, …) with
//! `by`/`without` grouping.

use std::collections::HashMap;

use sextant_storage::histogram::{AddInfo, HistogramError};
use sextant_storage::labels::is_valid_label_name;
use sextant_storage::{CounterResetHint, FloatHistogram, Labels, METRIC_NAME};

use super::eval::{expr_pos, Evaluator};
use super::model::{fmt_g, Sample, Val};
use super::range_fns::{kahan_inc, quantile};
use crate::promql::ast::{AggregateExpr, AggregateOp, Expr, PosRange};
use crate::promql::value::QueryError;

/// Running state of one group.
struct Group {
    labels: Labels,
    drop_name: bool,
    count: f64,
    value: f64,
    kahan: f64,
    mean: f64,
    incremental: bool,
    values: Vec<Sample>,
    /// False while the group has no usable sample (only ignored histograms so far).
    seen: bool,
    has_float: bool,
    has_hist: bool,
    /// Exponential and custom-bucket histograms were mixed: the group yields nothing.
    incompatible: bool,
    /// Running histogram sum (`sum`, and `avg` before an overflow).
    hval: Option<FloatHistogram>,
    /// Running histogram mean of `avg` after an overflow.
    hmean: Option<FloatHistogram>,
    hincremental: bool,
    /// Kahan compensation of `hval`/`hmean`.
    hcomp: Option<FloatHistogram>,
    counter_reset_seen: bool,
    not_counter_reset_seen: bool,
}

impl Group {
    fn new(labels: Labels) -> Group {
        Group {
            labels,
            drop_name: false,
            count: 0.0,
            value: 0.0,
            kahan: 0.0,
            mean: 0.0,
            incremental: false,
            values: Vec::new(),
            seen: false,
            has_float: false,
            has_hist: false,
            incompatible: false,
            hval: None,
            hmean: None,
            hincremental: false,
            hcomp: None,
            counter_reset_seen: false,
            not_counter_reset_seen: false,
        }
    }

    fn track_hint(&mut self, h: &FloatHistogram) {
        match h.counter_reset_hint {
            CounterResetHint::CounterReset => self.counter_reset_seen = true,
            CounterResetHint::NotCounterReset => self.not_counter_reset_seen = true,
            _ => {}
        }
    }
}

/// Compensated histogram addition: adds `h` into `acc`, returning the new compensation.
fn hist_kahan_add(
    acc: &mut FloatHistogram,
    h: &FloatHistogram,
    comp: Option<FloatHistogram>,
) -> Result<(Option<FloatHistogram>, AddInfo), HistogramError> {
    acc.kahan_add(h, comp).map(|(c, info)| (Some(c), info))
}

/// Prometheus' `HasOverflow`: some count, the sum or a bucket is infinite.
fn has_overflow(h: &FloatHistogram) -> bool {
    h.count.is_infinite()
        || h.sum.is_infinite()
        || h.zero_count.is_infinite()
        || h.positive_buckets.iter().any(|b| b.is_infinite())
        || h.negative_buckets.iter().any(|b| b.is_infinite())
}

fn ignored_info(ev: &mut Evaluator<'_>, op: AggregateOp, pos: PosRange) {
    ev.info(
        &format!("ignored histogram in {} aggregation", op.as_str()),
        pos,
    );
}

fn group_labels(a: &AggregateExpr, l: &Labels) -> Labels {
    if a.without {
        l.drop_names(&a.grouping)
    } else {
        l.keep_only(&a.grouping)
    }
}

pub(super) fn eval_aggregate(
    ev: &mut Evaluator<'_>,
    a: &AggregateExpr,
    t: i64,
) -> Result<Val, QueryError> {
    let mut param_num = None;
    let mut param_str = None;
    if let Some(p) = &a.param {
        match ev.eval(p, t)? {
            Val::Scalar(v) => param_num = Some(v),
            Val::Str(s) => param_str = Some(s),
            _ => {
                return Err(QueryError::Execution(
                    "invalid aggregation parameter".into(),
                ))
            }
        }
    }
    let input = ev.eval_vector(&a.expr, t)?;
    let ppos = match a.param.as_deref() {
        Some(Expr::NumberLiteral(_) | Expr::StringLiteral(_)) => literal_param_pos(ev.query, a),
        Some(p) => expr_pos(p),
        None => a.pos,
    };
    match a.op {
        AggregateOp::Topk | AggregateOp::Bottomk | AggregateOp::Limitk => {
            let k = param_num.unwrap_or(f64::NAN);
            if k.is_nan() {
                return Err(QueryError::Execution("Parameter value is NaN".into()));
            }
            if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&k) {
                return Err(QueryError::Execution(format!(
                    "Scalar value {} overflows int64",
                    fmt_g(k)
                )));
            }
            let k = k as i64;
            if k < 1 {
                return Ok(Val::Vector(Vec::new()));
            }
            return Ok(Val::Vector(select_k(ev, a, input, k as usize)));
        }
        AggregateOp::LimitRatio => {
            let mut r = param_num.unwrap_or(f64::NAN);
            if r.is_nan() {
                return Err(QueryError::Execution("Ratio value is NaN".into()));
            }
            if !(-1.0..=1.0).contains(&r) {
                let capped = r.clamp(-1.0, 1.0);
                ev.warn(
                    &format!(
                        "ratio value should be between -1 and 1, got {}, capping to {}",
                        fmt_g(r),
                        fmt_g(capped)
                    ),
                    ppos,
                );
                r = capped;
            }
            return Ok(Val::Vector(
                input
                    .into_iter()
                    .filter(|s| ratio_keep(&s.labels, r))
                    .collect(),
            ));
        }
        AggregateOp::CountValues => {
            let name = param_str.unwrap_or_default();
            if !is_valid_label_name(&name) {
                return Err(QueryError::Execution(format!(
                    "invalid label name {}",
                    crate::promql::parser::literals::go_quote(&name)
                )));
            }
            return Ok(Val::Vector(count_values(a, input, &name)));
        }
        AggregateOp::Quantile => {
            let q = param_num.unwrap_or(f64::NAN);
            if q.is_nan() || !(0.0..=1.0).contains(&q) {
                ev.warn(
                    &format!("quantile value should be between 0 and 1, got {}", fmt_g(q)),
                    ppos,
                );
            }
        }
        _ => {}
    }

    let epos = expr_pos(&a.expr);
    let mut order: Vec<Group> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in input {
        let gl = group_labels(a, &s.labels);
        let gi = match index.get(&gl) {
            Some(&i) => i,
            None => {
                index.insert(gl.clone(), order.len());
                order.push(Group::new(gl));
                order.len() - 1
            }
        };
        let Some(g) = order.get_mut(gi) else { continue };
        if !g.seen {
            init_group(ev, a.op, g, s, epos);
            continue;
        }
        if g.incompatible {
            continue;
        }
        g.drop_name |= s.drop_name;
        match (a.op, s.h) {
            (AggregateOp::Sum, Some(h)) => {
                g.has_hist = true;
                if let Some(acc) = g.hval.as_mut() {
                    match h.counter_reset_hint {
                        CounterResetHint::CounterReset => g.counter_reset_seen = true,
                        CounterResetHint::NotCounterReset => g.not_counter_reset_seen = true,
                        _ => {}
                    }
                    match hist_kahan_add(acc, &h, g.hcomp.take()) {
                        Ok((c, info)) => {
                            g.hcomp = c;
                            if info.custom_buckets_reconciled {
                                reconciled_info(ev, epos);
                            }
                        }
                        Err(e) => {
                            mixed_schema_warning(ev, &e, &s.labels, epos);
                            g.incompatible = true;
                        }
                    }
                }
            }
            (AggregateOp::Sum, None) => {
                g.has_float = true;
                (g.value, g.kahan) = kahan_inc(s.v, g.value, g.kahan);
            }
            (AggregateOp::Avg, Some(h)) => {
                g.count += 1.0;
                g.has_hist = true;
                if g.hval.is_some() {
                    g.track_hint(&h);
                    avg_histogram(ev, g, &h, &s.labels, epos);
                }
            }
            (AggregateOp::Avg, None) => {
                g.count += 1.0;
                g.has_float = true;
                if !g.incremental {
                    let (nv, nc) = kahan_inc(s.v, g.value, g.kahan);
                    if !nv.is_infinite() {
                        g.value = nv;
                        g.kahan = nc;
                        continue;
                    }
                    g.incremental = true;
                    g.mean = g.value / (g.count - 1.0);
                    g.kahan /= g.count - 1.0;
                }
                let q = (g.count - 1.0) / g.count;
                (g.mean, g.kahan) = kahan_inc(s.v / g.count, q * g.mean, q * g.kahan);
            }
            (
                AggregateOp::Min
                | AggregateOp::Max
                | AggregateOp::Stddev
                | AggregateOp::Stdvar
                | AggregateOp::Quantile,
                Some(_),
            ) => ignored_info(ev, a.op, epos),
            (AggregateOp::Count, _) => g.count += 1.0,
            (AggregateOp::Min, None) if g.value > s.v || g.value.is_nan() => g.value = s.v,
            (AggregateOp::Max, None) if g.value < s.v || g.value.is_nan() => g.value = s.v,
            (AggregateOp::Stddev | AggregateOp::Stdvar, None) => {
                g.count += 1.0;
                let delta = s.v - g.mean;
                g.mean += delta / g.count;
                g.value += delta * (s.v - g.mean);
            }
            (AggregateOp::Quantile, None) => g.values.push(Sample::float(Labels::empty(), s.v)),
            _ => {}
        }
    }

    let mut out = Vec::with_capacity(order.len());
    for g in order {
        if !g.seen {
            continue;
        }
        let mut h = None;
        let v = match a.op {
            AggregateOp::Sum | AggregateOp::Avg => {
                if g.has_float && g.has_hist {
                    ev.warn(
                        "encountered a mix of histograms and floats for aggregation",
                        epos,
                    );
                    continue;
                }
                if g.incompatible {
                    continue;
                }
                if g.counter_reset_seen && g.not_counter_reset_seen {
                    ev.warn(
                        "conflicting counter resets during histogram aggregation",
                        epos,
                    );
                }
                if g.has_hist {
                    h = finish_histogram(a.op, &g);
                    0.0
                } else if a.op == AggregateOp::Sum {
                    if g.value.is_infinite() {
                        g.value
                    } else {
                        g.value + g.kahan
                    }
                } else if g.incremental {
                    g.mean + g.kahan
                } else {
                    g.value / g.count + g.kahan / g.count
                }
            }
            AggregateOp::Count => g.count,
            AggregateOp::Group => 1.0,
            AggregateOp::Min | AggregateOp::Max => g.value,
            AggregateOp::Stdvar => g.value / g.count,
            AggregateOp::Stddev => (g.value / g.count).sqrt(),
            AggregateOp::Quantile => {
                let vals: Vec<f64> = g.values.iter().map(|s| s.v).collect();
                quantile(param_num.unwrap_or(f64::NAN), vals)
            }
            _ => continue,
        };
        if matches!(a.op, AggregateOp::Sum | AggregateOp::Avg) && g.has_hist && h.is_none() {
            continue;
        }
        out.push(Sample {
            labels: g.labels,
            v,
            h: h.map(Box::new),
            drop_name: g.drop_name,
        });
    }
    Ok(Val::Vector(out))
}

/// Starts (or restarts, after only ignored histograms) a group with its first sample.
fn init_group(ev: &mut Evaluator<'_>, op: AggregateOp, g: &mut Group, s: Sample, epos: PosRange) {
    let labels = std::mem::replace(&mut g.labels, Labels::empty());
    *g = Group::new(labels);
    g.seen = true;
    g.drop_name = s.drop_name;
    g.count = 1.0;
    g.value = s.v;
    g.mean = s.v;
    match op {
        AggregateOp::Sum | AggregateOp::Avg => match s.h {
            Some(h) => {
                g.has_hist = true;
                g.track_hint(&h);
                g.hval = Some(*h);
            }
            None => g.has_float = true,
        },
        AggregateOp::Stddev | AggregateOp::Stdvar => {
            if s.h.is_some() {
                g.seen = false;
                ignored_info(ev, op, epos);
            } else if s.v.is_finite() {
                g.value = 0.0;
            } else {
                g.value = f64::NAN;
            }
        }
        AggregateOp::Quantile => {
            if s.h.is_some() {
                g.seen = false;
                ignored_info(ev, op, epos);
            }
            g.values.push(Sample::float(Labels::empty(), s.v));
        }
        AggregateOp::Group => g.value = 1.0,
        AggregateOp::Min | AggregateOp::Max if s.h.is_some() => {
            g.seen = false;
            ignored_info(ev, op, epos);
        }
        _ => {}
    }
}

/// One histogram step of `avg`: a compensated running sum while it stays finite, then an
/// incremental mean (as Prometheus does for floats too).
fn avg_histogram(
    ev: &mut Evaluator<'_>,
    g: &mut Group,
    h: &FloatHistogram,
    labels: &Labels,
    epos: PosRange,
) {
    if !g.hincremental {
        let Some(mut sum) = g.hval.clone() else {
            return;
        };
        match hist_kahan_add(&mut sum, h, g.hcomp.clone()) {
            Ok((c, info)) => {
                if info.custom_buckets_reconciled {
                    reconciled_info(ev, epos);
                }
                if !has_overflow(&sum) {
                    g.hval = Some(sum);
                    g.hcomp = c;
                    return;
                }
            }
            Err(e) => {
                mixed_schema_warning(ev, &e, labels, epos);
                g.incompatible = true;
                return;
            }
        }
        // The sum would overflow: continue with the incremental mean.
        g.hincremental = true;
        let mut mean = g.hval.clone().unwrap_or_default();
        mean.div(g.count - 1.0);
        g.hmean = Some(mean);
        if let Some(c) = g.hcomp.as_mut() {
            c.div(g.count - 1.0);
        }
    }
    let q = (g.count - 1.0) / g.count;
    if let Some(c) = g.hcomp.as_mut() {
        c.mul(q);
    }
    let mut to_add = h.clone();
    to_add.div(g.count);
    let Some(mut mean) = g.hmean.take() else {
        return;
    };
    mean.mul(q);
    match hist_kahan_add(&mut mean, &to_add, g.hcomp.take()) {
        Ok((c, info)) => {
            if info.custom_buckets_reconciled {
                reconciled_info(ev, epos);
            }
            g.hmean = Some(mean);
            g.hcomp = c;
        }
        Err(e) => {
            mixed_schema_warning(ev, &e, labels, epos);
            g.incompatible = true;
        }
    }
}

/// The final histogram of `sum` or `avg`, with the Kahan compensation applied.
fn finish_histogram(op: AggregateOp, g: &Group) -> Option<FloatHistogram> {
    let mut r = if op == AggregateOp::Avg && g.hincremental {
        let mut m = g.hmean.clone()?;
        if let Some(c) = &g.hcomp {
            let _ = m.add(c);
        }
        m
    } else if op == AggregateOp::Avg {
        let mut v = g.hval.clone()?;
        v.div(g.count);
        if let Some(c) = &g.hcomp {
            let mut c = c.clone();
            c.div(g.count);
            let _ = v.add(&c);
        }
        v
    } else {
        let mut v = g.hval.clone()?;
        if let Some(c) = &g.hcomp {
            let _ = v.add(c);
        }
        v
    };
    r.compact(0);
    Some(r)
}

fn reconciled_info(ev: &mut Evaluator<'_>, pos: PosRange) {
    ev.info(
        "mismatched custom buckets were reconciled during aggregation",
        pos,
    );
}

fn mixed_schema_warning(
    ev: &mut Evaluator<'_>,
    e: &HistogramError,
    labels: &Labels,
    pos: PosRange,
) {
    if matches!(e, HistogramError::MixedSchemas) {
        let name = labels.get(METRIC_NAME).unwrap_or("");
        ev.warn(
            &format!(
                "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {name:?}"
            ),
            pos,
        );
    }
}

/// topk/bottomk/limitk: the selected samples keep their labels.
fn select_k(
    ev: &mut Evaluator<'_>,
    a: &AggregateExpr,
    input: Vec<Sample>,
    k: usize,
) -> Vec<Sample> {
    let mut groups: Vec<Vec<Sample>> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in input {
        // topk and bottomk ignore histograms; limitk keeps them.
        if s.h.is_some() && matches!(a.op, AggregateOp::Topk | AggregateOp::Bottomk) {
            ignored_info(ev, a.op, a.pos);
            continue;
        }
        let gl = group_labels(a, &s.labels);
        let i = *index.entry(gl).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        if let Some(g) = groups.get_mut(i) {
            g.push(s);
        }
    }
    let mut out = Vec::new();
    for mut g in groups {
        match a.op {
            AggregateOp::Topk => {
                // Descending, NaN last.
                g.sort_by(|x, y| cmp_nan_last(y.v, x.v, true));
            }
            AggregateOp::Bottomk => {
                g.sort_by(|x, y| cmp_nan_last(x.v, y.v, false));
            }
            _ => {}
        }
        g.truncate(k);
        out.extend(g);
    }
    out
}

/// Orders `a` before `b` when `a < b`, with NaN always after numbers. With `rev` the
/// arguments are already swapped by the caller, so NaN handling is mirrored.
fn cmp_nan_last(a: f64, b: f64, rev: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => {
            if rev {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        (false, true) => {
            if rev {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// The position of a literal aggregation parameter (literals carry no position): the first
/// character after the `(` that opens the aggregation's arguments.
fn literal_param_pos(query: &str, a: &AggregateExpr) -> PosRange {
    let bytes = query.as_bytes();
    let mut i = a.pos.start + a.op.as_str().len();
    let skip_ws = |mut i: usize| {
        while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        i
    };
    i = skip_ws(i);
    // A `by (…)`/`without (…)` clause written before the arguments.
    let rest = query.get(i..).unwrap_or("");
    if rest.starts_with("by") || rest.starts_with("without") {
        if let Some(close) = rest.find(')') {
            i = skip_ws(i + close + 1);
        }
    }
    if bytes.get(i) == Some(&b'(') {
        i = skip_ws(i + 1);
    }
    if i >= bytes.len() {
        return a.pos;
    }
    PosRange { start: i, end: i }
}

/// Prometheus' `labels.Hash()`: XXH64 of `name 0xff value 0xff …`.
pub(super) fn prometheus_labels_hash(l: &Labels) -> u64 {
    let mut buf = Vec::with_capacity(256);
    for x in l.iter() {
        buf.extend_from_slice(x.name.as_bytes());
        buf.push(0xff);
        buf.extend_from_slice(x.value.as_bytes());
        buf.push(0xff);
    }
    xxh64(&buf)
}

/// XXH64 with seed 0.
fn xxh64(input: &[u8]) -> u64 {
    const P1: u64 = 0x9E37_79B1_85EB_CA87;
    const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    const P3: u64 = 0x1656_67B1_9E37_79F9;
    const P4: u64 = 0x85EB_CA77_C2B2_AE63;
    const P5: u64 = 0x27D4_EB2F_1656_67C5;
    fn round(acc: u64, lane: u64) -> u64 {
        acc.wrapping_add(lane.wrapping_mul(P2))
            .rotate_left(31)
            .wrapping_mul(P1)
    }
    fn merge(acc: u64, v: u64) -> u64 {
        (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4)
    }
    let read64 = |c: &[u8]| {
        let mut b = [0u8; 8];
        b.copy_from_slice(c.get(..8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(b)
    };
    let mut rest = input;
    let mut h: u64;
    if input.len() >= 32 {
        let mut v = [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)];
        while rest.len() >= 32 {
            for (k, lane) in v.iter_mut().enumerate() {
                *lane = round(*lane, read64(rest.get(k * 8..).unwrap_or(&[])));
            }
            rest = rest.get(32..).unwrap_or(&[]);
        }
        h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for lane in v {
            h = merge(h, lane);
        }
    } else {
        h = P5;
    }
    h = h.wrapping_add(input.len() as u64);
    while rest.len() >= 8 {
        h ^= round(0, read64(rest));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = rest.get(8..).unwrap_or(&[]);
    }
    if rest.len() >= 4 {
        let mut b = [0u8; 4];
        b.copy_from_slice(rest.get(..4).unwrap_or(&[0; 4]));
        h ^= u64::from(u32::from_le_bytes(b)).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = rest.get(4..).unwrap_or(&[]);
    }
    for &byte in rest {
        h ^= u64::from(byte).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^= h >> 32;
    h
}

fn ratio_keep(l: &Labels, r: f64) -> bool {
    let offset = (prometheus_labels_hash(l) as f64) / (u64::MAX as f64);
    (r >= 0.0 && offset < r) || (r < 0.0 && offset >= 1.0 + r)
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
pub(super) fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// A histogram as Prometheus' `FloatHistogram.String()` prints it:
/// `{count:20, sum:10, [-2,-1):2, [-0.001,0.001]:2, (0.5,1]:1}` (populated buckets only).
pub(super) fn histogram_string(h: &FloatHistogram) -> String {
    let mut out = format!("{{count:{}, sum:{}", fmt_g(h.count), fmt_g(h.sum));
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        out.push_str(&format!(
            ", {}{},{}{}:{}",
            if b.lower_inclusive { '[' } else { '(' },
            fmt_g(b.lower),
            fmt_g(b.upper),
            if b.upper_inclusive { ']' } else { ')' },
            fmt_g(b.count)
        ));
    }
    out.push('}');
    out
}

fn count_values(a: &AggregateExpr, input: Vec<Sample>, name: &str) -> Vec<Sample> {
    let mut order: Vec<(Labels, f64)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in input {
        let mut gl = group_labels(a, &s.labels);
        let value = match &s.h {
            Some(h) => histogram_string(h),
            None => format_value(s.v),
        };
        gl.set(name, &value);
        match index.get(&gl) {
            Some(&i) => {
                if let Some(e) = order.get_mut(i) {
                    e.1 += 1.0;
                }
            }
            None => {
                index.insert(gl.clone(), order.len());
                order.push((gl, 1.0));
            }
        }
    }
    order
        .into_iter()
        .map(|(labels, v)| Sample {
            labels,
            v,
            h: None,
            drop_name: false,
        })
        .collect()
}

#[cfg(test)]
mod hash_tests {
    use super::*;

    #[test]
    fn xxh64_reference_values() {
        assert_eq!(xxh64(b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a"), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc"), 0x44BC_2CF5_AD77_0999);
        // Longer than one 32-byte stripe.
        assert_eq!(
            xxh64(b"Nobody inspects the spammish repetition"),
            0xFBCE_A83C_8A37_8BF1
        );
    }
}
