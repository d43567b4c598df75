//! Zero-copy decoding of `prometheus.WriteRequest`: one pass over the decompressed buffer that
//! validates every series as it goes and yields label pairs borrowed from the buffer plus flat
//! lists of float samples and of native histograms (converted to absolute float counts),
//! reusing per-thread buffers so a steady stream of requests allocates
//! almost nothing.
//!
//! The whole request is decoded before anything is stored, so a malformed request stores
//! nothing, as with a generated decoder. Unknown fields are skipped by wire type; a known
//! field with the wrong wire type is an error.

use std::cell::Cell;

use sextant_storage::labels::SeriesHasher;
use sextant_storage::{
    AppendOutcome, Db, Exemplar, ExemplarOutcome, HistogramSample, Sample, SeriesLabels,
    StorageError,
};

use super::exemplars::exemplar_v1;
use super::histogram;
use super::report::Rejections;
use super::validate::{LabelCheck, RemoteWriteLimits};
use super::wire::{unexpected, Reader, WireError, FIXED64, LEN, VARINT};

/// Buffers larger than this (in bytes) are freed after a request rather than kept per thread.
const RETAIN_BYTES: usize = 8 << 20;

/// One accepted series: its labels, borrowed from the request (sorted, unique, no empty
/// values), its float samples, its valid native histograms and its exemplars.
#[derive(Clone, Copy, Debug)]
pub struct SeriesRef<'a> {
    pairs: &'a [(&'a str, &'a str)],
    samples: &'a [Sample],
    histograms: &'a [HistogramSample],
    exemplars: &'a [Exemplar],
    /// [`sextant_storage::labels::hash_pairs`] of `pairs`, computed while decoding.
    hash: u64,
}

impl<'a> SeriesRef<'a> {
    pub fn labels(&self) -> &'a [(&'a str, &'a str)] {
        self.pairs
    }

    pub fn samples(&self) -> &'a [Sample] {
        self.samples
    }

    pub fn histograms(&self) -> &'a [HistogramSample] {
        self.histograms
    }

    pub fn exemplars(&self) -> &'a [Exemplar] {
        self.exemplars
    }
}

impl SeriesLabels for SeriesRef<'_> {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().copied()
    }

    fn hash64(&self) -> u64 {
        self.hash
    }
}

/// One `MetricMetadata` entry, borrowed from the request.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MetadataRef<'a> {
    pub metric_type: i32,
    pub family: &'a str,
    pub help: &'a str,
    pub unit: &'a str,
}

/// A decoded and validated request.
pub struct Decoded<'a> {
    series: &'a [SeriesRef<'a>],
    metadata: &'a [MetadataRef<'a>],
    samples: usize,
    histograms: usize,
    exemplars: usize,
    invalid_exemplars: usize,
    report: Rejections,
}

