//! The per-row-group search index (block column `C_SEARCH`): which traces of the row group
//! have a span with a given status, kind, name, (resource, scope) pair, duration bucket, or
//! value of a low-cardinality span attribute. A search turns its filter into a *superset* of
//! the matching traces from these lists alone (no value column is decoded); the store then
//! materialises only those traces and checks the exact filter on them.
//!
//! Trace lists are local trace numbers (0-based within the row group), ascending, stored as
//! `uvarint byte length` + delta `uvarint`s (first absolute). See `storage/FORMAT.md`.

use std::collections::BTreeMap;

use super::codec::{
    get_bytes, get_count, get_u, get_u8, get_value, put_bytes, FastMap, TAG_DOUBLE, TAG_FALSE,
    TAG_INT, TAG_STR, TAG_TRUE,
};
use super::{
    AttrValue, FilterOp, FilterValue, Resource, SpanField, SpanFilter, SpanKind, SpanView,
    StatusCode,
};
use crate::varint::write_uvarint;

/// A span attribute key with more distinct scalar values than this in a row group is not
/// indexed there (searches on it scan its value column).
pub(crate) const KEY_VALUES_CAP: usize = 64;

/// Duration bucket of `d` ns: exact below 8, else 8 buckets per power of two
/// (`msb * 8 + next three bits`), so a bucket spans at most 12.5% of its lower bound.
pub(crate) fn dur_bucket(d: u64) -> u32 {
    if d < 8 {
        return d as u32;
    }
    let p = 63 - d.leading_zeros();
    p * 8 + ((d >> (p - 3)) & 7) as u32
}

/// Inclusive duration range of a bucket; `None` for a number no duration maps to.
pub(crate) fn bucket_range(b: u32) -> Option<(u64, u64)> {
    if b < 8 {
        return Some((u64::from(b), u64::from(b)));
    }
    let (p, sub) = (b / 8, u64::from(b % 8));
    if !(3..=63).contains(&p) {
        return None;
    }
    let lo = (8 + sub) << (p - 3);
    Some((lo, lo + ((1u64 << (p - 3)) - 1)))
}

fn add(list: &mut Vec<u32>, t: u32) {
    if list.last() != Some(&t) {
        list.push(t);
    }
}

fn put_list(out: &mut Vec<u8>, list: &[u32], tmp: &mut Vec<u8>) {
    tmp.clear();
    let mut prev = 0u32;
    for (i, &t) in list.iter().enumerate() {
        write_uvarint(tmp, u64::from(if i == 0 { t } else { t - prev }));
        prev = t;
    }
    put_bytes(out, tmp);
}

/// One key's traces per value: strings by their code in the key's value dictionary (no
/// second hashing of the text), other scalars by their encoding.
#[derive(Default)]
struct ValueLists {
    /// By dictionary code; empty for codes not (yet) seen as a span's first value of the key.
    strs: Vec<Vec<u32>>,
    distinct_strs: usize,
    others: FastMap<Vec<u8>, Vec<u32>>,
}

impl ValueLists {
    /// The list of `v` (`str_code`: its dictionary code, for strings), created if there is
    /// room; `None` when `v` would be value number [`KEY_VALUES_CAP`] + 1.
    fn list(&mut self, v: &[u8], str_code: Option<u32>) -> Option<&mut Vec<u32>> {
        let full = self.distinct_strs + self.others.len() >= KEY_VALUES_CAP;
        match str_code {
            Some(c) => {
                let c = c as usize;
                if self.strs.len() <= c {
                    self.strs.resize_with(c + 1, Vec::new);
                }
                if self.strs[c].is_empty() {
                    if full {
                        return None;
                    }
                    self.distinct_strs += 1;
                }
                Some(&mut self.strs[c])
            }
            None => {
                if !self.others.contains_key(v) {
                    if full {
                        return None;
                    }
                    self.others.insert(v.to_vec(), Vec::new());
                }
                self.others.get_mut(v)
            }
        }
    }
}

