//! A reference trace store: every span in one vector, every read a full scan.
//!
//! It defines by example what [`TraceSource`] returns, so the real store can be checked against
//! it, and lets the query side be tested without disk. Not for production data volumes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use parking_lot::RwLock;

use super::{
    find_attr, trace_matches, AttrScope, AttrValue, Resource, Scope, Span, SpanBatch, SpanField,
    SpanFilter, Trace, TraceAppendOutcome, TraceAppender, TraceId, TraceSearch, TraceSource,
};
use crate::StorageError;

/// See the module docs.
#[derive(Default)]
pub struct NaiveTraceStore {
    spans: RwLock<Vec<StoredSpan>>,
}

type StoredSpan = (Arc<Resource>, Arc<Scope>, Span);

impl NaiveTraceStore {
    pub fn new() -> NaiveTraceStore {
        NaiveTraceStore::default()
    }

    fn assemble(&self, id: &TraceId) -> Option<Trace> {
        let spans = self.spans.read();
        let mut batches: Vec<SpanBatch> = Vec::new();
        let mut seen: HashSet<[u8; 8]> = HashSet::new();
        for (res, scope, span) in spans.iter().filter(|(_, _, s)| s.trace_id == *id) {
            if !seen.insert(span.span_id) {
                continue;
            }
            match batches
                .iter_mut()
                .find(|b| Arc::ptr_eq(&b.resource, res) && Arc::ptr_eq(&b.scope, scope))
            {
                Some(b) => b.spans.push(span.clone()),
                None => batches.push(SpanBatch {
                    resource: res.clone(),
                    scope: scope.clone(),
                    spans: vec![span.clone()],
                }),
            }
        }
        (!batches.is_empty()).then_some(Trace { id: *id, batches })
    }
}

impl TraceAppender for NaiveTraceStore {
    fn append(&self, batches: Vec<SpanBatch>) -> Result<TraceAppendOutcome, StorageError> {
        let mut out = TraceAppendOutcome::default();
        let mut spans = self.spans.write();
        for batch in batches {
            for span in batch.spans {
                if span.trace_id.is_zero() || span.span_id == [0; 8] {
                    out.rejected_spans += 1;
                    if out.errors.len() < 5 {
                        out.errors
                            .push("span with an all-zero trace or span id".into());
                    }
                    continue;
                }
                out.accepted_spans += 1;
                spans.push((batch.resource.clone(), batch.scope.clone(), span));
            }
        }
        Ok(out)
    }
}

fn in_range(span: &Span, start_ns: u64, end_ns: u64) -> bool {
    span.start_unix_nano <= end_ns && span.end_unix_nano >= start_ns
}

fn display(v: &AttrValue) -> String {
    match v {
        AttrValue::Str(s) => s.clone(),
        AttrValue::Bool(b) => b.to_string(),
        AttrValue::Int(i) => i.to_string(),
        AttrValue::Double(d) => d.to_string(),
        _ => String::new(),
    }
}

impl TraceSource for NaiveTraceStore {
    fn trace(
        &self,
        id: &TraceId,
        _range: Option<(u64, u64)>,
    ) -> Result<Option<Trace>, StorageError> {
        Ok(self.assemble(id))
    }

    fn search(
        &self,
        search: &TraceSearch<'_>,
        visit: &mut dyn FnMut(Trace) -> bool,
    ) -> Result<(), StorageError> {
        // Trace ids with their earliest start, most recent first.
        let mut starts: HashMap<TraceId, u64> = HashMap::new();
        for (_, _, s) in self.spans.read().iter() {
            let e = starts.entry(s.trace_id).or_insert(u64::MAX);
            *e = (*e).min(s.start_unix_nano);
        }
        let mut ids: Vec<(u64, TraceId)> = starts.into_iter().map(|(id, t)| (t, id)).collect();
        ids.sort_by(|a, b| b.cmp(a));
        for (_, id) in ids {
            let Some(trace) = self.assemble(&id) else {
                continue;
            };
            let (s, e) = trace.time_range();
            if s > search.end_ns || e < search.start_ns || !trace_matches(&trace, search.filter) {
                continue;
            }
            if !visit(trace) {
                break;
            }
        }
        Ok(())
    }

    fn tag_names(
        &self,
        scope: AttrScope,
        start_ns: u64,
        end_ns: u64,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let mut names = BTreeSet::new();
        for (res, _, s) in self.spans.read().iter() {
            if !in_range(s, start_ns, end_ns) {
                continue;
            }
            if matches!(scope, AttrScope::Span | AttrScope::Any) {
                names.extend(s.attributes.iter().map(|a| a.key.clone()));
            }
            if matches!(scope, AttrScope::Resource | AttrScope::Any) {
                names.extend(res.attributes.iter().map(|a| a.key.clone()));
            }
        }
        Ok(names.into_iter().take(limit).collect())
    }