impl<'a> Decoded<'a> {
    /// The valid series that carry at least one float sample, histogram or exemplar, in
    /// request order.
    pub fn series(&self) -> &'a [SeriesRef<'a>] {
        self.series
    }

    pub fn metadata(&self) -> &'a [MetadataRef<'a>] {
        self.metadata
    }

    /// Samples of valid series: float samples plus valid histograms.
    pub fn num_samples(&self) -> usize {
        self.samples + self.histograms
    }

    /// Valid native histograms of valid series.
    pub fn num_histograms(&self) -> usize {
        self.histograms
    }

    /// Exemplars of valid series that decoded (storage may still refuse some).
    pub fn num_exemplars(&self) -> usize {
        self.exemplars
    }

    /// Exemplars dropped at this edge: invalid UTF-8 or symbol refs, or their series was
    /// refused. They do not make the request fail.
    pub fn invalid_exemplars(&self) -> usize {
        self.invalid_exemplars
    }

    /// Samples refused at this edge (invalid series, invalid histograms).
    pub fn rejected_samples(&self) -> usize {
        self.report.total()
    }

    /// Appends every valid series' float samples to `db` without copying labels of existing
    /// series.
    pub fn append(&self, db: &Db) -> Result<AppendOutcome, StorageError> {
        db.append_series(
            self.series
                .iter()
                .filter(|s| !s.samples.is_empty())
                .map(|s| (s, s.samples)),
        )
    }

    /// Appends every valid series' native histograms to `db` (after [`Decoded::append`]: a
    /// series' histograms at or before its newest float sample are out of order).
    pub fn append_histograms(&self, db: &Db) -> Result<AppendOutcome, StorageError> {
        if self.histograms == 0 {
            return Ok(AppendOutcome::default());
        }
        db.append_histogram_series(
            self.series
                .iter()
                .filter(|s| !s.histograms.is_empty())
                .map(|s| (s, s.histograms)),
        )
    }

    /// Appends every valid series' exemplars to `db` (after the samples, so that the series
    /// exist with their samples first).
    pub fn append_exemplars(&self, db: &Db) -> Result<ExemplarOutcome, StorageError> {
        if self.exemplars == 0 {
            return Ok(ExemplarOutcome::default());
        }
        db.append_exemplars(
            self.series
                .iter()
                .filter(|s| !s.exemplars.is_empty())
                .map(|s| (s, s.exemplars)),
        )
    }

    pub(crate) fn take_report(&mut self) -> Rejections {
        std::mem::take(&mut self.report)
    }
}

/// Decodes `raw` (an uncompressed `WriteRequest`) and hands the result to `f`.
pub fn decode_with<R>(
    raw: &[u8],
    limits: &RemoteWriteLimits,
    f: impl FnOnce(&mut Decoded<'_>) -> R,
) -> Result<R, WireError> {
    let mut scratch = Scratch::take();
    let result = decode_in(&mut scratch.bufs, raw, limits, f);
    scratch.put();
    result
}

/// Per-thread buffers, lent out for one request at a time.
#[derive(Default)]
pub(crate) struct Scratch {
    /// Decompressed bodies.
    pub(crate) raw: Vec<u8>,
    pub(crate) bufs: Buffers,
}

#[derive(Default)]
pub(crate) struct Buffers {
    pairs: Vec<(&'static str, &'static str)>,
    samples: Vec<Sample>,
    histograms: Vec<HistogramSample>,
    exemplars: Vec<Exemplar>,
    ends: Vec<Ends>,
    views: Vec<SeriesRef<'static>>,
    /// The current series' labels: name and value positions inside its message.
    labels: Vec<[usize; 4]>,
    /// Remote write 2.0: the request's symbols, its `TimeSeries` messages, one series' label refs.
    symbols: Vec<&'static str>,
    bodies: Vec<&'static [u8]>,
    refs: Vec<u32>,
}

thread_local! {
    static SCRATCH: Cell<Scratch> = Cell::new(Scratch::default());
}

impl Scratch {
    /// This thread's buffers (empty ones if they are already lent out).
    pub(crate) fn take() -> Scratch {
        SCRATCH.with(Cell::take)
    }

    #[cfg(test)]
    pub(crate) fn capacities(&self) -> [usize; 4] {
        let b = &self.bufs;
        [
            b.pairs.capacity(),
            b.samples.capacity(),
            b.ends.capacity(),
            b.views.capacity(),
        ]
    }

    /// Gives the buffers back for the next request, unless they grew too large to keep.
    pub(crate) fn put(mut self) {
        fn cap<T>(v: &mut Vec<T>) {
            if v.capacity() * std::mem::size_of::<T>() > RETAIN_BYTES {
                *v = Vec::new();
            }
        }
        cap(&mut self.raw);
        cap(&mut self.bufs.pairs);
        cap(&mut self.bufs.samples);
        cap(&mut self.bufs.histograms);
        cap(&mut self.bufs.exemplars);
        cap(&mut self.bufs.ends);
        cap(&mut self.bufs.views);
        cap(&mut self.bufs.labels);
        cap(&mut self.bufs.symbols);
        cap(&mut self.bufs.bodies);
        cap(&mut self.bufs.refs);
        SCRATCH.with(|c| c.set(self));
    }
}

/// Empties a vector of borrowed pairs and gives its allocation another lifetime.
fn recycle_pairs<'x, 'y>(mut v: Vec<(&'x str, &'x str)>) -> Vec<(&'y str, &'y str)> {
    v.clear();
    v.into_iter().map(|_| ("", "")).collect()
}

fn recycle_views<'x, 'y>(mut v: Vec<SeriesRef<'x>>) -> Vec<SeriesRef<'y>> {
    v.clear();
    v.into_iter()
        .map(|_| SeriesRef {
            pairs: &[],
            samples: &[],
            histograms: &[],
            exemplars: &[],
            hash: 0,
        })
        .collect()
}

/// Empties a vector of borrowed values and gives its allocation another lifetime.
fn recycle<'y, T: ?Sized>(mut v: Vec<&T>, empty: &'y T) -> Vec<&'y T> {
    v.clear();
    v.into_iter().map(|_| empty).collect()
}

