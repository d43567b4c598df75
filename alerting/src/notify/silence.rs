//! Silences, as Alertmanager's API v2 shapes them: a set of matchers and a time range. Active
//! silences mute matching alerts' notifications (a resolve owed for an alert notified before
//! the silence is still sent — see `dispatch`). Persisted in `silences.json`; expired ones are
//! kept for the retention period and then dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sextant_storage::{MatchOp, Matcher};

use super::nflog::{read_json, write_json_atomic};
use super::{parse_rfc3339, rfc3339};

/// A matcher as the API carries it.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl ApiMatcher {
    fn compile(&self) -> Result<Matcher, String> {
        let op = match (self.is_regex, self.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        Matcher::new(op, self.name.clone(), self.value.clone()).map_err(|e| e.to_string())
    }
}

/// `postableSilence`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    #[serde(default)]
    pub id: Option<String>,
    pub matchers: Vec<ApiMatcher>,
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: String,
    pub comment: String,
}

/// A stored silence. Times in Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<ApiMatcher>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub updated_at_ms: i64,
    pub created_by: String,
    pub comment: String,
    /// `matchers`, compiled (regexes built once); filled when stored or loaded.
    #[serde(skip)]
    compiled: Vec<Matcher>,
}

impl Silence {
    fn compile(&mut self) {
        self.compiled = self
            .matchers
            .iter()
            .filter_map(|m| m.compile().ok())
            .collect();
    }

    pub fn state(&self, now_ms: i64) -> &'static str {
        if self.ends_at_ms <= now_ms {
            "expired"
        } else if self.starts_at_ms > now_ms {
            "pending"
        } else {
            "active"
        }
    }

    /// Whether every matcher accepts `labels` (regexes anchored; missing label = "").
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        if self.compiled.len() != self.matchers.len() {
            // Not compiled (or a matcher does not compile): match nothing rather than all.
            return false;
        }
        self.compiled
            .iter()
            .all(|c| c.matches(labels.get(&c.name).map(String::as_str).unwrap_or("")))
    }

    /// `gettableSilence`.
    pub fn to_json(&self, now_ms: i64) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "status": {"state": self.state(now_ms)},
            "updatedAt": rfc3339(self.updated_at_ms),
            "comment": self.comment,
            "createdBy": self.created_by,
            "startsAt": rfc3339(self.starts_at_ms),
            "endsAt": rfc3339(self.ends_at_ms),
            "matchers": self.matchers,
        })
    }
}

/// Why a silence operation failed: `NotFound` maps to 404, `Invalid` to 400.
#[derive(Debug, PartialEq)]
pub enum SilenceError {
    NotFound(String),
    Invalid(String),
    Storage(String),
}

/// All silences, persisted in `<dir>/silences.json` when a directory is given.
pub struct Silences {
    map: Mutex<BTreeMap<String, Silence>>,
    path: Option<PathBuf>,
    retention_ms: i64,
}

impl Silences {
    pub fn open(dir: Option<&Path>, retention_ms: i64) -> Result<Silences, String> {
        let path = dir.map(|d| d.join("silences.json"));
        let list: Vec<Silence> = match &path {
            Some(p) => read_json(p)?.unwrap_or_default(),
            None => Vec::new(),
        };
        Ok(Silences {
            map: Mutex::new(
                list.into_iter()
                    .map(|mut s| {
                        s.compile();
                        (s.id.clone(), s)
                    })
                    .collect(),
            ),
            path,
            retention_ms,
        })
    }

    fn persist(&self, map: &BTreeMap<String, Silence>) -> Result<(), SilenceError> {
        match &self.path {
            Some(p) => {
                let list: Vec<&Silence> = map.values().collect();
                write_json_atomic(p, &list).map_err(SilenceError::Storage)
            }
            None => Ok(()),
        }
    }

    /// Creates a silence, or updates the one with the given id. As in Alertmanager, an update
    /// that changes the matchers of an active silence, or that targets an expired one, expires
    /// the old silence and creates a new one. Returns the id that now holds the silence.
    pub fn upsert(&self, p: PostableSilence, now_ms: i64) -> Result<String, SilenceError> {
        if p.matchers.is_empty() {
            return Err(SilenceError::Invalid(
                "at least one matcher required".into(),
            ));
        }
        for m in &p.matchers {
            if m.name.is_empty() {
                return Err(SilenceError::Invalid(
                    "invalid label matcher: empty label name".into(),
                ));
            }
            m.compile()
                .map_err(|e| SilenceError::Invalid(format!("invalid label matcher: {e}")))?;
        }
        let starts = parse_rfc3339(&p.starts_at).map_err(SilenceError::Invalid)?;
        let ends = parse_rfc3339(&p.ends_at).map_err(SilenceError::Invalid)?;
        if ends <= starts {
            return Err(SilenceError::Invalid(
                "Failed to create silence: start time must be before end time".into(),
            ));
        }
        if ends <= now_ms {
            return Err(SilenceError::Invalid(
                "Failed to create silence: end time can't be in the past".into(),
            ));
        }
        let mut map = self.map.lock();
        let mut new_id = None;
        if let Some(id) = p.id.as_deref().filter(|s| !s.is_empty()) {
            let Some(old) = map.get_mut(id) else {
                return Err(SilenceError::NotFound(format!("silence {id} not found")));
            };
            let state = old.state(now_ms);
            let in_place = state == "pending" || (state == "active" && old.matchers == p.matchers);
            if in_place {
                old.matchers = p.matchers.clone();
                old.starts_at_ms = if state == "active" {
                    old.starts_at_ms
                } else {
                    starts.max(now_ms)
                };
                old.ends_at_ms = ends;
                old.comment = p.comment.clone();
                old.created_by = p.created_by.clone();
                old.updated_at_ms = now_ms;
                old.compile();
                new_id = Some(id.to_string());
            } else if state != "expired" {
                old.ends_at_ms = now_ms;
                old.updated_at_ms = now_ms;
            }
        }
        let id = match new_id {
            Some(id) => id,
            None => {
                let id = new_uuid();
                let mut s = Silence {
                    id: id.clone(),
                    matchers: p.matchers,
                    starts_at_ms: starts.max(now_ms),
                    ends_at_ms: ends,
                    updated_at_ms: now_ms,
                    created_by: p.created_by,
                    comment: p.comment,
                    compiled: Vec::new(),
                };
                s.compile();
                map.insert(id.clone(), s);
                id
            }
        };
        let retention = self.retention_ms;
        map.retain(|_, s| s.ends_at_ms + retention > now_ms);
        self.persist(&map)?;
        Ok(id)
    }

