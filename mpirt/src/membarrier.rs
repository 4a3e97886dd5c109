//! `membarrier(2)`: a full memory barrier run on other threads (or
//! processes) by the kernel, so that their fast path can do without one
//! (asymmetric Dekker). Used by the shared-memory doorbell (global: every
//! rank of the host) and by the progress lock (private: this process).

/// Barriers on the CPUs running any registered process.
pub(crate) const GLOBAL_EXPEDITED: libc::c_long = 1 << 1;
/// Registers this process for [`GLOBAL_EXPEDITED`].
pub(crate) const REGISTER_GLOBAL_EXPEDITED: libc::c_long = 1 << 2;
/// Barriers on the CPUs running this process's threads.
pub(crate) const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
/// Registers this process for [`PRIVATE_EXPEDITED`].
pub(crate) const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;
const QUERY: libc::c_long = 0;

/// Whether the kernel offers `command` and this process could register for
/// it with `register` (false where the kernel lacks it or a seccomp policy
/// refuses it).
pub(crate) fn register(command: libc::c_long, register: libc::c_long) -> bool {
    // SAFETY: membarrier takes two integers and touches no memory.
    let supported = unsafe { libc::syscall(libc::SYS_membarrier, QUERY, 0) };
    if supported <= 0 || supported & command == 0 {
        return false;
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_membarrier, register, 0) == 0 }
}

/// Runs barrier `command` (registered with [`register`]); false if the
/// kernel failed it.
pub(crate) fn barrier(command: libc::c_long) -> bool {
    // SAFETY: membarrier takes two integers and touches no memory.
    unsafe { libc::syscall(libc::SYS_membarrier, command, 0) == 0 }
}
