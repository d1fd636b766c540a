//! Spans waiting for the next flush, per worker, bounded in spans and in bytes.

use std::collections::VecDeque;

use super::FinishedSpan;

/// Spans waiting for the next flush, bounded by count and by bytes: past either bound the oldest
/// are dropped (and counted), whatever the collector does.
#[derive(Debug)]
pub struct SpanBuffer {
    spans: VecDeque<(FinishedSpan, usize)>,
    limit: usize,
    max_bytes: usize,
    bytes: usize,
    /// Bytes of `max_bytes` held elsewhere (export bodies waiting for the collector).
    reserved: usize,
}

impl SpanBuffer {
    /// At most `limit` spans and `max_bytes` bytes (`FinishedSpan::memory_bytes`).
    pub fn new(limit: usize, max_bytes: usize) -> SpanBuffer {
        SpanBuffer {
            spans: VecDeque::new(),
            limit: limit.max(1),
            max_bytes,
            bytes: 0,
            reserved: 0,
        }
    }

    /// Leaves `bytes` of the bound to others; spans already held beyond what is left are
    /// dropped at the next push.
    pub fn reserve(&mut self, bytes: usize) {
        self.reserved = bytes.min(self.max_bytes);
    }

    fn room(&self) -> usize {
        self.max_bytes - self.reserved
    }

    /// Adds a span; returns how many spans were dropped to keep both bounds: old ones, or this
    /// one if it alone exceeds `max_bytes`.
    pub fn push(&mut self, span: FinishedSpan) -> u64 {
        let size = span.memory_bytes();
        if size > self.room() {
            return 1;
        }
        let mut dropped = 0;
        while self.spans.len() >= self.limit || self.bytes + size > self.room() {
            let Some((_, old)) = self.spans.pop_front() else {
                break;
            };
            self.bytes -= old;
            dropped += 1;
        }
        self.spans.push_back((span, size));
        self.bytes += size;
        dropped
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Bytes held, as counted against `max_bytes`.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes up to `n` of the oldest spans.
    pub fn take(&mut self, n: usize) -> Vec<FinishedSpan> {
        let n = n.min(self.spans.len());
        let mut taken = 0;
        let batch: Vec<FinishedSpan> = self
            .spans
            .drain(..n)
            .map(|(s, b)| {
                taken += b;
                s
            })
            .collect();
        self.bytes -= taken;
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{HttpFields, MAX_PATH_BYTES};
    use super::*;

    #[test]
    fn buffer_is_bounded_by_count_and_drops_the_oldest() {
        let mut b = SpanBuffer::new(2, 1 << 20);
        assert_eq!(b.push(span(1)), 0);
        assert_eq!(b.push(span(2)), 0);
        assert_eq!(b.push(span(3)), 1);
        assert_eq!(b.len(), 2);
        let batch = b.take(10);
        assert_eq!(batch.iter().map(|s| s.id.0).collect::<Vec<_>>(), vec![2, 3]);
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
        b.push(span(4));
        b.push(span(5));
        assert_eq!(b.take(1)[0].id.0, 4);
        assert_eq!(b.bytes(), span(5).memory_bytes());
    }

    #[test]
    fn buffer_is_bounded_by_bytes_and_counts_every_drop() {
        let path = format!("/{}", "x".repeat(16 * 1024));
        let big = |n| {
            span_with(
                n,
                HttpFields {
                    line: line(
                        Some("GET"),
                        Some(&path),
                        Some("checkout.shop.svc.cluster.local"),
                    ),
                    status: Some(200),
                    grpc_status: None,
                    upstream_cluster: Some("inbound|8080||"),
                },
            )
        };
        let one = big(1).memory_bytes();
        // Its slot in the buffer plus each string's heap (truncated path: MAX_PATH_BYTES).
        let strings: usize = ["GET", "checkout.shop.svc.cluster.local", "inbound|8080||"]
            .iter()
            .map(|s| s.len())
            .sum();
        assert_eq!(
            one,
            std::mem::size_of::<(FinishedSpan, usize)>() + MAX_PATH_BYTES + strings,
            "every string's heap counts"
        );
        assert!(
            one < std::mem::size_of::<FinishedSpan>() + 2 * MAX_PATH_BYTES,
            "a 16 KiB path costs at most MAX_PATH_BYTES: {one}"
        );
        let max_bytes = 10 * one + one / 2;
        let mut b = SpanBuffer::new(1_000_000, max_bytes);
        let mut dropped = 0;
        for n in 1..=200 {
            dropped += b.push(big(n));
            assert!(b.bytes() <= max_bytes, "{} > {max_bytes}", b.bytes());
        }
        assert_eq!(b.len(), 10, "the byte bound, not the count, decides");
        assert_eq!(dropped, 200 - 10, "every span is kept or counted");
        assert_eq!(b.take(1)[0].id.0, 191, "the newest are kept");
        // Both bounds are inclusive: exactly `max_bytes` fits.
        let size = span(1).memory_bytes();
        let mut exact = SpanBuffer::new(100, 3 * size);
        for n in 1..=3 {
            assert_eq!(exact.push(span(n)), 0, "span {n} of 3 fits exactly");
        }
        assert!(!exact.is_empty());
        assert_eq!((exact.len(), exact.bytes()), (3, 3 * size));
        assert_eq!(exact.push(span(4)), 1);
        let mut one_fits = SpanBuffer::new(1, size);
        assert_eq!(one_fits.push(span(1)), 0);
        assert_eq!(one_fits.len(), 1);
        // A span alone over the bound is refused, and counted.
        let mut tiny = SpanBuffer::new(10, 16);
        assert_eq!(tiny.push(span(1)), 1);
        assert!(tiny.is_empty());
    }
}
