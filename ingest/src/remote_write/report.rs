//! Counts of rejected samples by reason, and the 400 message that reports them.

use std::collections::BTreeMap;

/// Counts of rejected samples by reason, and the first invalid series for the message.
#[derive(Debug, Default)]
pub struct Rejections {
    pub by_reason: BTreeMap<&'static str, usize>,
    /// Reasons found at this edge (storage counts its own in its metrics).
    pub edge_only: BTreeMap<&'static str, usize>,
    pub first_invalid: Option<String>,
}

impl Rejections {
    pub fn add(&mut self, reason: &'static str, n: usize) {
        if n > 0 {
            *self.by_reason.entry(reason).or_default() += n;
            *self.edge_only.entry(reason).or_default() += n;
        }
    }

    /// Counts one invalid native histogram under its reason.
    pub fn reject_histogram(&mut self, e: &super::histogram::HistogramError) {
        self.add(e.reason(), 1);
        if self.first_invalid.is_none() {
            self.first_invalid = Some(format!("invalid native histogram: {e}"));
        }
    }

    pub fn total(&self) -> usize {
        self.by_reason.values().sum()
    }

    pub fn message(&self, total: usize) -> String {
        let reasons: Vec<String> = self
            .by_reason
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        let mut msg = format!(
            "rejected {} of {} samples ({}); the others were stored",
            self.total(),
            total,
            reasons.join(", ")
        );
        if let Some(first) = &self.first_invalid {
            msg.push_str("; first invalid series: ");
            msg.push_str(first);
        }
        msg
    }
}
