//! Configuration types: Alertmanager's configuration format (under `notifications:`) and
//! Prometheus' `alerting:` section. Field names and defaults follow the upstream projects; every
//! section rejects keys it does not know.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The built-in notifier's configuration, in Alertmanager's configuration format (`global`,
/// `route`, `receivers`, `inhibit_rules`, `time_intervals`, …), under `notifications:` in
/// Sextant's configuration file. Without a `route` the notifier is off.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    pub global: GlobalConfig,
    pub route: Option<RouteConfig>,
    pub receivers: Vec<ReceiverConfig>,
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    pub time_intervals: Vec<TimeIntervalConfig>,
    /// Alertmanager's deprecated top-level name for `time_intervals`; both are accepted.
    pub mute_time_intervals: Vec<TimeIntervalConfig>,
    /// Accepted for compatibility; Go notification templates are not supported, so receivers
    /// use Sextant's built-in texts.
    pub templates: Vec<String>,
    /// Alertmanager's `--web.external-url`: the `externalURL` of notifications and the base of
    /// links. Default: empty.
    pub external_url: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    /// `endsAt` given to an alert that arrives without one (as `resolve_timeout`).
    pub resolve_timeout: String,
    pub slack_api_url: Option<String>,
    pub pagerduty_url: String,
    /// How long entries of the notification log are kept (Alertmanager's
    /// `--data.retention`, default 120h).
    pub notification_log_retention: String,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            resolve_timeout: "5m".into(),
            slack_api_url: None,
            pagerduty_url: "https://events.pagerduty.com/v2/enqueue".into(),
            notification_log_retention: "120h".into(),
        }
    }
}

