//! Tests of the log store: validation, ordering, needles, flush, WAL replay, segments,
//! compaction, retention and corruption handling.

use std::time::Duration;

use super::*;
use crate::{FsyncPolicy, Labels, MatchOp, Matcher};

fn lbl(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn entry(ts: i64, line: &str) -> LogEntry {
    LogEntry {
        ts_ns: ts,
        line: line.to_string(),
        metadata: Vec::new(),
    }
}

fn batch(labels: Labels, entries: Vec<LogEntry>) -> LogStreamBatch {
    LogStreamBatch { labels, entries }
}

fn collect(
    store: &dyn LogSource,
    matchers: &[Matcher],
    start: i64,
    end: i64,
    dir: Direction,
    needles: &[Needle],
) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    let q = LogQuery {
        matchers,
        start_ns: start,
        end_ns: end,
        direction: dir,
        needles,
    };
    store
        .scan(&q, &mut |l, e| {
            out.push((l.to_string(), e.ts_ns, e.line.clone()));
            true
        })
        .unwrap();
    out
}

fn all(store: &dyn LogSource, dir: Direction) -> Vec<(String, i64, String)> {
    collect(store, &[], i64::MIN, i64::MAX, dir, &[])
}

fn sample_store(store: &LogStore) {
    let a = lbl(&[("app", "api"), ("env", "prod")]);
    let b = lbl(&[("app", "web"), ("env", "prod")]);
    let out = store
        .append(&[
            batch(a.clone(), vec![entry(30, "a3"), entry(10, "a1 GET /x")]),
            batch(
                b.clone(),
                vec![entry(10, "b1 error timeout the end"), entry(20, "b2")],
            ),
        ])
        .unwrap();
    assert_eq!(out.accepted_entries, 4);
    store
        .append(&[batch(a, vec![entry(20, "a2 error db"), entry(30, "a3bis")])])
        .unwrap();
}

fn expected_forward() -> Vec<(String, i64, String)> {
    let a = r#"{app="api", env="prod"}"#.to_string();
    let b = r#"{app="web", env="prod"}"#.to_string();
    vec![
        (a.clone(), 10, "a1 GET /x".into()),
        (b.clone(), 10, "b1 error timeout the end".into()),
        (a.clone(), 20, "a2 error db".into()),
        (b.clone(), 20, "b2".into()),
        (a.clone(), 30, "a3".into()),
        (a, 30, "a3bis".into()),
    ]
}

#[test]
fn scan_orders_by_time_then_stream_then_arrival() {
    let s = LogStore::in_memory();
    sample_store(&s);
    assert_eq!(all(&s, Direction::Forward), expected_forward());
    let mut back = expected_forward();
    back.reverse();
    // Backward: newest first; equal timestamps keep streams in label order, newest arrival first.
    back.swap(2, 3);
    back.swap(4, 5);
    assert_eq!(all(&s, Direction::Backward), back);
}

#[test]
fn flushed_segments_read_back_exactly_as_the_head() {
    let s = LogStore::in_memory_with(LogStoreOptions {
        block_bytes: 8, // several blocks per stream
        ..LogStoreOptions::permissive()
    });
    sample_store(&s);
    let before_f = all(&s, Direction::Forward);
    let before_b = all(&s, Direction::Backward);
    s.flush().unwrap();
    assert_eq!(s.sizes().segments, 1);
    assert_eq!(s.sizes().head_bytes, 0);
    assert_eq!(all(&s, Direction::Forward), before_f);
    assert_eq!(all(&s, Direction::Backward), before_b);
    // Head and segment together, with a tie across them: segment (older arrival) first.
    s.append(&[batch(
        lbl(&[("app", "api"), ("env", "prod")]),
        vec![entry(30, "a3ter")],
    )])
    .unwrap();
    let f = all(&s, Direction::Forward);
    assert_eq!(f.len(), 7);
    assert_eq!(f[6].2, "a3ter");
    assert_eq!(f[5].2, "a3bis");
}

