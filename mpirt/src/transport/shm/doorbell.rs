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
//!
//! The writer's fence is paid on every flush, and it waits until the record
//! has reached the peer's cache; sleeping is rare. So where the kernel
//! offers it, the fence moves to the sleeper (asymmetric Dekker, as in
//! userspace RCU): every rank registers for `membarrier(2)`'s global
//! expedited barrier, a sleeper issues one after announcing itself, which
//! runs a full barrier on every CPU running a registered process, and a
//! writer whose process is registered orders its store and load for the
//! compiler only. A doorbell says whether its owner does this, so a writer
//! never skips its fence for a sleeper that would not make up for it.

use std::sync::atomic::{compiler_fence, fence, AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::membarrier;

/// The doorbell of one segment (one receiving rank).
#[repr(C)]
pub struct Doorbell {
    /// Bumped by every wake-up; the futex word sleepers wait on.
    bell: AtomicU32,
    /// Threads of the owning rank sleeping (or about to) on `bell`.
    sleepers: AtomicU32,
    /// Non-zero when the owner issues a global memory barrier before it
    /// sleeps (see the module doc). Set by the owner before peers map the
    /// segment.
    barrier_on_sleep: AtomicU32,
}

impl Doorbell {
    /// Chooses how sleeps and rings are ordered, before the owner first
    /// sleeps: by the sleeper's global barrier if `asymmetric` and the
    /// kernel allows, else by fences on both sides. A job with more ranks
    /// than cores sleeps often, and each global barrier interrupts every
    /// core running a rank: it keeps the fences.
    pub fn init(&self, asymmetric: bool) {
        let barrier = asymmetric && barriers_registered();
        self.barrier_on_sleep
            .store(u32::from(barrier), Ordering::Relaxed);
    }

    /// Called by a writer after committing records: wakes the owner if it
    /// sleeps.
    pub fn ring(&self) {
        if self.barrier_on_sleep.load(Ordering::Relaxed) != 0 && barriers_registered() {
            // The sleeper's global barrier stands in for our fence: if it
            // runs between our record stores and the load below, it drains
            // them first; if it runs after the load, the sleeper's
            // announcement was visible to it (see `prepare_sleep`).
            compiler_fence(Ordering::SeqCst);
        } else {
            // SeqCst fence: orders the writer's record stores (the ring's
            // Release stamp) before the load of `sleepers` below; pairs
            // with the fence in `prepare_sleep` (Dekker).
            fence(Ordering::SeqCst);
        }
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
        if self.barrier_on_sleep.load(Ordering::Relaxed) != 0 && !global_barrier() {
            // Never seen once registered; writers fence again from now on,
            // and one that skipped its fence just before costs this sleep
            // at most its timeout.
            self.barrier_on_sleep.store(0, Ordering::Relaxed);
        }
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

/// Whether this process is registered for global expedited memory barriers
/// (registers on first use; false where the kernel lacks them or a seccomp
/// policy refuses them).
pub fn barriers_registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        membarrier::register(
            membarrier::GLOBAL_EXPEDITED,
            membarrier::REGISTER_GLOBAL_EXPEDITED,
        )
    })
}

/// Runs a full memory barrier on every CPU that runs a registered process.
fn global_barrier() -> bool {
    membarrier::barrier(membarrier::GLOBAL_EXPEDITED)
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
        let d = Arc::new(Doorbell {
            bell: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            barrier_on_sleep: AtomicU32::new(0),
        });
        d.init(true);
        d
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

    /// A writer publishes values one at a time and rings; a sleeper waits
    /// for each with the announce-check-sleep protocol. A lost wake-up
    /// shows as a sleep that runs into its timeout. (This checks the
    /// protocol works; the store-load reorderings the fences guard against
    /// are too rare to be caught here, which is why the module doc argues
    /// them.)
    fn no_wakeup_is_lost(asymmetric: bool) {
        use std::sync::atomic::AtomicU64;
        const ROUNDS: u64 = 3000;
        let d = bell();
        if !asymmetric {
            d.barrier_on_sleep.store(0, Ordering::Relaxed);
        } else if d.barrier_on_sleep.load(Ordering::Relaxed) == 0 {
            eprintln!("membarrier unavailable here: the fenced protocol only");
        }
        let data = Arc::new(AtomicU64::new(0));
        let ack = Arc::new(AtomicU64::new(0));
        let sleeper = {
            let (d, data, ack) = (d.clone(), data.clone(), ack.clone());
            std::thread::spawn(move || {
                for i in 1..=ROUNDS {
                    while data.load(Ordering::Acquire) < i {
                        let g = d.prepare_sleep();
                        if data.load(Ordering::Acquire) >= i {
                            d.finish_sleep();
                            break;
                        }
                        // Every sleep must end by a wake-up: one that runs
                        // out its timeout was lost. The timeout is long, so
                        // a late schedule on a busy machine is no failure.
                        let timeout = Duration::from_secs(10);
                        let started = Instant::now();
                        d.sleep(g, timeout);
                        d.finish_sleep();
                        if started.elapsed() >= timeout {
                            return Err(i);
                        }
                    }
                    ack.store(i, Ordering::Release);
                }
                Ok(())
            })
        };
        for i in 1..=ROUNDS {
            data.store(i, Ordering::Release);
            d.ring();
            while ack.load(Ordering::Acquire) < i {
                if sleeper.is_finished() {
                    break;
                }
                std::thread::yield_now();
            }
        }
        assert_eq!(sleeper.join().unwrap(), Ok(()), "a wake-up was lost");
    }

    #[test]
    fn no_wakeup_is_lost_with_fences_on_both_sides() {
        no_wakeup_is_lost(false);
    }

    #[test]
    fn no_wakeup_is_lost_with_the_sleepers_global_barrier() {
        no_wakeup_is_lost(true);
    }
}
