//! The parser of Go's text/template syntax: builds the node tree, resolves `else if`/`else
//! with` chains, collects `{{define}}`d templates and checks at parse time, as Go does, that
//! every variable is declared and every function exists.

use std::collections::HashMap;

use super::lex::{Tok, TokKind};

/// A parsed node of a template body.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Text(String),
    /// `{{pipeline}}`: prints the value unless the pipeline declares variables.
    Action(Pipe),
    If(Branch),
    Range(Branch),
    With(Branch),
    /// `{{template "name" pipeline}}`
    Template {
        line: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

/// The body of `if`, `range` and `with`.
#[derive(Clone, Debug)]
pub(crate) struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

/// A pipeline: optional variable declarations, then commands joined by `|`.
#[derive(Clone, Debug)]
pub(crate) struct Pipe {
    pub line: usize,
    /// Declared (`:=`) or assigned (`=`) variables, with their `$`.
    pub decl: Vec<String>,
    pub is_assign: bool,
    pub cmds: Vec<Cmd>,
}

/// One command: its arguments; the first is the function when it is an identifier.
#[derive(Clone, Debug)]
pub(crate) struct Cmd {
    pub args: Vec<Arg>,
}

/// One operand.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    /// `.` followed by zero or more field names (`.A.B`).
    Dot(Vec<String>),
    /// `$x.A.B`
    Var(String, Vec<String>),
    /// A function name.
    Func(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    /// `(pipeline).A.B`
    Sub(Box<Pipe>, Vec<String>),
}

/// A parsed template: its main body and the templates it `define`s.
#[derive(Clone, Debug)]
pub(crate) struct Tree {
    pub root: Vec<Node>,
    pub defs: HashMap<String, Vec<Node>>,
}

/// Parses tokens into a tree. `is_func` says whether a name is a known function;
/// `predeclared` are the variables available at top level besides `$`.
pub(crate) fn parse(
    toks: Vec<Tok>,
    is_func: &dyn Fn(&str) -> bool,
    predeclared: &[&str],
) -> Result<Tree, (usize, String)> {
    let mut p = Parser {
        toks,
        i: 0,
        vars: vec!["$".to_string()],
        is_func,
        defs: HashMap::new(),
        range_depth: 0,
        depth: 0,
    };
    p.vars.extend(predeclared.iter().map(|s| s.to_string()));
    let (root, end) = p.list()?;
    match end {
        End::Eof => {}
        End::End(l) => return Err((l, "unexpected {{end}}".into())),
        End::Else(l, _) => return Err((l, "unexpected {{else}}".into())),
    }
    Ok(Tree { root, defs: p.defs })
}

struct Parser<'a> {
    toks: Vec<Tok>,
    i: usize,
    vars: Vec<String>,
    is_func: &'a dyn Fn(&str) -> bool,
    defs: HashMap<String, Vec<Node>>,
    range_depth: usize,
    /// Current nesting of control structures and parentheses.
    depth: usize,
}

/// Deepest nesting of control structures and parenthesized pipelines accepted (keeps the
/// recursive parser and executor far from the stack limit).
const MAX_NESTING: usize = 100;

/// What ended a list.
#[allow(clippy::enum_variant_names)]
enum End {
    Eof,
    End(usize),
    /// `{{else}}` (no pipeline) or `{{else if …}}`/`{{else with …}}` (keyword given).
    Else(usize, Option<String>),
}

type PResult<T> = Result<T, (usize, String)>;

