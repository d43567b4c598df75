//! Prometheus-style scraping: `scrape_configs` jobs discover targets (static and file-based),
//! relabel them, and scrape each on its interval (spread by a hash-based offset, as
//! Prometheus does). Expositions in the Prometheus text format or OpenMetrics are parsed with
//! borrowed labels and stored with [`sextant_storage::Db::append_series`], together with the
//! `up` / `scrape_*` report series and staleness markers. `/api/v1/targets` and
//! `/api/v1/targets/metadata` ([`router`]) report the targets.

mod api;
mod append;
pub mod config;
pub mod parse;
pub mod relabel;
mod target;
pub mod tls;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sextant_storage::Db;
use tokio::sync::watch;

pub use api::router;
pub use config::{GlobalConfig, JobSettings, ScrapeConfig};
pub use target::{Discovered, Target, TargetStatus};

use append::{end_of_run, store_report, store_scrape, SeriesCache};
use config::Auth;
use parse::Format;
use target::{expand_groups, populate, FileSd, Populated};

/// How often file_sd files are checked for changes.
const FILE_SD_POLL: Duration = Duration::from_secs(1);

const ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/// Every scrape pool (one per job; each job has its own HTTP client, for its `tls_config`).
pub struct ScrapeManager {
    pools: Vec<Arc<Pool>>,
}

/// One job: its settings and its current targets.
pub struct Pool {
    pub job: Arc<JobSettings>,
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    active: BTreeMap<u64, Running>,
    dropped: Vec<Discovered>,
}

struct Running {
    target: Arc<Target>,
    stop: watch::Sender<bool>,
}

impl Pool {
    /// The active targets, in label order.
    pub fn active_targets(&self) -> Vec<Arc<Target>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Arc<Target>> = state.active.values().map(|r| r.target.clone()).collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// The discovered label sets relabelling dropped.
    pub fn dropped_targets(&self) -> Vec<Discovered> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.dropped.clone()
    }
}

impl ScrapeManager {
    /// Validates the configuration (errors name the job and field) and starts a discovery
    /// task per job, which starts a scrape task per target. Must be called inside a Tokio
    /// runtime.
    pub fn start(
        db: Arc<Db>,
        global: &GlobalConfig,
        jobs: &[ScrapeConfig],
    ) -> Result<Arc<ScrapeManager>, String> {
        let settings = config::resolve(global, jobs)?;
        // Every client is built (TLS files read) before any job starts.
        let clients = settings
            .iter()
            .map(tls::job_client)
            .collect::<Result<Vec<_>, _>>()?;
        let pools: Vec<Arc<Pool>> = settings
            .into_iter()
            .map(|job| {
                Arc::new(Pool {
                    job: Arc::new(job),
                    state: Mutex::new(PoolState::default()),
                })
            })
            .collect();
        for (pool, client) in pools.iter().zip(clients) {
            tokio::spawn(discover(pool.clone(), db.clone(), client));
        }
        Ok(Arc::new(ScrapeManager { pools }))
    }

    /// A manager with no jobs (nothing configured).
    pub fn empty() -> Arc<ScrapeManager> {
        Arc::new(ScrapeManager { pools: Vec::new() })
    }

    pub fn pools(&self) -> &[Arc<Pool>] {
        &self.pools
    }
}

/// Keeps a pool's targets in line with its discovery sources: static groups once, file_sd
/// files whenever they change.
async fn discover(pool: Arc<Pool>, db: Arc<Db>, client: reqwest::Client) {
    let job = pool.job.clone();
    let static_groups: Vec<_> = job
        .static_configs
        .iter()
        .map(|g| (g.clone(), Discovered::new()))
        .collect();
    let mut file_sd: Vec<FileSd> = job.file_sd.iter().map(|_| FileSd::default()).collect();
    let mut last: Option<Vec<Discovered>> = None;
    loop {
        let mut groups = static_groups.clone();
        for (sd, (patterns, refresh)) in file_sd.iter_mut().zip(&job.file_sd) {
            groups.extend(sd.groups(patterns, *refresh));
        }
        let discovered = expand_groups(&groups);
        if last.as_ref() != Some(&discovered) {
            sync(&pool, &db, &client, discovered.clone());
            last = Some(discovered);
        }
        if job.file_sd.is_empty() {
            return;
        }
        tokio::time::sleep(FILE_SD_POLL).await;
    }
}

