//! A small Go-template subset for `line_format` and `label_format`: text, `{{ .label }}`,
//! pipelines with functions (`{{ .a | ToUpper }}`), `{{ if }}/{{ else }}/{{ end }}`, trim
//! markers (`{{-`, `-}}`), comments, `__line__` and `__timestamp__`. Missing labels render as
//! the empty string, as in Loki.

use std::fmt::Write as _;

/// A compiled template.
#[derive(Clone, Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        cond: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

type Pipeline = Vec<Command>;

#[derive(Clone, Debug)]
struct Command {
    /// A function name, or `None` for a single operand.
    func: Option<String>,
    args: Vec<Operand>,
}

#[derive(Clone, Debug)]
enum Operand {
    Field(String),
    Dot,
    Str(String),
    Num(f64),
    Bool(bool),
    Sub(Pipeline),
    /// A function called without arguments (`__line__`).
    Call(String),
}

/// A value during evaluation.
#[derive(Clone, Debug)]
enum V {
    S(String),
    N(f64),
    B(bool),
    /// A time (`__timestamp__`), nanoseconds since the epoch, UTC.
    T(i64),
}

impl V {
    fn text(&self) -> String {
        match self {
            V::S(s) => s.clone(),
            V::N(n) => {
                if n.fract() == 0.0 && n.abs() < 1e15 {
                    format!("{}", *n as i64)
                } else {
                    format!("{n}")
                }
            }
            V::B(b) => b.to_string(),
            V::T(ns) => go_time_layout(*ns, "2006-01-02 15:04:05.999999999 -0700 MST"),
        }
    }

    fn truthy(&self) -> bool {
        match self {
            V::S(s) => !s.is_empty(),
            V::N(n) => *n != 0.0,
            V::B(b) => *b,
            V::T(_) => true,
        }
    }

    fn num(&self) -> Result<f64, String> {
        match self {
            V::N(n) => Ok(*n),
            V::S(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("cannot convert {s:?} to a number")),
            V::B(b) => Ok(f64::from(u8::from(*b))),
            V::T(ns) => Ok(*ns as f64),
        }
    }
}

/// What a template reads: label values, the line and its timestamp.
pub struct TemplateData<'a> {
    pub label: &'a dyn Fn(&str) -> Option<String>,
    pub line: &'a str,
    pub ts_ns: i64,
}

const FUNCS: &[&str] = &[
    "ToUpper",
    "ToLower",
    "upper",
    "lower",
    "title",
    "Title",
    "trim",
    "trimSpace",
    "TrimSpace",
    "trimPrefix",
    "TrimPrefix",
    "trimSuffix",
    "TrimSuffix",
    "trimAll",
    "replace",
    "Replace",
    "default",
    "printf",
    "len",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "and",
    "or",
    "not",
    "substr",
    "trunc",
    "repeat",
    "__line__",
    "__timestamp__",
    "add",
    "sub",
    "mul",
    "div",
    "int",
    "float64",
    "regexReplaceAll",
    "alignLeft",
    "alignRight",
    "date",
    "unixEpoch",
    "unixEpochMillis",
    "unixEpochNanos",
];