    /// Expires a silence now (Alertmanager's DELETE).
    pub fn expire(&self, id: &str, now_ms: i64) -> Result<(), SilenceError> {
        let mut map = self.map.lock();
        let s = map
            .get_mut(id)
            .ok_or_else(|| SilenceError::NotFound(format!("silence {id} not found")))?;
        match s.state(now_ms) {
            "expired" => {
                return Err(SilenceError::Invalid(format!(
                    "silence {id} already expired"
                )))
            }
            "pending" => {
                s.starts_at_ms = now_ms;
                s.ends_at_ms = now_ms;
            }
            _ => s.ends_at_ms = now_ms,
        }
        s.updated_at_ms = now_ms;
        self.persist(&map)
    }

    pub fn get(&self, id: &str) -> Option<Silence> {
        self.map.lock().get(id).cloned()
    }

    pub fn list(&self) -> Vec<Silence> {
        self.map.lock().values().cloned().collect()
    }

    /// Ids of the active silences that mute `labels` at `now_ms`.
    pub fn muting(&self, labels: &BTreeMap<String, String>, now_ms: i64) -> Vec<String> {
        self.map
            .lock()
            .values()
            .filter(|s| s.state(now_ms) == "active" && s.matches(labels))
            .map(|s| s.id.clone())
            .collect()
    }
}

/// A random (version 4) UUID.
fn new_uuid() -> String {
    let mut b = [0u8; 16];
    for x in b.iter_mut() {
        *x = fastrand::u8(..);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_714_557_600_000; // 2024-05-01T10:00:00Z

    fn post(id: Option<&str>, value: &str, start: i64, end: i64) -> PostableSilence {
        PostableSilence {
            id: id.map(str::to_string),
            matchers: vec![ApiMatcher {
                name: "alertname".into(),
                value: value.into(),
                is_regex: false,
                is_equal: true,
            }],
            starts_at: rfc3339(start),
            ends_at: rfc3339(end),
            created_by: "me".into(),
            comment: "maintenance".into(),
        }
    }

    fn labels(name: &str) -> BTreeMap<String, String> {
        [("alertname".to_string(), name.to_string())]
            .into_iter()
            .collect()
    }

    #[test]
    fn lifecycle_and_persistence() {
        let dir = tempfile::tempdir().unwrap();
        let s = Silences::open(Some(dir.path()), 3_600_000).unwrap();
        let id = s.upsert(post(None, "Down", T0, T0 + 60_000), T0).unwrap();
        assert_eq!(s.muting(&labels("Down"), T0 + 1), vec![id.clone()]);
        assert!(s.muting(&labels("Up"), T0 + 1).is_empty());
        assert!(
            s.muting(&labels("Down"), T0 + 60_000).is_empty(),
            "expired at endsAt"
        );
        // Extending an active silence with the same matchers keeps its id.
        let same = s
            .upsert(post(Some(&id), "Down", T0, T0 + 120_000), T0 + 10)
            .unwrap();
        assert_eq!(same, id);
        // Changing the matchers expires it and creates a new one.
        let other = s
            .upsert(post(Some(&id), "Other", T0, T0 + 120_000), T0 + 20)
            .unwrap();
        assert_ne!(other, id);
        assert_eq!(s.get(&id).unwrap().state(T0 + 21), "expired");
        let reopened = Silences::open(Some(dir.path()), 3_600_000).unwrap();
        assert_eq!(reopened.get(&other).unwrap().state(T0 + 21), "active");
        reopened.expire(&other, T0 + 30).unwrap();
        assert_eq!(reopened.get(&other).unwrap().state(T0 + 30), "expired");
        assert!(matches!(
            reopened.expire(&other, T0 + 31),
            Err(SilenceError::Invalid(_))
        ));
        assert!(matches!(
            reopened.expire("nope", T0),
            Err(SilenceError::NotFound(_))
        ));
    }

    #[test]
    fn invalid_silences_are_refused() {
        let s = Silences::open(None, 3_600_000).unwrap();
        assert!(matches!(
            s.upsert(post(None, "x", T0, T0 - 1), T0),
            Err(SilenceError::Invalid(_))
        ));
        assert!(matches!(
            s.upsert(post(None, "x", T0 - 10, T0 - 5), T0),
            Err(SilenceError::Invalid(_))
        ));
        let mut p = post(None, "(", T0, T0 + 10);
        p.matchers[0].is_regex = true;
        assert!(matches!(s.upsert(p, T0), Err(SilenceError::Invalid(_))));
        assert!(matches!(
            s.upsert(post(Some("missing"), "x", T0, T0 + 10), T0),
            Err(SilenceError::NotFound(_))
        ));
    }
}