/// Collects the index of one row group while its spans are written (traces in order).
#[derive(Default)]
pub(crate) struct IndexBuilder {
    /// Per trace: `uvarint trace_min_start - rowgroup_min_start`, `uvarint trace_max_end -
    /// trace_min_start`.
    pub times: Vec<u8>,
    statuses: [Vec<u32>; 3],
    kinds: [Vec<u32>; 6],
    /// By name dictionary code.
    names: Vec<Vec<u32>>,
    pairs: BTreeMap<u32, Vec<u32>>,
    durs: BTreeMap<u32, Vec<u32>>,
    /// By key code; `None` once the key has too many values or a non-scalar one.
    keys: Vec<Option<ValueLists>>,
    /// Spans per pair, and by key code the spans per pair carrying the key.
    pair_spans: BTreeMap<u32, u64>,
    key_pairs: Vec<Vec<u64>>,
}

impl IndexBuilder {
    /// Records the intrinsics of a span of local trace `t`.
    pub(crate) fn span(
        &mut self,
        t: u32,
        (kind, status, dur): (SpanKind, StatusCode, u64),
        name_code: u32,
        pair: u32,
    ) {
        add(&mut self.statuses[status as usize], t);
        add(&mut self.kinds[kind as usize], t);
        let nc = name_code as usize;
        if self.names.len() <= nc {
            self.names.resize_with(nc + 1, Vec::new);
        }
        add(&mut self.names[nc], t);
        add(self.pairs.entry(pair).or_default(), t);
        *self.pair_spans.entry(pair).or_default() += 1;
        add(self.durs.entry(dur_bucket(dur)).or_default(), t);
    }

    /// Records the first attribute with key code `code` of a span of local trace `t` whose
    /// (resource, scope) pair is `pair`.
    /// `v` is the value's encoding ([`put_value`]'s, tag byte first); `str_code`, for a string,
    /// its code in the key's value dictionary of this row group.
    pub(crate) fn attr(&mut self, t: u32, code: u32, pair: u32, v: &[u8], str_code: Option<u32>) {
        let c = code as usize;
        if self.keys.len() <= c {
            self.keys.resize_with(c + 1, || Some(ValueLists::default()));
            self.key_pairs.resize_with(c + 1, Vec::new);
        }
        let per_pair = &mut self.key_pairs[c];
        if per_pair.len() <= pair as usize {
            per_pair.resize(pair as usize + 1, 0);
        }
        per_pair[pair as usize] += 1;
        let slot = &mut self.keys[c];
        let Some(values) = slot else {
            return;
        };
        let scalar = matches!(
            v.first(),
            Some(&(TAG_STR | TAG_INT | TAG_DOUBLE | TAG_TRUE | TAG_FALSE))
        );
        match values.list(v, str_code).filter(|_| scalar) {
            Some(list) => add(list, t),
            None => *slot = None,
        }
    }