/// Starts scrape tasks for new targets and stops those that went away.
fn sync(pool: &Arc<Pool>, db: &Arc<Db>, client: &reqwest::Client, discovered: Vec<Discovered>) {
    let mut active: BTreeMap<u64, Box<Target>> = BTreeMap::new();
    let mut dropped = Vec::new();
    for d in discovered {
        match populate(&pool.job, d) {
            Populated::Active(t) => {
                active.entry(t.key).or_insert(t);
            }
            Populated::Dropped(d) => dropped.push(d),
        }
    }
    let mut state = pool.state.lock().unwrap_or_else(|e| e.into_inner());
    state.dropped = dropped;
    let stale: Vec<u64> = state
        .active
        .keys()
        .filter(|k| !active.contains_key(k))
        .copied()
        .collect();
    for k in stale {
        if let Some(r) = state.active.remove(&k) {
            let _ = r.stop.send(true);
        }
    }
    for (k, t) in active {
        if state.active.contains_key(&k) {
            continue;
        }
        let target: Arc<Target> = Arc::from(t);
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(run_target(
            pool.job.clone(),
            target.clone(),
            db.clone(),
            client.clone(),
            stopped,
        ));
        state.active.insert(k, Running { target, stop });
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The delay before a target's first scrape: its hash picks a fixed phase within the
/// interval, so targets spread out and each keeps a steady rhythm across restarts.
fn first_delay(key: u64, interval: Duration) -> Duration {
    let interval_ns = interval.as_nanos().max(1) as u64;
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let base = interval_ns - now_ns % interval_ns;
    let offset = key % interval_ns;
    let mut next = base + offset;
    if next > interval_ns {
        next -= interval_ns;
    }
    Duration::from_nanos(next)
}

async fn run_target(
    job: Arc<JobSettings>,
    target: Arc<Target>,
    db: Arc<Db>,
    client: reqwest::Client,
    mut stop: watch::Receiver<bool>,
) {
    let mut cache = SeriesCache::default();
    tokio::select! {
        _ = tokio::time::sleep(first_delay(target.key, target.interval)) => {}
        _ = stop.changed() => return,
    }
    let mut ticker = tokio::time::interval(target.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        let started = SystemTime::now();
        let ts = now_ms();
        let body = fetch(&client, &job, &target).await;
        let (j, t, d) = (job.clone(), target.clone(), db.clone());
        let joined = tokio::task::spawn_blocking(move || {
            let (counts, error) = store_scrape(&d, &j, &t, &mut cache, body, ts);
            let duration = started.elapsed().map(|e| e.as_secs_f64()).unwrap_or(0.0);
            store_report(&d, &t, &mut cache, ts, error.is_none(), duration, &counts);
            (cache, error, duration)
        })
        .await;
        let Ok((back, error, duration)) = joined else {
            tracing::error!(target = %target.url, "scrape task panicked");
            return;
        };
        cache = back;
        if let Some(e) = &error {
            tracing::debug!(job = %job.name, target = %target.url, error = %e, "scrape failed");
        }
        target.set_status(TargetStatus {
            up: Some(error.is_none()),
            last_error: error.unwrap_or_default(),
            last_scrape: Some(started),
            last_duration: duration,
        });
    }
    // The target went away: its series end now.
    let ts = now_ms();
    let _ = tokio::task::spawn_blocking(move || end_of_run(&db, &target, &mut cache, ts)).await;
}

async fn fetch(
    client: &reqwest::Client,
    job: &JobSettings,
    target: &Target,
) -> Result<(String, Format), String> {
    let mut req = client
        .get(&target.url)
        .header(reqwest::header::ACCEPT, ACCEPT)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", target.timeout.as_secs_f64()),
        )
        .timeout(target.timeout);
    match &job.auth {
        Auth::None => {}
        Auth::Basic { username, password } => {
            req = req.basic_auth(username, Some(password.read()?));
        }
        Auth::Header {
            scheme,
            credentials,
        } => {
            req = req.header(
                reqwest::header::AUTHORIZATION,
                format!("{scheme} {}", credentials.read()?),
            );
        }
    }
    let resp = req.send().await.map_err(|e| describe(&e, target))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("server returned HTTP status {}", resp.status()));
    }
    let format = Format::from_content_type(
        resp.headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    let bytes = resp.bytes().await.map_err(|e| describe(&e, target))?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| "exposition is not valid UTF-8".to_string())?;
    Ok((text, format))
}

fn describe(e: &reqwest::Error, target: &Target) -> String {
    if e.is_timeout() {
        format!("Get {:?}: context deadline exceeded", target.url)
    } else {
        let mut msg = format!("Get {:?}: {e}", target.url);
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            msg.push_str(&format!(": {s}"));
            source = s.source();
        }
        msg
    }
}
