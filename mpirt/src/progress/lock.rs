//! The progress lock: a mutex biased to one thread, so that a program that
//! calls mpirt from one thread (most do) locks and unlocks with plain loads
//! and stores.
//!
//! Why: a parking_lot lock or unlock is an atomic read-modify-write, and on
//! x86 one waits until every earlier store of this core has reached its
//! cache line. Right after a message is written into a peer's ring, that is
//! a cache-line transfer (30 to 160 ns here), paid on every call; an 8-byte
//! ping-pong took 1.15 times as long with the lock as without it.
//!
//! How (asymmetric Dekker, as in biased locking of JVMs and in userspace
//! RCU): the owner, the thread that made the mutex, enters by storing
//! `owner_inside = true` and loading `unbiased`, with no fence between. Any
//! other thread, the first time it locks, takes the inner parking_lot
//! mutex, stores `unbiased = true` and runs `membarrier(2)`'s private
//! expedited barrier, which puts a full fence on every thread of the
//! process: after it, either the owner's store is visible (the other thread
//! then waits for the owner to leave) or the owner's next load sees
//! `unbiased` (and it takes the inner mutex too). From then on every thread,
//! the owner included, takes the inner mutex: the bias is given up once and
//! for all, so a program with several calling threads pays one barrier, not
//! one per lock. Where the kernel has no private expedited barrier there is
//! no bias from the start.

use std::cell::Cell;
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use parking_lot::{Mutex, MutexGuard};

use crate::membarrier;

/// A mutex that its creating thread locks without atomic read-modify-writes
/// until another thread locks it (see the module doc).
pub struct BiasedMutex<T> {
    /// The owner holds the lock through the fast path. Written by the owner
    /// only.
    owner_inside: AtomicBool,
    /// Another thread has locked once: everyone takes `inner` from now on.
    unbiased: AtomicBool,
    /// The owner's thread id (see [`thread_id`]).
    owner: u64,
    inner: Mutex<()>,
    value: UnsafeCell<T>,
}

// SAFETY: the protocol above gives one thread at a time access to the value,
// and hands it over with Release/Acquire pairs (or the inner mutex); the
// value itself only needs to be sendable between threads.
unsafe impl<T: Send> Sync for BiasedMutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for BiasedMutex<T> {}

/// Access to the value; unlocks when dropped.
pub struct BiasedGuard<'a, T> {
    mutex: &'a BiasedMutex<T>,
    /// The inner mutex's guard, when held that way.
    inner: Option<MutexGuard<'a, ()>>,
    /// Held by the owner's fast path.
    fast: bool,
    /// A fast-path guard must be dropped by the owner's thread.
    _not_send: PhantomData<*const ()>,
}

/// A number for this thread, never given to another in this process
/// (a thread-local address could pass to a later thread).
fn thread_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static ID: Cell<u64> = const { Cell::new(0) };
    }
    ID.with(|id| {
        if id.get() == 0 {
            // Relaxed: only uniqueness matters.
            id.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        id.get()
    })
}

impl<T> BiasedMutex<T> {
    /// A mutex biased to the calling thread, where the kernel allows.
    pub fn new(value: T) -> BiasedMutex<T> {
        BiasedMutex::with_bias(value, private_barriers_registered())
    }

    /// A mutex biased to the calling thread if `biased` (which needs
    /// [`private_barriers_registered`]), else a plain one.
    fn with_bias(value: T, biased: bool) -> BiasedMutex<T> {
        debug_assert!(!biased || private_barriers_registered());
        BiasedMutex {
            owner_inside: AtomicBool::new(false),
            unbiased: AtomicBool::new(!biased),
            owner: thread_id(),
            inner: Mutex::new(()),
            value: UnsafeCell::new(value),
        }
    }

