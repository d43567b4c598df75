//! Receiver integrations and the bodies they send: Alertmanager's webhook payload (version 4),
//! PagerDuty Events API v2 (`trigger`/`resolve`, `dedup_key` = SHA-256 of the group key as
//! Alertmanager computes it) and Slack incoming webhooks (a readable message that carries the
//! alerts' summaries and any error-budget figures found in their annotations).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::config::{
    parse_duration_ms, GlobalConfig, HttpClientConfig, PagerdutyConfig, ReceiverConfig,
    SlackConfig, WebhookConfig,
};
use super::{fingerprint_hex, rfc3339};

/// An alert as a notification shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertView {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at_ms: i64,
    /// The resolve time; 0 for a firing alert (printed as Go's zero time).
    pub ends_at_ms: i64,
    pub generator_url: String,
    pub fingerprint: u64,
    pub resolved: bool,
}

/// What one notification is about: the group and its (already filtered) alerts.
#[derive(Clone, Debug)]
pub struct NotificationData {
    pub receiver: String,
    pub group_key: String,
    pub group_labels: BTreeMap<String, String>,
    pub alerts: Vec<AlertView>,
    pub external_url: String,
    /// Why it is sent (`first notification`, `new alerts added`, …).
    pub reason: String,
    /// The route's labels, rendered for this group.
    pub route_labels: BTreeMap<String, String>,
}

impl NotificationData {
    pub fn firing(&self) -> impl Iterator<Item = &AlertView> {
        self.alerts.iter().filter(|a| !a.resolved)
    }
    pub fn resolved(&self) -> impl Iterator<Item = &AlertView> {
        self.alerts.iter().filter(|a| a.resolved)
    }
    /// `firing` when any alert fires, else `resolved`.
    pub fn status(&self) -> &'static str {
        if self.firing().next().is_some() {
            "firing"
        } else {
            "resolved"
        }
    }
    pub fn common_labels(&self) -> BTreeMap<String, String> {
        common(self.alerts.iter().map(|a| &a.labels))
    }
    pub fn common_annotations(&self) -> BTreeMap<String, String> {
        common(self.alerts.iter().map(|a| &a.annotations))
    }

    /// Alertmanager's default subject: `[FIRING:2] <group label values> (<other common label
    /// values>)`.
    pub fn subject(&self) -> String {
        let status = self.status();
        let mut s = match status {
            "firing" => format!("[FIRING:{}]", self.firing().count()),
            _ => "[RESOLVED]".to_string(),
        };
        for v in self.group_labels.values() {
            s.push(' ');
            s.push_str(v);
        }
        let common = self.common_labels();
        let extra: Vec<&str> = common
            .iter()
            .filter(|(k, _)| !self.group_labels.contains_key(*k))
            .map(|(_, v)| v.as_str())
            .collect();
        if !extra.is_empty() {
            s.push_str(&format!(" ({})", extra.join(" ")));
        }
        s
    }
}

fn common<'a>(
    mut sets: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let Some(first) = sets.next() else {
        return BTreeMap::new();
    };
    let mut out = first.clone();
    for s in sets {
        out.retain(|k, v| s.get(k) == Some(v));
    }
    out
}

/// Sorts alerts as Alertmanager does before notifying: by `job`, then `instance` (alerts
/// without the label last), then by label set.
pub fn sort_alerts(alerts: &mut [AlertView]) {
    alerts.sort_by(|a, b| {
        for key in ["job", "instance"] {
            match (a.labels.get(key), b.labels.get(key)) {
                (None, None) => continue,
                (None, Some(_)) => return std::cmp::Ordering::Greater,
                (Some(_), None) => return std::cmp::Ordering::Less,
                (Some(x), Some(y)) if x != y => return x.cmp(y),
                _ => continue,
            }
        }
        a.labels.iter().cmp(b.labels.iter())
    });
}

/// One configured integration of a receiver.
#[derive(Clone, Debug)]
pub enum Integration {
    Webhook(WebhookConfig),
    Pagerduty(PagerdutyConfig),
    Slack(SlackConfig),
}

/// An HTTP request an integration wants sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub url: String,
    pub body: Value,
    pub timeout: Duration,
    pub auth: HttpClientConfig,
}

