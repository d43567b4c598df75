//! Starts the HTTP server at once, opens storage (replaying the WAL) in the background, and only
//! then routes the APIs: until replay is done `/-/ready` and every API answer 503.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use parking_lot::RwLock;
use sextant_alerting::notify::Notifier;
use sextant_alerting::rules::manager::{load as rule_load, RuleLoader, RuleManager, RuleMetrics};
use sextant_alerting::slo::api::SloApiState;
use sextant_alerting::slo::SloSpec;
use sextant_alerting::AlertSink;
use sextant_ingest::{OtlpState, RemoteWriteLimits, RemoteWriteState};
use sextant_query::api::{ApiState, ServerInfo};
use sextant_query::promql::{Engine, EngineOptions};
use sextant_storage::Db;
use tower::ServiceExt;

use crate::config::{parse_duration, Config, ListenAddr};
use crate::telemetry::{self, Telemetry};

/// The Prometheus version whose API we implement, reported by buildinfo (Grafana keys its
/// feature detection on it).
const PROMETHEUS_COMPATIBLE_VERSION: &str = "2.53.0";

struct Shared {
    telemetry: OnceLock<Arc<Telemetry>>,
    /// The full application, set once storage is open.
    app: OnceLock<Router>,
}

pub fn run(config: Config, flags: BTreeMap<String, String>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config, flags))
}

async fn serve(config: Config, flags: BTreeMap<String, String>) -> anyhow::Result<()> {
    let shared = Arc::new(Shared {
        telemetry: OnceLock::new(),
        app: OnceLock::new(),
    });
    let listener = tokio::net::TcpListener::bind(config.server.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", config.server.http_addr))?;
    tracing::info!(addr = %config.server.http_addr, data_dir = %config.storage.data_dir.display(), "sextant listening");

    // OTLP answers 503 / UNAVAILABLE with Retry-After until storage is attached below.
    let otlp = OtlpState::new(config.otlp.options()?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let otlp_tasks = start_otlp(&config, otlp.clone(), stop_rx).await?;
    // Loki push answers 503 until the log store is attached below.
    let loki_push = sextant_ingest::loki::LokiPushState::new(config.logs.push_options()?);

    let front = Router::new()
        .route("/-/healthy", get(|| async { "Sextant is Healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(forward)
        .with_state(shared.clone())
        .merge(sextant_ingest::otlp::http_router(otlp.clone()));
    let front = if config.logs.enabled {
        front.merge(sextant_ingest::loki::router(loki_push.clone()))
    } else {
        front
    };

    let opener = {
        let shared = shared.clone();
        let config = config.clone();
        tokio::spawn(async move {
            let db = open_storage(&config).await?;
            spawn_maintenance(
                db.clone(),
                parse_duration(&config.storage.maintenance_interval)?,
            );
            otlp.set_db(db.clone());
            let logs = crate::logs::open_store(&config).await?;
            if let Some(store) = &logs {
                loki_push.set_sink(store.clone());
                otlp.set_logs(loki_push.clone(), config.logs.otlp_options());
            }
            let traces = crate::traces::attach(&config, &otlp, db.clone()).await?;
            let (telemetry, app) = build_app(
                &config,
                flags,
                db.clone(),
                logs.clone(),
                &traces,
                loki_push.metrics(),
            )?;
            let _ = shared.telemetry.set(telemetry);
            let _ = shared.app.set(app);
            tracing::info!("sextant is ready");
            anyhow::Ok((db, logs, traces))
        })
    };

    axum::serve(listener, front)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        })
        .await
        .context("serving HTTP")?;
    for task in otlp_tasks {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "OTLP listener task failed");
        }
    }
    tracing::info!("HTTP server stopped; flushing storage");
    let (db, logs, traces) = opener.await.context("storage task")??;
    crate::traces::shutdown(traces).await?;
    if let Some(store) = logs {
        // Head → segment, so the next start replays no log WAL.
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .context("log flush task")??;
    }
    let db_for_sync = db.clone();
    tokio::task::spawn_blocking(move || db_for_sync.sync())
        .await
        .context("sync task")??;
    tracing::info!("storage flushed; bye");
    Ok(())
}

/// Binds the OTLP/gRPC and OTLP/HTTP listeners and serves them until `stop` turns true. A
/// default address that is taken is skipped with a warning; an explicit one must bind.
async fn start_otlp(
    config: &Config,
    state: Arc<OtlpState>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    async fn bind(addr: ListenAddr, what: &str) -> anyhow::Result<Option<tokio::net::TcpListener>> {
        match addr {
            ListenAddr::Off => Ok(None),
            ListenAddr::Default(a) => match tokio::net::TcpListener::bind(a).await {
                Ok(l) => Ok(Some(l)),
                Err(e) => {
                    tracing::warn!(addr = %a, error = %e, "{what} not started: default address unavailable (set otlp.{} to choose one)", if what.contains("gRPC") { "grpc_addr" } else { "http_addr" });
                    Ok(None)
                }
            },
            ListenAddr::Explicit(a) => tokio::net::TcpListener::bind(a)
                .await
                .map(Some)
                .with_context(|| format!("binding {what} address {a}")),
        }
    }
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let mut tasks = Vec::new();
    if let Some(l) = bind(config.otlp.grpc_listen()?, "OTLP/gRPC").await? {
        tracing::info!(addr = %l.local_addr()?, "OTLP/gRPC listening");
        let (state, shutdown) = (state.clone(), stopped(stop.clone()));
        tasks.push(tokio::spawn(async move {
            if let Err(e) = sextant_ingest::otlp::serve_grpc(l, state, shutdown).await {
                tracing::error!(error = %e, "OTLP/gRPC server failed");
            }
        }));
    }
    if let Some(l) = bind(config.otlp.http_listen()?, "OTLP/HTTP").await? {
        tracing::info!(addr = %l.local_addr()?, "OTLP/HTTP listening");
        let app = sextant_ingest::otlp::http_router(state);
        let shutdown = stopped(stop);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(l, app).with_graceful_shutdown(shutdown).await {
                tracing::error!(error = %e, "OTLP/HTTP server failed");
            }
        }));
    }
    Ok(tasks)
}

