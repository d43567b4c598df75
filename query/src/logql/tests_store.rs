//! The golden queries against the real log store (`LogStore::in_memory`), before and after
//! a flush into an indexed segment: needle pushdown must never lose a line, and answers must
//! equal those over the plain Vec-backed source.

use sextant_storage::logs::{Direction, LogStore, LogStreamBatch};

use super::tests::{dataset, engine, SEC, T0};
use super::*;

fn store() -> LogStore {
    let src = dataset();
    let store = LogStore::in_memory();
    let batches: Vec<LogStreamBatch> = src
        .rows
        .iter()
        .map(|(labels, entry)| LogStreamBatch {
            labels: labels.clone(),
            entries: vec![entry.clone()],
        })
        .collect();
    let outcome = store.append(&batches).unwrap_or_else(|e| panic!("{e}"));
    assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
    store
}

const QUERIES: &[&str] = &[
    r#"{app="api"}"#,
    r#"{app=~".+"} |= "error""#,
    r#"{app=~".+"} |= "rror""#,
    r#"{app=~".+"} |= "fail" != "db""#,
    r#"{app=~".+"} |~ "GET.*fail""#,
    r#"{app=~".+"} |~ "(?i)TIMEOUT.*DB""#,
    r#"{app=~".+"} |~ "(?i)err""#,
    r#"{app=~".+"} |= "ser" |= "/us""#,
    r#"{app=~".+"} |= "\"id\":8""#,
    r#"{app=~".+"} |= "E42""#,
    r#"{app=~".+"} |> "<_> code=<_>""#,
    r#"{app="web"} | json | user_name="ann""#,
    r#"{app="api"} | logfmt | duration > 1s"#,
];

fn run(src: &dyn sextant_storage::logs::LogSource, q: &str, dir: Direction) -> LogqlResult {
    engine()
        .query_range(src, q, T0, T0 + 100 * SEC, SEC, 0, 100, dir)
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

#[test]
fn real_store_agrees_with_reference_source_before_and_after_flush() {
    let reference = dataset();
    let store = store();
    for flushed in [false, true] {
        if flushed {
            store.flush().unwrap_or_else(|e| panic!("{e}"));
        }
        for q in QUERIES {
            for dir in [Direction::Forward, Direction::Backward] {
                let want = run(&reference, q, dir);
                assert!(
                    matches!(want, LogqlResult::Streams(ref s) if !s.is_empty()),
                    "{q}"
                );
                assert_eq!(run(&store, q, dir), want, "{q} {dir:?} flushed={flushed}");
            }
        }
        for (q, at) in [
            (
                r#"sum by (env) (count_over_time({env=~".+"} |= "level" [1m]))"#,
                59,
            ),
            (
                r#"sum(bytes_over_time({app="api"} |~ "status=5\\d\\d" [1m]))"#,
                59,
            ),
            (r#"count_over_time({app="api", env="prod"}[10s])"#, 11),
        ] {
            let a = engine().query_instant(&reference, q, T0 + at * SEC, 100, Direction::Backward);
            let b = engine().query_instant(&store, q, T0 + at * SEC, 100, Direction::Backward);
            let a = a.unwrap_or_else(|e| panic!("{q}: {e}"));
            assert!(
                matches!(a, LogqlResult::Vector(ref v) if !v.is_empty()),
                "{q}"
            );
            assert_eq!(b.ok(), Some(a), "{q} flushed={flushed}");
        }
    }
}