impl Integration {
    /// The integrations of a receiver, in Alertmanager's order, checked for required fields.
    pub fn from_receiver(
        r: &ReceiverConfig,
        global: &GlobalConfig,
    ) -> Result<Vec<Integration>, String> {
        let mut out = Vec::new();
        for w in &r.webhook_configs {
            if w.url.is_empty() {
                return Err(format!(
                    "receiver {:?}: webhook_configs: one of url or url_file must be configured",
                    r.name
                ));
            }
            timeout_of(&w.timeout)?;
            out.push(Integration::Webhook(w.clone()));
        }
        for p in &r.pagerduty_configs {
            if p.routing_key.is_empty() {
                return Err(format!(
                    "receiver {:?}: pagerduty_configs: missing routing_key",
                    r.name
                ));
            }
            timeout_of(&p.timeout)?;
            out.push(Integration::Pagerduty(p.clone()));
        }
        for s in &r.slack_configs {
            if s.api_url.is_none() && global.slack_api_url.is_none() {
                return Err(format!(
                    "receiver {:?}: slack_configs: no api_url and no global slack_api_url",
                    r.name
                ));
            }
            timeout_of(&s.timeout)?;
            out.push(Integration::Slack(s.clone()));
        }
        Ok(out)
    }

    /// `webhook`, `pagerduty` or `slack`: the `integration` label of self-metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Integration::Webhook(_) => "webhook",
            Integration::Pagerduty(_) => "pagerduty",
            Integration::Slack(_) => "slack",
        }
    }

    pub fn send_resolved(&self) -> bool {
        match self {
            Integration::Webhook(c) => c.send_resolved,
            Integration::Pagerduty(c) => c.send_resolved,
            Integration::Slack(c) => c.send_resolved,
        }
    }

    /// The request that delivers `data`.
    pub fn request(
        &self,
        data: &NotificationData,
        global: &GlobalConfig,
    ) -> Result<Request, String> {
        match self {
            Integration::Webhook(c) => Ok(Request {
                url: c.url.clone(),
                body: webhook_body(data, c.max_alerts),
                timeout: timeout_of(&c.timeout)?,
                auth: c.http_config.clone(),
            }),
            Integration::Pagerduty(c) => Ok(Request {
                url: c
                    .url
                    .clone()
                    .unwrap_or_else(|| global.pagerduty_url.clone()),
                body: pagerduty_body(data, c),
                timeout: timeout_of(&c.timeout)?,
                auth: c.http_config.clone(),
            }),
            Integration::Slack(c) => Ok(Request {
                url: c
                    .api_url
                    .clone()
                    .or_else(|| global.slack_api_url.clone())
                    .ok_or("slack: no api_url")?,
                body: slack_body(data, c),
                timeout: timeout_of(&c.timeout)?,
                auth: c.http_config.clone(),
            }),
        }
    }
}

fn timeout_of(s: &str) -> Result<Duration, String> {
    let ms = parse_duration_ms(s).map_err(|e| format!("timeout: {e}"))?;
    Ok(Duration::from_millis(ms.max(1) as u64))
}

fn alert_json(a: &AlertView) -> Value {
    json!({
        "status": if a.resolved { "resolved" } else { "firing" },
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": rfc3339(a.starts_at_ms),
        "endsAt": rfc3339(if a.resolved { a.ends_at_ms } else { 0 }),
        "generatorURL": a.generator_url,
        "fingerprint": fingerprint_hex(a.fingerprint),
    })
}

/// Alertmanager's webhook payload, version 4 (plus `notification_reason`). As in
/// Alertmanager, alerts beyond `max_alerts` are cut first and the status and common labels
/// describe the alerts sent.
pub fn webhook_body(data: &NotificationData, max_alerts: usize) -> Value {
    let total = data.alerts.len();
    let shown = if max_alerts > 0 {
        total.min(max_alerts)
    } else {
        total
    };
    let mut sent = data.clone();
    sent.alerts.truncate(shown);
    json!({
        "version": "4",
        "groupKey": data.group_key,
        "truncatedAlerts": total - shown,
        "status": sent.status(),
        "receiver": data.receiver,
        "groupLabels": data.group_labels,
        "commonLabels": sent.common_labels(),
        "commonAnnotations": sent.common_annotations(),
        "externalURL": data.external_url,
        "alerts": sent.alerts.iter().map(alert_json).collect::<Vec<_>>(),
        "notification_reason": data.reason,
        "routeLabels": data.route_labels,
    })
}

