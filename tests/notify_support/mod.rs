//! A local HTTP sink for notification tests: records every request (path and JSON body) and
//! answers with scripted status codes per path (200 when nothing is scripted).

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::Router;
use serde_json::Value;
use std::sync::Mutex;

#[derive(Default)]
struct Inner {
    received: Vec<(String, Value, Option<String>)>,
    script: HashMap<String, VecDeque<u16>>,
}

#[derive(Clone)]
pub struct Sink {
    inner: Arc<Mutex<Inner>>,
    pub base: String,
}

impl Sink {
    pub async fn start() -> Sink {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new().fallback(record).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Sink {
            inner,
            base: format!("http://{addr}"),
        }
    }

    /// The next requests to `path` get these statuses, in order.
    pub fn script(&self, path: &str, statuses: &[u16]) {
        self.inner
            .lock()
            .unwrap()
            .script
            .insert(path.to_string(), statuses.iter().copied().collect());
    }

    /// Bodies received on `path`, in order.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        self.inner
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, b, _)| b.clone())
            .collect()
    }

    /// The `Authorization` headers of the requests to `path`, in order.
    pub fn authorization(&self, path: &str) -> Vec<Option<String>> {
        self.inner
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, _, a)| a.clone())
            .collect()
    }

    pub fn clear(&self) {
        self.inner.lock().unwrap().received.clear();
    }
}

async fn record(State(inner): State<Arc<Mutex<Inner>>>, req: Request) -> StatusCode {
    let path = req.uri().path().to_string();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), 1 << 24)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let mut g = inner.lock().unwrap();
    g.received.push((path.clone(), body, auth));
    let status = g
        .script
        .get_mut(&path)
        .and_then(|q| q.pop_front())
        .unwrap_or(200);
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}

/// A fixture from `../shared/conformance/alertmanager/webhook/`.
pub fn webhook_fixture(name: &str) -> Value {
    let path = format!(
        "{}/../shared/conformance/alertmanager/webhook/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}
