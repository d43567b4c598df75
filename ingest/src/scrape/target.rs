//! Targets: discovered label sets (static and file-based), relabelled into scrape targets the
//! way Prometheus populates them, and the status the targets API reports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use sextant_storage::labels::hash_pairs;

use super::config::{format_duration, parse_duration, JobSettings, StaticConfig};
use super::parse::FamilyMetadata;
use super::relabel::{process, LabelSet};

/// One discovered target before relabelling: its `__address__` and group labels (and
/// `__meta_*` labels of its discovery).
pub type Discovered = BTreeMap<String, String>;

/// A target that survived relabelling.
#[derive(Debug)]
pub struct Target {
    pub discovered: Discovered,
    /// The target's labels without the `__`-prefixed ones: what every scraped series gets.
    pub labels: BTreeMap<String, String>,
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Identity across discovery updates: labels (internal ones included) and URL.
    pub key: u64,
    pub status: Mutex<TargetStatus>,
    pub metadata: Mutex<Vec<(String, FamilyMetadata)>>,
}

#[derive(Clone, Debug, Default)]
pub struct TargetStatus {
    /// `None` before the first scrape (health "unknown").
    pub up: Option<bool>,
    pub last_error: String,
    pub last_scrape: Option<SystemTime>,
    pub last_duration: f64,
}

impl Target {
    pub fn status(&self) -> TargetStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_status(&self, s: TargetStatus) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    pub fn set_metadata(&self, m: Vec<(String, FamilyMetadata)>) {
        *self.metadata.lock().unwrap_or_else(|e| e.into_inner()) = m;
    }