async fn open_storage(config: &Config) -> anyhow::Result<Arc<Db>> {
    let dir = config.storage.data_dir.clone();
    let opts = config.db_options()?;
    let db = tokio::task::spawn_blocking(move || Db::open(&dir, opts))
        .await
        .context("storage open task")?
        .with_context(|| format!("opening storage in {}", config.storage.data_dir.display()))?;
    Ok(Arc::new(db))
}

fn build_app(
    config: &Config,
    flags: BTreeMap<String, String>,
    db: Arc<Db>,
    logs: Option<Arc<sextant_storage::logs::LogStore>>,
    traces: &crate::traces::Traces,
    log_push_metrics: &sextant_ingest::loki::PushMetrics,
) -> anyhow::Result<(Arc<Telemetry>, Router)> {
    let mut config = config.clone();
    let external_url = fill_external_urls(&mut config);
    let config = &config;
    let mut telemetry = Telemetry::new(env!("CARGO_PKG_VERSION"));
    db.metrics().register(telemetry.registry_mut());
    log_push_metrics.register(telemetry.registry_mut());
    if let Some(g) = &traces.generator {
        g.metrics().register(telemetry.registry_mut());
    }
    let rule_metrics = RuleMetrics::default();
    rule_metrics.register(telemetry.registry_mut());
    // The built-in notifier (Alertmanager-compatible) and forwarding to external Alertmanagers;
    // `alert_sink` is where rule evaluation hands its alerts.
    let notifier = sextant_alerting::notify::Notifier::new(
        &config.notifications,
        &config.alerting,
        sextant_alerting::notify::NotifierOptions {
            data_dir: Some(config.storage.data_dir.join("notify")),
            ..Default::default()
        },
    )
    .map_err(anyhow::Error::msg)
    .context("notifications")?;
    notifier.metrics().register(telemetry.registry_mut());
    notifier.spawn();
    let alert_sink: Arc<dyn AlertSink> = notifier.clone();
    let telemetry = Arc::new(telemetry);
    let slos = Arc::new(RwLock::new(load_slos(config, &flags)?));
    let rule_loader = config_loader(config, &flags, notifier.clone(), slos.clone(), external_url);

    let engine = Arc::new(Engine::new(EngineOptions {
        lookback_delta_ms: parse_duration(&config.query.lookback_delta)?.as_millis() as i64,
        max_samples: config.query.max_samples,
        timeout: parse_duration(&config.query.timeout)?,
        ..EngineOptions::default()
    }));
    let info = ServerInfo {
        version: PROMETHEUS_COMPATIBLE_VERSION.to_string(),
        revision: format!("sextant-{}", env!("CARGO_PKG_VERSION")),
        branch: "main".to_string(),
        build_user: "sextant".to_string(),
        build_date: String::new(),
        go_version: format!("rust (sextant {})", env!("CARGO_PKG_VERSION")),
        start_time: SystemTime::now(),
        // Secrets (receiver keys, passwords, tokens, webhook URLs) shown as `<secret>`.
        config_yaml: sextant_alerting::notify::config::redacted_yaml(config),
        flags,
        data_dir: config.storage.data_dir.display().to_string(),
        storage_retention: match (
            config.storage.retention_time.as_str(),
            config.storage.retention_size_bytes,
        ) {
            ("0" | "0s", 0) => "unlimited".to_string(),
            (t, 0) => t.to_string(),
            ("0" | "0s", b) => format!("{b}B"),
            (t, b) => format!("{t} or {b}B"),
        },
        max_points_per_series: config.query.max_points_per_series,
    };
    let rules = RuleManager::start(
        db.clone(),
        engine.clone(),
        alert_sink,
        config.rule_manager_options()?,
        rule_loader,
        rule_metrics,
    )
    .map_err(anyhow::Error::msg)
    .context("loading rule_files")?;
    spawn_sighup_reload(rules.clone());
    let slo_api = sextant_alerting::slo::api::slo_router(SloApiState {
        db: db.clone(),
        engine: engine.clone(),
        slos,
    });
    let api = sextant_query::api::router(Arc::new(ApiState {
        db: db.clone(),
        engine,
        info,
    }));
    let rw = &config.remote_write;
    let ingest = sextant_ingest::router(Arc::new(RemoteWriteState {
        db: db.clone(),
        limits: RemoteWriteLimits {
            max_decompressed_bytes: rw.max_decompressed_bytes,
            max_labels_per_series: rw.max_labels_per_series,
            max_label_name_bytes: rw.max_label_name_bytes,
            max_label_value_bytes: rw.max_label_value_bytes,
        },
    }));
    let scrape = if config.scrape_configs.is_empty() {
        sextant_ingest::ScrapeManager::empty()
    } else {
        sextant_ingest::ScrapeManager::start(db, &config.global, &config.scrape_configs)
            .map_err(anyhow::Error::msg)
            .context("scrape_configs")?
    };
    let app = Router::new()
        .merge(api)
        .merge(sextant_alerting::rules::api::router(rules))
        .merge(ingest)
        .merge(sextant_ingest::scrape::router(scrape))
        .merge(sextant_alerting::notify::api::router(notifier))
        .merge(slo_api)
        .merge(crate::logs::query_router(config, logs.clone())?)
        .merge(crate::traces::query_router(traces.store.clone()))
        .route(
            "/flush",
            axum::routing::post(flush).with_state(Stores {
                logs,
                traces: traces.store.clone(),
            }),
        )
        // The web console last: explicit page and asset routes only, so API routes win.
        .merge(sextant_ui::router())
        .layer(axum::middleware::from_fn_with_state(
            telemetry.clone(),
            telemetry::track_http,
        ));
    Ok((telemetry, app))
}