#[test]
fn range_matchers_and_early_stop() {
    let s = LogStore::in_memory();
    sample_store(&s);
    let m = [Matcher::new(MatchOp::Regex, "app", "a.*").unwrap()];
    let got = collect(&s, &m, 20, 30, Direction::Forward, &[]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2, "a2 error db");
    let mut n = 0;
    let q = LogQuery {
        matchers: &[],
        start_ns: 0,
        end_ns: 100,
        direction: Direction::Backward,
        needles: &[],
    };
    s.scan(&q, &mut |_, _| {
        n += 1;
        n < 2
    })
    .unwrap();
    assert_eq!(n, 2);
}

#[test]
fn needles_filter_in_head_and_in_segments() {
    let s = LogStore::in_memory_with(LogStoreOptions {
        block_bytes: 1,
        ..LogStoreOptions::permissive()
    });
    sample_store(&s);
    let needle = [Needle {
        text: "ERROR".into(),
        case_insensitive: true,
    }];
    let want = vec![
        "b1 error timeout the end".to_string(),
        "a2 error db".to_string(),
    ];
    let lines = |v: Vec<(String, i64, String)>| v.into_iter().map(|x| x.2).collect::<Vec<_>>();
    assert_eq!(
        lines(collect(&s, &[], 0, 100, Direction::Forward, &needle)),
        want
    );
    s.flush().unwrap();
    assert_eq!(
        lines(collect(&s, &[], 0, 100, Direction::Forward, &needle)),
        want
    );
    let exact = [Needle {
        text: " error db".into(),
        case_insensitive: false,
    }];
    assert_eq!(
        lines(collect(&s, &[], 0, 100, Direction::Forward, &exact)),
        vec!["a2 error db".to_string()]
    );
    // The index prunes blocks: with one entry per block, only the block holding the needle
    // survives the Bloom filters (the needle is long enough to have winnowed grams).
    let q = LogQuery {
        matchers: &[],
        start_ns: 0,
        end_ns: 100,
        direction: Direction::Forward,
        needles: &[Needle {
            text: "B1 ERROR TIMEOUT THE END".into(),
            case_insensitive: true,
        }],
    };
    let (_, runs) = s.plan(&q);
    assert_eq!(runs.len(), 1);
    let q = LogQuery {
        matchers: &[],
        start_ns: 0,
        end_ns: 100,
        direction: Direction::Forward,
        needles: &[Needle {
            text: "error".into(),
            case_insensitive: false,
        }],
    };
    let (_, runs) = s.plan(&q);
    assert_eq!(
        runs.len(),
        2,
        "the word index keeps only the blocks with a word containing a short needle"
    );
    let q = LogQuery {
        needles: &[Needle {
            text: "a3".into(),
            case_insensitive: false,
        }],
        ..q
    };
    let (_, runs) = s.plan(&q);
    assert_eq!(runs.len(), 6, "a short hex/digit needle prunes nothing");
}

/// Rewrites every segment file of the store in `dir` in segment format `format` (1 or 2),
/// with the same entries, as an older release would have written it.
fn rewrite_segments_as(dir: &std::path::Path, format: u8, block_bytes: usize) {
    for e in std::fs::read_dir(dir.join("segments")).unwrap() {
        let p = e.unwrap().path();
        let seg = segment::Segment::open(&p).unwrap();
        let mut by_stream: Vec<Vec<LogEntry>> = vec![Vec::new(); seg.streams.len()];
        for i in 0..seg.blocks.len() {
            for (s, e) in seg.read_block(i, |_, _, _| true).unwrap() {
                by_stream[s as usize].push(e);
            }
        }
        let streams: Vec<(&Labels, Vec<&LogEntry>)> = seg
            .streams
            .iter()
            .zip(&by_stream)
            .map(|(l, es)| (l, es.iter().collect()))
            .collect();
        let bytes =
            segment::build_format(seg.seq, &seg.covers, &streams, block_bytes, format).unwrap();
        let magic = format!("SXLOGSG{format}");
        assert_eq!(&bytes[..8], magic.as_bytes());
        drop(seg);
        std::fs::write(&p, bytes).unwrap();
    }
}