impl Parser<'_> {
    fn peek(&self) -> Option<&TokKind> {
        self.toks.get(self.i).map(|t| &t.kind)
    }

    fn line(&self) -> usize {
        self.toks
            .get(self.i)
            .or_else(|| self.toks.last())
            .map(|t| t.line)
            .unwrap_or(1)
    }

    fn next(&mut self) -> Option<TokKind> {
        let t = self.toks.get(self.i).map(|t| t.kind.clone());
        self.i += 1;
        t
    }

    fn skip_space(&mut self) {
        while self.peek() == Some(&TokKind::Space) {
            self.i += 1;
        }
    }

    /// Parses nodes until EOF, `{{end}}` or `{{else}}`.
    fn list(&mut self) -> PResult<(Vec<Node>, End)> {
        let mut nodes = Vec::new();
        loop {
            let line = self.line();
            match self.next() {
                None => return Ok((nodes, End::Eof)),
                Some(TokKind::Text(t)) => nodes.push(Node::Text(t)),
                Some(TokKind::Open) => {
                    self.skip_space();
                    let kw = match self.peek() {
                        Some(TokKind::Ident(k)) => Some(k.clone()),
                        _ => None,
                    };
                    match kw.as_deref() {
                        Some("end") => {
                            self.i += 1;
                            self.close()?;
                            return Ok((nodes, End::End(line)));
                        }
                        Some("else") => {
                            self.i += 1;
                            self.skip_space();
                            if let Some(TokKind::Ident(k)) = self.peek() {
                                if k == "if" || k == "with" {
                                    let k = k.clone();
                                    self.i += 1;
                                    return Ok((nodes, End::Else(line, Some(k))));
                                }
                            }
                            self.close()?;
                            return Ok((nodes, End::Else(line, None)));
                        }
                        Some("if") | Some("range") | Some("with") => {
                            self.i += 1;
                            let k = kw.unwrap_or_default();
                            nodes.push(self.control(&k, line)?);
                        }
                        Some("define") | Some("block") => {
                            self.i += 1;
                            let is_block = kw.as_deref() == Some("block");
                            let n = self.define(is_block, line)?;
                            if let Some(n) = n {
                                nodes.push(n);
                            }
                        }
                        Some("template") => {
                            self.i += 1;
                            self.skip_space();
                            let name = match self.next() {
                                Some(TokKind::Str(s)) => s,
                                _ => {
                                    return Err((
                                        line,
                                        "unexpected token in template clause".into(),
                                    ))
                                }
                            };
                            self.skip_space();
                            let pipe = if self.peek() == Some(&TokKind::Close) {
                                self.i += 1;
                                None
                            } else {
                                Some(self.pipeline(line, false)?)
                            };
                            nodes.push(Node::Template { line, name, pipe });
                        }
                        Some("break") | Some("continue") => {
                            self.i += 1;
                            if self.range_depth == 0 {
                                return Err((
                                    line,
                                    format!(
                                        "{{{{{}}}}} outside {{{{range}}}}",
                                        kw.unwrap_or_default()
                                    ),
                                ));
                            }
                            self.close()?;
                            nodes.push(if kw.as_deref() == Some("break") {
                                Node::Break
                            } else {
                                Node::Continue
                            });
                        }
                        _ => {
                            let pipe = self.pipeline(line, true)?;
                            nodes.push(Node::Action(pipe));
                        }
                    }
                }
                Some(other) => return Err((line, format!("unexpected {other:?}"))),
            }
        }
    }

    fn close(&mut self) -> PResult<()> {
        self.skip_space();
        let line = self.line();
        match self.next() {
            Some(TokKind::Close) => Ok(()),
            Some(t) => Err((line, format!("unexpected {} in end", describe(&t)))),
            None => Err((line, "unclosed action".into())),
        }
    }

    /// `if`/`range`/`with` after the keyword.
    fn control(&mut self, kw: &str, line: usize) -> PResult<Node> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err((line, format!("nesting deeper than {MAX_NESTING} levels")));
        }
        let r = self.control_inner(kw, line);
        self.depth -= 1;
        r
    }

    fn control_inner(&mut self, kw: &str, line: usize) -> PResult<Node> {
        let mark = self.vars.len();
        let pipe = self.pipeline(line, false)?;
        if pipe.cmds.is_empty() {
            return Err((line, format!("missing value for {kw}")));
        }
        if kw == "range" {
            self.range_depth += 1;
        }
        let (list, end) = self.list()?;
        if kw == "range" {
            self.range_depth -= 1;
        }
        let else_list = match end {
            End::Eof => return Err((self.line(), "unexpected EOF".into())),
            End::End(_) => None,
            End::Else(_, None) => {
                let (l, end2) = self.list()?;
                match end2 {
                    End::End(_) => Some(l),
                    End::Eof => return Err((self.line(), "unexpected EOF".into())),
                    End::Else(l2, _) => {
                        return Err((l2, "expected end; found {{else}}".to_string()))
                    }
                }
            }
            End::Else(l, Some(k2)) => {
                // `{{else if x}}…{{end}}` is `{{else}}{{if x}}…{{end}}{{end}}`.
                let inner = self.control(&k2, l)?;
                Some(vec![inner])
            }
        };
        self.vars.truncate(mark);
        let b = Branch {
            pipe,
            list,
            else_list,
        };
        Ok(match kw {
            "if" => Node::If(b),
            "range" => Node::Range(b),
            _ => Node::With(b),
        })
    }

    /// `define "name"` … `end` (returns nothing) or `block "name" pipe` … `end`.
    fn define(&mut self, is_block: bool, line: usize) -> PResult<Option<Node>> {
        self.skip_space();
        let name = match self.next() {
            Some(TokKind::Str(s)) => s,
            _ => return Err((line, "name of defined template must be a string".into())),
        };
        let pipe = if is_block {
            self.skip_space();
            Some(self.pipeline(line, false)?)
        } else {
            self.close()?;
            None
        };
        let saved = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let (list, end) = self.list()?;
        self.vars = saved;
        match end {
            End::End(_) => {}
            _ => return Err((line, "unexpected EOF in define".into())),
        }
        self.defs.insert(name.clone(), list);
        Ok(if is_block {
            Some(Node::Template { line, name, pipe })
        } else {
            None
        })
    }

    /// A pipeline up to and including `}}` (or `)` when `in_paren`).
    fn pipeline(&mut self, line: usize, _top: bool) -> PResult<Pipe> {
        self.pipeline_until(line, false)
    }

    fn pipeline_until(&mut self, line: usize, in_paren: bool) -> PResult<Pipe> {
        let mut decl = Vec::new();
        let mut is_assign = false;
        self.skip_space();
        // Declarations: `$x :=`, `$x =`, `$i, $x :=`.
        let start = self.i;
        let mut names = Vec::new();
        loop {
            match self.peek() {
                Some(TokKind::Var(v)) => {
                    names.push(v.clone());
                    self.i += 1;
                    self.skip_space();
                    match self.peek() {
                        Some(TokKind::Declare) | Some(TokKind::Assign) => {
                            is_assign = self.peek() == Some(&TokKind::Assign);
                            self.i += 1;
                            decl = names;
                            break;
                        }
                        Some(TokKind::Comma) if names.len() == 1 => {
                            self.i += 1;
                            self.skip_space();
                            continue;
                        }
                        _ => {
                            self.i = start;
                            break;
                        }
                    }
                }
                _ => {
                    self.i = start;
                    break;
                }
            }
        }
        if is_assign {
            for v in &decl {
                if !self.vars.contains(v) {
                    return Err((line, format!("undefined variable {v:?}")));
                }
            }
        }
        let mut cmds = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                Some(TokKind::Close) if !in_paren => {
                    self.i += 1;
                    break;
                }
                Some(TokKind::RParen) if in_paren => {
                    self.i += 1;
                    break;
                }
                None => return Err((line, "unclosed action".into())),
                _ => {}
            }
            let cmd = self.command(line, in_paren)?;
            cmds.push(cmd);
            self.skip_space();
            if self.peek() == Some(&TokKind::Pipe) {
                self.i += 1;
                continue;
            }
        }
        if cmds.is_empty() && !decl.is_empty() {
            return Err((line, "missing value for command".into()));
        }
        if !is_assign {
            for v in &decl {
                self.vars.push(v.clone());
            }
        }
        Ok(Pipe {
            line,
            decl,
            is_assign,
            cmds,
        })
    }

    fn command(&mut self, line: usize, in_paren: bool) -> PResult<Cmd> {
        let mut args = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                None => return Err((line, "unclosed action".into())),
                Some(TokKind::Close) | Some(TokKind::Pipe) => break,
                Some(TokKind::RParen) if in_paren => break,
                _ => {}
            }
            let arg = self.operand(line)?;
            args.push(arg);
            // Arguments must be separated by spaces.
            match self.peek() {
                Some(TokKind::Space) | Some(TokKind::Close) | Some(TokKind::Pipe) => {}
                Some(TokKind::RParen) if in_paren => {}
                Some(t) => {
                    return Err((line, format!("unexpected {} in operand", describe(t))));
                }
                None => return Err((line, "unclosed action".into())),
            }
        }
        if args.is_empty() {
            return Err((line, "missing command".into()));
        }
        Ok(Cmd { args })
    }

    fn fields(&mut self) -> Vec<String> {
        let mut f = Vec::new();
        while let Some(TokKind::Field(name)) = self.peek() {
            f.push(name.clone());
            self.i += 1;
        }
        f
    }

    fn operand(&mut self, line: usize) -> PResult<Arg> {
        let t = self.next().ok_or((line, "unclosed action".to_string()))?;
        Ok(match t {
            TokKind::Dot => Arg::Dot(Vec::new()),
            TokKind::Field(f) => {
                let mut all = vec![f];
                all.extend(self.fields());
                Arg::Dot(all)
            }
            TokKind::Var(v) => {
                if !self.vars.contains(&v) {
                    return Err((line, format!("undefined variable {v:?}")));
                }
                let f = self.fields();
                Arg::Var(v, f)
            }
            TokKind::Ident(id) => match id.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                _ => {
                    if !(self.is_func)(&id) {
                        return Err((line, format!("function {id:?} not defined")));
                    }
                    Arg::Func(id)
                }
            },
            TokKind::Str(s) => Arg::Str(s),
            TokKind::Char(c) => Arg::Int(c as i64),
            TokKind::Number(n) => {
                parse_number(&n).ok_or((line, format!("bad number syntax: {n:?}")))?
            }
            TokKind::LParen => {
                self.depth += 1;
                if self.depth > MAX_NESTING {
                    return Err((line, format!("nesting deeper than {MAX_NESTING} levels")));
                }
                let p = self.pipeline_until(line, true);
                self.depth -= 1;
                let p = p?;
                let f = self.fields();
                Arg::Sub(Box::new(p), f)
            }
            other => return Err((line, format!("unexpected {} in operand", describe(&other)))),
        })
    }
}

