//! The `global` and `scrape_configs` sections of the config file, with the field names and
//! defaults of Prometheus so that users can copy their existing jobs. Unknown keys are errors.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::relabel::RelabelConfig;

/// `global:` — defaults for every job.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    pub scrape_interval: String,
    pub scrape_timeout: String,
    /// Interval of rule groups that set none; default 1m.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation_interval: Option<String>,
    /// As in Prometheus, external labels are not attached to the stored series; they label
    /// alerts leaving the server and are available to rule templates as `$externalLabels`.
    pub external_labels: BTreeMap<String, String>,
    /// Prometheus' `rule_query_offset`: how far in the past rule groups query (and write their
    /// results) by default; default 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_query_offset: Option<String>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: "1m".into(),
            scrape_timeout: "10s".into(),
            evaluation_interval: None,
            external_labels: BTreeMap::new(),
            rule_query_offset: None,
        }
    }
}

/// One entry of `scrape_configs:`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    pub job_name: String,
    /// Defaults to `global.scrape_interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_interval: Option<String>,
    /// Defaults to `global.scrape_timeout`, capped at the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_timeout: Option<String>,
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    #[serde(default = "default_scheme")]
    pub scheme: String,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub honor_labels: bool,
    #[serde(default = "default_true")]
    pub honor_timestamps: bool,
    /// More samples than this (after metric relabelling) fail the scrape; 0 is no limit.
    #[serde(default)]
    pub sample_limit: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "redact"
    )]
    pub bearer_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<PathBuf>,
    /// TLS settings for `https` targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

/// Secrets are shown as `<secret>` when the configuration is serialized (as
/// `/api/v1/status/config` does), like Prometheus.
fn redact<S: serde::Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str("<secret>"),
        None => s.serialize_none(),
    }
}

fn default_metrics_path() -> String {
    "/metrics".into()
}
fn default_scheme() -> String {
    "http".into()
}
fn default_true() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "redact"
    )]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

/// `tls_config:` as in Prometheus: the CA that signs the targets' certificates (default: the
/// system's CA bundle), a client certificate and key for targets that ask for one, the name
/// to verify the target's certificate against (default: the target's host), and
/// `insecure_skip_verify` (no certificate verification at all).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// `authorization: {type: Bearer, credentials: …}` (Prometheus' newer spelling of bearer tokens).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(rename = "type", default = "default_auth_type")]
    pub kind: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "redact"
    )]
    pub credentials: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
}

fn default_auth_type() -> String {
    "Bearer".into()
}

/// A target group: addresses and labels shared by them. Also the shape of a file_sd file entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Paths of YAML (`.yml`, `.yaml`) or JSON (`.json`) files; the file name may contain `*`
    /// and `?` wildcards.
    pub files: Vec<String>,
    /// Files are also checked for changes every second; this forces a re-read regardless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<String>,
}

/// A job's settings after defaults and validation.
#[derive(Clone, Debug)]
pub struct JobSettings {
    pub name: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub metrics_path: String,
    pub scheme: String,
    pub params: BTreeMap<String, Vec<String>>,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub sample_limit: u64,
    pub auth: Auth,
    /// The job's `tls_config` (defaults when absent).
    pub tls: TlsConfig,
    pub static_configs: Vec<StaticConfig>,
    pub file_sd: Vec<(Vec<String>, Duration)>,
    pub relabel: Vec<super::relabel::Relabel>,
    pub metric_relabel: Vec<super::relabel::Relabel>,
}

#[derive(Clone, Debug, Default)]
pub enum Auth {
    #[default]
    None,
    Basic {
        username: String,
        password: Secret,
    },
    Header {
        scheme: String,
        credentials: Secret,
    },
}

/// A secret given inline or read from a file at every scrape (so rotated files take effect).
#[derive(Clone, Debug)]
pub enum Secret {
    Inline(String),
    File(PathBuf),
}

impl Secret {
    pub fn read(&self) -> Result<String, String> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::File(p) => std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("unable to read secret file {}: {e}", p.display())),
        }
    }
}