    /// The column bytes.
    /// `key_strs[c]`: the value dictionary of key code `c` (the strings `attr` got codes of).
    pub(crate) fn finish(
        mut self,
        traces: usize,
        names: &[Box<[u8]>],
        key_strs: &[&[Box<[u8]>]],
    ) -> Vec<u8> {
        let n_keys = key_strs.len();
        let mut out = Vec::with_capacity(self.times.len() * 8);
        let mut tmp = Vec::new();
        write_uvarint(&mut out, traces as u64);
        put_bytes(&mut out, &self.times);
        for group in [&self.statuses[..], &self.kinds[..]] {
            write_uvarint(
                &mut out,
                group.iter().filter(|l| !l.is_empty()).count() as u64,
            );
            for (code, list) in group.iter().enumerate().filter(|(_, l)| !l.is_empty()) {
                out.push(code as u8);
                put_list(&mut out, list, &mut tmp);
            }
        }
        write_uvarint(
            &mut out,
            self.names.iter().filter(|l| !l.is_empty()).count() as u64,
        );
        for (code, list) in self.names.iter().enumerate().filter(|(_, l)| !l.is_empty()) {
            put_bytes(&mut out, names.get(code).map_or(&[][..], |n| n));
            put_list(&mut out, list, &mut tmp);
        }
        for group in [&self.pairs, &self.durs] {
            write_uvarint(&mut out, group.len() as u64);
            for (k, list) in group {
                write_uvarint(&mut out, u64::from(*k));
                put_list(&mut out, list, &mut tmp);
            }
        }
        self.keys
            .resize_with(n_keys, || Some(ValueLists::default()));
        self.key_pairs.resize_with(n_keys, Vec::new);
        write_uvarint(&mut out, n_keys as u64);
        let mut section = Vec::new();
        for (c, (key, with)) in self.keys.iter().zip(&self.key_pairs).enumerate() {
            section.clear();
            // Pairs with a span lacking the key (an unscoped `.key` falls back to their
            // resource there).
            let lacking: Vec<u32> = self
                .pair_spans
                .iter()
                .filter(|(p, n)| with.get(**p as usize).copied().unwrap_or(0) < **n)
                .map(|(p, _)| *p)
                .collect();
            write_uvarint(&mut section, lacking.len() as u64);
            for p in lacking {
                write_uvarint(&mut section, u64::from(p));
            }
            match key {
                None => write_uvarint(&mut section, 0),
                Some(values) => {
                    let strs = key_strs.get(c).copied().unwrap_or_default();
                    let mut entries: Vec<(Vec<u8>, &Vec<u32>)> = (values.strs.iter())
                        .enumerate()
                        .filter(|(_, list)| !list.is_empty())
                        .map(|(code, list)| {
                            let text = strs.get(code).map_or(&[][..], |s| s);
                            let mut v = Vec::with_capacity(text.len() + 6);
                            v.push(TAG_STR);
                            put_bytes(&mut v, text);
                            (v, list)
                        })
                        .chain(values.others.iter().map(|(v, list)| (v.clone(), list)))
                        .collect();
                    entries.sort_unstable();
                    write_uvarint(&mut section, entries.len() as u64 + 1);
                    for (v, list) in entries {
                        section.extend_from_slice(&v);
                        put_list(&mut section, list, &mut tmp);
                    }
                }
            }
            put_bytes(&mut out, &section);
        }
        out
    }
}

/// A set of local trace numbers.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Bits(pub Vec<u64>);

impl Bits {
    pub(crate) fn empty(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }

    pub(crate) fn full(n: usize) -> Bits {
        let mut b = Bits::empty(n);
        for t in 0..n {
            b.set(t);
        }
        b
    }

    pub(crate) fn set(&mut self, t: usize) {
        if let Some(w) = self.0.get_mut(t / 64) {
            *w |= 1 << (t % 64);
        }
    }

    pub(crate) fn get(&self, t: usize) -> bool {
        self.0.get(t / 64).is_some_and(|w| w & (1 << (t % 64)) != 0)
    }

    pub(crate) fn clear(&mut self, t: usize) {
        if let Some(w) = self.0.get_mut(t / 64) {
            *w &= !(1 << (t % 64));
        }
    }

    pub(crate) fn or(&mut self, o: &Bits) {
        self.0.iter_mut().zip(&o.0).for_each(|(a, b)| *a |= b);
    }

    fn and(&mut self, o: &Bits) {
        self.0.iter_mut().zip(&o.0).for_each(|(a, b)| *a &= b);
    }

    /// Adds an encoded trace list; `None` if malformed or out of range.
    fn or_list(&mut self, mut list: &[u8], n: usize) -> Option<()> {
        let mut t = 0u64;
        let mut first = true;
        while !list.is_empty() {
            let d = get_u(&mut list)?;
            t = if first { d } else { t.checked_add(d)? };
            first = false;
            if t >= n as u64 {
                return None;
            }
            self.set(t as usize);
        }
        Some(())
    }
}

