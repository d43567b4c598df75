//! Route label templates (a route's `labels:`, rendered per alert group into `routeLabels`).
//! A small subset of Go's text/template, enough for what route labels do: literal text and
//! `{{ … }}` actions that are `.GroupLabels.<name>`, `.CommonLabels.<name>`,
//! `.CommonAnnotations.<name>`, `index .GroupLabels "<name>"` (likewise for the other maps),
//! `.Receiver`, `.Status`, or `routeLabels "<name>"` (another route label, rendered). Anything
//! else is refused when the configuration loads.

use std::collections::BTreeMap;

/// A parsed template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template(Vec<Part>);

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Field(Map, String),
    Receiver,
    Status,
    RouteLabel(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Map {
    GroupLabels,
    CommonLabels,
    CommonAnnotations,
}

/// What a template is rendered against.
pub struct Context<'a> {
    pub group_labels: &'a BTreeMap<String, String>,
    pub common_labels: &'a BTreeMap<String, String>,
    pub common_annotations: &'a BTreeMap<String, String>,
    pub receiver: &'a str,
    pub status: &'a str,
    /// All route label templates of the route (for `routeLabels "x"`).
    pub route_labels: &'a BTreeMap<String, Template>,
}

fn map_of(name: &str) -> Option<Map> {
    match name {
        "GroupLabels" => Some(Map::GroupLabels),
        "CommonLabels" => Some(Map::CommonLabels),
        "CommonAnnotations" => Some(Map::CommonAnnotations),
        _ => None,
    }
}

fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    if s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('`') && s.ends_with('`')))
    {
        Some(s[1..s.len() - 1].replace("\\\"", "\""))
    } else {
        None
    }
}

fn parse_action(a: &str) -> Result<Part, String> {
    let a = a.trim();
    if a == ".Receiver" {
        return Ok(Part::Receiver);
    }
    if a == ".Status" {
        return Ok(Part::Status);
    }
    if let Some(rest) = a.strip_prefix("routeLabels ") {
        return unquote(rest)
            .map(Part::RouteLabel)
            .ok_or_else(|| format!("routeLabels wants a quoted name in {{{{ {a} }}}}"));
    }
    if let Some(rest) = a.strip_prefix("index ") {
        let rest = rest.trim();
        if let Some((m, key)) = rest.split_once(char::is_whitespace) {
            if let (Some(map), Some(key)) = (m.strip_prefix('.').and_then(map_of), unquote(key)) {
                return Ok(Part::Field(map, key));
            }
        }
    }
    if let Some(rest) = a.strip_prefix('.') {
        if let Some((m, key)) = rest.split_once('.') {
            if let Some(map) = map_of(m) {
                if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Ok(Part::Field(map, key.to_string()));
                }
            }
        }
    }
    Err(format!("unsupported template action {{{{ {a} }}}}"))
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = src;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed action in template {src:?}"))?;
            parts.push(parse_action(after[..end].trim_matches('-'))?);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template(parts))
    }

    /// Renders with missing fields as empty text; `routeLabels` recursion is cut at depth 8.
    pub fn render(&self, ctx: &Context<'_>) -> String {
        self.render_depth(ctx, 0)
    }

    fn render_depth(&self, ctx: &Context<'_>, depth: usize) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field(m, k) => {
                    let map = match m {
                        Map::GroupLabels => ctx.group_labels,
                        Map::CommonLabels => ctx.common_labels,
                        Map::CommonAnnotations => ctx.common_annotations,
                    };
                    out.push_str(map.get(k).map(String::as_str).unwrap_or(""));
                }
                Part::Receiver => out.push_str(ctx.receiver),
                Part::Status => out.push_str(ctx.status),
                Part::RouteLabel(name) => {
                    if depth < 8 {
                        if let Some(t) = ctx.route_labels.get(name) {
                            out.push_str(&t.render_depth(ctx, depth + 1));
                        }
                    }
                }
            }
        }
        out
    }
}

/// Renders every route label.
pub fn render_all(ctx: &Context<'_>) -> BTreeMap<String, String> {
    ctx.route_labels
        .iter()
        .map(|(k, t)| (k.clone(), t.render(ctx)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_fields_and_route_labels() {
        let templates: BTreeMap<String, Template> = [
            ("reason", "database {{ .GroupLabels.database }}"),
            (
                "description",
                "{{ .GroupLabels.alertname }} firing ({{ routeLabels \"reason\" }})",
            ),
            (
                "who",
                "{{ .Receiver }}/{{ index .CommonLabels \"team\" }}{{ .CommonLabels.missing }}",
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), Template::parse(v).unwrap()))
        .collect();
        let gl = l(&[("alertname", "DiskFull"), ("database", "orders")]);
        let cl = l(&[("team", "dba")]);
        let ctx = Context {
            group_labels: &gl,
            common_labels: &cl,
            common_annotations: &BTreeMap::new(),
            receiver: "dba",
            status: "firing",
            route_labels: &templates,
        };
        assert_eq!(
            render_all(&ctx),
            l(&[
                ("description", "DiskFull firing (database orders)"),
                ("reason", "database orders"),
                ("who", "dba/dba"),
            ])
        );
        assert!(Template::parse("{{ .Alerts | len }}").is_err());
        assert!(Template::parse("{{ .GroupLabels.x").is_err());
    }
}