/// Per accepted series: the end of its pairs, samples, histograms and exemplars in the flat
/// lists, and its label hash.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ends {
    pub(super) pairs: usize,
    pub(super) samples: usize,
    pub(super) histograms: usize,
    pub(super) exemplars: usize,
    pub(super) hash: u64,
}

/// What the walk over one request collects.
pub(super) struct Parts<'r> {
    pub(super) pairs: Vec<(&'r str, &'r str)>,
    pub(super) samples: Vec<Sample>,
    pub(super) histograms: Vec<HistogramSample>,
    pub(super) exemplars: Vec<Exemplar>,
    /// Exemplars dropped at the edge (see [`Decoded::invalid_exemplars`]).
    pub(super) invalid_exemplars: usize,
    pub(super) ends: Vec<Ends>,
    labels: Vec<[usize; 4]>,
    pub(super) metadata: Vec<MetadataRef<'r>>,
    pub(super) report: Rejections,
    pub(super) symbols: Vec<&'r str>,
    pub(super) bodies: Vec<&'r [u8]>,
    pub(super) refs: Vec<u32>,
}

pub(crate) fn decode_in<R>(
    bufs: &mut Buffers,
    raw: &[u8],
    limits: &RemoteWriteLimits,
    f: impl FnOnce(&mut Decoded<'_>) -> R,
) -> Result<R, WireError> {
    decode_parts(bufs, raw, |raw, parts| walk(raw, limits, parts), f)
}

/// Runs `walk` over `raw` with this request's buffers, then hands the collected series to `f`.
pub(super) fn decode_parts<'r, R, E>(
    bufs: &mut Buffers,
    raw: &'r [u8],
    walk: impl FnOnce(&'r [u8], &mut Parts<'r>) -> Result<(), E>,
    f: impl FnOnce(&mut Decoded<'_>) -> R,
) -> Result<R, E> {
    let mut parts = Parts {
        pairs: recycle_pairs(std::mem::take(&mut bufs.pairs)),
        samples: std::mem::take(&mut bufs.samples),
        histograms: std::mem::take(&mut bufs.histograms),
        exemplars: std::mem::take(&mut bufs.exemplars),
        invalid_exemplars: 0,
        ends: std::mem::take(&mut bufs.ends),
        labels: std::mem::take(&mut bufs.labels),
        metadata: Vec::new(),
        report: Rejections::default(),
        symbols: recycle(std::mem::take(&mut bufs.symbols), ""),
        bodies: recycle(std::mem::take(&mut bufs.bodies), &[]),
        refs: std::mem::take(&mut bufs.refs),
    };
    parts.samples.clear();
    parts.histograms.clear();
    parts.exemplars.clear();
    parts.ends.clear();
    let result = walk(raw, &mut parts).map(|()| {
        let mut views = recycle_views(std::mem::take(&mut bufs.views));
        let mut start = (0, 0, 0, 0);
        for e in &parts.ends {
            views.push(SeriesRef {
                pairs: parts.pairs.get(start.0..e.pairs).unwrap_or_default(),
                samples: parts.samples.get(start.1..e.samples).unwrap_or_default(),
                histograms: parts
                    .histograms
                    .get(start.2..e.histograms)
                    .unwrap_or_default(),
                exemplars: parts
                    .exemplars
                    .get(start.3..e.exemplars)
                    .unwrap_or_default(),
                hash: e.hash,
            });
            start = (e.pairs, e.samples, e.histograms, e.exemplars);
        }
        let mut decoded = Decoded {
            series: &views,
            metadata: &parts.metadata,
            samples: parts.samples.len(),
            histograms: parts.histograms.len(),
            exemplars: parts.exemplars.len(),
            invalid_exemplars: parts.invalid_exemplars,
            report: std::mem::take(&mut parts.report),
        };
        let out = f(&mut decoded);
        bufs.views = recycle_views(views);
        out
    });
    bufs.pairs = recycle_pairs(parts.pairs);
    bufs.samples = parts.samples;
    parts.histograms.clear();
    bufs.histograms = parts.histograms;
    parts.exemplars.clear();
    bufs.exemplars = parts.exemplars;
    bufs.ends = parts.ends;
    bufs.labels = parts.labels;
    bufs.symbols = recycle(parts.symbols, "");
    bufs.bodies = recycle(parts.bodies, &[]);
    parts.refs.clear();
    bufs.refs = parts.refs;
    result
}

fn walk<'r>(raw: &'r [u8], limits: &RemoteWriteLimits, p: &mut Parts<'r>) -> Result<(), WireError> {
    let mut r = Reader::new(raw);
    while !r.is_empty() {
        match r.tag()? {
            (1, LEN) => series(r.bytes()?, limits, p)?,
            (3, LEN) => p.metadata.push(metadata(r.bytes()?)?),
            (f @ (1 | 3), wt) => return Err(unexpected(f, wt)),
            (f, wt) => r.skip(f, wt)?,
        }
    }
    Ok(())
}

