//! A small YAML document tree with source positions, built from `yaml-rust2` parser events:
//! anchors and aliases are resolved by copying, merge keys (`<<`) are applied (keys written in
//! the mapping win over merged ones, earlier merged maps over later), duplicate keys are refused.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// 1-based line and column in the source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A YAML node with its position.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    /// A scalar; `plain` is false for quoted and block scalars (never null or a number then).
    Scalar {
        value: String,
        plain: bool,
        pos: Pos,
    },
    Seq {
        items: Vec<Node>,
        pos: Pos,
    },
    Map {
        entries: Vec<(Node, Node)>,
        pos: Pos,
    },
}

impl Node {
    pub fn pos(&self) -> Pos {
        match self {
            Node::Scalar { pos, .. } | Node::Seq { pos, .. } | Node::Map { pos, .. } => *pos,
        }
    }

    /// Whether this is YAML's null (`~`, `null`, empty plain scalar).
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar { value, plain: true, .. }
            if value.is_empty() || value == "~" || value == "null" || value == "Null" || value == "NULL")
    }

    /// The YAML tag name of the node's kind, for type errors (`!!seq`, `!!str`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Scalar { .. } if self.is_null() => "!!null",
            Node::Scalar {
                value, plain: true, ..
            } if value.parse::<i64>().is_ok() => "!!int",
            Node::Scalar {
                value, plain: true, ..
            } if value.parse::<f64>().is_ok() => "!!float",
            Node::Scalar {
                value, plain: true, ..
            } if value == "true" || value == "false" => "!!bool",
            Node::Scalar { .. } => "!!str",
            Node::Seq { .. } => "!!seq",
            Node::Map { .. } => "!!map",
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Clone, Debug)]
pub(crate) struct YamlError {
    pub pos: Pos,
    pub message: String,
}

fn pos_of(m: &Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

/// Parses the first document of `text`; `None` for an empty stream.
pub(crate) fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut b, false) {
        return Err(YamlError {
            pos: pos_of(e.marker()),
            message: format!("yaml: {}", e.info()),
        });
    }
    if let Some(e) = b.error {
        return Err(e);
    }
    Ok(b.doc)
}

/// Most nodes alias expansion may copy into one document (YAML "billion laughs" guard).
const MAX_ALIAS_NODES: usize = 1_000_000;

fn node_count(n: &Node) -> usize {
    match n {
        Node::Scalar { .. } => 1,
        Node::Seq { items, .. } => 1 + items.iter().map(node_count).sum::<usize>(),
        Node::Map { entries, .. } => {
            1 + entries
                .iter()
                .map(|(k, v)| node_count(k) + node_count(v))
                .sum::<usize>()
        }
    }
}

#[derive(Default)]
struct Builder {
    /// Nodes copied by alias expansion so far.
    alias_nodes: usize,
    /// Open collections: (node under construction, its anchor id, pending key for maps).
    stack: Vec<(Node, usize, Option<Node>)>,
    anchors: HashMap<usize, Node>,
    doc: Option<Node>,
    error: Option<YamlError>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.doc.is_none() {
                    self.doc = Some(node);
                }
            }
            Some((Node::Seq { items, .. }, _, _)) => items.push(node),
            Some((Node::Map { entries, .. }, _, key)) => match key.take() {
                None => *key = Some(node),
                Some(k) => {
                    if let (Node::Scalar { value, .. }, true) = (&k, self.error.is_none()) {
                        let dup = entries.iter().find(
                            |(ek, _)| matches!(ek, Node::Scalar { value: v, .. } if v == value),
                        );
                        if let Some((ek, _)) = dup {
                            if value != "<<" {
                                self.error = Some(YamlError {
                                    pos: k.pos(),
                                    message: format!(
                                        "mapping key {value:?} already defined at line {}",
                                        ek.pos().line
                                    ),
                                });
                            }
                        }
                    }
                    entries.push((k, node));
                }
            },
            Some((Node::Scalar { .. }, _, _)) => {}
        }
    }
}

