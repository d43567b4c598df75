//! The lexer of Go's text/template syntax: splits a template into text and action tokens,
//! applying `{{-`/`-}}` whitespace trimming and dropping `{{/* comments */}}`.

/// One token. `line` is the 1-based line of its first byte in the template text.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tok {
    pub kind: TokKind,
    pub line: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TokKind {
    /// Literal text between actions (already trimmed).
    Text(String),
    /// `{{`
    Open,
    /// `}}`
    Close,
    /// Whitespace inside an action (separates arguments).
    Space,
    /// `.Name` (one element of a field chain).
    Field(String),
    /// `.` alone.
    Dot,
    /// `$` or `$name` (the name includes the `$`).
    Var(String),
    /// A bare word: function name or keyword.
    Ident(String),
    /// A string constant, unquoted.
    Str(String),
    /// A numeric or character constant, as written.
    Number(String),
    /// A character constant's value.
    Char(char),
    Pipe,
    LParen,
    RParen,
    /// `:=`
    Declare,
    /// `=`
    Assign,
    Comma,
}

/// Splits `src` into tokens, or reports `(line, message)` for the first lexical error.
pub(crate) fn lex(src: &str) -> Result<Vec<Tok>, (usize, String)> {
    let mut out = Vec::new();
    let b = src.as_bytes();
    let mut i = 0;
    let mut line = 1;
    let mut trim_next_text = false;
    while i < b.len() {
        let start = i;
        let open = src[i..].find("{{").map(|p| p + i);
        let text_end = open.unwrap_or(b.len());
        let mut text = &src[start..text_end];
        let mut trim_left = false;
        if let Some(o) = open {
            // `{{- ` trims the whitespace before the action.
            if b.get(o + 2) == Some(&b'-') && b.get(o + 3).is_some_and(|c| is_space(*c)) {
                trim_left = true;
            }
        }
        if trim_next_text {
            text = text.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
        }
        if trim_left {
            text = text.trim_end_matches(|c: char| c.is_ascii() && is_space(c as u8));
        }
        if !text.is_empty() {
            out.push(Tok {
                kind: TokKind::Text(text.to_string()),
                line,
            });
        }
        line += src[start..text_end].matches('\n').count();
        trim_next_text = false;
        let Some(o) = open else { break };
        i = o + 2;
        if trim_left {
            i += 2;
        }
        // Comments: `{{/* ... */}}`, possibly with trim markers.
        let after_ws = skip_ws(b, i);
        if src[after_ws..].starts_with("/*") {
            let Some(end) = src[after_ws + 2..].find("*/") else {
                return Err((line, "unclosed comment".into()));
            };
            let end = after_ws + 2 + end + 2;
            line += src[i..end].matches('\n').count();
            let rest = &src[end..];
            if let Some(r) = rest.strip_prefix("}}") {
                let _ = r;
                i = end + 2;
            } else if rest.len() >= 4
                && is_space(rest.as_bytes()[0])
                && rest[1..].starts_with("-}}")
            {
                trim_next_text = true;
                i = end + 4;
            } else {
                return Err((line, "comment ends before closing delimiter".into()));
            }
            continue;
        }
        out.push(Tok {
            kind: TokKind::Open,
            line,
        });
        i = lex_action(src, i, &mut line, &mut out, &mut trim_next_text)?;
    }
    Ok(out)
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_space(b[i]) {
        i += 1;
    }
    i
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Lexes the inside of one action starting at byte `i`; returns the index after `}}`.
fn lex_action(
    src: &str,
    mut i: usize,
    line: &mut usize,
    out: &mut Vec<Tok>,
    trim_next: &mut bool,
) -> Result<usize, (usize, String)> {
    let b = src.as_bytes();
    let mut paren_depth = 0usize;
    loop {
        if i >= b.len() {
            return Err((*line, "unclosed action".into()));
        }
        let rest = &src[i..];
        if rest.starts_with("}}") {
            if paren_depth > 0 {
                return Err((*line, "unclosed left paren".into()));
            }
            out.push(Tok {
                kind: TokKind::Close,
                line: *line,
            });
            return Ok(i + 2);
        }
        let c = b[i];
        if is_space(c) {
            let j = skip_ws(b, i);
            // ` -}}` closes the action and trims the following text.
            if src[j..].starts_with("-}}") && j > i {
                *line += src[i..j].matches('\n').count();
                if paren_depth > 0 {
                    return Err((*line, "unclosed left paren".into()));
                }
                out.push(Tok {
                    kind: TokKind::Close,
                    line: *line,
                });
                *trim_next = true;
                return Ok(j + 3);
            }
            out.push(Tok {
                kind: TokKind::Space,
                line: *line,
            });
            *line += src[i..j].matches('\n').count();
            i = j;
            continue;
        }
        let tok_line = *line;
        let mut push = |kind: TokKind| {
            out.push(Tok {
                kind,
                line: tok_line,
            })
        };
        match c {
            b'|' => {
                push(TokKind::Pipe);
                i += 1;
            }
            b'(' => {
                paren_depth += 1;
                push(TokKind::LParen);
                i += 1;
            }
            b')' => {
                if paren_depth == 0 {
                    return Err((*line, "unexpected right paren".into()));
                }
                paren_depth -= 1;
                push(TokKind::RParen);
                i += 1;
            }
            b',' => {
                push(TokKind::Comma);
                i += 1;
            }
            b':' => {
                if rest.starts_with(":=") {
                    push(TokKind::Declare);
                    i += 2;
                } else {
                    return Err((*line, "expected :=".into()));
                }
            }
            b'=' => {
                push(TokKind::Assign);
                i += 1;
            }
            b'"' => {
                let (s, len) = lex_quoted(rest).map_err(|m| (*line, m))?;
                push(TokKind::Str(s));
                i += len;
            }
            b'`' => {
                let Some(end) = rest[1..].find('`') else {
                    return Err((*line, "unterminated raw quoted string".into()));
                };
                let s = rest[1..1 + end].to_string();
                *line += s.matches('\n').count();
                push(TokKind::Str(s));
                i += end + 2;
            }
            b'\'' => {
                let (ch, len) = lex_char(rest).map_err(|m| (*line, m))?;
                push(TokKind::Char(ch));
                i += len;
            }
            b'$' => {
                let n = rest[1..]
                    .char_indices()
                    .find(|(_, c)| !is_alnum(*c))
                    .map(|(p, _)| p)
                    .unwrap_or(rest.len() - 1);
                push(TokKind::Var(rest[..1 + n].to_string()));
                i += 1 + n;
            }
            b'.' => {
                let next = rest[1..].chars().next();
                if next.is_some_and(|c| c.is_ascii_digit()) {
                    let n = number_len(rest);
                    push(TokKind::Number(rest[..n].to_string()));
                    i += n;
                } else if next.is_some_and(is_alnum) {
                    let n = rest[1..]
                        .char_indices()
                        .find(|(_, c)| !is_alnum(*c))
                        .map(|(p, _)| p)
                        .unwrap_or(rest.len() - 1);
                    push(TokKind::Field(rest[1..1 + n].to_string()));
                    i += 1 + n;
                } else {
                    push(TokKind::Dot);
                    i += 1;
                }
            }
            b'0'..=b'9' | b'+' | b'-' => {
                let n = number_len(rest);
                if n == 0 || (n == 1 && (c == b'+' || c == b'-')) {
                    return Err((*line, format!("bad number syntax: {:?}", &rest[..1])));
                }
                push(TokKind::Number(rest[..n].to_string()));
                i += n;
            }
            _ => {
                let ch = rest.chars().next().unwrap_or(' ');
                if is_alnum(ch) {
                    let n = rest
                        .char_indices()
                        .find(|(_, c)| !is_alnum(*c))
                        .map(|(p, _)| p)
                        .unwrap_or(rest.len());
                    push(TokKind::Ident(rest[..n].to_string()));
                    i += n;
                } else {
                    return Err((*line, format!("unrecognized character in action: {ch:?}")));
                }
            }
        }
    }
}

/// Length of the number at the start of `s` (sign, digits, `.`, exponent, hex, `_`).
fn number_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let hex = s[i..].starts_with("0x") || s[i..].starts_with("0X");
    if hex {
        i += 2;
    }
    while i < b.len() {
        let c = b[i];
        let ok = c.is_ascii_digit()
            || c == b'_'
            || c == b'.'
            || (hex && c.is_ascii_hexdigit())
            || (!hex && (c == b'e' || c == b'E'))
            || ((c == b'+' || c == b'-') && i > 0 && matches!(b[i - 1], b'e' | b'E') && !hex);
        if !ok {
            break;
        }
        i += 1;
    }
    i
}

