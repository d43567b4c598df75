//! The routing tree: which route(s) — and so which receiver and grouping options — an alert
//! goes to. Semantics are Alertmanager's: options are inherited from the parent, the first
//! matching child wins unless it has `continue: true`, and a node none of whose children match
//! takes the alert itself.

use std::collections::{BTreeMap, BTreeSet};

use super::config::{parse_duration_ms, RouteConfig};
use super::matchers::{label_set_string, Matchers};
use super::template::Template;

/// Alertmanager's defaults.
pub const DEFAULT_GROUP_WAIT_MS: i64 = 30_000;
pub const DEFAULT_GROUP_INTERVAL_MS: i64 = 300_000;
pub const DEFAULT_REPEAT_INTERVAL_MS: i64 = 4 * 3_600_000;

/// How alerts of a route are grouped.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupBy {
    /// `group_by: ['...']`: every label set is its own group.
    All,
    /// The listed label names (possibly none: one group for the route).
    Labels(Vec<String>),
}

/// One node of the tree, with inherited options resolved. Times in milliseconds.
#[derive(Clone, Debug)]
pub struct Route {
    pub matchers: Matchers,
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait_ms: i64,
    pub group_interval_ms: i64,
    pub repeat_interval_ms: i64,
    pub continue_matching: bool,
    pub mute_time_intervals: Vec<String>,
    pub active_time_intervals: Vec<String>,
    /// Route label templates, the parent's overridden by this node's.
    pub labels: BTreeMap<String, Template>,
    /// Children, as indices into [`RouteTree::routes`].
    pub children: Vec<usize>,
    /// Alertmanager's route key: the parent's key, `/`, and this node's matchers (`{}` at the
    /// root).
    pub key: String,
}

impl Route {
    /// The labels of `alert_labels` this route groups by.
    pub fn group_labels(
        &self,
        alert_labels: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        match &self.group_by {
            GroupBy::All => alert_labels.clone(),
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|n| alert_labels.get(n).map(|v| (n.clone(), v.clone())))
                .collect(),
        }
    }

    /// The aggregation group key: `<route key>:<group labels>`.
    pub fn group_key(&self, group_labels: &BTreeMap<String, String>) -> String {
        format!("{}:{}", self.key, label_set_string(group_labels))
    }
}

/// The whole tree, flattened; index 0 is the root.
#[derive(Clone, Debug)]
pub struct RouteTree {
    pub routes: Vec<Route>,
}

impl RouteTree {
    /// Builds the tree, resolving inheritance and checking names against `receivers` and
    /// `time_intervals`.
    pub fn build(
        root: &RouteConfig,
        receivers: &BTreeSet<String>,
        time_intervals: &BTreeSet<String>,
    ) -> Result<RouteTree, String> {
        if root.receiver.as_deref().unwrap_or("").is_empty() {
            return Err("root route must specify a default receiver".into());
        }
        if !root.matchers.is_empty() || !root.match_eq.is_empty() || !root.match_re.is_empty() {
            return Err("root route must not have any matchers".into());
        }
        if root.continue_matching {
            return Err("cannot have continue in root route".into());
        }
        if !root.mute_time_intervals.is_empty() || !root.active_time_intervals.is_empty() {
            return Err("root route cannot have any mute or active time intervals".into());
        }
        let mut tree = RouteTree { routes: Vec::new() };
        tree.add(root, None, receivers, time_intervals, "route")?;
        Ok(tree)
    }

