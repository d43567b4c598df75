//! Replays a metrics-bench dataset file (`loadgen gen --out FILE`, format `RWBENCH1`) through the
//! remote-write ingest path into a `Db`, without HTTP: the server's per-request CPU work
//! (snappy, protobuf decode, validation, WAL, head append), one request after another. Then,
//! unless `--no-flush`, flushes the head to a block and prints the data directory's bytes by
//! file, the figure the benchmark harness measures.
//!
//! ```text
//! cargo run --release -p sextant-ingest --example rw_replay -- FILE DATA_DIR [--limit N] [--no-flush]
//! ```
//!
//! With `--limit N` only the first N requests are replayed (a small fixed workload for
//! `valgrind --tool=callgrind`).

use std::io::Read;
use std::path::{Path, PathBuf};

use sextant_ingest::remote_write::ingest_body;
use sextant_ingest::RemoteWriteLimits;
use sextant_storage::{Db, DbOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut positional = Vec::new();
    let mut limit = usize::MAX;
    let mut flush = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--limit" => limit = it.next().ok_or("--limit needs a value")?.parse()?,
            "--no-flush" => flush = false,
            _ => positional.push(a.clone()),
        }
    }
    let [file, dir] = positional.as_slice() else {
        return Err("usage: rw_replay FILE DATA_DIR [--limit N] [--no-flush]".into());
    };
    let mut input = std::io::BufReader::new(std::fs::File::open(file)?);
    let mut head = [0u8; 12];
    input.read_exact(&mut head)?;
    if &head[..8] != b"RWBENCH1" {
        return Err("not a RWBENCH1 file".into());
    }
    let mut header = vec![0u8; u32_at(&head, 8).ok_or("short file")? as usize];
    input.read_exact(&mut header)?;
    eprintln!("dataset {}", String::from_utf8_lossy(&header));
    let db = Db::open(Path::new(dir), DbOptions::default())?;
    let limits = RemoteWriteLimits::default();
    let (mut requests, mut samples, mut appended) = (0usize, 0u64, 0u64);
    let mut body = Vec::new();
    while requests < limit {
        let mut rec = [0u8; 12];
        match input.read_exact(&mut rec) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let n = u32_at(&rec, 4).ok_or("truncated record")?;
        body.resize(u32_at(&rec, 8).ok_or("truncated record")? as usize, 0);
        input.read_exact(&mut body)?;
        let done = ingest_body(&db, &limits, &body).map_err(|e| e.message().to_string())?;
        if !done.is_complete() {
            return Err(format!("request {requests}: {:?}", done.partial_message()).into());
        }
        appended += done.appended as u64;
        samples += u64::from(n);
        requests += 1;
    }
    eprintln!("requests {requests}, samples {samples}, appended {appended}");
    if flush {
        db.flush()?;
        drop(db);
        let mut files = Vec::new();
        walk(Path::new(dir), &mut files)?;
        let total: u64 = files.iter().map(|f| f.1).sum();
        for (path, len) in &files {
            let rel = path.strip_prefix(dir).unwrap_or(path);
            println!("{len:>12}  {}", rel.display());
        }
        println!(
            "{total:>12}  total ({:.2} MiB, {:.4} B/sample)",
            total as f64 / (1024.0 * 1024.0),
            total as f64 / samples.max(1) as f64
        );
    }
    Ok(())
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Regular files under `dir` with their disk usage (allocated blocks, as `du` counts them).
fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64)>) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let m = e.metadata()?;
        if m.is_dir() {
            out.push((e.path(), m.blocks() * 512));
            walk(&e.path(), out)?;
        } else {
            out.push((e.path(), m.blocks() * 512));
        }
    }
    Ok(())
}
