//! `sextant tsdb list|analyze|dump`: offline inspection of a data directory, like `promtool tsdb`.
//! The directory is opened read-only (blocks as they are, the WAL replayed into memory), so the
//! commands are safe on a directory a stopped server owns and change nothing in it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use sextant_query::promql::{parse, Expr};
use sextant_storage::{BlockMeta, Db, DbOptions, FloatHistogram, Labels, Matcher, SeriesSource};

#[derive(Args, Debug)]
pub struct TsdbArgs {
    #[command(subcommand)]
    command: TsdbCommand,
}

#[derive(Subcommand, Debug)]
enum TsdbCommand {
    /// List the blocks: id, time range, duration, series, samples, chunks and size.
    List {
        /// The data directory.
        #[arg(long = "data-dir", default_value = "./data")]
        data_dir: PathBuf,
        /// Times as RFC 3339 and sizes with units.
        #[arg(long)]
        human: bool,
    },
    /// Series and samples, the labels and metric names with the highest cardinality, and churn.
    Analyze {
        #[arg(long = "data-dir", default_value = "./data")]
        data_dir: PathBuf,
        /// How many entries each top list shows.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Print samples as `{labels} value timestamp_ms` lines.
    Dump {
        #[arg(long = "data-dir", default_value = "./data")]
        data_dir: PathBuf,
        /// Series selector (repeatable); every series when absent.
        #[arg(long = "match")]
        matchers: Vec<String>,
        /// Earliest timestamp to dump, in milliseconds.
        #[arg(long = "min-time", default_value_t = i64::MIN, allow_hyphen_values = true)]
        min_time: i64,
        /// Latest timestamp to dump, in milliseconds.
        #[arg(long = "max-time", default_value_t = i64::MAX, allow_hyphen_values = true)]
        max_time: i64,
    },
}

/// Runs a `tsdb` subcommand; errors go to stderr with exit code 1.
pub fn run(args: TsdbArgs) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let result = match args.command {
        TsdbCommand::List { data_dir, human } => {
            open(&data_dir).and_then(|db| list(&db, human, &mut out))
        }
        TsdbCommand::Analyze { data_dir, limit } => {
            open(&data_dir).and_then(|db| analyze(&db, limit, &mut out))
        }
        TsdbCommand::Dump {
            data_dir,
            matchers,
            min_time,
            max_time,
        } => selectors(&matchers)
            .and_then(|sets| Ok((open(&data_dir)?, sets)))
            .and_then(|(db, sets)| dump(&db, &sets, min_time, max_time, &mut out)),
    };
    match result.and_then(|()| out.flush().map_err(|e| e.to_string())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sextant tsdb: {e}");
            ExitCode::FAILURE
        }
    }
}

fn open(dir: &Path) -> Result<Db, String> {
    let opts = DbOptions {
        read_only: true,
        ..DbOptions::default()
    };
    Db::open(dir, opts).map_err(|e| format!("opening {}: {e}", dir.display()))
}

/// Parses `--match` values; each must be a plain vector selector.
fn selectors(texts: &[String]) -> Result<Vec<Vec<Matcher>>, String> {
    if texts.is_empty() {
        return Ok(vec![vec![]]);
    }
    texts
        .iter()
        .map(|t| match parse(t) {
            Ok(Expr::VectorSelector(vs)) if vs.offset == 0 && vs.at.is_none() => Ok(vs.matchers),
            Ok(_) => Err(format!("--match {t:?}: expected a vector selector")),
            Err(e) => Err(format!("--match {t:?}: {e}")),
        })
        .collect()
}

fn io_err(e: std::io::Error) -> String {
    e.to_string()
}

/// Prints rows as columns separated by at least three spaces (the first row is the header).
fn table(rows: &[Vec<String>], out: &mut impl std::io::Write) -> Result<(), String> {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == columns {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}   ", w = widths[c]);
            }
        }
        writeln!(out, "{}", line.trim_end()).map_err(io_err)?;
    }
    Ok(())
}

fn list(db: &Db, human: bool, out: &mut impl std::io::Write) -> Result<(), String> {
    let mut rows = vec![[
        "BLOCK ULID",
        "MIN TIME",
        "MAX TIME",
        "DURATION",
        "NUM SERIES",
        "NUM SAMPLES",
        "NUM CHUNKS",
        "SIZE",
    ]
    .map(String::from)
    .to_vec()];
    for b in db.blocks() {
        let time = |t: i64| if human { rfc3339(t) } else { t.to_string() };
        let size = if human {
            human_bytes(b.stats.num_bytes)
        } else {
            b.stats.num_bytes.to_string()
        };
        rows.push(vec![
            b.ulid.clone(),
            time(b.min_time),
            time(b.max_time),
            go_duration(b.max_time - b.min_time),
            b.stats.num_series.to_string(),
            b.stats.num_samples.to_string(),
            b.stats.num_chunks.to_string(),
            size,
        ]);
    }
    table(&rows, out)
}