    fn add(
        &mut self,
        cfg: &RouteConfig,
        parent: Option<usize>,
        receivers: &BTreeSet<String>,
        time_intervals: &BTreeSet<String>,
        path: &str,
    ) -> Result<usize, String> {
        let inherited = parent.map(|p| self.routes[p].clone());
        let dur = |v: &Option<String>, name: &str, default: i64, from_parent: Option<i64>| match v {
            Some(s) => {
                let ms = parse_duration_ms(s).map_err(|e| format!("{path}.{name}: {e}"))?;
                if ms <= 0 && name != "group_wait" {
                    return Err(format!("{path}.{name} cannot be zero"));
                }
                Ok(ms)
            }
            None => Ok(from_parent.unwrap_or(default)),
        };
        let receiver = match &cfg.receiver {
            Some(r) if !r.is_empty() => r.clone(),
            _ => inherited
                .as_ref()
                .map(|p| p.receiver.clone())
                .unwrap_or_default(),
        };
        if !receivers.contains(&receiver) {
            return Err(format!(
                "{path}: undefined receiver {receiver:?} used in route"
            ));
        }
        let group_by = match &cfg.group_by {
            Some(names) if names.iter().any(|n| n == "...") => {
                if names.len() > 1 {
                    return Err(format!(
                        "{path}.group_by: cannot have wildcard group_by (`...`) and other labels at the same time"
                    ));
                }
                GroupBy::All
            }
            Some(names) => {
                let mut seen = BTreeSet::new();
                for n in names {
                    if !seen.insert(n) {
                        return Err(format!("{path}.group_by: duplicated label {n:?}"));
                    }
                }
                GroupBy::Labels(names.clone())
            }
            None => inherited
                .as_ref()
                .map(|p| p.group_by.clone())
                .unwrap_or(GroupBy::Labels(Vec::new())),
        };
        for name in cfg
            .mute_time_intervals
            .iter()
            .chain(&cfg.active_time_intervals)
        {
            if !time_intervals.contains(name) {
                return Err(format!(
                    "{path}: undefined time interval {name:?} used in route"
                ));
            }
        }
        let matchers = Matchers::from_config(&cfg.matchers, &cfg.match_eq, &cfg.match_re)
            .map_err(|e| format!("{path}.matchers: {e}"))?;
        let key = match &inherited {
            Some(p) => format!("{}/{}", p.key, matchers),
            None => matchers.to_string(),
        };
        let mut labels = inherited
            .as_ref()
            .map(|p| p.labels.clone())
            .unwrap_or_default();
        for (k, v) in &cfg.labels {
            labels.insert(
                k.clone(),
                Template::parse(v).map_err(|e| format!("{path}.labels.{k}: {e}"))?,
            );
        }
        let route = Route {
            matchers,
            labels,
            receiver,
            group_by,
            group_wait_ms: dur(
                &cfg.group_wait,
                "group_wait",
                DEFAULT_GROUP_WAIT_MS,
                inherited.as_ref().map(|p| p.group_wait_ms),
            )?,
            group_interval_ms: dur(
                &cfg.group_interval,
                "group_interval",
                DEFAULT_GROUP_INTERVAL_MS,
                inherited.as_ref().map(|p| p.group_interval_ms),
            )?,
            repeat_interval_ms: dur(
                &cfg.repeat_interval,
                "repeat_interval",
                DEFAULT_REPEAT_INTERVAL_MS,
                inherited.as_ref().map(|p| p.repeat_interval_ms),
            )?,
            continue_matching: cfg.continue_matching,
            mute_time_intervals: cfg.mute_time_intervals.clone(),
            active_time_intervals: cfg.active_time_intervals.clone(),
            children: Vec::new(),
            key,
        };
        let idx = self.routes.len();
        self.routes.push(route);
        for (i, child) in cfg.routes.iter().enumerate() {
            let c = self.add(
                child,
                Some(idx),
                receivers,
                time_intervals,
                &format!("{path}.routes[{i}]"),
            )?;
            self.routes[idx].children.push(c);
        }
        Ok(idx)
    }

    /// The routes (indices) that take an alert with `labels`, in tree order.
    pub fn match_labels(&self, labels: &BTreeMap<String, String>) -> Vec<usize> {
        let mut out = Vec::new();
        self.match_from(0, labels, &mut out);
        out
    }