/// The parsed index of one row group (borrowing the decompressed column).
pub(crate) struct SearchIndex<'a> {
    pub n: usize,
    /// Per trace `uvarint` min start offset from the row group's min start, `uvarint` max
    /// end - min start (see [`SearchIndex::times`]).
    times: &'a [u8],
    statuses: Vec<(u8, &'a [u8])>,
    kinds: Vec<(u8, &'a [u8])>,
    names: Vec<(&'a [u8], &'a [u8])>,
    pairs: Vec<(u32, &'a [u8])>,
    durs: Vec<(u32, &'a [u8])>,
    /// By key code: `uvarint values+1` (0: not indexed), values × (`value`, list).
    keys: Vec<&'a [u8]>,
}

/// A key's indexed values and the pairs having a span without the key.
pub(crate) type KeyValues = (Vec<AttrValue>, Vec<u32>);

/// The index is malformed.
pub(crate) struct Malformed;

impl<'a> SearchIndex<'a> {
    pub(crate) fn parse(col: &'a [u8], traces: usize, n_keys: usize) -> Option<SearchIndex<'a>> {
        let b = &mut &col[..];
        if get_count(b)? != traces {
            return None;
        }
        let times = get_bytes(b)?;
        let mut small = || -> Option<Vec<(u8, &'a [u8])>> {
            let n = get_count(b)?;
            (0..n).map(|_| Some((get_u8(b)?, get_bytes(b)?))).collect()
        };
        let statuses = small()?;
        let kinds = small()?;
        let nn = get_count(b)?;
        let names = (0..nn)
            .map(|_| Some((get_bytes(b)?, get_bytes(b)?)))
            .collect::<Option<Vec<_>>>()?;
        let mut numbered = || -> Option<Vec<(u32, &'a [u8])>> {
            let n = get_count(b)?;
            (0..n)
                .map(|_| Some((u32::try_from(get_u(b)?).ok()?, get_bytes(b)?)))
                .collect()
        };
        let pairs = numbered()?;
        let durs = numbered()?;
        if get_count(b)? != n_keys {
            return None;
        }
        let keys = (0..n_keys)
            .map(|_| get_bytes(b))
            .collect::<Option<Vec<_>>>()?;
        b.is_empty().then_some(SearchIndex {
            n: traces,
            times,
            statuses,
            kinds,
            names,
            pairs,
            durs,
            keys,
        })
    }

    fn union<'x>(
        &self,
        lists: impl Iterator<Item = &'x [u8]>,
        acc: &mut Bits,
    ) -> Result<(), Malformed> {
        for l in lists {
            acc.or_list(l, self.n).ok_or(Malformed)?;
        }
        Ok(())
    }

    /// A superset of the traces with a span satisfying `f`, or `None` when the index cannot
    /// tell (a status-message condition, a high-cardinality key, a double duration bound).
    /// `keys` are the row group's attribute keys; `resource(p)` the resource of pair `p`.
    pub(crate) fn eval<'r>(
        &self,
        f: &SpanFilter,
        keys: &[String],
        resource: &dyn Fn(u32) -> Option<&'r Resource>,
    ) -> Result<Option<Bits>, Malformed> {
        let n = self.n;
        match f {
            SpanFilter::True => Ok(Some(Bits::full(n))),
            SpanFilter::And(parts) => {
                let mut acc: Option<Bits> = None;
                for p in parts {
                    if let Some(b) = self.eval(p, keys, resource)? {
                        match &mut acc {
                            Some(a) => a.and(&b),
                            None => acc = Some(b),
                        }
                    }
                }
                Ok(acc)
            }
            SpanFilter::Or(parts) => {
                let mut acc = Bits::empty(n);
                for p in parts {
                    match self.eval(p, keys, resource)? {
                        Some(b) => acc.or(&b),
                        None => return Ok(None),
                    }
                }
                Ok(Some(acc))
            }
            SpanFilter::Cond { field, op, value } => {
                let mut acc = Bits::empty(n);
                let test = |one: One<'_>| f.matches_view(&one);
                match field {
                    SpanField::StatusMessage => return Ok(None),
                    SpanField::Status => self.union(
                        self.statuses
                            .iter()
                            .filter(|(c, _)| {
                                test(One {
                                    status: StatusCode::from_i32(i32::from(*c)),
                                    ..One::default()
                                })
                            })
                            .map(|x| x.1),
                        &mut acc,
                    )?,
                    SpanField::Kind => self.union(
                        self.kinds
                            .iter()
                            .filter(|(c, _)| {
                                test(One {
                                    kind: SpanKind::from_i32(i32::from(*c)),
                                    ..One::default()
                                })
                            })
                            .map(|x| x.1),
                        &mut acc,
                    )?,
                    SpanField::Name => {
                        for (name, list) in &self.names {
                            let name = std::str::from_utf8(name).map_err(|_| Malformed)?;
                            if test(One {
                                name,
                                ..One::default()
                            }) {
                                acc.or_list(list, n).ok_or(Malformed)?;
                            }
                        }
                    }
                    SpanField::Duration => {
                        for (b, list) in &self.durs {
                            let (lo, hi) = bucket_range(*b).ok_or(Malformed)?;
                            match dur_may(*op, value, lo, hi) {
                                None => return Ok(None),
                                Some(true) => acc.or_list(list, n).ok_or(Malformed)?,
                                Some(false) => {}
                            }
                        }
                    }
                    SpanField::Attr { scope, key } => {
                        use super::AttrScope;
                        if matches!(scope, AttrScope::Span | AttrScope::Any) {
                            if let Some(code) = keys.iter().position(|k| k == key) {
                                let mut sec = *self.keys.get(code).ok_or(Malformed)?;
                                let lacking = get_count(&mut sec).ok_or(Malformed)?;
                                for _ in 0..lacking {
                                    get_u(&mut sec).ok_or(Malformed)?;
                                }
                                let m = get_u(&mut sec).ok_or(Malformed)?;
                                if m == 0 {
                                    return Ok(None);
                                }
                                for _ in 1..m {
                                    let v = get_value(&mut sec, 0).ok_or(Malformed)?;
                                    let list = get_bytes(&mut sec).ok_or(Malformed)?;
                                    if test(One {
                                        attr: Some(&v),
                                        ..One::default()
                                    }) {
                                        acc.or_list(list, n).ok_or(Malformed)?;
                                    }
                                }
                            }
                        }
                        if matches!(scope, AttrScope::Resource | AttrScope::Any) {
                            for (p, list) in &self.pairs {
                                let r = resource(*p).ok_or(Malformed)?;
                                if test(One {
                                    resource: Some(r),
                                    ..One::default()
                                }) {
                                    acc.or_list(list, n).ok_or(Malformed)?;
                                }
                            }
                        }
                    }
                }
                Ok(Some(acc))
            }
        }
    }
}

impl SearchIndex<'_> {
    /// Per trace: (min start offset from the row group's min start, max end - min start).
    pub(crate) fn times(&self) -> Option<Vec<(u64, u64)>> {
        let mut b = self.times;
        let out = (0..self.n)
            .map(|_| Some((get_u(&mut b)?, get_u(&mut b)?)))
            .collect::<Option<Vec<_>>>()?;
        b.is_empty().then_some(out)
    }

    /// The values of key `code` (first occurrence per span), and the pairs having a span
    /// without the key; `Ok(None)` when the key is not indexed here.
    pub(crate) fn key_values(&self, code: usize) -> Result<Option<KeyValues>, Malformed> {
        let mut sec = *self.keys.get(code).ok_or(Malformed)?;
        let n = get_count(&mut sec).ok_or(Malformed)?;
        let lacking = (0..n)
            .map(|_| get_u(&mut sec).and_then(|p| u32::try_from(p).ok()))
            .collect::<Option<Vec<_>>>()
            .ok_or(Malformed)?;
        let m = get_u(&mut sec).ok_or(Malformed)?;
        if m == 0 {
            return Ok(None);
        }
        let mut values = Vec::with_capacity(m as usize);
        for _ in 1..m {
            values.push(get_value(&mut sec, 0).ok_or(Malformed)?);
            get_bytes(&mut sec).ok_or(Malformed)?;
        }
        Ok(Some((values, lacking)))
    }

    /// Every span name of the row group.
    pub(crate) fn names(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.names.iter().map(|x| x.0)
    }
}

/// Whether some duration in `[lo, hi]` can satisfy `op value` (`None`: cannot tell).
fn dur_may(op: FilterOp, value: &FilterValue, lo: u64, hi: u64) -> Option<bool> {
    let x: i128 = match value {
        FilterValue::Duration(d) => i128::from(*d),
        FilterValue::Int(i) => i128::from(*i),
        FilterValue::Double(_) => return None,
        _ => return Some(op == FilterOp::Exists),
    };
    let (lo, hi) = (i128::from(lo), i128::from(hi));
    Some(match op {
        FilterOp::Gt => hi > x,
        FilterOp::Ge => hi >= x,
        FilterOp::Lt => lo < x,
        FilterOp::Le => lo <= x,
        FilterOp::Eq => lo <= x && x <= hi,
        FilterOp::Ne => !(lo == hi && lo == x),
        FilterOp::Exists => true,
        FilterOp::Regex | FilterOp::NotRegex => false,
    })
}

/// A pseudo span carrying one indexed value, for judging a condition on it.
struct One<'a> {
    name: &'a str,
    kind: SpanKind,
    status: StatusCode,
    attr: Option<&'a AttrValue>,
    resource: Option<&'a Resource>,
}