fn analyze(db: &Db, limit: usize, out: &mut impl std::io::Write) -> Result<(), String> {
    let err = |e: sextant_storage::StorageError| e.to_string();
    let all = db.series(&[], i64::MIN, i64::MAX).map_err(err)?;
    let blocks = db.blocks();
    let head = db.head_stats();
    let block_samples: u64 = blocks.iter().map(|b| b.stats.num_samples).sum();
    let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut by_metric: HashMap<&str, u64> = HashMap::new();
    let mut pairs = 0usize;
    for labels in &all {
        for l in labels {
            values.entry(&l.name).or_default().insert(&l.value);
            pairs += 1;
        }
        if let Some(name) = labels.metric_name() {
            *by_metric.entry(name).or_default() += 1;
        }
    }
    let w = |out: &mut dyn std::io::Write, s: String| writeln!(out, "{s}").map_err(io_err);
    w(out, format!("Blocks: {}", blocks.len()))?;
    w(out, format!("Series: {}", all.len()))?;
    w(
        out,
        format!(
            "Samples: {} ({block_samples} in blocks, {} in the head)",
            block_samples + head.num_samples,
            head.num_samples
        ),
    )?;
    w(out, format!("Label names: {}", values.len()))?;
    let distinct: usize = values.values().map(BTreeSet::len).sum();
    w(
        out,
        format!("Label pairs: {distinct} distinct, {pairs} in all series"),
    )?;

    let top = |mut v: Vec<(u64, String)>| {
        v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        v.truncate(limit);
        v
    };
    let sections = [
        (
            "Highest cardinality labels (distinct values):",
            top(values
                .iter()
                .map(|(n, v)| (v.len() as u64, n.to_string()))
                .collect()),
        ),
        (
            "Label names with highest cumulative label value length (bytes):",
            top(values
                .iter()
                .map(|(n, v)| (v.iter().map(|s| s.len() as u64).sum(), n.to_string()))
                .collect()),
        ),
        (
            "Highest cardinality metric names (series):",
            top(by_metric.iter().map(|(n, c)| (*c, n.to_string())).collect()),
        ),
    ];
    for (title, entries) in sections {
        w(out, String::new())?;
        w(out, title.to_string())?;
        for (count, name) in entries {
            w(out, format!("{count} {name}"))?;
        }
    }
    churn(db, &blocks, all.len(), out)
}

/// Series per block (and in the head) against distinct series overall: how often series are
/// replaced by new ones.
fn churn(
    db: &Db,
    blocks: &[BlockMeta],
    total: usize,
    out: &mut impl std::io::Write,
) -> Result<(), String> {
    let err = |e: sextant_storage::StorageError| e.to_string();
    let mut rows = vec![["BLOCK", "MIN TIME", "MAX TIME", "SERIES", "NEW", "GONE"]
        .map(String::from)
        .to_vec()];
    let mut previous: BTreeSet<Labels> = BTreeSet::new();
    let mut sum = 0usize;
    let mut ranges: Vec<(String, i64, i64)> = blocks
        .iter()
        .map(|b| (b.ulid.clone(), b.min_time, b.max_time - 1))
        .collect();
    let head = db.head_stats();
    if let (Some(lo), Some(hi)) = (head.min_time, head.max_time) {
        let after = blocks.iter().map(|b| b.max_time).max().unwrap_or(i64::MIN);
        ranges.push(("head".to_string(), lo.max(after), hi));
    }
    for (id, lo, hi) in ranges {
        let now: BTreeSet<Labels> = db.series(&[], lo, hi).map_err(err)?.into_iter().collect();
        sum += now.len();
        rows.push(vec![
            id,
            lo.to_string(),
            (hi + 1).to_string(),
            now.len().to_string(),
            now.difference(&previous).count().to_string(),
            previous.difference(&now).count().to_string(),
        ]);
        previous = now;
    }
    writeln!(out, "\nChurn (series per block vs. in all blocks):").map_err(io_err)?;
    table(&rows, out)?;
    let ratio = if total == 0 {
        0.0
    } else {
        sum as f64 / total as f64
    };
    writeln!(
        out,
        "Series in all blocks: {total}; sum of series per block: {sum}; ratio: {ratio:.2}"
    )
    .map_err(io_err)
}

