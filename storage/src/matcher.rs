//! Label matchers (`=`, `!=`, `=~`, `!~`) with Prometheus semantics: regexes are fully anchored
//! and `.` matches newlines, and a missing label matches as the empty string.

use regex::Regex;

use crate::labels::Labels;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid regular expression {value:?}: {reason}")]
pub struct InvalidMatcher {
    pub value: String,
    pub reason: String,
}

impl Matcher {
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, InvalidMatcher> {
        let value = value.into();
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                let anchored = format!("^(?s:{value})$");
                Some(Regex::new(&anchored).map_err(|e| InvalidMatcher {
                    value: value.clone(),
                    reason: e.to_string(),
                })?)
            }
            _ => None,
        };
        Ok(Matcher {
            name: name.into(),
            op,
            value,
            regex,
        })
    }

    /// An equality matcher; it cannot fail.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => self.value == value,
            MatchOp::NotEqual => self.value != value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// True when the matcher accepts the empty string, i.e. also series without the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }

    /// For regex matchers that are a plain alternation of literals (`a|b|c`), the literals.
    pub fn literal_alternatives(&self) -> Option<Vec<String>> {
        if self.op != MatchOp::Regex {
            return None;
        }
        let special = |c: char| "\\.+*?()[]{}^$".contains(c);
        if self.value.chars().any(special) {
            return None;
        }
        Some(self.value.split('|').map(str::to_string).collect())
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored_and_dotall() {
        let m = Matcher::new(MatchOp::Regex, "a", "fo.").unwrap();
        assert!(m.matches("foo"));
        assert!(!m.matches("xfoo"));
        assert!(m.matches("fo\n"));
        let n = Matcher::new(MatchOp::NotRegex, "a", "").unwrap();
        assert!(n.matches("x"));
        assert!(!n.matches(""));
    }

    #[test]
    fn literal_alternatives() {
        let m = Matcher::new(MatchOp::Regex, "a", "x|y|z").unwrap();
        assert_eq!(m.literal_alternatives().unwrap(), vec!["x", "y", "z"]);
        let m = Matcher::new(MatchOp::Regex, "a", "x.*").unwrap();
        assert!(m.literal_alternatives().is_none());
    }
}
