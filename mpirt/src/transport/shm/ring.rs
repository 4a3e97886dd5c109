//! A single-producer single-consumer byte ring in shared memory: one
//! sender's "remote buffer" at one receiver.
//!
//! Records are 64-byte aligned and never wrap: one that does not fit before
//! the end of the buffer is preceded by a `WRAP` record that sends the
//! consumer back to the start. A record is
//! ```text
//! offset size
//!      0    8 stamp   written last (Release): says the record is complete
//!      8    1 kind    the user's record kind (WRAP is the ring's own)
//!      9    1 flags   the user's
//!     10    2 zero
//!     12    4 length  bytes of body
//!     16    . body
//! ```
//! Slots are reserved, then committed, as in crossbeam's `start_send`/`write`
//! and MPICH's shm cells: [`Producer::reserve`] hands out room for a body,
//! [`Producer::commit`] publishes it. The consumer polls the stamp word at
//! its own position, so a small message costs one cache-line transfer: the
//! stamp, kind and the first 48 bytes of body share a line. A stamp is a
//! keyed bijective hash of the record's absolute position (which never
//! repeats), so a stamp left from an earlier lap can never match, and stale
//! payload bytes match only by a 2^-64 accident of the ring's random key.
//!
//! Positions are absolute byte counts (u64, never wrapping in practice). The
//! producer keeps its position (`head`) privately; the consumer publishes
//! its position (`tail`) on its own cache line so the producer can tell
//! how much room there is; the producer reads it only when its cached copy
//! says the ring is full. A producer that finds no room raises
//! `producer_waiting`, and a consumer that frees room and sees the flag asks
//! its caller to ring the producer's doorbell.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use crossbeam::utils::CachePadded;

/// Record alignment and the smallest record.
pub const ALIGN: u64 = 64;
/// Bytes before a record's body.
pub const RECORD_HEADER: usize = 16;
/// The ring's own record kind: skip to the start of the buffer.
const WRAP: u8 = 0xff;

/// The shared control words of one ring.
#[repr(C)]
pub struct RingControl {
    /// Consumer position: every record before it has been consumed and its
    /// bytes may be overwritten. Written by the consumer only.
    tail: CachePadded<AtomicU64>,
    /// Non-zero when the producer found no room and wants a doorbell ring
    /// when room is made.
    producer_waiting: CachePadded<AtomicU32>,
}

/// Where a ring lives: its control words and its buffer.
#[derive(Clone, Copy)]
pub struct RingView {
    control: *const RingControl,
    data: *mut u8,
    /// Buffer bytes, a multiple of [`ALIGN`].
    capacity: u64,
    key: u64,
}

// SAFETY: a RingView is addresses in a mapping that its owner (a segment)
// keeps alive; all shared access goes through the protocol above.
unsafe impl Send for RingView {}

impl RingView {
    /// A ring at `control` and `data`.
    ///
    /// # Safety
    /// `control` must point to a `RingControl` and `data` to `capacity`
    /// bytes, both valid for the life of every producer and consumer made
    /// from this view, shared with at most one producer and one consumer.
    pub unsafe fn new(control: *const RingControl, data: *mut u8, capacity: u64, key: u64) -> Self {
        assert!(
            capacity.is_power_of_two() && capacity >= 4 * ALIGN,
            "ring capacity {capacity} is not a power of two of at least {}",
            4 * ALIGN
        );
        RingView {
            control,
            data,
            capacity,
            key,
        }
    }

    fn control(&self) -> &RingControl {
        // SAFETY: valid for the view's life (see `new`).
        unsafe { &*self.control }
    }

    /// The stamp word at `position`.
    fn stamp_at(&self, position: u64) -> &AtomicU64 {
        // SAFETY: the offset is 64-aligned and below capacity, so the word
        // is inside the buffer and 8-aligned (the buffer is page-aligned).
        unsafe { &*(self.data.add(self.offset(position) as usize) as *const AtomicU64) }
    }

    /// Where `position` falls in the buffer. The capacity is a power of
    /// two, so this is a mask, not a division (a 64-bit division costs tens
    /// of cycles, and a small message took several).
    fn offset(&self, position: u64) -> u64 {
        position & (self.capacity - 1)
    }

    fn stamp(&self, position: u64) -> u64 {
        // A bijection of the position: xor with the key, multiply by an odd
        // constant, xor-shift.
        let x = (position ^ self.key).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^ (x >> 29)
    }