/// One `TimeSeries`: its labels are checked in order; a series that fails is taken back out
/// and its samples counted under the reason. Each histogram is validated on its own: an invalid
/// one is counted under its reason and the rest of the series is kept.
///
/// Labels are located first, then the run of label fields at the start of the message (where
/// encoders put them) is checked for UTF-8 in one call: a name or value inside that run that
/// starts and ends on character boundaries is then valid UTF-8 itself.
fn series<'r>(
    buf: &'r [u8],
    limits: &RemoteWriteLimits,
    p: &mut Parts<'r>,
) -> Result<(), WireError> {
    let samples_start = p.samples.len();
    let hists_start = p.histograms.len();
    let exemplars_start = p.exemplars.len();
    p.labels.clear();
    let mut text_end = 0;
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let field_start = buf.len() - r.remaining();
        match r.tag()? {
            (1, LEN) => {
                let (start, end) = r.bytes_range(buf)?;
                let (n, v) = label(buf.get(start..end).unwrap_or_default())?;
                p.labels
                    .push([start + n.0, start + n.1, start + v.0, start + v.1]);
                if field_start == text_end {
                    text_end = end;
                }
            }
            (2, LEN) => p.samples.push(sample(r.bytes()?)?),
            (3, LEN) => match exemplar_v1(r.bytes()?)? {
                Some(e) => p.exemplars.push(e),
                None => p.invalid_exemplars += 1,
            },
            (4, LEN) => match histogram::decode(r.bytes()?)?.into_sample() {
                Ok(h) => p.histograms.push(h),
                Err(e) => p.report.reject_histogram(&e),
            },
            (f @ 1..=4, wt) => return Err(unexpected(f, wt)),
            (f, wt) => r.skip(f, wt)?,
        }
    }
    let text = buf
        .get(..text_end)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or_default();
    let pairs_start = p.pairs.len();
    let mut check = LabelCheck::new(limits);
    let mut hash = SeriesHasher::default();
    for &[ns, ne, vs, ve] in &p.labels {
        let name = buf.get(ns..ne).unwrap_or_default();
        let value = buf.get(vs..ve).unwrap_or_default();
        let known = text.get(ns..ne).zip(text.get(vs..ve));
        if let Some(pair) = check.push(name, value, known) {
            hash.add(pair.0);
            hash.add(pair.1);
            p.pairs.push(pair);
        }
    }
    let n_samples = p.samples.len() - samples_start + p.histograms.len() - hists_start;
    let n_exemplars = p.exemplars.len() - exemplars_start;
    match check.finish() {
        Ok(()) if n_samples + n_exemplars > 0 => p.push_ends(hash.finish()),
        Ok(()) => p.pairs.truncate(pairs_start),
        Err(e) => {
            p.pairs.truncate(pairs_start);
            p.samples.truncate(samples_start);
            p.histograms.truncate(hists_start);
            p.exemplars.truncate(exemplars_start);
            p.invalid_exemplars += n_exemplars;
            p.report.add(e.reason(), n_samples);
            if p.report.first_invalid.is_none() {
                p.report.first_invalid = Some(e.to_string());
            }
        }
    }
    Ok(())
}