    fn match_from(
        &self,
        idx: usize,
        labels: &BTreeMap<String, String>,
        out: &mut Vec<usize>,
    ) -> bool {
        let route = &self.routes[idx];
        if !route.matchers.matches(labels) {
            return false;
        }
        let before = out.len();
        for &child in &route.children {
            let matched = self.match_from(child, labels, out);
            if matched && !self.routes[child].continue_matching {
                break;
            }
        }
        if out.len() == before {
            out.push(idx);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::config::NotifyConfig;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn tree(yaml: &str) -> RouteTree {
        let c: NotifyConfig = serde_yaml::from_str(yaml).unwrap();
        let receivers = c.receivers.iter().map(|r| r.name.clone()).collect();
        let intervals = c.time_intervals.iter().map(|t| t.name.clone()).collect();
        RouteTree::build(c.route.as_ref().unwrap(), &receivers, &intervals).unwrap()
    }

    const EXAMPLE: &str = r#"
route:
  group_by: ['alertname', 'cluster', 'service']
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 3h
  receiver: team-X-mails
  routes:
    - matchers: ['service=~"foo1|foo2|baz"']
      receiver: team-X-mails
      routes:
        - matchers: [severity="critical"]
          receiver: team-X-pager
    - matchers: [service="files"]
      receiver: team-Y-mails
      routes:
        - matchers: [severity="critical"]
          receiver: team-Y-pager
    - matchers: [service="database"]
      receiver: team-DB-pager
      group_by: [alertname, cluster, database]
      group_wait: 10s
      routes:
        - matchers: [owner="team-X"]
          receiver: team-X-pager
          continue: true
        - matchers: [owner="team-Y"]
          receiver: team-Y-pager
receivers:
  - {name: team-X-mails}
  - {name: team-X-pager}
  - {name: team-Y-mails}
  - {name: team-Y-pager}
  - {name: team-DB-pager}
"#;

    fn receivers(t: &RouteTree, l: &[(&str, &str)]) -> Vec<String> {
        t.match_labels(&labels(l))
            .into_iter()
            .map(|i| t.routes[i].receiver.clone())
            .collect()
    }

    #[test]
    fn routes_like_alertmanager_example() {
        let t = tree(EXAMPLE);
        assert_eq!(receivers(&t, &[("service", "foo1")]), ["team-X-mails"]);
        assert_eq!(
            receivers(&t, &[("service", "foo1"), ("severity", "critical")]),
            ["team-X-pager"]
        );
        assert_eq!(receivers(&t, &[("service", "other")]), ["team-X-mails"]);
        assert_eq!(receivers(&t, &[("service", "foo12")]), ["team-X-mails"]);
        // continue: true on the first child lets the second child match too.
        assert_eq!(
            receivers(&t, &[("service", "database"), ("owner", "team-X")]),
            ["team-X-pager"]
        );
        assert_eq!(
            receivers(&t, &[("service", "database"), ("owner", "team-Y")]),
            ["team-Y-pager"]
        );
        assert_eq!(
            receivers(&t, &[("service", "database"), ("owner", "nobody")]),
            ["team-DB-pager"]
        );
    }

    #[test]
    fn continue_yields_several_routes() {
        let t = tree(
            r#"
route:
  receiver: a
  routes:
    - {matchers: [x="1"], receiver: b, continue: true}
    - {matchers: [x=~".+"], receiver: c}
    - {matchers: [x="1"], receiver: a}
receivers: [{name: a}, {name: b}, {name: c}]
"#,
        );
        assert_eq!(receivers(&t, &[("x", "1")]), ["b", "c"]);
        assert_eq!(receivers(&t, &[("x", "2")]), ["c"]);
        assert_eq!(receivers(&t, &[]), ["a"]);
    }

    #[test]
    fn options_are_inherited_and_keys_are_alertmanagers() {
        let t = tree(EXAMPLE);
        let db = t.match_labels(&labels(&[("service", "database"), ("owner", "team-X")]))[0];
        let r = &t.routes[db];
        assert_eq!(r.group_wait_ms, 10_000);
        assert_eq!(r.group_interval_ms, 300_000);
        assert_eq!(r.repeat_interval_ms, 3 * 3_600_000);
        assert_eq!(
            r.group_by,
            GroupBy::Labels(vec![
                "alertname".into(),
                "cluster".into(),
                "database".into()
            ])
        );
        assert_eq!(r.key, r#"{}/{service="database"}/{owner="team-X"}"#);
        let gl = r.group_labels(&labels(&[
            ("alertname", "DiskFull"),
            ("database", "orders"),
            ("instance", "db-1"),
        ]));
        assert_eq!(
            r.group_key(&gl),
            r#"{}/{service="database"}/{owner="team-X"}:{alertname="DiskFull", database="orders"}"#
        );
        let plain = tree("route: {receiver: a}\nreceivers: [{name: a}]\n");
        assert_eq!(plain.routes[0].group_wait_ms, DEFAULT_GROUP_WAIT_MS);
        assert_eq!(plain.routes[0].group_interval_ms, DEFAULT_GROUP_INTERVAL_MS);
        assert_eq!(
            plain.routes[0].repeat_interval_ms,
            DEFAULT_REPEAT_INTERVAL_MS
        );
        assert_eq!(plain.routes[0].group_by, GroupBy::Labels(vec![]));
    }

    #[test]
    fn group_by_all_and_invalid_trees() {
        let t = tree("route: {receiver: a, group_by: ['...']}\nreceivers: [{name: a}]\n");
        let l = labels(&[("a", "1"), ("b", "2")]);
        assert_eq!(t.routes[0].group_labels(&l), l);
        let bad = |yaml: &str| {
            let c: NotifyConfig = serde_yaml::from_str(yaml).unwrap();
            let receivers = c.receivers.iter().map(|r| r.name.clone()).collect();
            RouteTree::build(c.route.as_ref().unwrap(), &receivers, &BTreeSet::new()).unwrap_err()
        };
        assert!(
            bad("route: {receiver: nope}\nreceivers: [{name: a}]\n").contains("undefined receiver")
        );
        assert!(
            bad("route: {receiver: a, group_by: ['...', x]}\nreceivers: [{name: a}]\n")
                .contains("wildcard")
        );
        assert!(
            bad("route: {receiver: a, matchers: [a=b]}\nreceivers: [{name: a}]\n")
                .contains("root route")
        );
        assert!(bad(
            "route: {receiver: a, routes: [{mute_time_intervals: [x]}]}\nreceivers: [{name: a}]\n"
        )
        .contains("time interval"));
    }
}