/// One node of the routing tree. Unset options are inherited from the parent.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteConfig {
    pub receiver: Option<String>,
    pub group_by: Option<Vec<String>>,
    /// `name="value"`, `name!="value"`, `name=~"re"`, `name!~"re"`.
    pub matchers: Vec<String>,
    /// Legacy equality matchers.
    #[serde(rename = "match")]
    pub match_eq: BTreeMap<String, String>,
    /// Legacy regex matchers.
    pub match_re: BTreeMap<String, String>,
    #[serde(rename = "continue")]
    pub continue_matching: bool,
    pub routes: Vec<RouteConfig>,
    pub group_wait: Option<String>,
    pub group_interval: Option<String>,
    pub repeat_interval: Option<String>,
    pub mute_time_intervals: Vec<String>,
    pub active_time_intervals: Vec<String>,
    /// Route labels: templates rendered per group into `routeLabels` (inherited; a child
    /// overrides by name). See `template` for the supported template subset.
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiverConfig {
    pub name: String,
    pub webhook_configs: Vec<WebhookConfig>,
    pub pagerduty_configs: Vec<PagerdutyConfig>,
    pub slack_configs: Vec<SlackConfig>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    pub url: String,
    pub send_resolved: bool,
    /// Most alerts per message; the rest are counted in `truncatedAlerts`. 0: no limit.
    pub max_alerts: usize,
    /// Timeout of one attempt (Alertmanager: none; here 10s by default).
    pub timeout: String,
    pub http_config: HttpClientConfig,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: String::new(),
            send_resolved: true,
            max_alerts: 0,
            timeout: "10s".into(),
            http_config: HttpClientConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagerdutyConfig {
    /// Events API v2 integration key.
    pub routing_key: String,
    /// Events API endpoint; default `global.pagerduty_url`.
    pub url: Option<String>,
    pub send_resolved: bool,
    pub client: String,
    /// Default: the external URL.
    pub client_url: Option<String>,
    /// `critical`, `error`, `warning` or `info`; default from the alerts' common `severity`
    /// label (`page` → critical, `ticket` → warning), else `critical`.
    pub severity: Option<String>,
    /// Payload summary; default the common `summary` annotation, else Alertmanager's subject.
    pub description: Option<String>,
    pub class: Option<String>,
    pub component: Option<String>,
    pub group: Option<String>,
    pub source: Option<String>,
    pub links: Vec<LinkConfig>,
    pub timeout: String,
    pub http_config: HttpClientConfig,
}

impl Default for PagerdutyConfig {
    fn default() -> Self {
        PagerdutyConfig {
            routing_key: String::new(),
            url: None,
            send_resolved: true,
            client: "Sextant".into(),
            client_url: None,
            severity: None,
            description: None,
            class: None,
            component: None,
            group: None,
            source: None,
            links: Vec::new(),
            timeout: "10s".into(),
            http_config: HttpClientConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LinkConfig {
    pub href: String,
    pub text: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfig {
    /// Incoming-webhook URL; default `global.slack_api_url`.
    pub api_url: Option<String>,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub icon_emoji: Option<String>,
    /// Alertmanager's default for Slack is false.
    pub send_resolved: bool,
    pub timeout: String,
    pub http_config: HttpClientConfig,
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            api_url: None,
            channel: None,
            username: None,
            icon_emoji: None,
            send_resolved: false,
            timeout: "10s".into(),
            http_config: HttpClientConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InhibitRuleConfig {
    pub source_matchers: Vec<String>,
    pub target_matchers: Vec<String>,
    pub source_match: BTreeMap<String, String>,
    pub source_match_re: BTreeMap<String, String>,
    pub target_match: BTreeMap<String, String>,
    pub target_match_re: BTreeMap<String, String>,
    pub equal: Vec<String>,
}

/// A named set of time intervals (`time_intervals:` entry).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeIntervalConfig {
    pub name: String,
    pub time_intervals: Vec<TimeIntervalSpec>,
}

/// One interval: every listed field must match (an absent field matches everything).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeIntervalSpec {
    pub times: Vec<TimeRangeSpec>,
    /// `monday`, `monday:friday`.
    pub weekdays: Vec<String>,
    /// `1`, `1:5`, `-1` (last day), `-3:-1`.
    pub days_of_month: Vec<String>,
    /// `january`, `1`, `january:march`, `1:3`.
    pub months: Vec<String>,
    /// `2024`, `2024:2026`.
    pub years: Vec<String>,
    /// IANA time zone name; default UTC.
    pub location: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeRangeSpec {
    /// `HH:MM`, inclusive.
    pub start_time: String,
    /// `HH:MM`, exclusive; `24:00` allowed.
    pub end_time: String,
}

/// Authentication for a receiver's HTTP requests (the `http_config` of Alertmanager
/// integrations; inline in Prometheus' `alertmanagers` entries).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpClientConfig {
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    /// Legacy form of `authorization: {credentials: …}`.
    pub bearer_token: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Authorization {
    /// The scheme, `Bearer` by default.
    #[serde(rename = "type")]
    pub kind: String,
    pub credentials: String,
}

impl Default for Authorization {
    fn default() -> Self {
        Authorization {
            kind: "Bearer".into(),
            credentials: String::new(),
        }
    }
}

/// Prometheus' `alerting:` section: external Alertmanagers that receive every alert.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    pub static_configs: Vec<StaticConfig>,
    /// `http` or `https`.
    pub scheme: String,
    pub path_prefix: String,
    pub timeout: String,
    /// Only `v2` is supported (Prometheus 3 dropped v1).
    pub api_version: String,
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub bearer_token: Option<String>,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            static_configs: Vec::new(),
            scheme: "http".into(),
            path_prefix: "/".into(),
            timeout: "10s".into(),
            api_version: "v2".into(),
            basic_auth: None,
            authorization: None,
            bearer_token: None,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// Keys whose values are secrets, shown as `<secret>` when a configuration is displayed (as
/// Alertmanager and Prometheus do).
const SECRET_KEYS: [&str; 6] = [
    "routing_key",
    "api_url",
    "slack_api_url",
    "password",
    "credentials",
    "bearer_token",
];

/// A configuration section as YAML with secrets (keys, passwords, tokens, Slack and webhook
/// URLs) replaced by `<secret>`, and unset options left out.
pub fn redacted_yaml<T: Serialize>(section: &T) -> String {
    fn walk(v: &mut serde_yaml::Value, in_webhook: bool) {
        match v {
            serde_yaml::Value::Mapping(m) => {
                m.retain(|_, v| !v.is_null());
                for (k, v) in m.iter_mut() {
                    let key = k.as_str().unwrap_or("");
                    if SECRET_KEYS.contains(&key) || (in_webhook && key == "url") {
                        if !v.is_null() {
                            *v = serde_yaml::Value::String("<secret>".into());
                        }
                    } else if key == "basic_auth" || key == "authorization" {
                        walk(v, false);
                    } else {
                        walk(
                            v,
                            key == "webhook_configs" || (in_webhook && v.is_mapping()),
                        );
                    }
                }
            }
            serde_yaml::Value::Sequence(items) => {
                for i in items {
                    walk(i, in_webhook);
                }
            }
            _ => {}
        }
    }
    let mut v = serde_yaml::to_value(section).unwrap_or(serde_yaml::Value::Null);
    walk(&mut v, false);
    serde_yaml::to_string(&v).unwrap_or_default()
}

/// Parses a Prometheus/Alertmanager duration (`30s`, `1h30m`, `250ms`, `2d`, `1w`, `1y`) into
/// milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    const UNITS: [(&str, i64); 7] = [
        ("ms", 1),
        ("s", 1000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
        ("w", 604_800_000),
        ("y", 31_536_000_000),
    ];
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    if rest == "0" {
        return Ok(0);
    }
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration {s:?}"));
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[digits..];
        let unit = UNITS
            .iter()
            .find(|(u, _)| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))
            .ok_or_else(|| format!("invalid duration {s:?}: missing or unknown unit"))?;
        rest = &rest[unit.0.len()..];
        total = n
            .checked_mul(unit.1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {s:?} is too large"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_to_ms() {
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert!(parse_duration_ms("5").is_err());
        assert!(parse_duration_ms("").is_err());
    }

    #[test]
    fn alertmanager_example_config_parses() {
        let text = r#"
route:
  receiver: team
  group_by: ['alertname', 'cluster']
  routes:
    - matchers: ['service=~"foo1|foo2"']
      receiver: team
      continue: true
    - match: {service: files}
      match_re: {severity: "crit.*"}
      receiver: team
receivers:
  - name: team
    webhook_configs: [{url: 'http://127.0.0.1:5001/', max_alerts: 3}]
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [alertname]
"#;
        let c: NotifyConfig = serde_yaml::from_str(text).unwrap();
        let route = c.route.as_ref().unwrap();
        assert_eq!(route.routes.len(), 2);
        assert!(route.routes[0].continue_matching);
        assert_eq!(route.routes[1].match_eq["service"], "files");
        assert_eq!(c.receivers[0].webhook_configs[0].max_alerts, 3);
        assert!(c.receivers[0].webhook_configs[0].send_resolved);
        let shown = redacted_yaml(&c);
        assert!(shown.contains("url: <secret>"), "{shown}");
        assert!(!shown.contains("127.0.0.1:5001"), "{shown}");
        let err = serde_yaml::from_str::<NotifyConfig>("route: {recevier: x}\n").unwrap_err();
        assert!(err.to_string().contains("recevier"), "{err}");
    }
}