/// Civil date (UTC) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats a UTC time with a Go layout (`2006-01-02T15:04:05.000Z07:00`, `Jan`, `Mon`, `PM`,
/// fractional seconds `.000`/`.999`); zones print as UTC (`Z`, `+0000`, `UTC`).
fn go_time_layout(ns: i64, layout: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, mo, d) = civil(days);
    let (h, mi, s) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
    let month = MONTHS[(mo - 1) as usize];
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let tokens: [(&str, String); 26] = [
        ("January", month.to_string()),
        ("Jan", month[..3].to_string()),
        ("Monday", weekday.to_string()),
        ("Mon", weekday[..3].to_string()),
        ("2006", format!("{y:04}")),
        ("-07:00", "+00:00".into()),
        ("-0700", "+0000".into()),
        ("-07", "+00".into()),
        ("Z07:00", "Z".into()),
        ("Z0700", "Z".into()),
        ("MST", "UTC".into()),
        ("01", format!("{mo:02}")),
        ("02", format!("{d:02}")),
        ("_2", format!("{d:>2}")),
        ("15", format!("{h:02}")),
        ("03", format!("{h12:02}")),
        ("04", format!("{mi:02}")),
        ("05", format!("{s:02}")),
        ("06", format!("{:02}", y.rem_euclid(100))),
        ("PM", if h < 12 { "AM" } else { "PM" }.into()),
        ("pm", if h < 12 { "am" } else { "pm" }.into()),
        ("1", mo.to_string()),
        ("2", d.to_string()),
        ("3", h12.to_string()),
        ("4", mi.to_string()),
        ("5", s.to_string()),
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        // Fractional seconds: `.000` (fixed width) or `.999` (trailing zeros trimmed).
        if let Some(r) = rest.strip_prefix('.') {
            let n0 = r.bytes().take_while(|c| *c == b'0').count();
            let n9 = r.bytes().take_while(|c| *c == b'9').count();
            let n = n0.max(n9);
            if n > 0 && !r[n..].starts_with(|c: char| c.is_ascii_digit()) {
                let all = format!("{nanos:09}");
                let digits = &all[..n.min(9)];
                if n0 > 0 {
                    out.push('.');
                    out.push_str(digits);
                } else {
                    let t = digits.trim_end_matches('0');
                    if !t.is_empty() {
                        out.push('.');
                        out.push_str(t);
                    }
                }
                rest = &r[n..];
                continue;
            }
        }
        for (tok, val) in &tokens {
            if let Some(r) = rest.strip_prefix(tok) {
                out.push_str(val);
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

impl Template {
    pub fn compile(src: &str) -> Result<Template, String> {
        let mut pieces = split(src)?;
        pieces.reverse();
        let (nodes, end) = parse_nodes(&mut pieces)?;
        match end {
            None => Ok(Template { nodes }),
            Some(e) => Err(format!("unexpected {{{{{e}}}}}")),
        }
    }

    pub fn render(&self, data: &TemplateData<'_>) -> Result<String, String> {
        let mut out = String::new();
        render_nodes(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

enum Piece {
    Text(String),
    Action(String),
}

/// Splits the source into text and action pieces, applying trim markers.
fn split(src: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(open) = rest.find("{{") {
        let mut text = rest[..open].to_string();
        let mut body = &rest[open + 2..];
        if let Some(b) = body.strip_prefix("- ") {
            text = text.trim_end().to_string();
            body = b;
        }
        let close = body.find("}}").ok_or("unclosed action")?;
        let mut action = &body[..close];
        rest = &body[close + 2..];
        if let Some(a) = action.strip_suffix(" -") {
            action = a;
            rest = rest.trim_start();
        }
        if !text.is_empty() {
            out.push(Piece::Text(text));
        }
        let action = action.trim();
        if action.starts_with("/*") {
            continue;
        }
        out.push(Piece::Action(action.to_string()));
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

/// Parses nodes until `{{else}}`/`{{end}}` (returned) or the end.
fn parse_nodes(pieces: &mut Vec<Piece>) -> Result<(Vec<Node>, Option<String>), String> {
    let mut nodes = Vec::new();
    while let Some(p) = pieces.pop() {
        match p {
            Piece::Text(t) => nodes.push(Node::Text(t)),
            Piece::Action(a) => {
                if a == "end" || a == "else" || a.starts_with("else ") {
                    return Ok((nodes, Some(a)));
                }
                if let Some(cond) = a.strip_prefix("if ") {
                    nodes.push(parse_if(cond, pieces)?);
                } else {
                    nodes.push(Node::Action(parse_pipeline(&a)?));
                }
            }
        }
    }
    Ok((nodes, None))
}

fn parse_if(cond: &str, pieces: &mut Vec<Piece>) -> Result<Node, String> {
    let cond = parse_pipeline(cond)?;
    let (then, end) = parse_nodes(pieces)?;
    let otherwise = match end.as_deref() {
        Some("end") => Vec::new(),
        Some("else") => {
            let (nodes, end) = parse_nodes(pieces)?;
            if end.as_deref() != Some("end") {
                return Err("missing {{end}}".into());
            }
            nodes
        }
        Some(e) if e.starts_with("else if ") => {
            vec![parse_if(&e["else if ".len()..], pieces)?]
        }
        _ => return Err("missing {{end}}".into()),
    };
    Ok(Node::If {
        cond,
        then,
        otherwise,
    })
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    Pipe,
    LParen,
    RParen,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            '"' => {
                let mut v = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated quoted string".into()),
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            match chars.get(i) {
                                Some('n') => v.push('\n'),
                                Some('t') => v.push('\t'),
                                Some(c) => v.push(*c),
                                None => return Err("unterminated quoted string".into()),
                            }
                        }
                        Some(c) => v.push(*c),
                    }
                    i += 1;
                }
                i += 1;
                out.push(Tok::Str(v));
            }
            '`' => {
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|c| *c == '`')
                    .ok_or("unterminated raw quoted string")?;
                out.push(Tok::Str(chars[start..start + end].iter().collect()));
                i = start + end + 1;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                out.push(Tok::Num(
                    text.parse().map_err(|_| format!("bad number {text}"))?,
                ));
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"|()\"`".contains(chars[i]) {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

fn parse_pipeline(s: &str) -> Result<Pipeline, String> {
    let toks = tokenize(s)?;
    let mut pos = 0;
    let p = pipeline_tokens(&toks, &mut pos)?;
    if pos != toks.len() {
        return Err(format!("unexpected {:?} in command", toks[pos]));
    }
    Ok(p)
}

fn pipeline_tokens(toks: &[Tok], pos: &mut usize) -> Result<Pipeline, String> {
    let mut cmds = Vec::new();
    loop {
        let mut operands = Vec::new();
        while let Some(t) = toks.get(*pos) {
            let op = match t {
                Tok::Pipe | Tok::RParen => break,
                Tok::LParen => {
                    *pos += 1;
                    let sub = pipeline_tokens(toks, pos)?;
                    if toks.get(*pos) != Some(&Tok::RParen) {
                        return Err("unclosed left paren".into());
                    }
                    Operand::Sub(sub)
                }
                Tok::Str(s) => Operand::Str(s.clone()),
                Tok::Num(n) => Operand::Num(*n),
                Tok::Word(w) if w == "." => Operand::Dot,
                Tok::Word(w) if w == "true" || w == "false" => Operand::Bool(w == "true"),
                Tok::Word(w) if w.starts_with('.') => Operand::Field(w[1..].to_string()),
                Tok::Word(w) if FUNCS.contains(&w.as_str()) => Operand::Call(w.clone()),
                Tok::Word(w) => return Err(format!("function {w:?} not defined")),
            };
            operands.push(op);
            *pos += 1;
        }
        if operands.is_empty() {
            return Err("missing value for command".into());
        }
        let cmd = match operands.remove(0) {
            Operand::Call(f) => Command {
                func: Some(f),
                args: operands,
            },
            first => {
                if !operands.is_empty() {
                    return Err("can't give argument to non-function".into());
                }
                Command {
                    func: None,
                    args: vec![first],
                }
            }
        };
        cmds.push(cmd);
        if toks.get(*pos) == Some(&Tok::Pipe) {
            *pos += 1;
            continue;
        }
        return Ok(cmds);
    }
}

fn render_nodes(nodes: &[Node], data: &TemplateData<'_>, out: &mut String) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => out.push_str(&eval_pipeline(p, data)?.text()),
            Node::If {
                cond,
                then,
                otherwise,
            } => {
                if eval_pipeline(cond, data)?.truthy() {
                    render_nodes(then, data, out)?;
                } else {
                    render_nodes(otherwise, data, out)?;
                }
            }
        }
    }
    Ok(())
}

fn eval_pipeline(p: &Pipeline, data: &TemplateData<'_>) -> Result<V, String> {
    let mut prev: Option<V> = None;
    for cmd in p {
        let mut args = cmd
            .args
            .iter()
            .map(|a| eval_operand(a, data))
            .collect::<Result<Vec<V>, String>>()?;
        if let Some(v) = prev.take() {
            args.push(v);
        }
        prev = Some(match &cmd.func {
            None => args.pop().ok_or("missing value")?,
            Some(f) => call(f, args, data)?,
        });
    }
    prev.ok_or_else(|| "empty pipeline".to_string())
}

fn eval_operand(o: &Operand, data: &TemplateData<'_>) -> Result<V, String> {
    Ok(match o {
        Operand::Field(name) => V::S((data.label)(name).unwrap_or_default()),
        Operand::Dot => V::S(String::new()),
        Operand::Str(s) => V::S(s.clone()),
        Operand::Num(n) => V::N(*n),
        Operand::Bool(b) => V::B(*b),
        Operand::Sub(p) => eval_pipeline(p, data)?,
        Operand::Call(f) => call(f, Vec::new(), data)?,
    })
}

fn arity(f: &str, args: &[V], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {f}: want {n} got {}",
            args.len()
        ))
    }
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric();
    }
    out
}

fn compare(a: &V, b: &V) -> std::cmp::Ordering {
    match (a.num(), b.num()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => a.text().cmp(&b.text()),
    }
}

/// Go's `printf` for the common verbs (`%s %d %v %f %.Nf %q %%`).
fn printf(format: &str, args: &[V]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() || d == '.' || d == '-' {
                spec.push(d);
                chars.next();
            } else {
                break;
            }
        }
        let Some(verb) = chars.next() else { break };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(a) = args.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        match verb {
            'd' => {
                let _ = write!(out, "{}", a.num().unwrap_or(0.0) as i64);
            }
            'f' => {
                let prec = spec
                    .split('.')
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(6);
                let _ = write!(out, "{:.*}", prec, a.num().unwrap_or(0.0));
            }
            'q' => {
                let _ = write!(out, "{:?}", a.text());
            }
            _ => out.push_str(&a.text()),
        }
    }
    out
}