#[test]
fn short_needles_use_the_word_index_exactly_and_format_1_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || LogStoreOptions {
        block_bytes: 1,
        ..disk_opts()
    };
    let s = LogStore::open(dir.path(), opts()).unwrap();
    let l = lbl(&[("app", "api")]);
    let lines: Vec<String> = (0..200)
        .map(|i| match i % 50 {
            7 => format!("level=error code=ERR7731Q req={i:04x} failed"),
            19 => format!("{{\"msg\":\"xERR7731Qy\",\"n\":{i}}}"),
            23 => format!("warn err7731q lower {i}"),
            _ => format!("level=info code=ERR6120 req={i:04x} ok deadline"),
        })
        .collect();
    let entries = lines
        .iter()
        .enumerate()
        .map(|(i, t)| entry(i as i64, t))
        .collect();
    s.append(&[batch(l, entries)]).unwrap();
    s.flush().unwrap();
    let check = |s: &LogStore, text: &str, ci: bool, pruned: bool| {
        let needle = [Needle {
            text: text.into(),
            case_insensitive: ci,
        }];
        let got: Vec<String> = collect(s, &[], 0, 1000, Direction::Forward, &needle)
            .into_iter()
            .map(|x| x.2)
            .collect();
        let want: Vec<String> = lines
            .iter()
            .filter(|x| {
                if ci {
                    x.to_ascii_lowercase().contains(&text.to_ascii_lowercase())
                } else {
                    x.contains(text)
                }
            })
            .cloned()
            .collect();
        assert_eq!(got, want, "{text:?}");
        let q = LogQuery {
            matchers: &[],
            start_ns: 0,
            end_ns: 1000,
            direction: Direction::Forward,
            needles: &needle,
        };
        let (_, runs) = s.plan(&q);
        let total = s.segments()[0].blocks.len();
        assert!(total >= 200, "one line per block: {total}");
        if pruned {
            assert!(runs.len() <= want.len(), "{text:?}: {} runs", runs.len());
        } else {
            assert_eq!(runs.len(), total, "{text:?}");
        }
        want.len()
    };
    let cases = [
        ("ERR7731Q", false, true, 8),
        ("RR7731", false, true, 8),
        ("err7731Q", true, true, 12),
        ("code=ERR7731Q r", false, true, 4),
        ("ERR6120", false, true, 188),
        ("nowhere", false, true, 0),
        ("7731", false, false, 12),
    ];
    for (text, ci, pruned, n) in cases {
        assert_eq!(check(&s, text, ci, pruned), n, "{text:?}");
    }
    assert!(s.segments()[0].word_count().is_some());
    drop(s);
    // The same entries written as formats 2 and 1 (format 1: no word index) read back and
    // answer the same.
    for format in [2u8, 1] {
        rewrite_segments_as(dir.path(), format, 1);
        let s = LogStore::open(dir.path(), opts()).unwrap();
        assert_eq!(s.segments()[0].word_count().is_some(), format == 2);
        assert!(std::fs::read_dir(dir.path().join("quarantine"))
            .unwrap()
            .next()
            .is_none());
        for (text, ci, pruned, n) in cases {
            assert_eq!(check(&s, text, ci, pruned && format == 2), n, "{text:?}");
        }
    }
}

