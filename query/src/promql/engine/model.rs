//! Intermediate values of the evaluator and the annotation collector.

use sextant_storage::{FloatHistogram, Labels};

use crate::promql::ast::PosRange;

/// One element of an instant vector at the current evaluation step.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Sample {
    pub labels: Labels,
    /// The float value; unused (0) when `h` is set.
    pub v: f64,
    /// A native histogram sample (then `v` is meaningless).
    pub h: Option<Box<FloatHistogram>>,
    /// Delayed name removal: `__name__` is dropped when the query finishes.
    pub drop_name: bool,
}

impl Sample {
    /// A float sample.
    pub fn float(labels: Labels, v: f64) -> Sample {
        Sample {
            labels,
            v,
            h: None,
            drop_name: false,
        }
    }

    /// A histogram sample.
    pub fn hist(labels: Labels, h: FloatHistogram) -> Sample {
        Sample {
            labels,
            v: 0.0,
            h: Some(Box::new(h)),
            drop_name: false,
        }
    }
}

/// One series of a range vector.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Series {
    pub labels: Labels,
    /// Float points, sorted by time.
    pub points: Vec<(i64, f64)>,
    /// Histogram points, sorted by time (never at a timestamp of `points`).
    pub hpoints: Vec<(i64, FloatHistogram)>,
    pub drop_name: bool,
}

impl Series {
    /// An empty series.
    pub fn new(labels: Labels) -> Series {
        Series {
            labels,
            points: Vec::new(),
            hpoints: Vec::new(),
            drop_name: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty() && self.hpoints.is_empty()
    }
}

/// The value of a sub-expression at one step.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Val {
    Scalar(f64),
    Str(String),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

/// Warnings and infos, deduplicated, in the order they were raised.
#[derive(Default, Debug)]
pub(super) struct Annotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

impl Annotations {
    pub fn warn(&mut self, query: &str, msg: &str, pos: PosRange) {
        let s = format!("PromQL warning: {msg} ({})", line_col(query, pos.start));
        if !self.warnings.contains(&s) {
            self.warnings.push(s);
        }
    }

    pub fn info(&mut self, query: &str, msg: &str, pos: PosRange) {
        let s = format!("PromQL info: {msg} ({})", line_col(query, pos.start));
        if !self.infos.contains(&s) {
            self.infos.push(s);
        }
    }
}

/// 1-based `line:col` of byte offset `pos` in `query`.
pub(super) fn line_col(query: &str, pos: usize) -> String {
    let bytes = query.as_bytes();
    let end = pos.min(bytes.len());
    let mut line = 1;
    let mut line_start = 0;
    for (i, b) in bytes.iter().enumerate().take(end) {
        if *b == b'\n' {
            line += 1;
            line_start = i + 1;
        }
    }
    format!("{}:{}", line, end - line_start + 1)
}

/// Go's `%g`-like formatting of floats used in messages.
pub(crate) fn fmt_g(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        let s = format!("{v}");
        let exp = if v == 0.0 {
            0
        } else {
            v.abs().log10().floor() as i32
        };
        if !(-4..21).contains(&exp) {
            let e = format!("{v:e}");
            // Go prints e+06 style exponents.
            match e.split_once('e') {
                Some((m, x)) => {
                    let (sign, digits) = match x.strip_prefix('-') {
                        Some(d) => ('-', d),
                        None => ('+', x),
                    };
                    let digits = if digits.len() < 2 {
                        format!("0{digits}")
                    } else {
                        digits.to_string()
                    };
                    format!("{m}e{sign}{digits}")
                }
                None => e,
            }
        } else {
            s
        }
    }
}