/// Alertmanager's PagerDuty `dedup_key`: the hex SHA-256 of the group key.
pub fn dedup_key(group_key: &str) -> String {
    Sha256::digest(group_key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SLO an alert belongs to, from Sloth's `sloth_slo` label or a plain `slo` label.
fn slo_name(labels: &BTreeMap<String, String>) -> Option<&String> {
    labels.get("sloth_slo").or_else(|| labels.get("slo"))
}

/// `<external URL>/api/v1/slos/<id>` for the group's SLO. The path takes Sloth's `sloth_id`
/// (unique; the API also accepts a bare SLO name, but only while it is unambiguous), else the
/// SLO name; percent-encoded as one path segment.
fn slo_url(data: &NotificationData) -> Option<String> {
    let common = data.common_labels();
    let key = common.get("sloth_id").or_else(|| slo_name(&common))?;
    Some(format!(
        "{}/api/v1/slos/{}",
        data.external_url.trim_end_matches('/'),
        crate::slo::generate::path_escape(key)
    ))
}

fn pd_severity(data: &NotificationData, c: &PagerdutyConfig) -> String {
    if let Some(s) = &c.severity {
        return s.clone();
    }
    let common = data.common_labels();
    match common
        .get("severity")
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        Some(s @ ("critical" | "error" | "warning" | "info")) => s.to_string(),
        Some("page") => "critical".into(),
        Some("ticket" | "warn") => "warning".into(),
        _ => "critical".into(),
    }
}

fn instances_text<'a>(alerts: impl Iterator<Item = &'a AlertView>) -> String {
    let mut out = String::new();
    for a in alerts {
        out.push_str("Labels:\n");
        for (k, v) in &a.labels {
            out.push_str(&format!(" - {k} = {v}\n"));
        }
        out.push_str("Annotations:\n");
        for (k, v) in &a.annotations {
            out.push_str(&format!(" - {k} = {v}\n"));
        }
        out.push_str(&format!("Source: {}\n", a.generator_url));
    }
    out
}