/// Validates the scrape section and resolves defaults; errors name the job and the field.
pub fn resolve(global: &GlobalConfig, jobs: &[ScrapeConfig]) -> Result<Vec<JobSettings>, String> {
    let g_interval = parse_duration(&global.scrape_interval)
        .map_err(|e| format!("global.scrape_interval: {e}"))?;
    let g_timeout = parse_duration(&global.scrape_timeout)
        .map_err(|e| format!("global.scrape_timeout: {e}"))?;
    if g_interval.is_zero() {
        return Err("global.scrape_interval must be positive".into());
    }
    if let Some(e) = &global.evaluation_interval {
        parse_duration(e).map_err(|e| format!("global.evaluation_interval: {e}"))?;
    }
    let mut names = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        let ctx = |what: &str| format!("scrape_configs job {:?}: {what}", job.job_name);
        if job.job_name.is_empty() {
            return Err("scrape_configs: job_name must not be empty".into());
        }
        if !names.insert(job.job_name.clone()) {
            return Err(format!(
                "scrape_configs: found multiple scrape configs with job name {:?}",
                job.job_name
            ));
        }
        let interval = match &job.scrape_interval {
            Some(s) => parse_duration(s).map_err(|e| ctx(&format!("scrape_interval: {e}")))?,
            None => g_interval,
        };
        if interval.is_zero() {
            return Err(ctx("scrape_interval must be positive"));
        }
        let timeout = match &job.scrape_timeout {
            Some(s) => {
                let t = parse_duration(s).map_err(|e| ctx(&format!("scrape_timeout: {e}")))?;
                if t > interval {
                    return Err(ctx(&format!(
                        "scrape timeout greater than scrape interval ({s} > {})",
                        format_duration(interval)
                    )));
                }
                t
            }
            // As Prometheus: the global timeout, but never above the job's interval.
            None => g_timeout.min(interval),
        };
        if job.scheme != "http" && job.scheme != "https" {
            return Err(ctx(&format!(
                "scheme must be http or https, got {:?}",
                job.scheme
            )));
        }
        if !job.metrics_path.starts_with('/') {
            return Err(ctx("metrics_path must start with /"));
        }
        let bearer = match (&job.bearer_token, &job.bearer_token_file) {
            (Some(_), Some(_)) => {
                return Err(ctx(
                    "at most one of bearer_token & bearer_token_file must be configured",
                ))
            }
            (Some(t), None) => Some(Secret::Inline(t.clone())),
            (None, Some(f)) => Some(Secret::File(f.clone())),
            (None, None) => None,
        };
        let mut auths = 0;
        let mut auth = Auth::None;
        if let Some(b) = &job.basic_auth {
            auths += 1;
            let password = match (&b.password, &b.password_file) {
                (Some(_), Some(_)) => {
                    return Err(ctx(
                        "at most one of basic_auth password & password_file must be configured",
                    ))
                }
                (Some(p), None) => Secret::Inline(p.clone()),
                (None, Some(f)) => Secret::File(f.clone()),
                (None, None) => Secret::Inline(String::new()),
            };
            auth = Auth::Basic {
                username: b.username.clone(),
                password,
            };
        }
        if let Some(token) = bearer {
            auths += 1;
            auth = Auth::Header {
                scheme: "Bearer".into(),
                credentials: token,
            };
        }
        if let Some(a) = &job.authorization {
            auths += 1;
            if a.kind.eq_ignore_ascii_case("basic") {
                return Err(ctx(
                    "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
                ));
            }
            let credentials = match (&a.credentials, &a.credentials_file) {
                (Some(_), Some(_)) => {
                    return Err(ctx(
                        "at most one of authorization credentials & credentials_file must be configured",
                    ))
                }
                (Some(c), None) => Secret::Inline(c.clone()),
                (None, Some(f)) => Secret::File(f.clone()),
                (None, None) => Secret::Inline(String::new()),
            };
            auth = Auth::Header {
                scheme: a.kind.clone(),
                credentials,
            };
        }
        if auths > 1 {
            return Err(ctx(
                "at most one of basic_auth, authorization and bearer_token(_file) may be configured",
            ));
        }
        if let Some(tls) = &job.tls_config {
            match (&tls.cert_file, &tls.key_file) {
                (Some(c), None) => {
                    return Err(ctx(&format!(
                        "tls_config: client cert file {c:?} specified without client key file"
                    )))
                }
                (None, Some(k)) => {
                    return Err(ctx(&format!(
                        "tls_config: client key file {k:?} specified without client cert file"
                    )))
                }
                _ => {}
            }
        }
        let mut file_sd = Vec::new();
        for f in &job.file_sd_configs {
            let refresh = match &f.refresh_interval {
                Some(s) => parse_duration(s)
                    .map_err(|e| ctx(&format!("file_sd_configs refresh_interval: {e}")))?,
                None => Duration::from_secs(300),
            };
            for path in &f.files {
                let ok = [".json", ".yml", ".yaml"].iter().any(|e| path.ends_with(e));
                if !ok {
                    return Err(ctx(&format!(
                        "file_sd_configs: path {path:?} is not valid for file discovery (must end in .json, .yml or .yaml)"
                    )));
                }
            }
            file_sd.push((f.files.clone(), refresh));
        }
        let compile = |rs: &[RelabelConfig], what: &str| {
            rs.iter()
                .map(|r| r.compile())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ctx(&format!("{what}: {e}")))
        };
        out.push(JobSettings {
            name: job.job_name.clone(),
            interval,
            timeout,
            metrics_path: job.metrics_path.clone(),
            scheme: job.scheme.clone(),
            params: job.params.clone(),
            honor_labels: job.honor_labels,
            honor_timestamps: job.honor_timestamps,
            sample_limit: job.sample_limit,
            auth,
            tls: job.tls_config.clone().unwrap_or_default(),
            static_configs: job.static_configs.clone(),
            file_sd,
            relabel: compile(&job.relabel_configs, "relabel_configs")?,
            metric_relabel: compile(&job.metric_relabel_configs, "metric_relabel_configs")?,
        });
    }
    Ok(out)
}

