//! Block round trips through the writer and the memory-mapped reader, and corruption detection.

use super::writer::{write_block, BlockPlan};
use super::*;
use crate::series_data::SeriesSamples;
use crate::{Labels, Sample};

fn plan(id: &str) -> BlockPlan {
    BlockPlan {
        id: id.to_string(),
        min_time: 0,
        max_time: 7_200_000,
        level: 1,
        sources: vec![id.to_string()],
        parents: vec![],
        zstd_level: 3,
    }
}

fn dataset() -> Vec<(Labels, Vec<Sample>)> {
    let mut out = Vec::new();
    for host in 0..30 {
        for mode in ["idle", "user", "system"] {
            let labels = Labels::from_pairs([
                ("__name__", "node_cpu_seconds_total"),
                ("instance", &format!("host-{host:03}") as &str),
                ("mode", mode),
            ]);
            let samples = (0..3000)
                .map(|i| Sample {
                    t: i * 15_000 + host,
                    v: ((i * 1507 + host * 3) as f64) / 100.0,
                })
                .collect();
            out.push((labels, samples));
        }
    }
    let odd = Labels::from_pairs([("__name__", "weird"), ("kind", "specials")]);
    let specials = [
        f64::NAN,
        -0.0,
        f64::INFINITY,
        f64::from_bits(crate::STALE_NAN_BITS),
        0.1,
        1e300,
    ];
    out.push((
        odd,
        specials
            .iter()
            .enumerate()
            .map(|(i, &v)| Sample {
                t: i as i64 * 1000,
                v,
            })
            .collect(),
    ));
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn write(dir: &std::path::Path, data: &[(Labels, Vec<Sample>)]) -> BlockMeta {
    let labels: Vec<Labels> = data.iter().map(|d| d.0.clone()).collect();
    write_block(dir, &plan("B1"), &labels, |i, out| {
        out.floats.extend_from_slice(&data[i].1);
        Ok(())
    })
    .unwrap()
    .unwrap()
}

fn read_all(block: &Block, matchers: &[Matcher]) -> Vec<(Labels, Vec<Sample>)> {
    let mut cache = PageCache::default();
    block
        .select(matchers)
        .unwrap()
        .iter()
        .map(|ord| {
            let (labels, chunks) = block.series(ord).unwrap();
            let mut samples = SeriesSamples::default();
            for c in &chunks {
                block.read_chunk(c, &mut cache, &mut samples).unwrap();
            }
            assert!(samples.hists.is_empty());
            (labels, samples.floats)
        })
        .collect()
}

#[test]
fn roundtrip_is_bit_exact_and_postings_select() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset();
    let meta = write(tmp.path(), &data);
    assert_eq!(meta.stats.num_series, data.len() as u64);
    let block = Block::open(&tmp.path().join("B1")).unwrap();
    let all = read_all(&block, &[]);
    assert_eq!(all.len(), data.len());
    for ((l1, s1), (l2, s2)) in all.iter().zip(&data) {
        assert_eq!(l1, l2);
        let a: Vec<(i64, u64)> = s1.iter().map(|s| (s.t, s.v.to_bits())).collect();
        let b: Vec<(i64, u64)> = s2.iter().map(|s| (s.t, s.v.to_bits())).collect();
        assert_eq!(a, b);
    }
    let idle = read_all(
        &block,
        &[
            Matcher::equal("mode", "idle"),
            Matcher::new(MatchOp::Regex, "instance", "host-00[0-4]").unwrap(),
        ],
    );
    assert_eq!(idle.len(), 5);
    let no_mode = read_all(&block, &[Matcher::equal("mode", "")]);
    assert_eq!(no_mode.len(), 1);
    assert_eq!(no_mode[0].0.metric_name(), Some("weird"));
    let not_idle = read_all(
        &block,
        &[Matcher::new(MatchOp::NotEqual, "mode", "idle").unwrap()],
    );
    assert_eq!(not_idle.len(), 61);
    assert_eq!(block.label_values("mode"), vec!["idle", "system", "user"]);
    assert_eq!(
        block.label_names(),
        vec!["__name__", "instance", "kind", "mode"]
    );
    // Compression on regular decimal counters: well under 2 bytes a sample including the index.
    let per_sample = block.size_bytes() as f64 / meta.stats.num_samples as f64;
    assert!(per_sample < 2.0, "{per_sample} bytes per sample");
}

#[test]
fn corruption_is_detected_in_index_and_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset();
    write(tmp.path(), &data);
    let dir = tmp.path().join("B1");

    let index_path = dir.join(INDEX_FILE);
    let original = std::fs::read(&index_path).unwrap();
    for at in [10, original.len() / 2, original.len() - 30] {
        let mut bad = original.clone();
        bad[at] ^= 0x10;
        std::fs::write(&index_path, &bad).unwrap();
        assert!(
            matches!(Block::open(&dir), Err(StorageError::Corruption { .. })),
            "flip at {at}"
        );
    }
    std::fs::write(&index_path, &original[..original.len() - 7]).unwrap();
    assert!(matches!(
        Block::open(&dir),
        Err(StorageError::Corruption { .. })
    ));
    std::fs::write(&index_path, &original).unwrap();

    let chunks_path = dir.join(CHUNKS_FILE);
    let mut chunks = std::fs::read(&chunks_path).unwrap();
    let mid = chunks.len() / 2;
    chunks[mid] ^= 0x01;
    std::fs::write(&chunks_path, &chunks).unwrap();
    let block = Block::open(&dir).unwrap();
    let mut cache = PageCache::default();
    let mut failures = 0;
    for ord in 0..block.n_series() as u32 {
        let (_, cs) = block.series(ord).unwrap();
        for c in &cs {
            if let Err(e) = block.read_chunk(c, &mut cache, &mut SeriesSamples::default()) {
                assert!(matches!(e, StorageError::Corruption { .. }));
                failures += 1;
            }
        }
    }
    assert!(failures > 0, "a flipped chunk byte went unnoticed");
}