/// Applies `<<` merge keys of a finished mapping.
fn apply_merges(entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
    let is_merge = |k: &Node| matches!(k, Node::Scalar { value, plain: true, .. } if value == "<<");
    if !entries.iter().any(|(k, _)| is_merge(k)) {
        return entries;
    }
    let mut own: Vec<(Node, Node)> = Vec::new();
    let mut merged: Vec<(Node, Node)> = Vec::new();
    for (k, v) in entries {
        if is_merge(&k) {
            let sources = match v {
                Node::Seq { items, .. } => items,
                other => vec![other],
            };
            for s in sources {
                if let Node::Map { entries: e, .. } = s {
                    for (mk, mv) in e {
                        let seen = merged.iter().any(|(x, _)| same_key(x, &mk));
                        if !seen {
                            merged.push((mk, mv));
                        }
                    }
                }
            }
        } else {
            own.push((k, v));
        }
    }
    let mut out = Vec::new();
    for (mk, mv) in merged {
        if !own.iter().any(|(k, _)| same_key(k, &mk)) {
            out.push((mk, mv));
        }
    }
    // Keep the merged keys first, then the mapping's own (own keys override).
    out.extend(own);
    out
}

fn same_key(a: &Node, b: &Node) -> bool {
    match (a, b) {
        (Node::Scalar { value: x, .. }, Node::Scalar { value: y, .. }) => x == y,
        _ => false,
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = pos_of(&mark);
        match ev {
            Event::Scalar(value, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                self.push_value(Node::Scalar { value, plain, pos }, anchor);
            }
            Event::Alias(id) => {
                let node = match self.anchors.get(&id) {
                    Some(n) if self.alias_nodes + node_count(n) > MAX_ALIAS_NODES => {
                        if self.error.is_none() {
                            self.error = Some(YamlError {
                                pos,
                                message: "yaml: document contains excessive aliasing".into(),
                            });
                        }
                        Node::Scalar {
                            value: String::new(),
                            plain: true,
                            pos,
                        }
                    }
                    Some(n) => {
                        self.alias_nodes += node_count(n);
                        n.clone()
                    }
                    None => {
                        if self.error.is_none() {
                            self.error = Some(YamlError {
                                pos,
                                message: "yaml: unknown anchor".into(),
                            });
                        }
                        Node::Scalar {
                            value: String::new(),
                            plain: true,
                            pos,
                        }
                    }
                };
                self.push_value(node, 0);
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push((
                    Node::Seq {
                        items: Vec::new(),
                        pos,
                    },
                    anchor,
                    None,
                ));
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push((
                    Node::Map {
                        entries: Vec::new(),
                        pos,
                    },
                    anchor,
                    None,
                ));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, anchor, _)) = self.stack.pop() {
                    let node = match node {
                        Node::Map { entries, pos } => Node::Map {
                            entries: apply_merges(entries),
                            pos,
                        },
                        other => other,
                    };
                    self.push_value(node, anchor);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_aliases_and_merge_keys_with_positions() {
        let doc = "a: &x\n  k: 1\n  j: 2\nb:\n  <<: *x\n  k: 3\n";
        let Ok(Some(Node::Map { entries, .. })) = parse(doc) else {
            panic!("expected a mapping");
        };
        assert_eq!(entries.len(), 2);
        let Node::Map { entries: b, pos } = &entries[1].1 else {
            panic!("expected b to be a mapping");
        };
        assert_eq!(pos.line, 5);
        let get = |name: &str| {
            b.iter().find_map(|(k, v)| match (k, v) {
                (Node::Scalar { value, .. }, Node::Scalar { value: x, .. }) if value == name => {
                    Some(x.clone())
                }
                _ => None,
            })
        };
        assert_eq!(get("k").as_deref(), Some("3"));
        assert_eq!(get("j").as_deref(), Some("2"));
    }

    #[test]
    fn refuses_duplicate_keys_and_reports_syntax_errors() {
        let e = parse("a: 1\na: 2\n").err().map(|e| (e.pos.line, e.message));
        assert_eq!(
            e,
            Some((2, "mapping key \"a\" already defined at line 1".to_string()))
        );
        let e = parse("a: [1, 2\n").err();
        assert!(e.is_some());
    }

    #[test]
    fn refuses_exponential_alias_expansion() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&doc).err().map(|e| e.message);
        assert_eq!(
            e.as_deref(),
            Some("yaml: document contains excessive aliasing")
        );
    }
}