    /// Bytes the ring can hold.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }
}

fn record_len(body: usize) -> u64 {
    (RECORD_HEADER as u64 + body as u64).div_ceil(ALIGN) * ALIGN
}

/// The writing end.
pub struct Producer {
    ring: RingView,
    /// Where the next record goes.
    head: u64,
    /// The consumer's position as last read (never ahead of the real one).
    tail: u64,
}

/// Room for one record's body, reserved by [`Producer::reserve`].
pub struct Slot {
    position: u64,
    body: *mut u8,
    len: usize,
}

impl Slot {
    /// The body's bytes.
    pub fn body(&mut self) -> &mut [u8] {
        // SAFETY: the producer reserved these bytes; the consumer will not
        // read them before the commit, nor the producer hand them out twice.
        unsafe { std::slice::from_raw_parts_mut(self.body, self.len) }
    }

    /// The body's first byte.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.body
    }

    /// Body bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Producer {
    /// The producer of a fresh ring (nothing written yet).
    pub fn new(ring: RingView) -> Producer {
        Producer {
            ring,
            head: 0,
            tail: 0,
        }
    }

    /// The largest body a record can have.
    pub fn max_body(&self) -> usize {
        (self.ring.capacity / 2) as usize - RECORD_HEADER
    }

    /// Reserves room for a body of `len` bytes, or returns `None` (and asks
    /// the consumer for a doorbell ring) when the ring is too full.
    pub fn reserve(&mut self, len: usize) -> Option<Slot> {
        self.reserve_between(len, len)
    }

    /// Reserves a body of as many bytes as fit, between `min` and `max`.
    pub fn reserve_between(&mut self, min: usize, max: usize) -> Option<Slot> {
        let max = max.min(self.max_body());
        let min = min.min(max);
        if let Some(slot) = self.try_reserve(min, max) {
            return Some(slot);
        }
        // Acquire: the consumer's reads of the bytes it released happen
        // before our writes into them (pairs with the Release in `publish`).
        self.tail = self.ring.control().tail.load(Ordering::Acquire);
        if let Some(slot) = self.try_reserve(min, max) {
            return Some(slot);
        }
        // Still full: ask for a doorbell ring, then look once more. SeqCst:
        // the flag is visible before the re-read of `tail` (Dekker with the
        // consumer's store of `tail` and load of the flag in `publish`).
        self.ring
            .control()
            .producer_waiting
            .store(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.tail = self.ring.control().tail.load(Ordering::Acquire);
        self.try_reserve(min, max)
    }

    fn try_reserve(&mut self, min: usize, max: usize) -> Option<Slot> {
        let capacity = self.ring.capacity;
        let mut free = capacity - (self.head - self.tail);
        let to_end = capacity - self.ring.offset(self.head);
        if record_len(min) > to_end {
            // Not enough before the end: a WRAP record takes the rest.
            if to_end > free {
                return None;
            }
            self.write_record_header(self.head, WRAP, 0, 0);
            self.publish_stamp(self.head);
            self.head += to_end;
            free -= to_end;
        }
        let to_end = capacity - self.ring.offset(self.head);
        let room = free.min(to_end);
        if record_len(min) > room {
            return None;
        }
        let len = max.min(room as usize - RECORD_HEADER);
        let position = self.head;
        // SAFETY: the record lies in [head, head + record_len) inside the
        // buffer (`to_end`) and in the free part of the ring (`free`).
        let body = unsafe {
            self.ring
                .data
                .add(self.ring.offset(position) as usize + RECORD_HEADER)
        };
        Some(Slot {
            position,
            body,
            len,
        })
    }

    /// Publishes a reserved record whose body is the slot's first `len`
    /// bytes (at most what was reserved).
    pub fn commit(&mut self, slot: Slot, len: usize, kind: u8, flags: u8) {
        debug_assert!(len <= slot.len && kind != WRAP);
        let len = len.min(slot.len);
        self.write_record_header(slot.position, kind, flags, len as u32);
        self.publish_stamp(slot.position);
        self.head = slot.position + record_len(len);
    }

    fn write_record_header(&mut self, position: u64, kind: u8, flags: u8, len: u32) {
        let info = kind as u64 | (flags as u64) << 8 | (len as u64) << 32;
        // SAFETY: word 1 of a reserved record, inside the buffer and
        // 8-aligned; the consumer reads it only after the stamp.
        unsafe {
            (self.ring.data.add(self.ring.offset(position) as usize + 8) as *mut u64).write(info)
        };
    }

    fn publish_stamp(&self, position: u64) {
        // Release: the record's body and info words, written before, are
        // visible to a consumer that loads this stamp with Acquire.
        self.ring
            .stamp_at(position)
            .store(self.ring.stamp(position), Ordering::Release);
    }
}

