//! A by-hand measurement tool: re-encodes a real block with the current writer, checks that
//! every sample reads back bit-exactly, and prints where the bytes go (files, index sections,
//! and per metric family the encoded and zstd-compressed chunk bytes).
//!
//! `SEXTANT_PROBE_BLOCK=<data>/blocks/<id> cargo test --release -p sextant-storage probe -- --ignored --nocapture`

use std::collections::BTreeMap;
use std::path::Path;

use super::writer::{write_block, BlockPlan};
use super::*;
use crate::series_data::SeriesSamples;
use crate::Labels;

#[derive(Default)]
struct Family {
    series: u64,
    samples: u64,
    encoded: u64,
    xor_chunks: u64,
    buf: Vec<u8>,
    lo: Vec<u8>,
}

#[test]
#[ignore = "needs SEXTANT_PROBE_BLOCK=<block dir>; run by hand to measure the encodings"]
fn probe_reencode_real_block() {
    let Ok(src) = std::env::var("SEXTANT_PROBE_BLOCK") else {
        return;
    };
    let block = Block::open(Path::new(&src)).unwrap();
    let n = block.n_series();
    let labels: Vec<Labels> = (0..n as u32).map(|i| block.series(i).unwrap().0).collect();
    let level: i32 = std::env::var("SEXTANT_PROBE_ZSTD")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let tmp = tempfile::tempdir().unwrap();
    let plan = BlockPlan {
        id: "probe".into(),
        min_time: block.meta().min_time,
        max_time: block.meta().max_time,
        level: 1,
        sources: vec!["probe".into()],
        parents: vec![],
        zstd_level: level,
    };
    let mut cache = PageCache::default();
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut enc = Vec::new();
    let written = write_block(tmp.path(), &plan, &labels, |i, out| {
        let (l, chunks) = block.series(i as u32)?;
        for c in &chunks {
            block.read_chunk(c, &mut cache, out)?;
        }
        let name = l.get(crate::METRIC_NAME).unwrap_or("").to_string();
        let fam = families.entry(name).or_default();
        fam.series += 1;
        fam.samples += out.floats.len() as u64;
        for piece in out.floats.chunks(super::format::CHUNK_MAX_SAMPLES) {
            enc.clear();
            codec::encode(piece, &mut enc);
            fam.encoded += enc.len() as u64;
            fam.xor_chunks += u64::from(codec::is_xor_chunk(&enc));
            codec::encode_split(piece, &mut fam.buf, &mut fam.lo);
        }
        Ok(())
    })
    .unwrap()
    .unwrap();
    let dir = tmp.path().join("probe");
    for f in [CHUNKS_FILE, INDEX_FILE, META_FILE] {
        let len = std::fs::metadata(dir.join(f)).unwrap().len();
        println!("{f:>10}: {len:>12} bytes");
    }
    let copy = Block::open(&dir).unwrap();
    let f = copy.footer;
    for (name, (a, b)) in ["symbols", "series", "postings", "ptable"]
        .iter()
        .zip(f.sections())
    {
        println!("  index {name:>9}: {:>10} bytes", b - a);
    }
    let total = written.stats.num_bytes as f64;
    println!(
        "samples {} series {} chunks {}; {:.4} B/sample",
        written.stats.num_samples,
        written.stats.num_series,
        written.stats.num_chunks,
        total / written.stats.num_samples as f64
    );
    let mut rows: Vec<(u64, String, Family)> = families
        .into_iter()
        .map(|(k, mut v)| {
            // Split streams compressed apart, as zstd's per-block tables see them in a page.
            let z = (zstd::bulk::compress(&v.buf, level).unwrap().len()
                + zstd::bulk::compress(&v.lo, level).unwrap().len()) as u64;
            v.buf = Vec::new();
            v.lo = Vec::new();
            (z, k, v)
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let zsum: u64 = rows.iter().map(|r| r.0).sum();
    println!("family zstd sum {zsum}");
    for (z, k, v) in rows.iter().take(45) {
        println!(
            "{k:<48} ser {:>6} xor {:>6} enc {:>6.3} z {:>6.3} B/s  {:>5.1}%",
            v.series,
            v.xor_chunks,
            v.encoded as f64 / v.samples as f64,
            *z as f64 / v.samples as f64,
            100.0 * *z as f64 / zsum as f64
        );
    }
    // Lossless: every series reads back bit-exactly from the re-encoded block.
    let mut c1 = PageCache::default();
    let mut c2 = PageCache::default();
    let (mut a, mut b) = (SeriesSamples::default(), SeriesSamples::default());
    for i in 0..n as u32 {
        let (la, ca) = block.series(i).unwrap();
        let (lb, cb) = copy.series(i).unwrap();
        assert_eq!(la, lb);
        a.clear();
        b.clear();
        for c in &ca {
            block.read_chunk(c, &mut c1, &mut a).unwrap();
        }
        for c in &cb {
            copy.read_chunk(c, &mut c2, &mut b).unwrap();
        }
        assert_eq!(a.floats.len(), b.floats.len());
        for (x, y) in a.floats.iter().zip(&b.floats) {
            assert_eq!((x.t, x.v.to_bits()), (y.t, y.v.to_bits()), "{la}");
        }
    }
}
