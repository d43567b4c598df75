//! `/loki/api/v1/tail`: live tail over a WebSocket. Each poll (every `delay_for` seconds, at
//! least one) runs the log query forward from just after the newest entry already sent and
//! sends the new entries as Loki's tail frame
//! `{"streams":[{"stream":{…},"values":[["<ns>","<line>"]]}],"dropped_entries":null}`.
//! The first frame starts at `start` (default: one hour ago); each frame carries at most
//! `limit` entries (default 100), oldest first, so a burst is delivered over several polls.
//! Polling by time means an entry pushed later with a timestamp at or before one already sent
//! (out of order) is not tailed; it is stored and queryable as usual.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use sextant_storage::logs::Direction;

use super::super::params::Params;
use super::shape::{labels_object, QueryData};
use super::{now_ns, params, LokiApiState, LokiError, RangeRequest};

/// Tail parameters: the query, where to start, and how often to poll.
struct TailSpec {
    query: String,
    start_ns: i64,
    limit: usize,
    poll: Duration,
}

fn spec(p: &Params) -> Result<TailSpec, LokiError> {
    let query = match p.get("query") {
        "" => return Err(LokiError::bad_request("query parameter is required")),
        q => q.to_string(),
    };
    params::selector_matchers(&query).map_err(LokiError::bad_request)?;
    let start_ns = match p.get("start") {
        "" => now_ns() - params::DEFAULT_SINCE_NS,
        v => params::parse_loki_time(v).map_err(LokiError::bad_request)?,
    };
    let limit = params::limit(p).map_err(LokiError::bad_request)?;
    let delay = match p.get("delay_for") {
        "" => 0,
        v => v
            .parse::<u64>()
            .map_err(|_| LokiError::bad_request(format!("invalid delay_for {v:?}")))?,
    };
    if delay > 5 {
        return Err(LokiError::bad_request("delay_for can't be greater than 5"));
    }
    Ok(TailSpec {
        query,
        start_ns,
        limit,
        poll: Duration::from_secs(delay.max(1)),
    })
}

pub(super) async fn tail(
    State(state): State<Arc<LokiApiState>>,
    ws: WebSocketUpgrade,
    p: Params,
) -> Response {
    match spec(&p) {
        Ok(spec) => ws.on_upgrade(move |socket| run(socket, state, spec)),
        Err(e) => e.into_response(),
    }
}

/// One poll: entries in `[from, now)` as a tail frame and the next `from`; `None` when there
/// is nothing new.
pub(super) fn poll_once(
    state: &LokiApiState,
    query: &str,
    from_ns: i64,
    now: i64,
    limit: usize,
) -> Result<(Option<Value>, i64), LokiError> {
    if now <= from_ns {
        return Ok((None, from_ns));
    }
    let req = RangeRequest {
        query: query.to_string(),
        start_ns: from_ns,
        end_ns: now,
        step_ns: 1_000_000_000,
        interval_ns: 0,
        limit,
        direction: Direction::Forward,
    };
    let (data, _) = state.engine.query_range(state.source.as_ref(), &req)?;
    let QueryData::Streams(streams) = data else {
        return Err(LokiError::bad_request(
            "tail only supports log queries, not metric queries",
        ));
    };
    let mut next = from_ns;
    let mut frames = Vec::with_capacity(streams.len());
    for s in &streams {
        if s.entries.is_empty() {
            continue;
        }
        for e in &s.entries {
            next = next.max(e.ts_ns.saturating_add(1));
        }
        frames.push(json!({
            "stream": labels_object(&s.labels),
            "values": s.entries.iter().map(|e| json!([e.ts_ns.to_string(), e.line])).collect::<Vec<_>>(),
        }));
    }
    if frames.is_empty() {
        return Ok((None, from_ns));
    }
    Ok((
        Some(json!({"streams": frames, "dropped_entries": null})),
        next,
    ))
}

async fn run(mut socket: WebSocket, state: Arc<LokiApiState>, spec: TailSpec) {
    let mut from = spec.start_ns;
    let limit = spec.limit;
    loop {
        let st = state.clone();
        let query = spec.query.clone();
        let result =
            tokio::task::spawn_blocking(move || poll_once(&st, &query, from, now_ns(), limit))
                .await
                .map_err(|e| LokiError::internal(format!("tail task failed: {e}")))
                .and_then(|r| r);
        match result {
            Ok((frame, next)) => {
                from = next;
                if let Some(frame) = frame {
                    if socket
                        .send(Message::Text(frame.to_string().into()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = socket
                    .send(Message::Text(
                        json!({"code": e.status, "status": "error", "message": e.message})
                            .to_string()
                            .into(),
                    ))
                    .await;
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        }
        // Polls read forward, so entries past `limit` in one poll come with the next one.
        tokio::select! {
            _ = tokio::time::sleep(spec.poll) => {}
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    }
}