/// The log and trace stores, for `POST /flush`.
#[derive(Clone)]
struct Stores {
    logs: Option<Arc<sextant_storage::logs::LogStore>>,
    traces: Option<Arc<sextant_storage::traces::TraceStore>>,
}

/// `POST /flush` (as Tempo's and Loki's ingesters): the log and trace heads become blocks now,
/// durable on return. 204 on success; 500 with the error text otherwise.
async fn flush(
    axum::extract::State(stores): axum::extract::State<Stores>,
) -> (axum::http::StatusCode, String) {
    let done = tokio::task::spawn_blocking(move || -> Result<(), String> {
        if let Some(logs) = &stores.logs {
            logs.flush().map_err(|e| format!("flushing logs: {e}"))?;
        }
        if let Some(traces) = &stores.traces {
            traces
                .flush()
                .map_err(|e| format!("flushing traces: {e}"))?;
        }
        Ok(())
    })
    .await;
    match done {
        Ok(Ok(())) => (axum::http::StatusCode::NO_CONTENT, String::new()),
        Ok(Err(e)) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Gives alert links one base: `rules.external_url` (generator URLs, `$externalURL`), else
/// `notifications.external_url` (notification `externalURL`, SLO links), else Prometheus'
/// default `http://<host>:<port>` of the HTTP address (the machine's hostname when it listens
/// on all interfaces). Whichever of the two settings is empty gets it; returns it. Trailing
/// slashes are dropped.
fn fill_external_urls(config: &mut Config) -> String {
    let url = [
        &config.rules.external_url,
        &config.notifications.external_url,
    ]
    .into_iter()
    .find(|u| !u.is_empty())
    .cloned()
    .unwrap_or_else(|| default_external_url(config.server.http_addr));
    let url = url.trim_end_matches('/').to_string();
    for field in [
        &mut config.rules.external_url,
        &mut config.notifications.external_url,
    ] {
        if field.is_empty() {
            *field = url.clone();
        } else {
            // As Prometheus, without a trailing slash (`$externalURL` + "/path").
            field.truncate(field.trim_end_matches('/').len());
        }
    }
    url
}

fn default_external_url(addr: std::net::SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_string())
    } else {
        addr.ip().to_string()
    };
    match addr {
        std::net::SocketAddr::V6(a) if !a.ip().is_unspecified() => {
            format!("http://[{host}]:{}", addr.port())
        }
        _ => format!("http://{host}:{}", addr.port()),
    }
}