fn call(f: &str, args: Vec<V>, data: &TemplateData<'_>) -> Result<V, String> {
    let s = |i: usize| args.get(i).map(V::text).unwrap_or_default();
    Ok(match f {
        "__line__" => V::S(data.line.to_string()),
        "__timestamp__" => V::T(data.ts_ns),
        "date" => {
            arity(f, &args, 2)?;
            let V::T(ns) = args[1] else {
                return Err("date: argument is not a time".into());
            };
            V::S(go_time_layout(ns, &s(0)))
        }
        "unixEpoch" | "unixEpochMillis" | "unixEpochNanos" => {
            arity(f, &args, 1)?;
            let V::T(ns) = args[0] else {
                return Err(format!("{f}: argument is not a time"));
            };
            V::N(match f {
                "unixEpoch" => ns.div_euclid(1_000_000_000),
                "unixEpochMillis" => ns.div_euclid(1_000_000),
                _ => ns,
            } as f64)
        }
        "ToUpper" | "upper" => {
            arity(f, &args, 1)?;
            V::S(s(0).to_uppercase())
        }
        "ToLower" | "lower" => {
            arity(f, &args, 1)?;
            V::S(s(0).to_lowercase())
        }
        "title" | "Title" => {
            arity(f, &args, 1)?;
            V::S(title_case(&s(0)))
        }
        "trim" | "trimSpace" | "TrimSpace" => {
            arity(f, &args, 1)?;
            V::S(s(0).trim().to_string())
        }
        "trimPrefix" | "TrimPrefix" => {
            arity(f, &args, 2)?;
            let v = s(1);
            V::S(v.strip_prefix(s(0).as_str()).unwrap_or(&v).to_string())
        }
        "trimSuffix" | "TrimSuffix" => {
            arity(f, &args, 2)?;
            let v = s(1);
            V::S(v.strip_suffix(s(0).as_str()).unwrap_or(&v).to_string())
        }
        "trimAll" => {
            arity(f, &args, 2)?;
            let cut = s(0);
            V::S(s(1).trim_matches(|c| cut.contains(c)).to_string())
        }
        "replace" | "Replace" => {
            arity(f, &args, 3)?;
            V::S(s(2).replace(&s(0), &s(1)))
        }
        "regexReplaceAll" => {
            arity(f, &args, 3)?;
            let re = regex::Regex::new(&s(0)).map_err(|e| e.to_string())?;
            V::S(re.replace_all(&s(1), s(2).as_str()).into_owned())
        }
        "default" => {
            arity(f, &args, 2)?;
            if args[1].truthy() {
                args[1].clone()
            } else {
                args[0].clone()
            }
        }
        "printf" => {
            if args.is_empty() {
                return Err("wrong number of args for printf".into());
            }
            V::S(printf(&s(0), &args[1..]))
        }
        "len" => {
            arity(f, &args, 1)?;
            V::N(s(0).chars().count() as f64)
        }
        "contains" => {
            arity(f, &args, 2)?;
            V::B(s(1).contains(&s(0)))
        }
        "hasPrefix" => {
            arity(f, &args, 2)?;
            V::B(s(1).starts_with(&s(0)))
        }
        "hasSuffix" => {
            arity(f, &args, 2)?;
            V::B(s(1).ends_with(&s(0)))
        }
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
            arity(f, &args, 2)?;
            let o = compare(&args[0], &args[1]);
            use std::cmp::Ordering::*;
            V::B(match f {
                "eq" => o == Equal,
                "ne" => o != Equal,
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            })
        }
        "and" => args
            .iter()
            .find(|a| !a.truthy())
            .or(args.last())
            .cloned()
            .ok_or("wrong number of args for and")?,
        "or" => args
            .iter()
            .find(|a| a.truthy())
            .or(args.last())
            .cloned()
            .ok_or("wrong number of args for or")?,
        "not" => {
            arity(f, &args, 1)?;
            V::B(!args[0].truthy())
        }
        "substr" => {
            arity(f, &args, 3)?;
            let chars: Vec<char> = s(2).chars().collect();
            let start = (args[0].num()?.max(0.0) as usize).min(chars.len());
            let end = args[1].num()?;
            let end = if end < 0.0 {
                chars.len()
            } else {
                (end as usize).min(chars.len())
            };
            V::S(chars[start..end.max(start)].iter().collect())
        }
        "trunc" => {
            arity(f, &args, 2)?;
            let n = args[0].num()?;
            let chars: Vec<char> = s(1).chars().collect();
            let out: String = if n >= 0.0 {
                chars.iter().take(n as usize).collect()
            } else {
                chars[chars.len().saturating_sub((-n) as usize)..]
                    .iter()
                    .collect()
            };
            V::S(out)
        }
        "alignLeft" | "alignRight" => {
            arity(f, &args, 2)?;
            let n = args[0].num()?.max(0.0) as usize;
            let v = s(1);
            let len = v.chars().count();
            V::S(if len >= n {
                v.chars().take(n).collect()
            } else if f == "alignLeft" {
                format!("{v}{}", " ".repeat(n - len))
            } else {
                format!("{}{v}", " ".repeat(n - len))
            })
        }
        "repeat" => {
            arity(f, &args, 2)?;
            V::S(s(1).repeat(args[0].num()?.clamp(0.0, 10_000.0) as usize))
        }
        "add" | "sub" | "mul" | "div" => {
            arity(f, &args, 2)?;
            let (a, b) = (args[0].num()?, args[1].num()?);
            V::N(match f {
                "add" => a + b,
                "sub" => a - b,
                "mul" => a * b,
                _ => a / b,
            })
        }
        "int" => {
            arity(f, &args, 1)?;
            V::N(args[0].num()?.trunc())
        }
        "float64" => {
            arity(f, &args, 1)?;
            V::N(args[0].num()?)
        }
        other => return Err(format!("function {other:?} not defined")),
    })
}
