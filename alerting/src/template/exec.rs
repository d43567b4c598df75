//! Executes a parsed template tree against the alert data: pipelines, variables with Go's
//! scoping, `if`/`range`/`with`, `template`, `break`/`continue`.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::funcs;
use super::parse::{Arg, Branch, Cmd, Node, Pipe, Tree};
use super::value::{RootData, Value};
use super::{TemplateData, TemplateQuery};

/// Failure with the template line it happened on.
pub(crate) type ExecError = (usize, String);

/// How deep `{{template}}`/`tmpl` calls may nest. Go allows 100000 on its growable stacks;
/// ours are fixed, so recursion is cut far earlier (with an error, never a stack overflow).
const MAX_DEPTH: usize = 64;

/// Largest integer `range` may iterate over.
const MAX_RANGE_INT: i64 = 1_000_000;

/// Everything functions may need while executing.
pub(crate) struct Ctx<'a> {
    pub name: &'a str,
    pub tree: &'a Tree,
    pub data: &'a TemplateData,
    pub query: &'a dyn TemplateQuery,
    depth: usize,
}

/// Control flow out of a list.
enum Flow {
    Normal,
    Break,
    Continue,
}

pub(crate) fn execute(
    name: &str,
    tree: &Tree,
    data: &TemplateData,
    query: &dyn TemplateQuery,
) -> Result<String, ExecError> {
    let labels = Rc::new(data.labels.clone());
    let root = Value::Root(Rc::new(RootData {
        labels: labels.clone(),
        external_labels: Rc::new(data.external_labels.clone()),
        external_url: data.external_url.clone(),
        value: data.value,
    }));
    let mut vars = vec![
        ("$".to_string(), root.clone()),
        ("$labels".to_string(), Value::Labels(labels)),
        (
            "$externalLabels".to_string(),
            Value::Labels(Rc::new(data.external_labels.clone())),
        ),
        (
            "$externalURL".to_string(),
            Value::Str(data.external_url.clone()),
        ),
        ("$value".to_string(), Value::Float(data.value)),
    ];
    let mut ctx = Ctx {
        name,
        tree,
        data,
        query,
        depth: 0,
    };
    let mut out = String::new();
    ctx.list(&tree.root, &root, &mut vars, &mut out)?;
    Ok(out)
}

/// Executes the defined template `name` with `dot` (the `tmpl` function and `{{template}}`).
pub(crate) fn run_defined(
    ctx: &mut Ctx<'_>,
    line: usize,
    name: &str,
    dot: &Value,
) -> Result<String, ExecError> {
    let body = ctx.tree.defs.get(name).ok_or_else(|| {
        (
            line,
            format!(
                "template: no template {name:?} associated with template {:?}",
                ctx.name
            ),
        )
    })?;
    if ctx.depth >= MAX_DEPTH {
        return Err((line, "exceeded maximum template depth".into()));
    }
    ctx.depth += 1;
    let mut vars = vec![("$".to_string(), dot.clone())];
    let mut out = String::new();
    let r = ctx.list(body, dot, &mut vars, &mut out);
    ctx.depth -= 1;
    r.map(|_| out)
}