fn truncate(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        return s;
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// A PagerDuty Events API v2 event.
pub fn pagerduty_body(data: &NotificationData, c: &PagerdutyConfig) -> Value {
    let firing = data.status() == "firing";
    let common_ann = data.common_annotations();
    let summary = c
        .description
        .clone()
        .unwrap_or_else(|| match common_ann.get("summary") {
            Some(s) if firing => format!("[FIRING:{}] {s}", data.firing().count()),
            Some(s) => format!("[RESOLVED] {s}"),
            None => data.subject(),
        });
    let mut links: Vec<Value> = c
        .links
        .iter()
        .map(|l| json!({"href": l.href, "text": l.text}))
        .collect();
    let slo = slo_url(data);
    if let (Some(url), Some(name)) = (&slo, slo_name(&data.common_labels())) {
        links.push(json!({"href": url, "text": format!("SLO {name}")}));
    }
    if let Some(url) = data
        .alerts
        .iter()
        .map(|a| &a.generator_url)
        .find(|u| !u.is_empty())
    {
        links.push(json!({"href": url, "text": "Query"}));
    }
    if let Some(url) = common_ann.get("runbook_url") {
        links.push(json!({"href": url, "text": "Runbook"}));
    }
    let client_url = c
        .client_url
        .clone()
        .or(slo)
        .unwrap_or_else(|| data.external_url.clone());
    let mut payload = json!({
        "summary": truncate(summary, 1024),
        "source": c.source.clone().unwrap_or_else(|| c.client.clone()),
        "severity": pd_severity(data, c),
        "custom_details": {
            "firing": instances_text(data.firing()),
            "resolved": instances_text(data.resolved()),
            "num_firing": data.firing().count().to_string(),
            "num_resolved": data.resolved().count().to_string(),
        },
    });
    for (k, v) in [
        ("class", &c.class),
        ("component", &c.component),
        ("group", &c.group),
    ] {
        if let Some(v) = v {
            payload[k] = json!(v);
        }
    }
    json!({
        "routing_key": c.routing_key,
        "dedup_key": dedup_key(&data.group_key),
        "event_action": if firing { "trigger" } else { "resolve" },
        "client": c.client,
        "client_url": client_url,
        "links": links,
        "payload": payload,
    })
}

/// Whether an annotation carries an error-budget figure.
fn is_budget_annotation(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("budget")
        || n.contains("burn")
        || n.contains("exhaust")
        || n == "objective"
        || n == "sli"
}

/// Turns `error_budget_remaining` into `Error budget remaining`.
fn humanize_key(k: &str) -> String {
    let spaced = k.replace(['_', '-'], " ");
    let mut c = spaced.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The Slack message text for one alert: a line per item, no trailing newline.
fn slack_alert_text(a: &AlertView) -> String {
    let title = a
        .annotations
        .get("summary")
        .or_else(|| a.annotations.get("title"))
        .or_else(|| a.labels.get("alertname"))
        .cloned()
        .unwrap_or_default();
    let mut first = format!(
        "*{}* {title}",
        if a.resolved { "Resolved:" } else { "Alert:" }
    );
    if let Some(sev) = a.labels.get("severity") {
        first.push_str(&format!(" - `{sev}`"));
    }
    let mut lines = vec![first];
    if let Some(d) = a.annotations.get("description") {
        lines.push(format!("*Description:* {d}"));
    }
    let budget: Vec<String> = a
        .annotations
        .iter()
        .filter(|(k, _)| is_budget_annotation(k))
        .map(|(k, v)| format!("{}: {v}", humanize_key(k)))
        .collect();
    if !budget.is_empty() {
        lines.push(format!("*Error budget:* {}", budget.join(" · ")));
    }
    if let Some(r) = a.annotations.get("runbook_url") {
        lines.push(format!("*Runbook:* <{r}|runbook>"));
    }
    let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("`{k}={v}`")).collect();
    lines.push(format!("*Labels:* {}", labels.join(" ")));
    lines.join("\n")
}

/// A Slack incoming-webhook message.
pub fn slack_body(data: &NotificationData, c: &SlackConfig) -> Value {
    let firing = data.status() == "firing";
    let subject = data.subject();
    let text: Vec<String> = data.alerts.iter().map(slack_alert_text).collect();
    let mut attachment = json!({
        "color": if firing { "danger" } else { "good" },
        "title": subject,
        "text": text.join("\n\n"),
        "fallback": subject,
        "mrkdwn_in": ["fallback", "pretext", "text"],
    });
    if let Some(url) = slo_url(data).or_else(|| {
        data.alerts
            .iter()
            .map(|a| a.generator_url.clone())
            .find(|u| !u.is_empty())
    }) {
        attachment["title_link"] = json!(url);
    }
    let mut body = json!({ "text": subject, "attachments": [attachment] });
    for (k, v) in [
        ("channel", &c.channel),
        ("username", &c.username),
        ("icon_emoji", &c.icon_emoji),
    ] {
        if let Some(v) = v {
            body[k] = json!(v);
        }
    }
    body
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

    fn data() -> NotificationData {
        NotificationData {
            receiver: "r".into(),
            group_key: "{}:{alertname=\"A\"}".into(),
            group_labels: l(&[("alertname", "A")]),
            alerts: vec![
                AlertView {
                    labels: l(&[("alertname", "A"), ("instance", "b"), ("severity", "page")]),
                    annotations: l(&[("summary", "s")]),
                    starts_at_ms: 1000,
                    ends_at_ms: 0,
                    generator_url: "http://x/graph".into(),
                    fingerprint: 1,
                    resolved: false,
                },
                AlertView {
                    labels: l(&[("alertname", "A"), ("instance", "a"), ("severity", "page")]),
                    annotations: l(&[("summary", "s")]),
                    starts_at_ms: 1000,
                    ends_at_ms: 5000,
                    generator_url: String::new(),
                    fingerprint: 2,
                    resolved: true,
                },
            ],
            external_url: "http://sextant:9090".into(),
            reason: "first notification".into(),
            route_labels: BTreeMap::new(),
        }
    }

    #[test]
    fn subject_and_common_labels() {
        let d = data();
        assert_eq!(d.subject(), "[FIRING:1] A (page)");
        assert_eq!(
            d.common_labels(),
            l(&[("alertname", "A"), ("severity", "page")])
        );
        let mut alerts = d.alerts.clone();
        sort_alerts(&mut alerts);
        assert_eq!(alerts[0].labels["instance"], "a");
    }

    #[test]
    fn webhook_truncates_and_counts() {
        let body = webhook_body(&data(), 1);
        assert_eq!(body["truncatedAlerts"], 1);
        assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
        assert_eq!(body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(body["alerts"][0]["fingerprint"], "0000000000000001");
    }

    #[test]
    fn dedup_key_is_sha256_of_group_key() {
        // sha256("abc")
        assert_eq!(
            dedup_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