    pub fn metadata(&self) -> Vec<(String, FamilyMetadata)> {
        self.metadata
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The result of relabelling one discovered target.
#[derive(Debug)]
pub enum Populated {
    Active(Box<Target>),
    Dropped(Discovered),
}

/// Expands target groups into discovered label sets (group labels, then `__address__`).
pub fn expand_groups(groups: &[(StaticConfig, Discovered)]) -> Vec<Discovered> {
    let mut out = Vec::new();
    for (group, extra) in groups {
        for address in &group.targets {
            let mut d = extra.clone();
            for (k, v) in &group.labels {
                d.insert(k.clone(), v.clone());
            }
            d.insert("__address__".into(), address.clone());
            out.push(d);
        }
    }
    out
}

/// Adds the job's defaults, relabels, and builds the scrape URL, as Prometheus'
/// `PopulateLabels` does.
pub fn populate(job: &JobSettings, mut discovered: Discovered) -> Populated {
    let defaults = [
        ("job", job.name.clone()),
        ("__scheme__", job.scheme.clone()),
        ("__metrics_path__", job.metrics_path.clone()),
        ("__scrape_interval__", format_duration(job.interval)),
        ("__scrape_timeout__", format_duration(job.timeout)),
    ];
    for (k, v) in defaults {
        discovered.entry(k.to_string()).or_insert(v);
    }
    for (name, values) in &job.params {
        if let Some(first) = values.first() {
            discovered
                .entry(format!("__param_{name}"))
                .or_insert_with(|| first.clone());
        }
    }
    let mut lb = LabelSet::with_capacity(discovered.len() + 2);
    for (k, v) in &discovered {
        lb.set(k.as_str(), v.as_str());
    }
    if !process(&mut lb, &job.relabel) || lb.is_empty() {
        return Populated::Dropped(discovered);
    }
    let address = lb.get("__address__").to_string();
    if address.is_empty() || address.contains('/') {
        return Populated::Dropped(discovered);
    }
    let interval = match parse_duration(lb.get("__scrape_interval__")) {
        Ok(d) if !d.is_zero() => d,
        _ => job.interval,
    };
    let timeout = match parse_duration(lb.get("__scrape_timeout__")) {
        Ok(d) if !d.is_zero() && d <= interval => d,
        _ => job.timeout.min(interval),
    };
    // Meta labels go after relabelling; the instance defaults to the address.
    lb.retain(|n, _| !n.starts_with("__meta_"));
    if !lb.has("instance") {
        lb.set("instance", address.clone());
    }
    let scheme = match lb.get("__scheme__") {
        "" => job.scheme.clone(),
        s => s.to_string(),
    };
    let path = match lb.get("__metrics_path__") {
        "" => job.metrics_path.clone(),
        p => p.to_string(),
    };
    // Query parameters: the job's, with `__param_<name>` labels replacing the first value.
    let mut params: BTreeMap<String, Vec<String>> = job.params.clone();
    for (n, v) in lb.iter() {
        if let Some(p) = n.strip_prefix("__param_") {
            let e = params.entry(p.to_string()).or_default();
            if e.is_empty() {
                e.push(v.to_string());
            } else {
                e[0] = v.to_string();
            }
        }
    }
    let mut url = format!("{scheme}://{address}{path}");
    let mut first = !path.contains('?');
    for (n, vs) in &params {
        for v in vs {
            url.push(if first { '?' } else { '&' });
            first = false;
            url.push_str(&encode_component(n));
            url.push('=');
            url.push_str(&encode_component(v));
        }
    }
    let key = hash_pairs(lb.iter()) ^ hash_pairs([("", url.as_str())].into_iter()).rotate_left(1);
    let labels: BTreeMap<String, String> = lb
        .iter()
        .filter(|(n, _)| !n.starts_with("__"))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    Populated::Active(Box::new(Target {
        discovered,
        labels,
        url,
        interval,
        timeout,
        key,
        status: Mutex::new(TargetStatus::default()),
        metadata: Mutex::new(Vec::new()),
    }))
}

fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Reads file_sd files, re-reading a file only when its size or modification time changed or
/// its refresh interval passed.
#[derive(Debug, Default)]
pub struct FileSd {
    cache: BTreeMap<PathBuf, CachedFile>,
}

#[derive(Debug)]
struct CachedFile {
    stamp: (u64, Option<SystemTime>),
    read_at: std::time::Instant,
    groups: Vec<StaticConfig>,
}

impl FileSd {
    /// The target groups of every file matching `patterns`, with `__meta_filepath`. A file
    /// that cannot be read or parsed keeps its previous groups (and is logged), as in
    /// Prometheus.
    pub fn groups(
        &mut self,
        patterns: &[String],
        refresh: Duration,
    ) -> Vec<(StaticConfig, Discovered)> {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for pattern in patterns {
            for path in expand_pattern(pattern) {
                seen.push(path.clone());
                let meta = std::fs::metadata(&path).ok();
                let stamp = meta
                    .map(|m| (m.len(), m.modified().ok()))
                    .unwrap_or((0, None));
                let fresh = self
                    .cache
                    .get(&path)
                    .is_some_and(|c| c.stamp == stamp && c.read_at.elapsed() < refresh);
                if !fresh {
                    match read_groups(&path) {
                        Ok(groups) => {
                            self.cache.insert(
                                path.clone(),
                                CachedFile {
                                    stamp,
                                    read_at: std::time::Instant::now(),
                                    groups,
                                },
                            );
                        }
                        Err(e) => {
                            tracing::error!(file = %path.display(), error = %e, "file_sd: cannot read target file");
                        }
                    }
                }
                if let Some(c) = self.cache.get(&path) {
                    let mut extra = Discovered::new();
                    extra.insert("__meta_filepath".into(), path.display().to_string());
                    for g in &c.groups {
                        out.push((g.clone(), extra.clone()));
                    }
                }
            }
        }
        // Files that disappeared take their targets with them.
        self.cache.retain(|p, _| seen.contains(p));
        out
    }
}

fn read_groups(path: &Path) -> Result<Vec<StaticConfig>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let name = path.to_string_lossy();
    if name.ends_with(".json") {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else if text.trim().is_empty() {
        Ok(Vec::new())
    } else {
        serde_yaml::from_str(&text).map_err(|e| e.to_string())
    }
}

/// The files a pattern names: the pattern itself, or (with `*`/`?` in the file name) the
/// matching files of its directory, sorted.
fn expand_pattern(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
        return Vec::new();
    };
    if !file.contains(['*', '?']) {
        return if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.path().is_file())
        .filter(|e| e.file_name().to_str().is_some_and(|n| glob_match(file, n)))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic two-pointer wildcard match with backtracking on the last `*`.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::config::{resolve, GlobalConfig, ScrapeConfig};

    fn job(yaml: &str) -> JobSettings {
        let cfgs: Vec<ScrapeConfig> = serde_yaml::from_str(yaml).unwrap();
        resolve(&GlobalConfig::default(), &cfgs).unwrap().remove(0)
    }

    #[test]
    fn populate_builds_labels_and_url() {
        let j = job("- job_name: node\n  params: {module: [a, b]}\n  relabel_configs:\n    - {source_labels: [__address__], regex: '(.*):.*', target_label: host}\n    - {source_labels: [__meta_x], target_label: x}\n");
        let mut d = Discovered::new();
        d.insert("__address__".into(), "h1:9100".into());
        d.insert("__meta_x".into(), "mx".into());
        let Populated::Active(t) = populate(&j, d) else {
            panic!("dropped")
        };
        assert_eq!(t.url, "http://h1:9100/metrics?module=a&module=b");
        let labels: Vec<_> = t.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(labels, ["host=h1", "instance=h1:9100", "job=node", "x=mx"]);
        assert_eq!(t.discovered["__scrape_interval__"], "1m");
        assert_eq!(t.discovered["__param_module"], "a");
    }

    #[test]
    fn populate_drops() {
        let j = job("- job_name: n\n  relabel_configs: [{source_labels: [__address__], regex: 'x.*', action: drop}]\n");
        let mut d = Discovered::new();
        d.insert("__address__".into(), "x1:1".into());
        assert!(matches!(populate(&j, d), Populated::Dropped(_)));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.yml", "a.yml"));
        assert!(glob_match("t?-*.json", "t1-x.json"));
        assert!(!glob_match("*.yml", "a.yaml"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
    }
}
