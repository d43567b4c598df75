//! Measures the trace store's on-disk bytes per span on a tracegen request file.
//!
//! ```sh
//! tracegen gen --spans 200k --out /tmp/push.bin
//! cargo run --release -p sextant-storage --example trace_bytes_per_span -- /tmp/push.bin [row_group_spans] [zstd_level]
//! ```
//! The file holds records `[u32 LE payload length][u32 LE span count][u32 LE shard][payload]`,
//! each payload an OTLP `ExportTraceServiceRequest`. The minimal protobuf decoder below exists
//! so that the storage crate needs no protobuf dependency; the real decoder lives in ingest.

use std::sync::Arc;
use std::time::Instant;

use sextant_storage::traces::{
    Attr, AttrScope, AttrValue, FilterOp, FilterValue, Resource, Scope, Span, SpanBatch, SpanEvent,
    SpanField, SpanFilter, SpanKind, SpanLink, StatusCode, TraceAppender, TraceId, TraceSearch,
    TraceSource, TraceStore, TraceStoreOptions,
};
use sextant_storage::FsyncPolicy;

type Res<T> = Result<T, String>;

struct Pb<'a> {
    b: &'a [u8],
}

enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

impl<'a> Pb<'a> {
    fn varint(&mut self) -> Res<u64> {
        let mut out = 0u64;
        for i in 0..10 {
            let (&x, rest) = self.b.split_first().ok_or("truncated varint")?;
            self.b = rest;
            out |= u64::from(x & 0x7f) << (7 * i);
            if x < 0x80 {
                return Ok(out);
            }
        }
        Err("long varint".into())
    }

    fn next(&mut self) -> Res<Option<(u64, Field<'a>)>> {
        if self.b.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let f = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                let (h, t) = self.b.split_at_checked(8).ok_or("truncated fixed64")?;
                self.b = t;
                Field::Fixed64(u64::from_le_bytes(h.try_into().map_err(|_| "x")?))
            }
            5 => {
                let (h, t) = self.b.split_at_checked(4).ok_or("truncated fixed32")?;
                self.b = t;
                Field::Fixed32(u32::from_le_bytes(h.try_into().map_err(|_| "x")?))
            }
            2 => {
                let n = self.varint()? as usize;
                let (h, t) = self.b.split_at_checked(n).ok_or("truncated bytes")?;
                self.b = t;
                Field::Bytes(h)
            }
            w => return Err(format!("wire type {w}")),
        };
        Ok(Some((key >> 3, f)))
    }
}

fn each<'a>(b: &'a [u8], mut f: impl FnMut(u64, Field<'a>) -> Res<()>) -> Res<()> {
    let mut pb = Pb { b };
    while let Some((n, v)) = pb.next()? {
        f(n, v)?;
    }
    Ok(())
}

fn text(b: &[u8]) -> Res<String> {
    String::from_utf8(b.to_vec()).map_err(|e| e.to_string())
}

fn any_value(b: &[u8]) -> Res<AttrValue> {
    let mut v = AttrValue::Empty;
    each(b, |n, f| {
        v = match (n, f) {
            (1, Field::Bytes(s)) => AttrValue::Str(text(s)?),
            (2, Field::Varint(x)) => AttrValue::Bool(x != 0),
            (3, Field::Varint(x)) => AttrValue::Int(x as i64),
            (4, Field::Fixed64(x)) => AttrValue::Double(f64::from_bits(x)),
            (5, Field::Bytes(s)) => {
                let mut items = Vec::new();
                each(s, |n, f| {
                    if let (1, Field::Bytes(x)) = (n, f) {
                        items.push(any_value(x)?);
                    }
                    Ok(())
                })?;
                AttrValue::Array(items)
            }
            (6, Field::Bytes(s)) => {
                let mut kvs = Vec::new();
                each(s, |n, f| {
                    if let (1, Field::Bytes(x)) = (n, f) {
                        kvs.push(key_value(x)?);
                    }
                    Ok(())
                })?;
                AttrValue::KvList(kvs)
            }
            (7, Field::Bytes(s)) => AttrValue::Bytes(s.to_vec()),
            _ => return Ok(()),
        };
        Ok(())
    })?;
    Ok(v)
}