impl Parts<'_> {
    /// Closes the current series: its pairs, samples, histograms and exemplars end here.
    pub(super) fn push_ends(&mut self, hash: u64) {
        self.ends.push(Ends {
            pairs: self.pairs.len(),
            samples: self.samples.len(),
            histograms: self.histograms.len(),
            exemplars: self.exemplars.len(),
            hash,
        });
    }
}

/// A field's start and end offsets inside its message.
type Span = (usize, usize);

/// One `Label`: the positions of its name and value bytes.
#[inline]
fn label(buf: &[u8]) -> Result<(Span, Span), WireError> {
    let (mut name, mut value) = ((0, 0), (0, 0));
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.tag()? {
            (1, LEN) => name = r.bytes_range(buf)?,
            (2, LEN) => value = r.bytes_range(buf)?,
            (f @ (1 | 2), wt) => return Err(unexpected(f, wt)),
            (f, wt) => r.skip(f, wt)?,
        }
    }
    Ok((name, value))
}

/// One `Sample`: a double (fixed64) value and an int64 (varint) millisecond timestamp.
#[inline]
pub(super) fn sample(buf: &[u8]) -> Result<Sample, WireError> {
    let mut s = Sample { t: 0, v: 0.0 };
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.tag()? {
            (1, FIXED64) => s.v = f64::from_bits(r.fixed64()?),
            (2, VARINT) => s.t = r.varint()? as i64,
            (f @ (1 | 2), wt) => return Err(unexpected(f, wt)),
            (f, wt) => r.skip(f, wt)?,
        }
    }
    Ok(s)
}

/// One `MetricMetadata`: type (enum), family name, help and unit (strings).
fn metadata(buf: &[u8]) -> Result<MetadataRef<'_>, WireError> {
    let mut m = MetadataRef::default();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.tag()? {
            (1, VARINT) => m.metric_type = r.varint()? as i32,
            (2, LEN) => m.family = r.string()?,
            (4, LEN) => m.help = r.string()?,
            (5, LEN) => m.unit = r.string()?,
            (f @ (1 | 2 | 4 | 5), wt) => return Err(unexpected(f, wt)),
            (f, wt) => r.skip(f, wt)?,
        }
    }
    Ok(m)
}