/// Parses a Prometheus duration (`1h30m`, `15s`, `250ms`, `2d`, `1w`, `1y`; a bare `0`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 7] = [
        ("ms", 1),
        ("s", 1000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
        ("w", 604_800_000),
        ("y", 31_536_000_000),
    ];
    let text = s.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut rest = text;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("not a valid duration string: {s:?}"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("not a valid duration string: {s:?}"))?;
        rest = &rest[digits..];
        let Some(unit) = UNITS
            .iter()
            .find(|(u, _)| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))
        else {
            return Err(format!("not a valid duration string: {s:?}"));
        };
        rest = &rest[unit.0.len()..];
        total = n
            .checked_mul(unit.1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {s:?} is too large"))?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration as Prometheus does (`1m30s`, `15s`, `250ms`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("y", 31_536_000_000u64),
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(yaml: &str) -> Result<Vec<JobSettings>, String> {
        let cfgs: Vec<ScrapeConfig> = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        resolve(&GlobalConfig::default(), &cfgs)
    }

    #[test]
    fn defaults_follow_prometheus() {
        let j = jobs("- job_name: a\n  static_configs: [{targets: ['x:1']}]\n").unwrap();
        assert_eq!(j[0].interval, Duration::from_secs(60));
        assert_eq!(j[0].timeout, Duration::from_secs(10));
        assert_eq!(j[0].metrics_path, "/metrics");
        assert!(j[0].honor_timestamps && !j[0].honor_labels);
        let j = jobs("- job_name: a\n  scrape_interval: 5s\n").unwrap();
        assert_eq!(j[0].timeout, Duration::from_secs(5));
    }

    #[test]
    fn invalid_jobs_are_refused() {
        assert!(
            jobs("- job_name: a\n  scrape_interval: 5s\n  scrape_timeout: 6s\n")
                .unwrap_err()
                .contains("greater than scrape interval")
        );
        assert!(jobs("- job_name: a\n- job_name: a\n")
            .unwrap_err()
            .contains("multiple"));
        assert!(jobs("- job_name: a\n  scrape_intervall: 5s\n")
            .unwrap_err()
            .contains("scrape_intervall"));
        assert!(
            jobs("- job_name: a\n  relabel_configs: [{action: replace}]\n")
                .unwrap_err()
                .contains("target_label")
        );
        assert!(jobs("- job_name: a\n  file_sd_configs: [{files: [x.txt]}]\n").is_err());
    }

    #[test]
    fn secrets_are_redacted_when_serialized() {
        let cfgs: Vec<ScrapeConfig> = serde_yaml::from_str(
            "- job_name: a\n  basic_auth: {username: u, password: hunter2}\n- job_name: b\n  bearer_token: tok-secret\n- job_name: c\n  authorization: {credentials: cred-secret}\n",
        )
        .unwrap();
        let text = serde_yaml::to_string(&cfgs).unwrap();
        for secret in ["hunter2", "tok-secret", "cred-secret"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(text.matches("<secret>").count(), 3, "{text}");
    }

    #[test]
    fn durations_round_trip() {
        for s in ["1m30s", "15s", "250ms", "1d", "0s"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
        assert!(parse_duration("5").is_err());
    }
}
