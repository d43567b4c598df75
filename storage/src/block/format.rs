//! Constants and the fixed-size footer of block files (`storage/FORMAT.md` has the layout).

pub(crate) const CHUNKS_MAGIC: &[u8; 8] = b"SXTCHK01";
pub(crate) const INDEX_MAGIC: &[u8; 8] = b"SXTIDX01";
pub(crate) const META_FILE: &str = "meta.json";
pub(crate) const INDEX_FILE: &str = "index";
pub(crate) const CHUNKS_FILE: &str = "chunks";
/// Version written into new blocks' `meta.json`. Version 3 added integer-column modes with a
/// common divisor and float bit-pattern columns; version 2 blocks use a subset of it and are
/// read by the same code.
pub(crate) const FORMAT_VERSION: u32 = 3;
/// Oldest block format version that can still be read.
pub(crate) const OLDEST_READABLE_VERSION: u32 = 2;
/// zstd level for the compressed index sections (small, written once, read often).
pub(crate) const INDEX_ZSTD_LEVEL: i32 = 9;
/// Upper bound on an inflated index section; larger claimed sizes mean corruption.
pub(crate) const MAX_SECTION_BYTES: u64 = 1 << 34;

/// `[u32 compressed len][u32 raw len][u32 crc32 of compressed bytes]` before each page.
pub(crate) const PAGE_HEADER: usize = 12;
/// Format 3 raw pages start with the `u32` length of their chunk area; the low-plane stream of
/// split chunks follows that area.
pub(crate) const PAGE_PREFIX: usize = 4;
/// Encoded chunks are gathered into pages of about this size before zstd compression. Larger
/// pages compress better (1 MiB: 2% smaller than 256 KiB on the benchmark data) at the cost
/// of decompressing more to read one series.
pub(crate) const PAGE_TARGET_BYTES: usize = 1024 * 1024;
/// A series' samples are cut into chunks of at most this many samples.
pub(crate) const CHUNK_MAX_SAMPLES: usize = 2048;
/// A series' histogram samples are cut into chunks of at most this many samples.
pub(crate) const HIST_CHUNK_MAX_SAMPLES: usize = 256;

/// Postings-table value id meaning "every series that has this label name".
pub(crate) const ALL_VALUES: u32 = u32::MAX;
pub(crate) const PTABLE_ENTRY: usize = 20;

/// Offsets (from the start of the index file) of its four sections, and their checksums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Footer {
    pub(crate) symbols: u64,
    pub(crate) series: u64,
    pub(crate) postings: u64,
    pub(crate) ptable: u64,
    /// Where the footer starts, i.e. the end of the last section.
    pub(crate) end: u64,
    pub(crate) crcs: [u32; 4],
}

pub(crate) const FOOTER_LEN: usize = 5 * 8 + 4 * 4 + 4 + 8;

impl Footer {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        for v in [
            self.symbols,
            self.series,
            self.postings,
            self.ptable,
            self.end,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for c in self.crcs {
            out.extend_from_slice(&c.to_le_bytes());
        }
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(INDEX_MAGIC);
    }

    /// Parses the footer at the end of `file`; `Err` names what is wrong.
    pub(crate) fn decode(file: &[u8]) -> Result<Footer, String> {
        if file.len() < INDEX_MAGIC.len() + FOOTER_LEN || !file.starts_with(INDEX_MAGIC) {
            return Err("index is too short or has a bad magic".into());
        }
        let f = &file[file.len() - FOOTER_LEN..];
        if &f[FOOTER_LEN - 8..] != INDEX_MAGIC {
            return Err("index footer magic is missing (truncated file?)".into());
        }
        let crc = u32_at(f, 5 * 8 + 16);
        if crc32fast::hash(&f[..5 * 8 + 16]) != crc {
            return Err("index footer checksum mismatch".into());
        }
        let footer = Footer {
            symbols: u64_at(f, 0),
            series: u64_at(f, 8),
            postings: u64_at(f, 16),
            ptable: u64_at(f, 24),
            end: u64_at(f, 32),
            crcs: [u32_at(f, 40), u32_at(f, 44), u32_at(f, 48), u32_at(f, 52)],
        };
        let ordered = INDEX_MAGIC.len() as u64 <= footer.symbols
            && footer.symbols <= footer.series
            && footer.series <= footer.postings
            && footer.postings <= footer.ptable
            && footer.ptable <= footer.end
            && footer.end == (file.len() - FOOTER_LEN) as u64;
        if !ordered {
            return Err("index section offsets are inconsistent".into());
        }
        Ok(footer)
    }

    /// The byte ranges of the four sections.
    pub(crate) fn sections(&self) -> [(usize, usize); 4] {
        [
            (self.symbols as usize, self.series as usize),
            (self.series as usize, self.postings as usize),
            (self.postings as usize, self.ptable as usize),
            (self.ptable as usize, self.end as usize),
        ]
    }
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}