    /// Locks, waiting for another holder to leave. Locking twice from one
    /// thread is a bug: the owner's fast path panics, others deadlock (as
    /// parking_lot does).
    #[inline]
    pub fn lock(&self) -> BiasedGuard<'_, T> {
        // Acquire (both loads of `unbiased`): pairs with the Release store
        // of the thread that gave the bias up (nothing to see, but cheap).
        if !self.unbiased.load(Ordering::Acquire) && thread_id() == self.owner {
            // Relaxed: only this thread writes it.
            assert!(
                !self.owner_inside.load(Ordering::Relaxed),
                "BiasedMutex locked twice by its owner"
            );
            // Relaxed, and no fence before the load below: that is the
            // point. The revoking thread's barrier orders the two (module
            // doc).
            self.owner_inside.store(true, Ordering::Relaxed);
            compiler_fence(Ordering::SeqCst);
            if !self.unbiased.load(Ordering::Acquire) {
                return BiasedGuard {
                    mutex: self,
                    inner: None,
                    fast: true,
                    _not_send: PhantomData,
                };
            }
            // Release: what we did last time is visible to the thread that
            // waits for us to leave.
            self.owner_inside.store(false, Ordering::Release);
        }
        self.lock_inner()
    }

    #[cold]
    fn lock_inner(&self) -> BiasedGuard<'_, T> {
        let inner = self.inner.lock();
        if !self.unbiased.load(Ordering::Acquire) {
            // The first lock by a thread other than the owner: give the bias
            // up. Only the owner's fast path can hold the lock now.
            self.unbiased.store(true, Ordering::Release);
            private_barrier();
            // Acquire: pairs with the owner's Release store when it leaves,
            // so its writes to the value are visible to us.
            while self.owner_inside.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
        }
        BiasedGuard {
            mutex: self,
            inner: Some(inner),
            fast: false,
            _not_send: PhantomData,
        }
    }
}

impl<'a, T> BiasedGuard<'a, T> {
    /// Lets a thread that waits for the lock have it, then takes it back
    /// (parking_lot's `MutexGuard::bump`). On the owner's fast path only a
    /// thread giving the bias up can wait: it gets the lock as well.
    pub fn bump(guard: &mut Self) {
        match &mut guard.inner {
            Some(inner) => MutexGuard::bump(inner),
            None => {
                if guard.mutex.unbiased.load(Ordering::Relaxed) {
                    BiasedGuard::unlocked(guard, || ());
                }
            }
        }
    }

    /// Unlocks, runs `f`, and locks again (also when `f` panics, so the
    /// guard never outlives its hold).
    pub fn unlocked<R>(guard: &mut Self, f: impl FnOnce() -> R) -> R {
        /// Takes the lock back into the guard when dropped.
        struct Relock<'g, 'a, T>(&'g mut BiasedGuard<'a, T>);
        impl<T> Drop for Relock<'_, '_, T> {
            fn drop(&mut self) {
                let mut relocked = self.0.mutex.lock();
                // The new hold moves into the guard; `relocked` is left
                // holding nothing, so dropping it unlocks nothing.
                self.0.inner = relocked.inner.take();
                self.0.fast = std::mem::take(&mut relocked.fast);
            }
        }
        guard.release();
        let _relock = Relock(guard);
        f()
    }

    /// Leaves the lock, if held (once released, the guard holds nothing
    /// and dropping it does nothing).
    fn release(&mut self) {
        if std::mem::take(&mut self.fast) {
            // Release: our writes to the value are visible to the next
            // holder (pairs with its Acquire loads).
            self.mutex.owner_inside.store(false, Ordering::Release);
        }
        drop(self.inner.take());
    }
}

impl<T> Drop for BiasedGuard<'_, T> {
    fn drop(&mut self) {
        self.release();
    }
}

impl<T> Deref for BiasedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock (module doc).
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T> DerefMut for BiasedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock (module doc).
        unsafe { &mut *self.mutex.value.get() }
    }
}

/// Whether this process is registered for private expedited barriers
/// (registers on first use; `MPIRT_BIASED_LOCK=0` refuses them, for tests
/// of the unbiased path).
fn private_barriers_registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        std::env::var_os("MPIRT_BIASED_LOCK").is_none_or(|v| v != "0")
            && membarrier::register(
                membarrier::PRIVATE_EXPEDITED,
                membarrier::REGISTER_PRIVATE_EXPEDITED,
            )
    })
}

