//! The catalogue of PromQL functions: names, argument types and return types. The parser uses
//! it to type-check calls; the evaluator dispatches on `FunctionDef::name`.

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

// FUNCTIONS table and `lookup` are filled in by the parser work.