#[test]
fn format_3_dictionary_blocks_and_common_keys_answer_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || LogStoreOptions {
        block_bytes: 4096,
        ..disk_opts()
    };
    let s = LogStore::open(dir.path(), opts()).unwrap();
    let l = lbl(&[("app", "api")]);
    // 3,000 lines of ~120 bytes: enough for a dictionary, ~90 blocks; the template is in
    // every block (common keys), each request id in one line.
    let mut lines: Vec<String> = (0..3000u64)
        .map(|i| {
            let id = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            format!(
                "level=info msg=\"request completed\" path=/api/v1/orders user=u-{} \
                 request_id={:016x}-{:08x} latency_ms={}",
                i % 97,
                id,
                i * 7919 % 100_000,
                i % 1000
            )
        })
        .collect();
    // Adjacent lines where the needle "qq" occurs across the boundary and, overlapping that
    // occurrence, inside the second line.
    lines[1000] = "xq".into();
    lines[1001] = "qqz".into();
    let entries = lines
        .iter()
        .enumerate()
        .map(|(i, t)| entry(i as i64, t))
        .collect();
    s.append(&[batch(l, entries)]).unwrap();
    s.flush().unwrap();
    let (has_dict, common) = s.segments()[0].dictionary_and_common();
    assert!(has_dict);
    assert!(common > 0);
    let rare = lines[1234].split("request_id=").nth(1).unwrap()[..25].to_string();
    let check = |s: &LogStore, text: &str, max_runs: usize| {
        let needle = [Needle {
            text: text.into(),
            case_insensitive: false,
        }];
        let got: Vec<String> = collect(s, &[], 0, 5000, Direction::Forward, &needle)
            .into_iter()
            .map(|x| x.2)
            .collect();
        let want: Vec<String> = lines.iter().filter(|x| x.contains(text)).cloned().collect();
        assert_eq!(got, want, "{text:?}");
        let q = LogQuery {
            matchers: &[],
            start_ns: 0,
            end_ns: 5000,
            direction: Direction::Forward,
            needles: &needle,
        };
        let (_, runs) = s.plan(&q);
        assert!(runs.len() <= max_runs, "{text:?}: {} runs", runs.len());
        want.len()
    };
    let blocks = s.segments()[0].blocks.len();
    assert!(blocks > 40, "{blocks} blocks");
    for s in [s, LogStore::open(dir.path(), opts()).unwrap()] {
        assert_eq!(
            check(&s, "msg=\"request completed\" path=/api/v1/orders", blocks),
            2998
        );
        assert_eq!(check(&s, &rare, 3), 1);
        assert_eq!(check(&s, "qq", blocks), 1);
        assert_eq!(check(&s, "request_id=0000000000000000-", blocks), 1);
        assert_eq!(all(&s, Direction::Forward).len(), 3000);
    }
}

#[test]
fn validation_refuses_per_stream_and_keeps_the_rest() {
    let now = 1_700_000_000_000_000_000i64;
    fn clock() -> i64 {
        1_700_000_000_000_000_000
    }
    let s = LogStore::in_memory_with(LogStoreOptions {
        max_line_bytes: 10,
        now_ns: clock,
        ..LogStoreOptions::default()
    });
    let hour = 3_600_000_000_000i64;
    let good = lbl(&[("app", "x")]);
    let out = s
        .append(&[
            batch(Labels::empty(), vec![entry(now, "no labels")]),
            batch(lbl(&[("bad-name", "x")]), vec![entry(now, "bad")]),
            batch(
                good.clone(),
                vec![
                    entry(now, "ok"),
                    entry(now, "this line is too long"),
                    entry(now - 8 * 24 * hour, "old"),
                    entry(now + hour, "future"),
                    entry(now - 2 * hour, "behind"),
                    entry(now - hour / 2, "ooo ok"),
                ],
            ),
        ])
        .unwrap();
    assert_eq!(out.accepted_entries, 2);
    assert_eq!(out.accepted_bytes, 8);
    let reasons: Vec<(&str, u64)> = out
        .rejected
        .iter()
        .map(|r| (r.reason.as_str(), r.entries))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("invalid_labels", 1),
            ("invalid_labels", 1),
            ("line_too_long", 1),
            ("greater_than_max_sample_age", 1),
            ("too_far_in_future", 1),
            ("too_far_behind", 1),
        ]
    );
    assert_eq!(
        out.rejected[0].message,
        "error at least one label pair is required per stream"
    );
    assert_eq!(
        out.rejected[2].message,
        "Max entry size '10' bytes exceeded for stream '{app=\"x\"}' while adding an entry with length '21' bytes"
    );
    assert!(out.rejected[3].message.starts_with(
        "entry for stream '{app=\"x\"}' has timestamp too old: 2023-11-06T22:13:20Z,"
    ));
    let lines: Vec<String> = all(&s, Direction::Forward)
        .into_iter()
        .map(|x| x.2)
        .collect();
    assert_eq!(lines, vec!["ooo ok".to_string(), "ok".to_string()]);
    // The out-of-order window also applies against earlier appends.
    let out = s
        .append(&[batch(good, vec![entry(now - 2 * hour, "late")])])
        .unwrap();
    assert_eq!(out.accepted_entries, 0);
    assert_eq!(out.rejected[0].reason, LogRejectReason::TooFarBehind);
}