#[test]
fn empty_input_writes_no_block() {
    let tmp = tempfile::tempdir().unwrap();
    let labels = vec![Labels::from_pairs([("__name__", "x")])];
    let meta = write_block(tmp.path(), &plan("E"), &labels, |_, _| Ok(())).unwrap();
    assert!(meta.is_none());
    assert!(!tmp.path().join("E").exists() && !tmp.path().join("E.tmp").exists());
}

/// Full-precision random gauges (scrape durations) and float counters, beside decimal ones.
fn noisy_dataset() -> Vec<(Labels, Vec<Sample>)> {
    let mut out = dataset();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for host in 0..20 {
        let labels = Labels::from_pairs([
            ("__name__", "scrape_duration_seconds"),
            ("instance", &format!("host-{host:03}") as &str),
        ]);
        let mut sum = 0.0;
        let samples = (0..480)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = 0.01 * (1.0 + (x >> 11) as f64 / (1u64 << 53) as f64);
                sum += v;
                Sample {
                    t: i * 15_000,
                    v: if host % 2 == 0 { v } else { sum },
                }
            })
            .collect();
        out.push((labels, samples));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn format_2_blocks_still_read_and_format_3_is_smaller() {
    let tmp = tempfile::tempdir().unwrap();
    let data = noisy_dataset();
    let labels: Vec<Labels> = data.iter().map(|d| d.0.clone()).collect();
    let fetch = |i: usize, out: &mut SeriesSamples| {
        out.floats.extend_from_slice(&data[i].1);
        Ok(())
    };
    let old = super::writer::write_legacy_block(tmp.path(), &plan("V2"), &labels, fetch)
        .unwrap()
        .unwrap();
    let new = write_block(tmp.path(), &plan("V3"), &labels, fetch)
        .unwrap()
        .unwrap();
    assert_eq!((old.version, new.version), (2, FORMAT_VERSION));
    let v2 = Block::open(&tmp.path().join("V2")).unwrap();
    let v3 = Block::open(&tmp.path().join("V3")).unwrap();
    for block in [&v2, &v3] {
        let all = read_all(block, &[]);
        assert_eq!(all.len(), data.len());
        for ((l1, s1), (l2, s2)) in all.iter().zip(&data) {
            assert_eq!(l1, l2);
            let a: Vec<(i64, u64)> = s1.iter().map(|s| (s.t, s.v.to_bits())).collect();
            let b: Vec<(i64, u64)> = s2.iter().map(|s| (s.t, s.v.to_bits())).collect();
            assert_eq!(a, b);
        }
    }
    let size = |id: &str| {
        std::fs::metadata(tmp.path().join(id).join(CHUNKS_FILE))
            .unwrap()
            .len()
    };
    assert!(size("V3") < size("V2"), "{} vs {}", size("V3"), size("V2"));

    // A version this code does not know is refused as corruption (and so quarantined).
    let meta_path = tmp.path().join("V3").join(META_FILE);
    let text = std::fs::read_to_string(&meta_path).unwrap();
    let future = text.replace(&format!("\"version\": {FORMAT_VERSION}"), "\"version\": 99");
    assert_ne!(text, future);
    std::fs::write(&meta_path, future).unwrap();
    assert!(matches!(
        Block::open(&tmp.path().join("V3")),
        Err(StorageError::Corruption { .. })
    ));
}

#[test]
fn corrupt_page_prefix_is_detected() {
    // A page whose chunk-area length points past its end must be reported, not read.
    let tmp = tempfile::tempdir().unwrap();
    let data = noisy_dataset();
    write(tmp.path(), &data);
    let dir = tmp.path().join("B1");
    let chunks_path = dir.join(CHUNKS_FILE);
    let bytes = std::fs::read(&chunks_path).unwrap();
    // Rewrite the first page with a bad prefix and a matching CRC.
    let at = CHUNKS_MAGIC.len();
    let clen = u32_at(&bytes, at) as usize;
    let body = &bytes[at + PAGE_HEADER..at + PAGE_HEADER + clen];
    let mut raw = zstd::stream::decode_all(body).unwrap();
    raw[..PAGE_PREFIX].copy_from_slice(&u32::MAX.to_le_bytes());
    let packed = zstd::bulk::compress(&raw, 3).unwrap();
    let mut page = Vec::new();
    page.extend_from_slice(&(packed.len() as u32).to_le_bytes());
    page.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    page.extend_from_slice(&crc32fast::hash(&packed).to_le_bytes());
    page.extend_from_slice(&packed);
    let mut rewritten = bytes[..at].to_vec();
    rewritten.extend_from_slice(&page);
    std::fs::write(&chunks_path, &rewritten).unwrap();
    let block = Block::open(&dir).unwrap();
    let (_, cs) = block.series(0).unwrap();
    let err = block
        .read_chunk(
            &cs[0],
            &mut PageCache::default(),
            &mut SeriesSamples::default(),
        )
        .unwrap_err();
    assert!(matches!(err, StorageError::Corruption { .. }), "{err}");
}
