//! Sequence accounting: from the sequence numbers one subscriber receives from one publisher,
//! how many were lost, duplicated or delivered out of order.
//!
//! A publisher numbers its messages 0, 1, 2, …; the broker must deliver them to each
//! subscriber in that order (MQTT's ordered topics). The tracker keeps the highest number seen
//! and the ranges below it still missing; a number that fills a missing range arrived out of
//! order, one that was already seen is a duplicate, and what is still missing at the end, plus
//! everything after the highest number seen up to what the publisher sent, is lost.

/// Tracks one (subscriber, publisher) stream of sequence numbers.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    /// One past the highest sequence number seen (0: nothing seen yet).
    next: u64,
    /// Sorted, disjoint, half-open ranges below `next` not received yet.
    missing: Vec<(u64, u64)>,
    /// Every delivery, duplicates included.
    deliveries: u64,
    duplicates: u64,
    out_of_order: u64,
}

/// What one received sequence number was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next one expected.
    InOrder,
    /// Beyond the next expected: the numbers in between are missing (for now).
    Gap,
    /// Fills a missing number: it arrived out of order.
    Late,
    /// Seen before.
    Duplicate,
}

impl SeqTracker {
    /// Records the arrival of sequence number `seq`.
    pub fn record(&mut self, seq: u64) -> Arrival {
        self.deliveries += 1;
        if seq == self.next {
            self.next += 1;
            return Arrival::InOrder;
        }
        if seq > self.next {
            self.missing.push((self.next, seq));
            self.next = seq + 1;
            return Arrival::Gap;
        }
        // Below `next`: either it fills a missing range, or it is a duplicate.
        let idx = self.missing.partition_point(|&(_, end)| end <= seq);
        match self.missing.get(idx).copied() {
            Some((start, end)) if start <= seq => {
                self.out_of_order += 1;
                match (seq == start, seq + 1 == end) {
                    (true, true) => {
                        self.missing.remove(idx);
                    }
                    (true, false) => self.missing[idx].0 = seq + 1,
                    (false, true) => self.missing[idx].1 = seq,
                    (false, false) => {
                        self.missing[idx].1 = seq;
                        self.missing.insert(idx + 1, (seq + 1, end));
                    }
                }
                Arrival::Late
            }
            _ => {
                self.duplicates += 1;
                Arrival::Duplicate
            }
        }
    }

    /// Every delivery recorded, duplicates included.
    pub fn deliveries(&self) -> u64 {
        self.deliveries
    }

    /// The account once the publisher has sent `sent` messages (numbers `0..sent`).
    pub fn finish(&self, sent: u64) -> Tally {
        let gaps: u64 = self.missing.iter().map(|&(s, e)| e - s).sum();
        let tail = sent.saturating_sub(self.next);
        Tally {
            expected: sent,
            deliveries: self.deliveries,
            lost: gaps + tail,
            missing_at_end: tail,
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
            // Numbers at or beyond `sent` were never sent: the stream is corrupt.
            unexpected: self.next.saturating_sub(sent),
        }
    }
}

/// Counts of deliveries against what was expected, added up over any number of streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Deliveries expected: messages sent times the subscribers each should reach.
    pub expected: u64,
    /// Deliveries received, duplicates included.
    pub deliveries: u64,
    /// Expected deliveries never received.
    pub lost: u64,
    /// Of `lost`, those after the last one received: messages the broker still held (or
    /// dropped) when the run ended, as opposed to gaps in the stream.
    pub missing_at_end: u64,
    /// Deliveries of a message already received.
    pub duplicates: u64,
    /// Deliveries that arrived after a later message of the same publisher.
    pub out_of_order: u64,
    /// Sequence numbers beyond what the publisher says it sent (should never happen).
    pub unexpected: u64,
}

impl Tally {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Tally) {
        self.expected += other.expected;
        self.deliveries += other.deliveries;
        self.lost += other.lost;
        self.missing_at_end += other.missing_at_end;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.unexpected += other.unexpected;
    }

    /// Whether every expected delivery arrived exactly once and in order.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.out_of_order == 0 && self.unexpected == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: &[u64]) -> SeqTracker {
        let mut t = SeqTracker::default();
        for &s in seqs {
            t.record(s);
        }
        t
    }

    #[test]
    fn in_order_stream_is_clean() {
        let t = feed(&[0, 1, 2, 3, 4]);
        let tally = t.finish(5);
        assert!(tally.is_clean());
        assert_eq!(tally.deliveries, 5);
        assert_eq!(tally.expected, 5);
    }

    #[test]
    fn nothing_received_loses_everything_sent() {
        let tally = SeqTracker::default().finish(42);
        assert_eq!(tally.lost, 42);
        assert_eq!(tally.deliveries, 0);
        assert_eq!(SeqTracker::default().finish(0), Tally::default());
    }

    #[test]
    fn gaps_and_missing_tail_are_lost() {
        // 2, 3 and 6 never arrive; 8 and 9 were sent but not received.
        let t = feed(&[0, 1, 4, 5, 7]);
        let tally = t.finish(10);
        assert_eq!(tally.lost, 2 + 1 + 2);
        assert_eq!(tally.missing_at_end, 2);
        assert_eq!(tally.duplicates, 0);
        assert_eq!(tally.out_of_order, 0);
    }

    #[test]
    fn late_arrivals_fill_gaps_and_count_as_out_of_order() {
        let mut t = SeqTracker::default();
        assert_eq!(t.record(0), Arrival::InOrder);
        assert_eq!(t.record(5), Arrival::Gap); // 1..5 missing
        assert_eq!(t.record(3), Arrival::Late); // splits into 1..3 and 4..5
        assert_eq!(t.record(1), Arrival::Late); // front of 1..3
        assert_eq!(t.record(2), Arrival::Late); // closes 2..3
        assert_eq!(t.record(4), Arrival::Late); // closes 4..5
        assert_eq!(t.record(6), Arrival::InOrder);
        let tally = t.finish(7);
        assert_eq!(tally.lost, 0);
        assert_eq!(tally.out_of_order, 4);
        assert_eq!(tally.duplicates, 0);
        assert_eq!(tally.deliveries, 7);
    }

    #[test]
    fn repeats_are_duplicates_not_late() {
        let mut t = SeqTracker::default();
        t.record(0);
        t.record(1);
        assert_eq!(t.record(1), Arrival::Duplicate);
        assert_eq!(t.record(0), Arrival::Duplicate);
        t.record(4);
        t.record(2);
        assert_eq!(t.record(2), Arrival::Duplicate); // already filled
        assert_eq!(t.record(4), Arrival::Duplicate);
        let tally = t.finish(5);
        assert_eq!(tally.duplicates, 4);
        assert_eq!(tally.lost, 1); // 3
        assert_eq!(tally.out_of_order, 1); // 2
        assert_eq!(tally.deliveries, 8);
    }

    #[test]
    fn numbers_never_sent_are_unexpected() {
        let tally = feed(&[0, 1, 2]).finish(2);
        assert_eq!(tally.unexpected, 1);
        assert!(!tally.is_clean());
    }

    #[test]
    fn tallies_add_up() {
        let mut total = Tally::default();
        total.add(&feed(&[0, 2]).finish(3));
        total.add(&feed(&[0, 0]).finish(1));
        assert_eq!(total.expected, 4);
        assert_eq!(total.deliveries, 4);
        assert_eq!(total.lost, 1);
        assert_eq!(total.duplicates, 1);
    }
}