impl Default for One<'_> {
    fn default() -> Self {
        One {
            name: "",
            kind: SpanKind::Unspecified,
            status: StatusCode::Unset,
            attr: None,
            resource: None,
        }
    }
}

impl SpanView for One<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn status_message(&self) -> &str {
        ""
    }
    fn kind(&self) -> SpanKind {
        self.kind
    }
    fn status(&self) -> StatusCode {
        self.status
    }
    fn duration_nanos(&self) -> u64 {
        0
    }
    fn span_attr(&self, _key: &str) -> Option<&AttrValue> {
        self.attr
    }
    fn resource_attr(&self, key: &str) -> Option<&AttrValue> {
        super::find_attr(&self.resource?.attributes, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_buckets_cover_their_values() {
        for d in (0..5000u64).chain([
            1_999_999_999,
            2_000_000_000,
            2_000_000_001,
            u64::MAX,
            u64::MAX / 3,
        ]) {
            let b = dur_bucket(d);
            let (lo, hi) = bucket_range(b).expect("valid bucket");
            assert!(lo <= d && d <= hi, "{d} not in bucket {b} = [{lo}, {hi}]");
            assert!(hi - lo <= lo / 8, "bucket {b} too wide");
        }
        assert_eq!(bucket_range(9), None);
    }

    #[test]
    fn trace_lists_round_trip_and_reject_out_of_range() {
        let mut out = Vec::new();
        put_list(&mut out, &[0, 3, 64, 65, 199], &mut Vec::new());
        let mut b = out.as_slice();
        let list = get_bytes(&mut b).expect("list");
        let mut bits = Bits::empty(200);
        bits.or_list(list, 200).expect("in range");
        let got: Vec<usize> = (0..200).filter(|t| bits.get(*t)).collect();
        assert_eq!(got, vec![0, 3, 64, 65, 199]);
        assert!(Bits::empty(100).or_list(list, 100).is_none());
    }
}