/// The directory `rule_files` and `slo_files` are relative to: the configuration file's.
fn config_base(flags: &BTreeMap<String, String>) -> (Option<PathBuf>, PathBuf) {
    let config_file = flags
        .get("config.file")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let base = config_file
        .as_ref()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
        .unwrap_or_default();
    (config_file, base)
}

/// The SLO specs named by `slo_files` (paths, directories or globs).
fn load_slos(config: &Config, flags: &BTreeMap<String, String>) -> anyhow::Result<Vec<SloSpec>> {
    let (_, base) = config_base(flags);
    slo_specs(&base, &config.slo_files)
        .map_err(anyhow::Error::msg)
        .context("slo_files")
}

fn slo_specs(base: &std::path::Path, patterns: &[String]) -> Result<Vec<SloSpec>, String> {
    if patterns.is_empty() {
        return Ok(Vec::new());
    }
    let paths = rule_load::expand_globs(base, patterns)?;
    sextant_alerting::slo::load_slo_files(&paths).map_err(|errs| errs.join("; "))
}

/// Loads the rule groups: `rule_files` plus the groups generated from the SLOs. The first call
/// uses the start-up configuration; each later call (a reload: `POST /-/reload`, SIGHUP) reads
/// the configuration file again, loads rules, SLO specs and the notifier's configuration, and
/// only when all of them are valid applies the new SLOs and notifier configuration and returns
/// the new groups. Every other setting (including `global` external labels and evaluation
/// interval, and `rules.*`) keeps its start-up value until a restart; an empty
/// `notifications.external_url` keeps meaning `external_url` (the rules' link base).
fn config_loader(
    config: &Config,
    flags: &BTreeMap<String, String>,
    notifier: Arc<Notifier>,
    slos: Arc<RwLock<Vec<SloSpec>>>,
    external_url: String,
) -> RuleLoader {
    let (config_file, base) = config_base(flags);
    let initial = config.rule_files.clone();
    let first = std::sync::atomic::AtomicBool::new(true);
    Arc::new(move || {
        let reread = if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            None
        } else {
            config_file.as_ref()
        };
        let Some(path) = reread else {
            // Start-up, or no configuration file to read again: the start-up settings.
            let mut groups = rule_load::load_globs(&base, &initial)?;
            groups.extend(sextant_alerting::slo::rule_groups(&slos.read()));
            return Ok(groups);
        };
        let mut fresh = Config::load(path).map_err(|e| format!("{e:#}"))?;
        if fresh.notifications.external_url.is_empty() {
            fresh.notifications.external_url = external_url.clone();
        }
        let mut groups = rule_load::load_globs(&base, &fresh.rule_files)?;
        let specs = slo_specs(&base, &fresh.slo_files)?;
        sextant_alerting::notify::validate(&fresh.notifications, &fresh.alerting)?;
        groups.extend(sextant_alerting::slo::rule_groups(&specs));
        notifier.reload(&fresh.notifications, &fresh.alerting)?;
        *slos.write() = specs;
        Ok(groups)
    })
}