fn key_value(b: &[u8]) -> Res<Attr> {
    let mut a = Attr::new("", AttrValue::Empty);
    each(b, |n, f| {
        match (n, f) {
            (1, Field::Bytes(s)) => a.key = text(s)?,
            (2, Field::Bytes(s)) => a.value = any_value(s)?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(a)
}

fn span(b: &[u8]) -> Res<Span> {
    let mut s = Span::default();
    each(b, |n, f| {
        match (n, f) {
            (1, Field::Bytes(x)) => s.trace_id = TraceId(x.try_into().map_err(|_| "trace id")?),
            (2, Field::Bytes(x)) => s.span_id = x.try_into().map_err(|_| "span id")?,
            (3, Field::Bytes(x)) => s.trace_state = text(x)?,
            (4, Field::Bytes(x)) if !x.is_empty() => {
                s.parent_span_id = Some(x.try_into().map_err(|_| "parent id")?)
            }
            (16, Field::Fixed32(x)) => s.flags = x,
            (5, Field::Bytes(x)) => s.name = text(x)?,
            (6, Field::Varint(x)) => s.kind = SpanKind::from_i32(x as i32),
            (7, Field::Fixed64(x)) => s.start_unix_nano = x,
            (8, Field::Fixed64(x)) => s.end_unix_nano = x,
            (9, Field::Bytes(x)) => s.attributes.push(key_value(x)?),
            (10, Field::Varint(x)) => s.dropped_attributes_count = x as u32,
            (11, Field::Bytes(x)) => {
                let mut e = SpanEvent::default();
                each(x, |n, f| {
                    match (n, f) {
                        (1, Field::Fixed64(t)) => e.time_unix_nano = t,
                        (2, Field::Bytes(t)) => e.name = text(t)?,
                        (3, Field::Bytes(t)) => e.attributes.push(key_value(t)?),
                        (4, Field::Varint(t)) => e.dropped_attributes_count = t as u32,
                        _ => {}
                    }
                    Ok(())
                })?;
                s.events.push(e);
            }
            (12, Field::Varint(x)) => s.dropped_events_count = x as u32,
            (13, Field::Bytes(x)) => {
                let mut l = SpanLink::default();
                each(x, |n, f| {
                    match (n, f) {
                        (1, Field::Bytes(t)) => {
                            l.trace_id = TraceId(t.try_into().map_err(|_| "link trace")?)
                        }
                        (2, Field::Bytes(t)) => {
                            l.span_id = t.try_into().map_err(|_| "link span")?
                        }
                        (3, Field::Bytes(t)) => l.trace_state = text(t)?,
                        (4, Field::Bytes(t)) => l.attributes.push(key_value(t)?),
                        (5, Field::Varint(t)) => l.dropped_attributes_count = t as u32,
                        (6, Field::Fixed32(t)) => l.flags = t,
                        _ => {}
                    }
                    Ok(())
                })?;
                s.links.push(l);
            }
            (14, Field::Varint(x)) => s.dropped_links_count = x as u32,
            (15, Field::Bytes(x)) => each(x, |n, f| {
                match (n, f) {
                    (2, Field::Bytes(t)) => s.status_message = text(t)?,
                    (3, Field::Varint(t)) => s.status_code = StatusCode::from_i32(t as i32),
                    _ => {}
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(s)
}

fn request(b: &[u8], out: &mut Vec<SpanBatch>) -> Res<()> {
    each(b, |n, f| {
        let (1, Field::Bytes(rs)) = (n, f) else {
            return Ok(());
        };
        let mut resource = Resource::default();
        let mut scopes: Vec<&[u8]> = Vec::new();
        each(rs, |n, f| {
            match (n, f) {
                (1, Field::Bytes(r)) => each(r, |n, f| {
                    match (n, f) {
                        (1, Field::Bytes(x)) => resource.attributes.push(key_value(x)?),
                        (2, Field::Varint(x)) => resource.dropped_attributes_count = x as u32,
                        _ => {}
                    }
                    Ok(())
                })?,
                (2, Field::Bytes(ss)) => scopes.push(ss),
                (3, Field::Bytes(x)) => resource.schema_url = text(x)?,
                _ => {}
            }
            Ok(())
        })?;
        let resource = Arc::new(resource);
        for ss in scopes {
            let mut scope = Scope::default();
            let mut spans = Vec::new();
            each(ss, |n, f| {
                match (n, f) {
                    (1, Field::Bytes(x)) => each(x, |n, f| {
                        match (n, f) {
                            (1, Field::Bytes(t)) => scope.name = text(t)?,
                            (2, Field::Bytes(t)) => scope.version = text(t)?,
                            (3, Field::Bytes(t)) => scope.attributes.push(key_value(t)?),
                            (4, Field::Varint(t)) => scope.dropped_attributes_count = t as u32,
                            _ => {}
                        }
                        Ok(())
                    })?,
                    (2, Field::Bytes(x)) => spans.push(span(x)?),
                    (3, Field::Bytes(x)) => scope.schema_url = text(x)?,
                    _ => {}
                }
                Ok(())
            })?;
            out.push(SpanBatch {
                resource: resource.clone(),
                scope: Arc::new(scope),
                spans,
            });
        }
        Ok(())
    })
}

/// CPU nanoseconds used so far by all threads of this process (Linux schedstat).
fn cpu_ns() -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir("/proc/self/task") {
        for e in rd.flatten() {
            if let Ok(s) = std::fs::read_to_string(e.path().join("schedstat")) {
                total += s
                    .split_whitespace()
                    .next()
                    .and_then(|x| x.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e
                .metadata()
                .map(|m| (m.is_dir(), m.len()))
                .unwrap_or((false, 0));
            total += if m.0 { dir_bytes(&e.path()) } else { m.1 };
        }
    }
    total
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: trace_bytes_per_span FILE [rg_spans] [level]")?;
    let mut opts = TraceStoreOptions {
        fsync: FsyncPolicy::Never,
        ..TraceStoreOptions::default()
    };
    if let Some(rg) = args.get(2) {
        opts.row_group_spans = rg.parse()?;
    }
    if let Some(l) = args.get(3) {
        opts.zstd_level = l.parse()?;
    }
    // HEAD_MB: head size that triggers a cut during ingest (default 256), e.g. to measure
    // autocomplete over a head holding the whole corpus.
    if let Some(mb) = std::env::var("HEAD_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        opts.max_head_bytes = mb << 20;
    }
    let dir = tempfile::tempdir()?;
    let store = TraceStore::open(dir.path(), opts)?;
    // Stream the file: decode a few requests (not timed), append them (timed).
    let data = std::fs::read(path)?;
    let mut pos = 0;
    let mut raw_bytes = 0u64;
    let mut spans = 0u64;
    let mut ids: Vec<TraceId> = Vec::new();
    let mut append = std::time::Duration::ZERO;
    let mut append_cpu = 0u64;
    let mut n_req = 0u64;
    let mut max_start = 0u64;
    while pos + 12 <= data.len() {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into()?) as usize;
        let payload = data.get(pos + 12..pos + 12 + len).ok_or("truncated file")?;
        raw_bytes += len as u64;
        let mut batches = Vec::new();
        request(payload, &mut batches)?;
        pos += 12 + len;
        for b in &batches {
            for s in &b.spans {
                max_start = max_start.max(s.start_unix_nano);
                if spans.is_multiple_of(997) {
                    ids.push(s.trace_id);
                }
                spans += 1;
            }
        }
        n_req += 1;
        let t0 = Instant::now();
        let c0 = cpu_ns();
        store.append(batches)?;
        append += t0.elapsed();
        append_cpu += cpu_ns() - c0;
    }
    eprintln!("{n_req} requests appended");
    let head = store.stats();
    println!(
        "head before flush: {} spans, {} traces; {} blocks cut during ingest",
        head.head_spans, head.head_traces, head.blocks
    );
    // Autocomplete over the full head: from the head's summary (a range holding every head
    // span), and by decoding the head (a range that ends one ns before the latest span start,
    // which the summary cannot answer: the code path every call took before summaries).
    let route = SpanField::Attr {
        scope: AttrScope::Any,
        key: "http.route".into(),
    };
    let service = SpanField::Attr {
        scope: AttrScope::Resource,
        key: "service.name".into(),
    };
    for (label, end) in [
        ("summary", u64::MAX),
        ("decode", max_start.saturating_sub(1)),
    ] {
        for _ in 0..3 {
            let t = Instant::now();
            let c = cpu_ns();
            let names = store.tag_names(AttrScope::Any, 0, end, 10_000)?;
            let (tn, cn) = (t.elapsed(), cpu_ns() - c);
            let t = Instant::now();
            let c = cpu_ns();
            let routes = store.tag_values(&route, &SpanFilter::True, 0, end, 10_000)?;
            let svcs = store.tag_values(&service, &SpanFilter::True, 0, end, 10_000)?;
            println!(
                "head autocomplete ({label}): tag_names {} in {:.1} ms ({:.1} ms CPU); \
                 tag_values .http.route {} + resource.service.name {} in {:.1} ms ({:.1} ms CPU)",
                names.len(),
                tn.as_secs_f64() * 1e3,
                cn as f64 / 1e6,
                routes.len(),
                svcs.len(),
                t.elapsed().as_secs_f64() * 1e3,
                (cpu_ns() - c) as f64 / 1e6
            );
        }
    }
    let t1 = Instant::now();
    store.flush()?;
    let flush = t1.elapsed();
    let st = store.stats();
    let disk = dir_bytes(dir.path());
    println!(
        "spans {spans} traces {} raw OTLP {:.1} B/span; append {:.2} µs/span ({:.2} CPU); head {:.1} B/span; \
         flush {:.2}s; blocks {}; disk {disk} B = {:.2} B/span",
        st.block_traces,
        raw_bytes as f64 / spans as f64,
        append.as_secs_f64() * 1e6 / spans as f64,
        append_cpu as f64 / 1e3 / spans as f64,
        head.head_bytes as f64 / spans as f64,
        flush.as_secs_f64(),
        st.blocks,
        disk as f64 / spans as f64,
    );
    let t2 = Instant::now();
    let c2 = cpu_ns();
    let mut found = 0;
    for id in &ids {
        found += store.trace(id, None)?.map_or(0, |t| t.span_count());
    }
    println!(
        "trace by id: {} lookups, {found} spans, {:.2} ms each ({:.2} ms CPU)",
        ids.len(),
        t2.elapsed().as_secs_f64() * 1e3 / ids.len().max(1) as f64,
        (cpu_ns() - c2) as f64 / 1e6 / ids.len().max(1) as f64
    );
    let cond = |field, op, value| SpanFilter::Cond { field, op, value };
    let attr = |scope, key: &str| SpanField::Attr {
        scope,
        key: key.into(),
    };
    let queries: Vec<(&str, Vec<SpanFilter>)> = vec![
        (
            "{ status = error }",
            vec![cond(
                SpanField::Status,
                FilterOp::Eq,
                FilterValue::Status(StatusCode::Error),
            )],
        ),
        (
            "{ resource.service.name = \"catalog\" && span.http.response.status_code >= 500 }",
            vec![SpanFilter::And(vec![
                cond(
                    attr(AttrScope::Resource, "service.name"),
                    FilterOp::Eq,
                    FilterValue::Str("catalog".into()),
                ),
                cond(
                    attr(AttrScope::Span, "http.response.status_code"),
                    FilterOp::Ge,
                    FilterValue::Int(500),
                ),
            ])],
        ),
        (
            "{ duration > 2s }",
            vec![cond(
                SpanField::Duration,
                FilterOp::Gt,
                FilterValue::Duration(2_000_000_000),
            )],
        ),
        (
            "{ .http.route = \"/v1/prices/{id}/history\" }",
            vec![cond(
                attr(AttrScope::Any, "http.route"),
                FilterOp::Eq,
                FilterValue::Str("/v1/prices/{id}/history".into()),
            )],
        ),
    ];
    let repeat: usize = std::env::var("SEARCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let only: Option<usize> = std::env::var("QUERY").ok().and_then(|v| v.parse().ok());
    for (i, (q, filter)) in queries
        .iter()
        .enumerate()
        .cycle()
        .take(queries.len() * repeat)
    {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let t = Instant::now();
        let c = cpu_ns();
        let mut n = 0u64;
        store.search(
            &TraceSearch {
                start_ns: 0,
                end_ns: u64::MAX,
                filter,
            },
            &mut |_| {
                n += 1;
                true
            },
        )?;
        println!(
            "search {q}: {n} traces in {:.1} ms ({:.1} ms CPU)",
            t.elapsed().as_secs_f64() * 1e3,
            (cpu_ns() - c) as f64 / 1e6
        );
    }
    Ok(())
}
