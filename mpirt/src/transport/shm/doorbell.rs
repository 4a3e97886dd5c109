//! The doorbell: a futex word in a rank's segment that lets it sleep until
//! a peer writes to one of its rings.
//!
//! A sleeper announces itself in `sleepers`, checks its rings once more, and
//! sleeps on `bell` with FUTEX_WAIT only if the bell still shows the
//! generation it read before announcing. A writer, after committing
//! records, reads `sleepers` and only then pays for FUTEX_WAKE: a rank that
//! is awake costs its peers one fence and one load per flush. The two sides
//! form Dekker's pattern (each stores, fences, then loads what the other
//! stores), so either the sleeper sees the record or the writer sees the
//! sleeper. The futexes are shared (no FUTEX_PRIVATE_FLAG): the word lives in
//! memory mapped by several processes.

use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::Duration;

/// The doorbell of one segment (one receiving rank).
#[repr(C)]
pub struct Doorbell {
    /// Bumped by every wake-up; the futex word sleepers wait on.
    bell: AtomicU32,
    /// Threads of the owning rank sleeping (or about to) on `bell`.
    sleepers: AtomicU32,
}

impl Doorbell {
    /// Called by a writer after committing records: wakes the owner if it
    /// sleeps.
    pub fn ring(&self) {
        // SeqCst fence: orders the writer's record stores (the ring's
        // Release stamp) before the load of `sleepers` below; pairs with the
        // fence in `prepare_sleep` (Dekker).
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            // Release: a sleeper that sees the new generation also sees the
            // records committed before it.
            self.bell.fetch_add(1, Ordering::Release);
            futex_wake(&self.bell);
        }
    }

    /// Announces a sleeper. Returns the generation to pass to
    /// [`Doorbell::sleep`]; the caller must check its rings after this and
    /// call [`Doorbell::finish_sleep`] in any case.
    pub fn prepare_sleep(&self) -> u32 {
        // Acquire: pairs with the Release increment in `ring`.
        let generation = self.bell.load(Ordering::Acquire);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        // SeqCst fence: the announcement is visible before the caller's
        // check of its rings (pairs with the fence in `ring`).
        fence(Ordering::SeqCst);
        generation
    }

    /// Sleeps until the bell moves past `generation` or `timeout` passes.
    /// Returns whether it was rung.
    pub fn sleep(&self, generation: u32, timeout: Duration) -> bool {
        futex_wait(&self.bell, generation, timeout);
        // Acquire: pairs with the Release increment in `ring`.
        self.bell.load(Ordering::Acquire) != generation
    }

    /// Ends what [`Doorbell::prepare_sleep`] started.
    pub fn finish_sleep(&self) {
        // Relaxed: only a hint for writers; a stale non-zero costs them one
        // spare wake-up.
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// FUTEX_WAIT on a shared word; returns on wake-up, timeout, a changed value
/// or a signal (callers re-check their condition in every case).
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned u32 in a shared mapping; the
    // timespec lives across the call; FUTEX_WAIT reads the word only.
    let _ = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &timeout as *const libc::timespec,
            std::ptr::null::<u32>(),
            0,
        )
    };
}

/// FUTEX_WAKE of every sleeper on a shared word.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE does not access it.
    let _ = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    fn bell() -> Arc<Doorbell> {
        Arc::new(Doorbell {
            bell: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
        })
    }

    #[test]
    fn a_ring_wakes_a_sleeper_long_before_its_timeout() {
        let d = bell();
        let sleeper = {
            let d = d.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let g = d.prepare_sleep();
                d.sleep(g, Duration::from_secs(10));
                d.finish_sleep();
                started.elapsed()
            })
        };
        while d.sleepers.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(20));
        d.ring();
        assert!(sleeper.join().unwrap() < Duration::from_secs(5));
    }

    #[test]
    fn a_ring_between_prepare_and_sleep_is_not_lost() {
        let d = bell();
        let g = d.prepare_sleep();
        d.ring();
        let started = Instant::now();
        d.sleep(g, Duration::from_secs(10));
        d.finish_sleep();
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
