//! The catalogue of PromQL functions: names, argument types and return types. The parser uses
//! it to type-check calls; the evaluator dispatches on `FunctionDef::name`.
//!
//! The table follows Prometheus 3.x (`promql/parser/functions.go`), experimental functions
//! included. Aggregations (`sum`, `topk`, `limitk`, ...) are not functions and live in
//! [`super::ast::AggregateOp`].

use super::ast::ValueType;

#[derive(Debug, PartialEq, Eq)]
pub struct FunctionDef {
    pub name: &'static str,
    pub arg_types: &'static [ValueType],
    /// 0: exactly `arg_types.len()` arguments. n > 0: up to n trailing arguments may be omitted
    /// (Prometheus' `Variadic`). -1: the last argument type repeats without limit.
    pub variadic: i32,
    pub return_type: ValueType,
    /// Behind Prometheus' `--enable-feature=promql-experimental-functions`.
    pub experimental: bool,
}

const fn def(
    name: &'static str,
    arg_types: &'static [ValueType],
    variadic: i32,
    return_type: ValueType,
    experimental: bool,
) -> FunctionDef {
    FunctionDef {
        name,
        arg_types,
        variadic,
        return_type,
        experimental,
    }
}

/// Every PromQL function, sorted by name (so [`lookup`] can binary-search).
pub static FUNCTIONS: &[FunctionDef] = &[
    def("abs", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("absent", &[ValueType::Vector], 0, ValueType::Vector, false),
    def(
        "absent_over_time",
        &[ValueType::Matrix],
        0,
        ValueType::Vector,
        false,
    ),
    def("acos", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("acosh", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("asin", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("asinh", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("atan", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("atanh", &[ValueType::Vector], 0, ValueType::Vector, false),
    def(
        "avg_over_time",
        &[ValueType::Matrix],
        0,
        ValueType::Vector,
        false,
    ),
    def("ceil", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("changes", &[ValueType::Matrix], 0, ValueType::Vector, false),
    def(
        "clamp",
        &[ValueType::Vector, ValueType::Scalar, ValueType::Scalar],
        0,
        ValueType::Vector,
        false,
    ),
    def(
        "clamp_max",
        &[ValueType::Vector, ValueType::Scalar],
        0,
        ValueType::Vector,
        false,
    ),
    def(
        "clamp_min",
        &[ValueType::Vector, ValueType::Scalar],
        0,
        ValueType::Vector,
        false,
    ),
    def("cos", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("cosh", &[ValueType::Vector], 0, ValueType::Vector, false),
    def(
        "count_over_time",
        &[ValueType::Matrix],
        0,
        ValueType::Vector,
        false,
    ),
    def(
        "day_of_month",
        &[ValueType::Vector],
        1,
        ValueType::Vector,
        false,
    ),
    def(
        "day_of_week",
        &[ValueType::Vector],
        1,
        ValueType::Vector,
        false,
    ),
    def(
        "day_of_year",
        &[ValueType::Vector],
        1,
        ValueType::Vector,
        false,
    ),
    def(
        "days_in_month",
        &[ValueType::Vector],
        1,
        ValueType::Vector,
        false,
    ),
    def("deg", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("delta", &[ValueType::Matrix], 0, ValueType::Vector, false),
    def("deriv", &[ValueType::Matrix], 0, ValueType::Vector, false),
    def(
        "double_exponential_smoothing",
        &[ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
        0,
        ValueType::Vector,
        true,
    ),
    def("end", &[], 0, ValueType::Scalar, true),
    def("exp", &[ValueType::Vector], 0, ValueType::Vector, false),
    def(
        "first_over_time",
        &[ValueType::Matrix],
        0,
        ValueType::Vector,
        true,
    ),
    def("floor", &[ValueType::Vector], 0, ValueType::Vector, false),
    def(
        "histogram_avg",
        &[ValueType::Vector],
        0,
        ValueType::Vector,
        false,
    ),
    def(
        "histogram_count",
        &[ValueType::Vector],
        0,
        ValueType::Vector,
        false,
    ),
    def(
        "histogram_fraction",
        &[ValueType::Scalar, ValueType::Scalar, ValueType::Vector],
        0,
        ValueType::Vector,
        false,
    ),
    def(
        "histogram_quantile",
        &[ValueType::Scalar, ValueType::Vector],
        0,
        ValueType::Vector,
        false,
    ),
    def(
        "histogram_quantiles",
        &[
            ValueType::Vector,
            ValueType::String,
            ValueType::Scalar,
            ValueType::Scalar,
        ],
        9,
        ValueType::Vector,
        true,
    ),
    def(
        "histogram_stddev",
        &[ValueType::Vector],
        0,
        ValueType::Vector,
        false,
    ),
    def(
        "histogram_stdvar",
        &[ValueType::Vector],
        0,
        ValueType::Vector,
        false,
    ),
    def(
        "histogram_sum",
        &[ValueType::Vector],
        0,
        ValueType::Vector,
        false,
    ),
    def("hour", &[ValueType::Vector], 1, ValueType::Vector, false),
    def("idelta", &[ValueType::Matrix], 0, ValueType::Vector, false),
    def(
        "increase",
        &[ValueType::Matrix],
        0,
        ValueType::Vector,
        false,
    ),
    def(
        "info",
        &[ValueType::Vector, ValueType::Vector],
        1,
        ValueType::Vector,
        true,
    ),
    def(
        "integral",
        &[ValueType::Matrix, ValueType::Scalar],
        1,
        ValueType::Vector,
        true,
    ),
    def("irate", &[ValueType::Matrix], 0, ValueType::Vector, false),
    def(
        "label_join",
        &[
            ValueType::Vector,
            ValueType::String,
            ValueType::String,
            ValueType::String,
        ],
        -1,
        ValueType::Vector,
        false,
    ),
    def(
        "label_replace",
        &[
            ValueType::Vector,
            ValueType::String,
            ValueType::String,
            ValueType::String,
            ValueType::String,
        ],
        0,
        ValueType::Vector,
        false,
    ),
    def(
        "last_over_time",
        &[ValueType::Matrix],
        0,
        ValueType::Vector,
        false,
    ),
    def("ln", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("log10", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("log2", &[ValueType::Vector], 0, ValueType::Vector, false),
    def(
        "mad_over_time",
        &[ValueType::Matrix],
        0,
        ValueType::Vector,
        true,
    ),
    def(
        "max_of",
        &[ValueType::Scalar, ValueType::Scalar],
        0,
        ValueType::Scalar,
        true,
    ),
    def(
        "max_over_time",
        &[ValueType::Matrix],
        0,
        ValueType::Vector,
        false,
    ),
    def(
        "min_of",
        &[ValueType::Scalar, ValueType::Scalar],
        0,
        ValueType::Scalar,
        true,
    ),
    def(
        "min_over_time",
        &[ValueType::Matrix],
        0,
        ValueType::Vector,
        false,
    ),
    def("minute", &[ValueType::Vector], 1, ValueType::Vector, false),
    def("month", &[ValueType::Vector], 1, ValueType::Vector, false),
    def("pi", &[], 0, ValueType::Scalar, false),
    def(
        "predict_linear",
        &[ValueType::Matrix, ValueType::Scalar],
        0,
        ValueType::Vector,
        false,
    ),
    def(
        "present_over_time",
        &[ValueType::Matrix],
        0,
        ValueType::Vector,
        false,
    ),
    def(
        "quantile_over_time",
        &[ValueType::Scalar, ValueType::Matrix],
        0,
        ValueType::Vector,
        false,
    ),
    def("rad", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("range", &[], 0, ValueType::Scalar, true),
    def("rate", &[ValueType::Matrix], 0, ValueType::Vector, false),
    def("resets", &[ValueType::Matrix], 0, ValueType::Vector, false),
    def(
        "round",
        &[ValueType::Vector, ValueType::Scalar],
        1,
        ValueType::Vector,
        false,
    ),
    def("scalar", &[ValueType::Vector], 0, ValueType::Scalar, false),
    def("sgn", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("sin", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("sinh", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("sort", &[ValueType::Vector], 0, ValueType::Vector, false),
    def(
        "sort_by_label",
        &[ValueType::Vector, ValueType::String],
        -1,
        ValueType::Vector,
        true,
    ),
    def(
        "sort_by_label_desc",
        &[ValueType::Vector, ValueType::String],
        -1,
        ValueType::Vector,
        true,
    ),
    def(
        "sort_desc",
        &[ValueType::Vector],
        0,
        ValueType::Vector,
        false,
    ),
    def("sqrt", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("start", &[], 0, ValueType::Scalar, true),
    def(
        "start_timestamp",
        &[ValueType::Vector],
        0,
        ValueType::Vector,
        true,
    ),
    def(
        "stddev_over_time",
        &[ValueType::Matrix],
        0,
        ValueType::Vector,
        false,
    ),
    def(
        "stdvar_over_time",
        &[ValueType::Matrix],
        0,
        ValueType::Vector,
        false,
    ),
    def("step", &[], 0, ValueType::Scalar, true),
    def(
        "sum_over_time",
        &[ValueType::Matrix],
        0,
        ValueType::Vector,
        false,
    ),
    def("tan", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("tanh", &[ValueType::Vector], 0, ValueType::Vector, false),
    def("time", &[], 0, ValueType::Scalar, false),
    def(
        "timestamp",
        &[ValueType::Vector],
        0,
        ValueType::Vector,
        false,
    ),
    def(
        "ts_of_first_over_time",
        &[ValueType::Matrix],
        0,
        ValueType::Vector,
        true,
    ),
    def(
        "ts_of_last_over_time",
        &[ValueType::Matrix],
        0,
        ValueType::Vector,
        true,
    ),
    def(
        "ts_of_max_over_time",
        &[ValueType::Matrix],
        0,
        ValueType::Vector,
        true,
    ),
    def(
        "ts_of_min_over_time",
        &[ValueType::Matrix],
        0,
        ValueType::Vector,
        true,
    ),
    def("vector", &[ValueType::Scalar], 0, ValueType::Vector, false),
    def("year", &[ValueType::Vector], 1, ValueType::Vector, false),
];

/// The function called `name`, if there is one. Names are case-sensitive.
pub fn lookup(name: &str) -> Option<&'static FunctionDef> {
    FUNCTIONS
        .binary_search_by(|f| f.name.cmp(name))
        .ok()
        .map(|i| &FUNCTIONS[i])
}

impl FunctionDef {
    /// The smallest number of arguments a call may have.
    pub fn min_args(&self) -> usize {
        if self.variadic == 0 {
            self.arg_types.len()
        } else {
            self.arg_types.len().saturating_sub(1)
        }
    }

    /// The largest number of arguments a call may have (`None`: unlimited).
    pub fn max_args(&self) -> Option<usize> {
        match self.variadic {
            0 => Some(self.arg_types.len()),
            n if n > 0 => Some(self.arg_types.len() - 1 + n as usize),
            _ => None,
        }
    }

    /// The expected type of argument `i` (repeating the last type for variadic functions).
    pub fn arg_type(&self, i: usize) -> Option<ValueType> {
        match self.arg_types.get(i) {
            Some(t) => Some(*t),
            None if self.variadic != 0 => self.arg_types.last().copied(),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for w in FUNCTIONS.windows(2) {
            assert!(w[0].name < w[1].name, "{} >= {}", w[0].name, w[1].name);
        }
    }

    #[test]
    fn lookup_finds_functions() {
        assert_eq!(
            lookup("rate").map(|f| f.arg_types),
            Some(&[ValueType::Matrix][..])
        );
        assert_eq!(lookup("label_join").map(|f| f.variadic), Some(-1));
        assert_eq!(
            lookup("histogram_quantiles").and_then(|f| f.max_args()),
            Some(12)
        );
        assert_eq!(lookup("round").map(|f| f.min_args()), Some(1));
        assert!(lookup("holt_winters").is_none());
        assert!(lookup("double_exponential_smoothing").is_some_and(|f| f.experimental));
        assert!(lookup("Rate").is_none());
        assert!(lookup("sum").is_none());
        assert_eq!(
            lookup("time").map(|f| f.return_type),
            Some(ValueType::Scalar)
        );
    }
}