/// A full memory barrier on every running thread of this process.
fn private_barrier() {
    for _ in 0..100 {
        if membarrier::barrier(membarrier::PRIVATE_EXPEDITED) {
            return;
        }
        // Registered before any mutex was biased (`new`); the kernel may
        // still fail to allocate its CPU mask (ENOMEM): try again.
        std::thread::yield_now();
    }
    // `unbiased` is visible already: without the barrier the owner may be
    // inside unseen, and no unwinding can make that safe.
    eprintln!("mpirt: membarrier(PRIVATE_EXPEDITED) keeps failing; aborting");
    std::process::abort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_owner_locks_by_the_fast_path_until_another_thread_locks() {
        let mutex = Arc::new(BiasedMutex::new(0u64));
        let biased = private_barriers_registered();
        {
            let mut guard = mutex.lock();
            *guard += 1;
            assert_eq!(guard.fast, biased);
        }
        let other = Arc::clone(&mutex);
        std::thread::spawn(move || *other.lock() += 1)
            .join()
            .unwrap();
        let guard = mutex.lock();
        assert!(
            !guard.fast && guard.inner.is_some(),
            "the bias was not given up"
        );
        assert_eq!(*guard, 2);
    }

    /// A critical section that loses updates if two threads overlap: it
    /// reads, dawdles, then writes.
    fn add_one(guard: &mut BiasedGuard<'_, (u64, bool)>) {
        assert!(!guard.1, "two holders at once");
        guard.1 = true;
        let seen = guard.0;
        for i in 0..20u64 {
            std::hint::black_box(i);
        }
        guard.0 = seen + 1;
        guard.1 = false;
    }

    #[test]
    fn threads_never_hold_it_at_once() {
        never_two_holders(private_barriers_registered());
    }

    #[test]
    fn threads_never_hold_it_at_once_without_bias() {
        never_two_holders(false);
    }

    fn never_two_holders(biased: bool) {
        // The moment of danger is the first lock by another thread while
        // the owner goes in and out by the fast path: run it many times.
        for _ in 0..300 {
            let mutex = Arc::new(BiasedMutex::with_bias((0u64, false), biased));
            let go = Arc::new(AtomicBool::new(false));
            let others: Vec<_> = (0..2)
                .map(|_| {
                    let (mutex, go) = (Arc::clone(&mutex), Arc::clone(&go));
                    std::thread::spawn(move || {
                        while !go.load(Ordering::Relaxed) {
                            std::hint::spin_loop();
                        }
                        for _ in 0..50 {
                            add_one(&mut mutex.lock());
                        }
                    })
                })
                .collect();
            for i in 0..2_000 {
                if i == 10 {
                    go.store(true, Ordering::Relaxed);
                }
                let mut guard = mutex.lock();
                add_one(&mut guard);
                if i % 500 == 0 {
                    BiasedGuard::bump(&mut guard);
                    BiasedGuard::unlocked(&mut guard, std::thread::yield_now);
                }
            }
            for other in others {
                other.join().unwrap();
            }
            assert_eq!(mutex.lock().0, 2_000 + 2 * 50);
        }
    }

    #[test]
    fn the_owner_locking_twice_panics() {
        if !private_barriers_registered() {
            eprintln!("no private membarrier here: no fast path to check");
            return;
        }
        let mutex = BiasedMutex::new(0);
        let first = mutex.lock();
        let second = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drop(mutex.lock());
        }));
        let message = second.expect_err("a second lock by the owner went through");
        assert!(
            message
                .downcast_ref::<&str>()
                .is_some_and(|m| m.contains("locked twice")),
            "panicked for another reason"
        );
        assert!(first.fast, "the first hold was disturbed");
    }

    #[test]
    fn a_panic_inside_unlocked_leaves_the_guard_holding_the_lock() {
        let mutex = BiasedMutex::new(0);
        let mut guard = mutex.lock();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            BiasedGuard::unlocked(&mut guard, || panic!("inside"))
        }));
        assert!(caught.is_err());
        assert!(guard.fast || guard.inner.is_some(), "guard without a hold");
    }

    #[test]
    fn unlocked_runs_without_the_lock_and_takes_it_back() {
        let mutex = Arc::new(BiasedMutex::new(1u32));
        let mut guard = mutex.lock();
        let other = Arc::clone(&mutex);
        let seen = BiasedGuard::unlocked(&mut guard, || {
            std::thread::spawn(move || {
                let mut g = other.lock();
                *g += 1;
                *g
            })
            .join()
            .unwrap()
        });
        assert_eq!((seen, *guard), (2, 2));
    }
}