/// One record, as the consumer sees it.
#[derive(Debug)]
pub struct Record {
    position: u64,
    /// The producer's kind.
    pub kind: u8,
    /// The producer's flags.
    pub flags: u8,
    body: *const u8,
    len: usize,
}

impl Record {
    /// The body's bytes. Valid until the record is released.
    pub fn body(&self) -> &[u8] {
        // SAFETY: committed bytes the producer will not touch before the
        // consumer releases the record (which needs `&mut Consumer`, while
        // this borrow is tied to the record the caller holds).
        unsafe { std::slice::from_raw_parts(self.body, self.len) }
    }
}

/// The ring is corrupt: a record claims more bytes than the buffer holds.
#[derive(Debug)]
pub struct Corrupt(pub String);

/// The reading end.
pub struct Consumer {
    ring: RingView,
    /// Where the next record starts.
    tail: u64,
    /// The position last published to the producer.
    published: u64,
    /// The producer asked for a doorbell ring and a publish made room, but
    /// no caller has been told yet (a publish inside `release`).
    ring_owed: bool,
}

impl Consumer {
    /// The consumer of a fresh ring.
    pub fn new(ring: RingView) -> Consumer {
        Consumer {
            ring,
            tail: 0,
            published: 0,
            ring_owed: false,
        }
    }

    /// The next committed record, if any.
    pub fn peek(&mut self) -> Result<Option<Record>, Corrupt> {
        loop {
            let position = self.tail;
            if !self.has_record() {
                return Ok(None);
            }
            let offset = self.ring.offset(position) as usize;
            // SAFETY: word 1 of a committed record, inside the buffer.
            let info = unsafe { (self.ring.data.add(offset + 8) as *const u64).read() };
            let kind = info as u8;
            if kind == WRAP {
                self.tail += self.ring.capacity - offset as u64;
                continue;
            }
            let len = (info >> 32) as usize;
            if offset + RECORD_HEADER + len > self.ring.capacity as usize {
                return Err(Corrupt(format!(
                    "a record of {len} bytes at offset {offset} overruns the {}-byte ring",
                    self.ring.capacity
                )));
            }
            return Ok(Some(Record {
                position,
                kind,
                flags: (info >> 8) as u8,
                // SAFETY: inside the buffer (checked just above).
                body: unsafe { self.ring.data.add(offset + RECORD_HEADER) },
                len,
            }));
        }
    }

    /// Whether a record (or a wrap) waits at the consumer's position: one
    /// load of the stamp, no side effects. What a spinning wait looks at.
    pub fn has_record(&self) -> bool {
        // Acquire: pairs with the producer's Release store of the stamp;
        // the record's info and body are visible once it matches.
        self.ring.stamp_at(self.tail).load(Ordering::Acquire) == self.ring.stamp(self.tail)
    }

    /// Whether [`Consumer::publish_if_useful`] would do anything: a
    /// doorbell ring is owed, or the producer asked for room and there is
    /// room to hand back (a request met by the producer's own second look
    /// stays raised until then, and must not count).
    pub fn wants_publish(&self) -> bool {
        // Relaxed: a hint, as in `publish_if_useful`.
        self.ring_owed
            || (self.tail != self.published
                && self.ring.control().producer_waiting.load(Ordering::Relaxed) != 0)
    }

    /// Consumes `record` (the one [`Consumer::peek`] returned). Its bytes
    /// go back to the producer at the next [`Consumer::publish`].
    pub fn release(&mut self, record: Record) {
        debug_assert_eq!(record.position, self.tail);
        self.tail = record.position + record_len(record.len);
        if self.tail - self.published >= self.ring.capacity / 4 {
            // Large amounts go back at once, so a pipelined sender keeps
            // going while we copy. A producer asleep for room is woken by
            // the caller's next `publish_if_useful` or `publish`.
            self.ring_owed |= self.publish();
        }
    }