#[test]
fn streams_labels_and_stats() {
    let s = LogStore::in_memory_with(LogStoreOptions {
        block_bytes: 4,
        ..LogStoreOptions::permissive()
    });
    sample_store(&s);
    let m = [Matcher::equal("app", "web")];
    assert_eq!(
        s.streams(&m, 0, 100).unwrap(),
        vec![lbl(&[("app", "web"), ("env", "prod")])]
    );
    assert_eq!(s.streams(&[], 25, 100).unwrap().len(), 1);
    assert_eq!(s.label_names(&[], 0, 100).unwrap(), vec!["app", "env"]);
    assert_eq!(
        s.label_values("app", &[], 0, 100).unwrap(),
        vec!["api", "web"]
    );
    assert_eq!(s.label_values("app", &[], 25, 100).unwrap(), vec!["api"]);
    let head = s.stats(&[], 0, 30).unwrap();
    assert_eq!((head.streams, head.entries), (2, 4));
    assert_eq!(head.bytes, (9 + 24 + 2 + 11) as u64);
    s.flush().unwrap();
    let seg = s.stats(&[], 0, 30).unwrap();
    assert_eq!((seg.streams, seg.entries, seg.bytes), (2, 4, head.bytes));
    assert!(seg.chunks >= 2);
    let per = s.stream_stats(&m, 0, 100).unwrap();
    assert_eq!(per.len(), 1);
    assert_eq!(per[0].1.entries, 2);
}

#[test]
fn metadata_round_trips_sorted() {
    let s = LogStore::in_memory();
    let mut e = entry(5, "with meta");
    e.metadata = vec![
        ("trace_id".into(), "abc123".into()),
        ("span_id".into(), "s1".into()),
    ];
    s.append(&[batch(lbl(&[("a", "b")]), vec![e])]).unwrap();
    s.flush().unwrap();
    let mut got = Vec::new();
    let q = LogQuery {
        matchers: &[],
        start_ns: 0,
        end_ns: 10,
        direction: Direction::Forward,
        needles: &[],
    };
    s.scan(&q, &mut |_, e| {
        got.push(e.clone());
        true
    })
    .unwrap();
    assert_eq!(
        got[0].metadata,
        vec![
            ("span_id".into(), "s1".into()),
            ("trace_id".into(), "abc123".into())
        ]
    );
}

#[test]
fn timestamps_format_like_go() {
    assert_eq!(store::fmt_ts(0), "1970-01-01T00:00:00Z");
    assert_eq!(
        store::fmt_ts(1_700_000_000_123_000_000),
        "2023-11-14T22:13:20.123Z"
    );
    assert_eq!(store::fmt_ts(-1_000_000_000), "1969-12-31T23:59:59Z");
    assert_eq!(
        store::fmt_ts(951_782_400_000_000_000),
        "2000-02-29T00:00:00Z"
    );
}

#[test]
fn fsync_policy_is_reused() {
    let o = LogStoreOptions::default();
    assert_eq!(o.fsync, FsyncPolicy::Always);
    assert_eq!(o.out_of_order_window, Some(Duration::from_secs(3600)));
}

fn disk_opts() -> LogStoreOptions {
    LogStoreOptions {
        block_bytes: 16,
        ..LogStoreOptions::permissive()
    }
}

#[test]
fn wal_replays_acknowledged_entries_and_flush_drops_covered_wal() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = LogStore::open(dir.path(), disk_opts()).unwrap();
        sample_store(&s);
    }
    let s = LogStore::open(dir.path(), disk_opts()).unwrap();
    assert_eq!(all(&s, Direction::Forward), expected_forward());
    s.flush().unwrap();
    let wal_files = std::fs::read_dir(dir.path().join("wal")).unwrap().count();
    assert_eq!(wal_files, 1, "only the current generation's WAL remains");
    s.append(&[batch(
        lbl(&[("app", "new")]),
        vec![entry(40, "after flush")],
    )])
    .unwrap();
    drop(s);
    let s = LogStore::open(dir.path(), disk_opts()).unwrap();
    let mut want = expected_forward();
    want.push((r#"{app="new"}"#.into(), 40, "after flush".into()));
    assert_eq!(all(&s, Direction::Forward), want);
    assert_eq!(s.sizes().segments, 1);
}

#[test]
fn torn_wal_tail_is_ignored_and_the_rest_replays() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = LogStore::open(dir.path(), disk_opts()).unwrap();
        sample_store(&s);
    }
    let wal_dir = dir.path().join("wal");
    let f = std::fs::read_dir(&wal_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut data = std::fs::read(&f).unwrap();
    let len = data.len();
    data.truncate(len - 3); // tear the second append
    std::fs::write(&f, &data).unwrap();
    let s = LogStore::open(dir.path(), disk_opts()).unwrap();
    assert_eq!(all(&s, Direction::Forward).len(), 4);
}