fn describe(t: &TokKind) -> String {
    match t {
        TokKind::Ident(s) => format!("<{s}>"),
        TokKind::Str(s) => format!("{s:?}"),
        TokKind::Number(s) => format!("<{s}>"),
        TokKind::Var(s) => format!("<{s}>"),
        TokKind::Field(s) => format!("<.{s}>"),
        TokKind::Dot => "<.>".into(),
        TokKind::Pipe => "\"|\"".into(),
        TokKind::LParen => "\"(\"".into(),
        TokKind::RParen => "\")\"".into(),
        TokKind::Declare => "\":=\"".into(),
        TokKind::Assign => "\"=\"".into(),
        TokKind::Comma => "\",\"".into(),
        TokKind::Close => "\"}}\"".into(),
        TokKind::Open => "\"{{\"".into(),
        TokKind::Space => "space".into(),
        TokKind::Char(c) => format!("{c:?}"),
        TokKind::Text(_) => "text".into(),
    }
}

/// Parses a Go number constant: integers (decimal, hex, octal `0o`, binary `0b`, `_`
/// separators) become `Int`, anything with a fraction or exponent `Float`.
fn parse_number(s: &str) -> Option<Arg> {
    let clean: String = s.chars().filter(|c| *c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b.to_string()),
        None => (false, clean.trim_start_matches('+').to_string()),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if !lower.contains(['.', 'e']) {
        if lower.len() > 1 && lower.starts_with('0') {
            i64::from_str_radix(&lower[1..], 8).ok()
        } else {
            lower.parse::<i64>().ok()
        }
    } else {
        None
    };
    if let Some(v) = int {
        return Some(Arg::Int(if neg { -v } else { v }));
    }
    if lower.starts_with("0x") {
        return None;
    }
    let f: f64 = lower.parse().ok()?;
    Some(Arg::Float(if neg { -f } else { f }))
}