fn dump(
    db: &Db,
    sets: &[Vec<Matcher>],
    mint: i64,
    maxt: i64,
    out: &mut impl std::io::Write,
) -> Result<(), String> {
    let mut seen: BTreeSet<Labels> = BTreeSet::new();
    for matchers in sets {
        let series = db.select(matchers, mint, maxt).map_err(|e| e.to_string())?;
        for s in series {
            if sets.len() > 1 && !seen.insert(s.labels.clone()) {
                continue;
            }
            let labels = promtool_labels(&s.labels);
            // Floats and histograms share one timeline and never a timestamp: merge them.
            let (mut floats, mut hists) =
                (s.samples.iter().peekable(), s.histograms.iter().peekable());
            loop {
                match (floats.peek(), hists.peek()) {
                    (Some(f), Some(h)) if f.t < h.t => {
                        writeln!(out, "{labels} {} {}", go_g(f.v), f.t).map_err(io_err)?;
                        floats.next();
                    }
                    (_, Some(h)) => {
                        writeln!(out, "{labels} {} {}", histogram_text(&h.h), h.t)
                            .map_err(io_err)?;
                        hists.next();
                    }
                    (Some(f), None) => {
                        writeln!(out, "{labels} {} {}", go_g(f.v), f.t).map_err(io_err)?;
                        floats.next();
                    }
                    (None, None) => break,
                }
            }
        }
    }
    Ok(())
}

/// A native histogram as promtool prints it: `{count:4, sum:10, [-1,-0.5):1, [-0.001,0.001]:2, (1,2]:1}`
/// — count, sum, then every non-empty bucket in ascending order with its boundary brackets.
fn histogram_text(h: &FloatHistogram) -> String {
    let mut s = format!("{{count:{}, sum:{}", go_g(h.count), go_g(h.sum));
    for b in h.all_buckets().filter(|b| b.count != 0.0) {
        let _ = write!(
            s,
            ", {}{},{}{}:{}",
            if b.lower_inclusive { '[' } else { '(' },
            go_g(b.lower),
            go_g(b.upper),
            if b.upper_inclusive { ']' } else { ')' },
            go_g(b.count)
        );
    }
    s.push('}');
    s
}

/// `{a="1", b="2"}` with Go-quoted values, as Prometheus' `labels.String()`.
fn promtool_labels(labels: &Labels) -> String {
    let mut s = String::from("{");
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&l.name);
        s.push('=');
        s.push('"');
        for c in l.value.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '\n' => s.push_str("\\n"),
                '\t' => s.push_str("\\t"),
                '\r' => s.push_str("\\r"),
                c if c.is_control() => {
                    let _ = write!(s, "\\x{:02x}", c as u32);
                }
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

/// Go's `%g` for a float64: the shortest representation, in exponent form when the decimal
/// exponent is below -4 or at least 6 (Go's rule for shortest output).
fn go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let sci = format!("{:e}", v);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if neg { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}{rest}e{esign}{:02}", exp.abs());
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
    }
}

/// Milliseconds as Go prints a `time.Duration`: `2h0m0s`, `1m30s`, `1.5s`, `500ms`, `0s`.
fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    if ms < 1000 {
        return format!("{sign}{ms}ms");
    }
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => format!("{sign}{secs}"),
        (0, m) => format!("{sign}{m}m{secs}"),
        (h, m) => format!("{sign}{h}h{m}m{secs}"),
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2020-09-13T12:26:40.5Z`).
fn rfc3339(ms: i64) -> String {
    let (secs, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (eras of 400 years starting in March).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let frac = if frac == 0 {
        String::new()
    } else {
        format!(".{}", format!("{frac:03}").trim_end_matches('0'))
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{frac}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Bytes with binary units (`512B`, `1.5KiB`, `3.2MiB`).
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        let cases = [
            (1.0, "1"),
            (0.5, "0.5"),
            (-2.25, "-2.25"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001234, "1.234e-05"),
            (1e21, "1e+21"),
            (0.0, "0"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
        ];
        for (v, want) in cases {
            assert_eq!(go_g(v), want, "{v}");
        }
        assert_eq!(go_duration(2 * 3_600_000), "2h0m0s");
        assert_eq!(go_duration(90_500), "1m30.5s");
        assert_eq!(go_duration(250), "250ms");
        assert_eq!(rfc3339(1_600_000_000_500), "2020-09-13T12:26:40.5Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(human_bytes(1536), "1.5KiB");
        let l = Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]);
        assert_eq!(promtool_labels(&l), r#"{__name__="up", job="a\"b"}"#);
    }
}