#[test]
fn corrupt_segment_is_quarantined_and_others_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = LogStore::open(dir.path(), disk_opts()).unwrap();
        s.append(&[batch(lbl(&[("a", "1")]), vec![entry(1, "one")])])
            .unwrap();
        s.flush().unwrap();
        s.append(&[batch(lbl(&[("a", "2")]), vec![entry(2, "two")])])
            .unwrap();
        s.flush().unwrap();
    }
    let seg_dir = dir.path().join("segments");
    let mut segs: Vec<_> = std::fs::read_dir(&seg_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    assert_eq!(segs.len(), 2);
    let mut data = std::fs::read(&segs[0]).unwrap();
    let n = data.len();
    data[n - 30] ^= 0xff; // inside the footer/bloom area
    std::fs::write(&segs[0], &data).unwrap();
    let s = LogStore::open(dir.path(), disk_opts()).unwrap();
    let lines: Vec<String> = all(&s, Direction::Forward)
        .into_iter()
        .map(|x| x.2)
        .collect();
    assert_eq!(lines, vec!["two".to_string()]);
    assert_eq!(
        std::fs::read_dir(dir.path().join("quarantine"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn damaged_block_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = LogStore::open(dir.path(), disk_opts()).unwrap();
        s.append(&[batch(
            lbl(&[("a", "1")]),
            vec![entry(1, "one line of text")],
        )])
        .unwrap();
        s.flush().unwrap();
    }
    let seg = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut data = std::fs::read(&seg).unwrap();
    data[10] ^= 0x55; // first block's bytes
    std::fs::write(&seg, &data).unwrap();
    let s = LogStore::open(dir.path(), disk_opts()).unwrap();
    let q = LogQuery {
        matchers: &[],
        start_ns: 0,
        end_ns: 10,
        direction: Direction::Forward,
        needles: &[],
    };
    let err = s.scan(&q, &mut |_, _| true).unwrap_err();
    assert!(
        matches!(err, crate::StorageError::Corruption { .. }),
        "{err}"
    );
}

#[test]
fn compaction_merges_small_segments_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogStoreOptions {
        compact_min_segments: 3,
        ..disk_opts()
    };
    let want;
    {
        let s = LogStore::open(dir.path(), opts.clone()).unwrap();
        for i in 0..4i64 {
            // Same timestamp in every segment: arrival order must survive the merge.
            s.append(&[batch(
                lbl(&[("a", "x")]),
                vec![
                    entry(100, &format!("gen{i}")),
                    entry(i, &format!("early{i}")),
                ],
            )])
            .unwrap();
            s.flush().unwrap();
        }
        want = all(&s, Direction::Forward);
        s.maintain().unwrap();
        assert_eq!(s.sizes().segments, 1);
        assert_eq!(all(&s, Direction::Forward), want);
    }
    assert_eq!(
        std::fs::read_dir(dir.path().join("segments"))
            .unwrap()
            .count(),
        1
    );
    let s = LogStore::open(dir.path(), opts).unwrap();
    assert_eq!(all(&s, Direction::Forward), want);
    let lines: Vec<&str> = want.iter().map(|x| x.2.as_str()).collect();
    assert_eq!(
        lines,
        ["early0", "early1", "early2", "early3", "gen0", "gen1", "gen2", "gen3"]
    );
}

#[test]
fn superseded_segments_left_by_a_crash_during_compaction_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogStoreOptions {
        compact_min_segments: 2,
        ..disk_opts()
    };
    let seg_dir = dir.path().join("segments");
    let saved;
    {
        let s = LogStore::open(dir.path(), opts.clone()).unwrap();
        s.append(&[batch(lbl(&[("a", "x")]), vec![entry(1, "one")])])
            .unwrap();
        s.flush().unwrap();
        let first = std::fs::read_dir(&seg_dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        saved = (first.clone(), std::fs::read(&first).unwrap());
        s.append(&[batch(lbl(&[("a", "x")]), vec![entry(2, "two")])])
            .unwrap();
        s.flush().unwrap();
        s.maintain().unwrap();
    }
    // Simulate a crash between the merged segment's rename and deleting its inputs.
    std::fs::write(&saved.0, &saved.1).unwrap();
    let s = LogStore::open(dir.path(), opts).unwrap();
    let lines: Vec<String> = all(&s, Direction::Forward)
        .into_iter()
        .map(|x| x.2)
        .collect();
    assert_eq!(lines, vec!["one".to_string(), "two".to_string()]);
    assert_eq!(std::fs::read_dir(&seg_dir).unwrap().count(), 1);
}

#[test]
fn retention_by_time_and_by_size() {
    fn clock() -> i64 {
        10 * 3_600_000_000_000
    }
    let hour = 3_600_000_000_000i64;
    let dir = tempfile::tempdir().unwrap();
    let opts = LogStoreOptions {
        retention: Some(Duration::from_secs(5 * 3600)),
        compact_min_segments: 100,
        now_ns: clock,
        ..disk_opts()
    };
    let s = LogStore::open(dir.path(), opts).unwrap();
    for h in [1i64, 4, 6, 9] {
        s.append(&[batch(
            lbl(&[("a", "x")]),
            vec![entry(h * hour, &format!("h{h}"))],
        )])
        .unwrap();
        s.flush().unwrap();
    }
    s.maintain().unwrap();
    let lines: Vec<String> = all(&s, Direction::Forward)
        .into_iter()
        .map(|x| x.2)
        .collect();
    assert_eq!(lines, vec!["h6".to_string(), "h9".to_string()]);
    assert_eq!(
        std::fs::read_dir(dir.path().join("segments"))
            .unwrap()
            .count(),
        2
    );
    drop(s);
    let one = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .max()
        .unwrap();
    let s = LogStore::open(
        dir.path(),
        LogStoreOptions {
            retention_bytes: Some(one),
            compact_min_segments: 100,
            ..disk_opts()
        },
    )
    .unwrap();
    s.maintain().unwrap();
    let lines: Vec<String> = all(&s, Direction::Forward)
        .into_iter()
        .map(|x| x.2)
        .collect();
    assert_eq!(lines, vec!["h9".to_string()]);
}

#[test]
fn head_flushes_by_itself_when_full() {
    let dir = tempfile::tempdir().unwrap();
    let s = LogStore::open(
        dir.path(),
        LogStoreOptions {
            head_max_bytes: 100,
            ..disk_opts()
        },
    )
    .unwrap();
    for i in 0..10 {
        s.append(&[batch(lbl(&[("a", "x")]), vec![entry(i, &"x".repeat(30))])])
            .unwrap();
    }
    assert!(s.sizes().segments >= 2);
    assert_eq!(all(&s, Direction::Forward).len(), 10);
}

/// Reads the thread's CPU time (user + system) in clock ticks from procfs (Linux only).
fn thread_cpu_ticks() -> u64 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// Loads a `loggen gen` TSV (`SEXTANT_LOGS_TSV`) into an on-disk store in 1 MiB batches,
/// flushes, and prints sizes, ingest CPU and needle answers checked against a scan of the
/// file (`SEXTANT_LOGS_NEEDLES`: comma-separated). Run by hand:
/// `SEXTANT_LOGS_TSV=… cargo test --release -p sextant-storage --lib logs_corpus -- --ignored --nocapture`.
#[test]
#[ignore = "needs a generated corpus; prints figures"]
fn logs_corpus_figures() {
    use std::io::BufRead;
    let path = std::env::var("SEXTANT_LOGS_TSV").unwrap();
    let needles: Vec<String> = std::env::var("SEXTANT_LOGS_NEEDLES")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let dir =
        tempfile::tempdir_in(std::env::var("SEXTANT_LOGS_DIR").unwrap_or("/tmp".into())).unwrap();
    let store = LogStore::open(dir.path(), LogStoreOptions::permissive()).unwrap();
    let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path).unwrap());
    let mut pending: std::collections::HashMap<String, Vec<LogEntry>> = Default::default();
    let mut pending_bytes = 0usize;
    let mut raw = 0u64;
    let mut expected = vec![0u64; needles.len()];
    let mut ticks = 0u64;
    let mut labels_cache: std::collections::HashMap<String, Labels> = Default::default();
    let mut push = |pending: &mut std::collections::HashMap<String, Vec<LogEntry>>,
                    cache: &mut std::collections::HashMap<String, Labels>| {
        let batches: Vec<LogStreamBatch> = pending
            .drain()
            .map(|(k, entries)| {
                let labels = cache
                    .entry(k.clone())
                    .or_insert_with(|| {
                        let inner = k.trim_start_matches('{').trim_end_matches('}');
                        Labels::from_pairs(inner.split(',').map(|p| {
                            let (n, v) = p.split_once('=').unwrap();
                            (n.to_string(), v.trim_matches('"').to_string())
                        }))
                    })
                    .clone();
                LogStreamBatch { labels, entries }
            })
            .collect();
        let t0 = thread_cpu_ticks();
        store.append(&batches).unwrap();
        ticks += thread_cpu_ticks() - t0;
    };
    let started = std::time::Instant::now();
    for line in file.lines() {
        let line = line.unwrap();
        let mut parts = line.splitn(3, '\t');
        let (Some(ts), Some(lab), Some(text)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        raw += text.len() as u64 + 1;
        for (i, n) in needles.iter().enumerate() {
            if text.contains(n.as_str()) {
                expected[i] += 1;
            }
        }
        pending_bytes += text.len();
        pending
            .entry(lab.to_string())
            .or_default()
            .push(entry(ts.parse().unwrap(), text));
        if pending_bytes >= 1 << 20 {
            push(&mut pending, &mut labels_cache);
            pending_bytes = 0;
        }
    }
    push(&mut pending, &mut labels_cache);
    let t0 = thread_cpu_ticks();
    store.flush().unwrap();
    let flush_ticks = thread_cpu_ticks() - t0;
    let tick_s = 0.01;
    let cpu = (ticks + flush_ticks) as f64 * tick_s;
    let sizes = store.sizes();
    let disk: u64 = ["segments", "wal"]
        .iter()
        .flat_map(|d| std::fs::read_dir(dir.path().join(d)).unwrap())
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    eprintln!(
        "raw {:.1} MiB; disk {:.2} MiB (index {:.2} MiB) in {} segments; append+flush CPU {:.1} s ({:.1} MiB/CPU-s; flush {:.1} s); wall {:.1} s",
        raw as f64 / 1048576.0,
        disk as f64 / 1048576.0,
        sizes.index_bytes as f64 / 1048576.0,
        sizes.segments,
        cpu,
        raw as f64 / 1048576.0 / cpu.max(0.01),
        flush_ticks as f64 * tick_s,
        started.elapsed().as_secs_f64()
    );
    for (i, n) in needles.iter().enumerate() {
        let q = [Needle {
            text: n.clone(),
            case_insensitive: false,
        }];
        let query = LogQuery {
            matchers: &[],
            start_ns: i64::MIN,
            end_ns: i64::MAX,
            direction: Direction::Backward,
            needles: &q,
        };
        let mut best = f64::MAX;
        let mut got = 0u64;
        let mut blocks = 0;
        for _ in 0..3 {
            got = 0;
            let t = std::time::Instant::now();
            store
                .scan(&query, &mut |_, e| {
                    got += u64::from(e.line.contains(n.as_str()));
                    true
                })
                .unwrap();
            best = best.min(t.elapsed().as_secs_f64() * 1000.0);
            blocks = store.plan(&query).1.len();
        }
        eprintln!(
            "needle {n:?}: {got} lines (expected {}), {blocks} blocks read, {best:.2} ms",
            expected[i]
        );
        assert_eq!(got, expected[i]);
    }
}