/// Reloads the rules on SIGHUP, as Prometheus does.
fn spawn_sighup_reload(rules: Arc<RuleManager>) {
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; reload with POST /-/reload");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("received SIGHUP; reloading rules");
            let _ = rules.reload().await;
        }
    });
}

/// Runs storage maintenance (head cuts, compaction, retention) on its own thread, off the async
/// workers, until the process exits.
fn spawn_maintenance(db: Arc<Db>, every: std::time::Duration) {
    let spawned = std::thread::Builder::new()
        .name("maintenance".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            match db.maintain() {
                Ok(r) if r != Default::default() => {
                    tracing::debug!(report = ?r, "maintenance pass")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "storage maintenance failed; will retry"),
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the maintenance thread");
    }
}

async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    if shared.app.get().is_some() {
        "Sextant is Ready.\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    match shared.telemetry.get() {
        Some(t) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            t.render(),
        )
            .into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response(),
    }
}

async fn forward(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    match shared.app.get() {
        Some(app) => match app.clone().oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        },
        None => (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => tracing::info!("received SIGINT; shutting down"),
        _ = term => tracing::info!("received SIGTERM; shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_links_share_one_external_url() {
        let mut c = Config::default();
        c.server.http_addr = "127.0.0.1:9191".parse().unwrap();
        assert_eq!(fill_external_urls(&mut c), "http://127.0.0.1:9191");
        assert_eq!(c.notifications.external_url, "http://127.0.0.1:9191");

        let mut c = Config::default();
        c.rules.external_url = "https://sx.example/prom/".into();
        assert_eq!(fill_external_urls(&mut c), "https://sx.example/prom");
        assert_eq!(c.rules.external_url, "https://sx.example/prom");
        assert_eq!(c.notifications.external_url, "https://sx.example/prom");

        let mut c = Config::default();
        c.notifications.external_url = "https://am.example".into();
        assert_eq!(fill_external_urls(&mut c), "https://am.example");
        assert_eq!(c.rules.external_url, "https://am.example");

        let any = default_external_url("0.0.0.0:9090".parse().unwrap());
        assert!(any.starts_with("http://") && any.ends_with(":9090") && !any.contains("0.0.0.0"));
        assert_eq!(
            default_external_url("[::1]:9090".parse().unwrap()),
            "http://[::1]:9090"
        );
    }
}