/// Unquotes a Go interpreted string literal at the start of `s`; returns it and its length.
fn lex_quoted(s: &str) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut it = s.char_indices().skip(1);
    while let Some((p, c)) = it.next() {
        match c {
            '"' => return Ok((out, p + 1)),
            '\n' => return Err("unterminated quoted string".into()),
            '\\' => {
                let Some((_, e)) = it.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut v = 0u32;
                        for _ in 0..n {
                            let d = it
                                .next()
                                .and_then(|(_, d)| d.to_digit(16))
                                .ok_or("invalid syntax in escape")?;
                            v = v * 16 + d;
                        }
                        out.push(char::from_u32(v).ok_or("invalid escape")?);
                    }
                    _ => return Err(format!("invalid escape \\{e} in quoted string")),
                }
            }
            c => out.push(c),
        }
    }
    Err("unterminated quoted string".into())
}

fn lex_char(s: &str) -> Result<(char, usize), String> {
    let mut it = s.char_indices().skip(1);
    let (_, c) = it.next().ok_or("unterminated character constant")?;
    let ch = if c == '\\' {
        let (_, e) = it.next().ok_or("unterminated character constant")?;
        match e {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            '\\' => '\\',
            '\'' => '\'',
            '0' => '\0',
            _ => return Err(format!("invalid escape \\{e} in character constant")),
        }
    } else {
        c
    };
    match it.next() {
        Some((p, '\'')) => Ok((ch, p + 1)),
        _ => Err("unterminated character constant".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<TokKind> {
        lex(s)
            .map(|t| t.into_iter().map(|t| t.kind).collect())
            .unwrap_or_default()
    }

    #[test]
    fn trims_whitespace_around_dashed_delimiters() {
        assert_eq!(
            kinds("a  {{- 1 -}}  b"),
            vec![
                TokKind::Text("a".into()),
                TokKind::Open,
                TokKind::Number("1".into()),
                TokKind::Close,
                TokKind::Text("b".into()),
            ]
        );
    }

    #[test]
    fn drops_comments_and_keeps_negative_numbers() {
        assert_eq!(
            kinds("x{{/* c */}}y{{-1}}"),
            vec![
                TokKind::Text("x".into()),
                TokKind::Text("y".into()),
                TokKind::Open,
                TokKind::Number("-1".into()),
                TokKind::Close,
            ]
        );
    }

    #[test]
    fn lexes_fields_vars_and_strings() {
        assert_eq!(
            kinds(r#"{{$labels.job | printf "%s\n"}}"#),
            vec![
                TokKind::Open,
                TokKind::Var("$labels".into()),
                TokKind::Field("job".into()),
                TokKind::Space,
                TokKind::Pipe,
                TokKind::Space,
                TokKind::Ident("printf".into()),
                TokKind::Space,
                TokKind::Str("%s\n".into()),
                TokKind::Close,
            ]
        );
        assert!(lex("{{ 1 ").is_err());
    }
}
