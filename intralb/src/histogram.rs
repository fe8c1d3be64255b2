//! [`Histogram`]: latencies in microseconds, recorded without a lock, to two significant digits.
//!
//! The layout is HdrHistogram's with two significant digits: values below 256 each have their
//! own bucket, and every power of two above that is split into 128 buckets of equal width, so a
//! value is off by less than 1/128 of itself. Recording is one atomic increment, where a
//! `Mutex<hdrhistogram::Histogram>` took a lock and hdrhistogram's bookkeeping: this is on the
//! path of every request.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Values below `2 * HALF` are exact; above, each power of two has `HALF` buckets.
const HALF_BITS: u32 = 7;
const HALF: u64 = 1 << HALF_BITS;

/// The largest value recorded as itself (one hour, in microseconds); larger ones are recorded
/// as this.
const HIGHEST: u64 = 3_600_000_000;

/// The bucket of `value` (at least 1, at most [`HIGHEST`]).
fn index(value: u64) -> usize {
    if value < 2 * HALF {
        return value as usize;
    }
    // `value >> shift` is in `HALF..2 * HALF`.
    let shift = u64::BITS - value.leading_zeros() - (HALF_BITS + 1);
    (((shift as u64 + 1) << HALF_BITS) + (value >> shift) - HALF) as usize
}

/// The largest value of bucket `index`.
fn highest(index: usize) -> u64 {
    let index = index as u64;
    if index < 2 * HALF {
        return index;
    }
    let shift = (index >> HALF_BITS) - 1;
    (((index & (HALF - 1)) + HALF + 1) << shift) - 1
}

/// Counts of microsecond values from 1 to [`HIGHEST`], shared by the threads that record.
pub(crate) struct Histogram {
    counts: Box<[AtomicU64]>,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Histogram {
            counts: (0..=index(HIGHEST)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts one `value`, clamped to `1..=HIGHEST`.
    pub(crate) fn record(&self, value: u64) {
        self.counts[index(value.clamp(1, HIGHEST))].fetch_add(1, Relaxed);
    }

    /// Adds this histogram's counts to `into`, a [`Counts`] of the same layout.
    pub(crate) fn add_to(&self, into: &mut Counts) {
        for (sum, count) in into.counts.iter_mut().zip(self.counts.iter()) {
            let count = count.load(Relaxed);
            *sum += count;
            into.len += count;
        }
    }
}

/// A snapshot of one or more [`Histogram`]s, to read percentiles from.
pub(crate) struct Counts {
    counts: Vec<u64>,
    len: u64,
}

impl Counts {
    pub(crate) fn new() -> Self {
        Counts {
            counts: vec![0; index(HIGHEST) + 1],
            len: 0,
        }
    }

    /// How many values.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The value below or at which a `quantile` (`0.0..=1.0`) of the values lie, as the largest
    /// value of its bucket; 0 if there are none.
    pub(crate) fn value_at_quantile(&self, quantile: f64) -> u64 {
        let len = self.len;
        if len == 0 {
            return 0;
        }
        let rank = ((quantile.clamp(0.0, 1.0) * len as f64).ceil() as u64).clamp(1, len);
        let mut seen = 0;
        self.counts
            .iter()
            .position(|count| {
                seen += count;
                seen >= rank
            })
            .map_or(0, highest)
    }

    /// The largest value, as the largest value of its bucket; 0 if there are none.
    pub(crate) fn max(&self) -> u64 {
        self.counts
            .iter()
            .rposition(|count| *count > 0)
            .map_or(0, highest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_values_fall_in_their_own() {
        let mut previous_highest = 0;
        for index in 1..=index(HIGHEST) {
            let top = highest(index);
            assert_eq!(
                super::index(previous_highest + 1),
                index,
                "first of {index}"
            );
            assert_eq!(super::index(top), index, "last of {index}");
            assert!(top > previous_highest);
            previous_highest = top;
        }
        assert!(highest(index(HIGHEST)) >= HIGHEST);
    }

    #[test]
    fn values_keep_two_significant_digits() {
        for value in (1..HIGHEST)
            .step_by(7_919)
            .chain([255, 256, 257, 1000, 65_535])
        {
            let top = highest(index(value));
            assert!(top >= value);
            assert!(
                (top - value) * HALF <= value,
                "{value} read back as {top}, more than 1/128 off"
            );
        }
    }

    #[test]
    fn percentiles_as_hdrhistogram_gives_them() {
        let histogram = Histogram::new();
        for value in 1..=1000 {
            histogram.record(value);
        }
        histogram.record(0); // counted as 1
        histogram.record(u64::MAX); // counted as HIGHEST
        let mut counts = Counts::new();
        histogram.add_to(&mut counts);
        assert_eq!(counts.len(), 1002);
        // 501st of 1002 values: 500, in a bucket 2 wide ([500, 501]).
        assert_eq!(counts.value_at_quantile(0.5), 501);
        // 902nd: 901, in [900, 903].
        assert_eq!(counts.value_at_quantile(0.9), 903);
        assert_eq!(counts.value_at_quantile(0.0), 1);
        assert_eq!(counts.max(), highest(index(HIGHEST)));
        assert_eq!(Counts::new().value_at_quantile(0.99), 0);
        assert_eq!(Counts::new().max(), 0);
    }
}