    /// Hands consumed bytes back if the producer is short of room (it
    /// asked), or a quarter of the ring waits; saves the fence of
    /// [`Consumer::publish`] otherwise. Returns whether the producer asked
    /// for a doorbell ring. Call [`Consumer::publish`] before sleeping: a
    /// request for room seen late by this relaxed check is then seen.
    pub fn publish_if_useful(&mut self) -> bool {
        // Relaxed: a hint; `publish` orders what matters.
        let asked = self.ring.control().producer_waiting.load(Ordering::Relaxed) != 0;
        let owed = std::mem::take(&mut self.ring_owed);
        if asked || self.tail - self.published >= self.ring.capacity / 4 {
            self.publish() || owed
        } else {
            owed
        }
    }

    /// Hands consumed bytes back to the producer. Returns whether the
    /// producer asked for a doorbell ring.
    pub fn publish(&mut self) -> bool {
        if self.published == self.tail {
            return std::mem::take(&mut self.ring_owed);
        }
        self.published = self.tail;
        let control = self.ring.control();
        // Release: our reads of the released records happen before the
        // producer's writes into them (pairs with its Acquire load).
        control.tail.store(self.tail, Ordering::Release);
        // SeqCst fence: the new tail is visible before we read the flag
        // (Dekker with the producer's store of the flag and re-read of tail).
        fence(Ordering::SeqCst);
        if control.producer_waiting.load(Ordering::Relaxed) != 0 {
            // Relaxed: the fence above orders it; a lost race only costs
            // the producer one spare ring.
            control.producer_waiting.store(0, Ordering::Relaxed);
            self.ring_owed = false;
            return true;
        }
        std::mem::take(&mut self.ring_owed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring in ordinary memory.
    struct TestRing {
        _control: Box<RingControl>,
        _data: Vec<u64>,
        view: RingView,
    }

    fn ring(capacity: usize, key: u64) -> TestRing {
        let control = Box::new(RingControl {
            tail: CachePadded::new(AtomicU64::new(0)),
            producer_waiting: CachePadded::new(AtomicU32::new(0)),
        });
        // u64s: 8-aligned, which is all the ring needs for its words.
        let mut data = vec![0u64; capacity / 8];
        // SAFETY: both live as long as the TestRing, which outlives the
        // producer and consumer in each test.
        let view = unsafe {
            RingView::new(
                &*control,
                data.as_mut_ptr() as *mut u8,
                capacity as u64,
                key,
            )
        };
        TestRing {
            _control: control,
            _data: data,
            view,
        }
    }

    fn send(p: &mut Producer, bytes: &[u8], kind: u8) -> bool {
        match p.reserve(bytes.len()) {
            Some(mut slot) => {
                slot.body()[..bytes.len()].copy_from_slice(bytes);
                p.commit(slot, bytes.len(), kind, 7);
                true
            }
            None => false,
        }
    }

    fn take(c: &mut Consumer) -> Option<(u8, Vec<u8>)> {
        let r = c.peek().unwrap()?;
        let out = (r.kind, r.body().to_vec());
        assert_eq!(r.flags, 7);
        c.release(r);
        Some(out)
    }

    #[test]
    fn records_come_out_in_order_across_wraps() {
        let r = ring(1024, 99);
        let (mut p, mut c) = (Producer::new(r.view), Consumer::new(r.view));
        for i in 0..1000usize {
            let body = vec![i as u8; i % 200];
            assert!(send(&mut p, &body, (i % 10) as u8));
            assert_eq!(take(&mut c), Some(((i % 10) as u8, body)));
            c.publish();
        }
        assert_eq!(take(&mut c), None);
    }

    #[test]
    fn a_full_ring_refuses_until_the_consumer_publishes() {
        let r = ring(1024, 5);
        let (mut p, mut c) = (Producer::new(r.view), Consumer::new(r.view));
        let mut sent = 0;
        while send(&mut p, &[1; 100], 1) {
            sent += 1;
        }
        assert_eq!(sent, 1024 / 128);
        assert!(take(&mut c).is_some());
        // Consumed but not published: still full.
        assert!(!send(&mut p, &[1; 100], 1));
        assert!(c.publish(), "the producer asked for a ring");
        assert!(send(&mut p, &[1; 100], 1));
    }

    #[test]
    fn a_request_for_room_met_inside_release_is_still_reported() {
        let r = ring(1024, 6);
        let (mut p, mut c) = (Producer::new(r.view), Consumer::new(r.view));
        while send(&mut p, &[1; 100], 1) {}
        // The producer has asked for a ring. Releasing a quarter of the ring
        // publishes inside `release`; the request must survive until the
        // caller asks, or a sleeping producer would never be woken.
        assert!(take(&mut c).is_some());
        assert!(take(&mut c).is_some());
        assert!(c.publish_if_useful(), "the producer's request was lost");
        assert!(!c.publish_if_useful(), "reported twice");
        assert!(send(&mut p, &[1; 100], 1));
    }

    #[test]
    fn reserve_between_takes_what_fits() {
        let r = ring(1024, 5);
        let mut p = Producer::new(r.view);
        // At most half the ring per record.
        let slot = p.reserve_between(10, 5000).unwrap();
        assert_eq!(slot.len(), 512 - RECORD_HEADER);
        p.commit(slot, 300, 1, 0);
        let slot = p.reserve_between(10, 5000).unwrap();
        assert_eq!(slot.len(), 512 - RECORD_HEADER);
        p.commit(slot, 512 - RECORD_HEADER, 1, 0);
        // Then what is left.
        let slot = p.reserve_between(10, 5000).unwrap();
        assert_eq!(slot.len(), 1024 - 320 - 512 - RECORD_HEADER);
    }

    #[test]
    fn stale_stamps_from_earlier_laps_never_match() {
        let r = ring(256, 1234);
        let (mut p, mut c) = (Producer::new(r.view), Consumer::new(r.view));
        for lap in 0..50u8 {
            for _ in 0..4 {
                assert!(send(&mut p, &[lap; 40], 2));
            }
            for _ in 0..4 {
                assert_eq!(take(&mut c), Some((2, vec![lap; 40])));
            }
            // Everything is consumed: the old stamps under the consumer's
            // position must not look new.
            assert_eq!(take(&mut c), None);
            c.publish();
        }
    }

    #[test]
    fn a_corrupt_length_is_an_error_not_a_read_out_of_bounds() {
        let r = ring(256, 1);
        let (mut p, mut c) = (Producer::new(r.view), Consumer::new(r.view));
        assert!(send(&mut p, &[0; 8], 1));
        // Overwrite the length with garbage.
        // SAFETY: word 1 of the first record, inside the test buffer.
        unsafe { (r.view.data.add(8) as *mut u64).write(1 | (1 << 40)) };
        assert!(c.peek().is_err());
    }

    #[test]
    fn two_threads_move_a_million_records_intact() {
        /// Stops and joins the producer before the ring's memory is freed,
        /// also when the consumer's assertions fail (it is declared after
        /// the ring, so it drops first).
        struct JoinOnDrop {
            stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
            producer: Option<std::thread::JoinHandle<()>>,
        }
        impl Drop for JoinOnDrop {
            fn drop(&mut self) {
                self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
                if let Some(producer) = self.producer.take() {
                    let finished = producer.join();
                    if !std::thread::panicking() {
                        finished.expect("producer thread");
                    }
                }
            }
        }
        let r = ring(4096, 0xfeed);
        let (mut p, mut c) = (Producer::new(r.view), Consumer::new(r.view));
        const N: u64 = 1_000_000;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let producer_stop = stop.clone();
        let _producer = JoinOnDrop {
            stop,
            producer: Some(std::thread::spawn(move || {
                let mut i = 0u64;
                while i < N && !producer_stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let len = (i % 37) as usize * 8 + 8;
                    match p.reserve(len) {
                        Some(mut slot) => {
                            for (k, chunk) in slot.body()[..len].chunks_exact_mut(8).enumerate() {
                                chunk.copy_from_slice(&(i + k as u64).to_le_bytes());
                            }
                            p.commit(slot, len, 3, 7);
                            i += 1;
                        }
                        // Yield, not spin: on an oversubscribed machine the
                        // consumer may need this core to make room.
                        None => std::thread::yield_now(),
                    }
                }
            })),
        };
        let mut i = 0u64;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while i < N {
            assert!(std::time::Instant::now() < deadline, "stalled at {i}");
            let Some(record) = c.peek().unwrap() else {
                c.publish();
                std::thread::yield_now();
                continue;
            };
            let len = (i % 37) as usize * 8 + 8;
            assert_eq!(record.body().len(), len);
            for (k, chunk) in record.body().chunks_exact(8).enumerate() {
                assert_eq!(u64::from_le_bytes(chunk.try_into().unwrap()), i + k as u64);
            }
            c.release(record);
            i += 1;
        }
    }
}