    fn tag_values(
        &self,
        field: &SpanField,
        filter: &SpanFilter,
        start_ns: u64,
        end_ns: u64,
        limit: usize,
    ) -> Result<Vec<AttrValue>, StorageError> {
        let mut values: BTreeMap<String, AttrValue> = BTreeMap::new();
        for (res, _, s) in self.spans.read().iter() {
            if !in_range(s, start_ns, end_ns) || !filter.matches(res, s) {
                continue;
            }
            let v = match field {
                SpanField::Name => Some(AttrValue::Str(s.name.clone())),
                SpanField::StatusMessage => Some(AttrValue::Str(s.status_message.clone())),
                SpanField::Attr { scope, key } => match scope {
                    AttrScope::Span => find_attr(&s.attributes, key).cloned(),
                    AttrScope::Resource => find_attr(&res.attributes, key).cloned(),
                    AttrScope::Any => find_attr(&s.attributes, key)
                        .or_else(|| find_attr(&res.attributes, key))
                        .cloned(),
                },
                SpanField::Kind | SpanField::Status | SpanField::Duration => None,
            };
            if let Some(
                v @ (AttrValue::Str(_)
                | AttrValue::Int(_)
                | AttrValue::Double(_)
                | AttrValue::Bool(_)),
            ) = v
            {
                values.entry(display(&v)).or_insert(v);
            }
        }
        Ok(values.into_values().take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FilterOp, FilterValue, SpanKind, StatusCode};
    use super::*;

    fn span(trace: u8, id: u8, parent: Option<u8>, name: &str, dur: u64) -> Span {
        Span {
            trace_id: TraceId([trace; 16]),
            span_id: [id; 8],
            parent_span_id: parent.map(|p| [p; 8]),
            name: name.into(),
            kind: SpanKind::Server,
            start_unix_nano: 1_000,
            end_unix_nano: 1_000 + dur,
            attributes: vec![super::super::Attr::new(
                "http.response.status_code",
                AttrValue::Int(500),
            )],
            status_code: StatusCode::Error,
            ..Span::default()
        }
    }

    #[test]
    fn assembles_traces_across_writes_and_filters_them() {
        let store = NaiveTraceStore::new();
        let res = Arc::new(Resource {
            attributes: vec![super::super::Attr::new(
                "service.name",
                AttrValue::Str("cart".into()),
            )],
            ..Resource::default()
        });
        let scope = Arc::new(Scope::default());
        let batch = |spans| SpanBatch {
            resource: res.clone(),
            scope: scope.clone(),
            spans,
        };
        store
            .append(vec![batch(vec![span(1, 1, None, "GET /", 50)])])
            .unwrap();
        let out = store
            .append(vec![batch(vec![
                span(1, 2, Some(1), "db", 10),
                span(1, 2, Some(1), "db", 10),
                span(0, 3, None, "bad", 1),
            ])])
            .unwrap();
        assert_eq!((out.accepted_spans, out.rejected_spans), (2, 1));
        let t = store.trace(&TraceId([1; 16]), None).unwrap().unwrap();
        assert_eq!(t.span_count(), 2, "duplicate span id collapsed");

        let slow = vec![SpanFilter::Cond {
            field: SpanField::Duration,
            op: FilterOp::Gt,
            value: FilterValue::Duration(20),
        }];
        let mut hits = 0;
        store
            .search(
                &TraceSearch {
                    start_ns: 0,
                    end_ns: u64::MAX,
                    filter: &slow,
                },
                &mut |_| {
                    hits += 1;
                    true
                },
            )
            .unwrap();
        assert_eq!(hits, 1);
        let code_5xx = SpanFilter::Cond {
            field: SpanField::Attr {
                scope: AttrScope::Any,
                key: "http.response.status_code".into(),
            },
            op: FilterOp::Ge,
            value: FilterValue::Int(500),
        };
        assert!(code_5xx.matches(&res, &t.batches[0].spans[0]));
        let missing_ne = SpanFilter::Cond {
            field: SpanField::Attr {
                scope: AttrScope::Span,
                key: "nope".into(),
            },
            op: FilterOp::Ne,
            value: FilterValue::Str("x".into()),
        };
        assert!(!missing_ne.matches(&res, &t.batches[0].spans[0]));
        let names = store
            .tag_values(&SpanField::Name, &SpanFilter::True, 0, u64::MAX, 10)
            .unwrap();
        assert_eq!(
            names,
            vec![AttrValue::Str("GET /".into()), AttrValue::Str("db".into())]
        );
        assert_eq!(
            store.tag_names(AttrScope::Any, 0, u64::MAX, 10).unwrap(),
            vec!["http.response.status_code", "service.name"]
        );
        assert_eq!(TraceId::from_hex("1f").unwrap().to_hex().len(), 32);
        assert!(TraceId::from_hex("xyz").is_none());
    }
}