impl Ctx<'_> {
    fn list(
        &mut self,
        nodes: &[Node],
        dot: &Value,
        vars: &mut Vec<(String, Value)>,
        out: &mut String,
    ) -> Result<Flow, ExecError> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot, vars)?;
                    if p.decl.is_empty() {
                        out.push_str(&v.print());
                    }
                }
                Node::If(b) => {
                    let mark = vars.len();
                    let v = self.pipe(&b.pipe, dot, vars)?;
                    let flow = if v.truth() {
                        self.list(&b.list, dot, vars, out)?
                    } else if let Some(e) = &b.else_list {
                        self.list(e, dot, vars, out)?
                    } else {
                        Flow::Normal
                    };
                    vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::With(b) => {
                    let mark = vars.len();
                    let v = self.pipe(&b.pipe, dot, vars)?;
                    let flow = if v.truth() {
                        self.list(&b.list, &v, vars, out)?
                    } else if let Some(e) = &b.else_list {
                        self.list(e, dot, vars, out)?
                    } else {
                        Flow::Normal
                    };
                    vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range(b) => self.range(b, dot, vars, out)?,
                Node::Template { line, name, pipe } => {
                    let d = match pipe {
                        Some(p) => self.pipe(p, dot, vars)?,
                        None => Value::Nil,
                    };
                    let s = run_defined(self, *line, name, &d)?;
                    out.push_str(&s);
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn range(
        &mut self,
        b: &Branch,
        dot: &Value,
        vars: &mut Vec<(String, Value)>,
        out: &mut String,
    ) -> Result<(), ExecError> {
        let line = b.pipe.line;
        let mark = vars.len();
        // The pipeline's declarations are bound per element, not to the pipeline's value.
        let undecl = Pipe {
            line,
            decl: Vec::new(),
            is_assign: false,
            cmds: b.pipe.cmds.clone(),
        };
        let v = self.pipe(&undecl, dot, vars)?;
        let items: Vec<(Value, Value)> = match &v {
            Value::Samples(s) => s
                .iter()
                .enumerate()
                .map(|(i, x)| (Value::Int(i as i64), Value::Sample(Rc::new(x.clone()))))
                .collect(),
            Value::Labels(m) => m
                .iter()
                .map(|(k, x)| (Value::Str(k.clone()), Value::Str(x.clone())))
                .collect(),
            Value::Map(m) => m
                .iter()
                .map(|(k, x)| (Value::Str(k.clone()), x.clone()))
                .collect(),
            Value::Int(n) if *n > MAX_RANGE_INT => {
                return Err((
                    line,
                    format!("range over {n} is too large (limit {MAX_RANGE_INT})"),
                ));
            }
            Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
            Value::Nil => Vec::new(),
            other => {
                return Err((line, format!("range can't iterate over {}", other.print())));
            }
        };
        if items.is_empty() {
            if let Some(e) = &b.else_list {
                self.list(e, dot, vars, out)?;
            }
            vars.truncate(mark);
            return Ok(());
        }
        for (k, elem) in items {
            match b.pipe.decl.len() {
                0 => {}
                1 => vars.push((b.pipe.decl[0].clone(), elem.clone())),
                _ => {
                    vars.push((b.pipe.decl[0].clone(), k));
                    vars.push((b.pipe.decl[1].clone(), elem.clone()));
                }
            }
            let flow = self.list(&b.list, &elem, vars, out)?;
            vars.truncate(mark);
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        Ok(())
    }

    pub(crate) fn pipe(
        &mut self,
        p: &Pipe,
        dot: &Value,
        vars: &mut Vec<(String, Value)>,
    ) -> Result<Value, ExecError> {
        let mut v: Option<Value> = None;
        for c in &p.cmds {
            v = Some(self.cmd(c, p.line, dot, vars, v)?);
        }
        let v = v.unwrap_or(Value::Nil);
        for name in &p.decl {
            if p.is_assign {
                if let Some(slot) = vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = v.clone();
                }
            } else {
                vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn cmd(
        &mut self,
        c: &Cmd,
        line: usize,
        dot: &Value,
        vars: &mut Vec<(String, Value)>,
        fin: Option<Value>,
    ) -> Result<Value, ExecError> {
        let Some(first) = c.args.first() else {
            return Err((line, "empty command".into()));
        };
        if let Arg::Func(name) = first {
            let rest = &c.args[1..];
            // `and`/`or` evaluate their arguments lazily.
            if name == "and" || name == "or" {
                let want = name == "or";
                let mut last = Value::Nil;
                let count = rest.len() + usize::from(fin.is_some());
                if count == 0 {
                    return Err((
                        line,
                        format!("wrong number of args for {name}: want at least 1 got 0"),
                    ));
                }
                for a in rest {
                    last = self.arg(a, line, dot, vars)?;
                    if last.truth() == want {
                        return Ok(last);
                    }
                }
                if let Some(f) = fin {
                    last = f;
                }
                return Ok(last);
            }
            let mut args = Vec::with_capacity(rest.len() + 1);
            for a in rest {
                args.push(self.arg(a, line, dot, vars)?);
            }
            if let Some(f) = fin {
                args.push(f);
            }
            return funcs::call(self, name, args, dot).map_err(|e| (line, e));
        }
        if c.args.len() > 1 || fin.is_some() {
            return Err((
                line,
                format!("can't give argument to non-function {}", describe(first)),
            ));
        }
        self.arg(first, line, dot, vars)
    }

    fn arg(
        &mut self,
        a: &Arg,
        line: usize,
        dot: &Value,
        vars: &mut Vec<(String, Value)>,
    ) -> Result<Value, ExecError> {
        Ok(match a {
            Arg::Dot(fields) => chain(dot.clone(), fields).map_err(|e| (line, e))?,
            Arg::Var(name, fields) => {
                let v = vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| (line, format!("undefined variable: {name}")))?;
                chain(v, fields).map_err(|e| (line, e))?
            }
            Arg::Func(name) => funcs::call(self, name, Vec::new(), dot).map_err(|e| (line, e))?,
            Arg::Str(s) => Value::Str(s.clone()),
            Arg::Int(i) => Value::Int(*i),
            Arg::Float(f) => Value::Float(*f),
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Nil => return Err((line, "nil is not a command".into())),
            Arg::Sub(p, fields) => {
                let v = self.pipe(p, dot, vars)?;
                chain(v, fields).map_err(|e| (line, e))?
            }
        })
    }
}

fn chain(mut v: Value, fields: &[String]) -> Result<Value, String> {
    for f in fields {
        v = v.field(f)?;
    }
    Ok(v)
}

fn describe(a: &Arg) -> String {
    match a {
        Arg::Dot(f) if f.is_empty() => ".".into(),
        Arg::Dot(f) => format!(".{}", f.join(".")),
        Arg::Var(v, f) if f.is_empty() => v.clone(),
        Arg::Var(v, f) => format!("{v}.{}", f.join(".")),
        Arg::Str(s) => format!("{s:?}"),
        Arg::Int(i) => i.to_string(),
        Arg::Float(x) => x.to_string(),
        Arg::Bool(b) => b.to_string(),
        _ => "value".into(),
    }
}

/// Builds the `args` map: `arg0`, `arg1`, ….
pub(crate) fn args_map(args: Vec<Value>) -> Value {
    let m: BTreeMap<String, Value> = args
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("arg{i}"), v))
        .collect();
    Value::Map(Rc::new(m))
}
