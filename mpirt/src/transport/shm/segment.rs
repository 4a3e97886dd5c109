//! A rank's segment: the shared memory its peers on the host write into.
//!
//! ```text
//! offset                 size
//!      0                 128       SegmentHeader (magic last, Release)
//!    256                 128       Doorbell
//!   4096                 256 × n   RingControl of the ring from each rank
//!   data = page-aligned  cap × n   ring buffers, one per sending rank
//! ```
//! Ring `i` carries what rank `i` sends to the owner (rings of ranks on other
//! hosts, and the owner's own, stay untouched and so cost no memory).
//!
//! Lifecycle: the owner creates the segment (`shm_open` with `O_EXCL`, mode
//! 0600, named `/mpirt-<pid namespace>-<pid>-<random>`) before the first PMI
//! fence and publishes the name in its business card; peers map it after
//! that fence; after a second fence the owner unlinks it, so nothing stays
//! in `/dev/shm` however the job ends. Between creation and unlink, SIGTERM
//! (how launchers stop a job whose rank died at start-up), SIGINT and SIGHUP
//! unlink it too, and a parent-death signal of SIGKILL (what `mpirun` asks
//! for) becomes SIGTERM, so a launcher killed with SIGKILL leaves nothing;
//! what SIGKILL of the rank itself leaves in that window is swept by the
//! next segment created on the node (a segment whose creator is gone).

use std::ffi::{CStr, CString};
use std::io::{self, Read};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use super::doorbell::Doorbell;
use super::ring::{RingControl, RingView, ALIGN};

const MAGIC: u64 = u64::from_le_bytes(*b"mpirtSHM");
const VERSION: u32 = 1;
const DOORBELL_OFFSET: usize = 256;
const CONTROLS_OFFSET: usize = 4096;
const PAGE: usize = 4096;

#[repr(C)]
struct SegmentHeader {
    /// [`MAGIC`] once every other field is written.
    magic: AtomicU64,
    version: u32,
    ranks: u32,
    ring_capacity: u64,
    /// Random; keys the rings' stamps.
    key: u64,
}

/// The byte layout of a segment for `ranks` rings of `capacity` bytes.
fn layout(ranks: usize, capacity: usize) -> (usize, usize) {
    let stride = std::mem::size_of::<RingControl>();
    let data = (CONTROLS_OFFSET + ranks * stride).div_ceil(PAGE) * PAGE;
    (data, data + ranks * capacity)
}

/// A mapped segment (this rank's, or a peer's).
pub struct Segment {
    base: *mut u8,
    len: usize,
    name: String,
    /// Created by this process and not unlinked yet.
    owned_name: Option<CString>,
    ranks: usize,
    capacity: usize,
    key: u64,
}

// SAFETY: the mapping is shared memory accessed only through atomics and the
// ring protocol; the struct itself is plain addresses.
unsafe impl Send for Segment {}
// SAFETY: as above: `&Segment` hands out only atomics and ring views.
unsafe impl Sync for Segment {}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn random_u64() -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// Maps `len` bytes of `fd` shared and read-write.
fn map(fd: libc::c_int, len: usize) -> io::Result<*mut u8> {
    // SAFETY: a fresh mapping at an address the kernel picks; no existing
    // memory is affected.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(base.cast())
}

impl Segment {
    /// Creates this rank's segment with a ring of `capacity` bytes (a
    /// multiple of 4096) for each of `ranks` senders.
    pub fn create(ranks: usize, capacity: usize) -> io::Result<Segment> {
        assert!(capacity.is_multiple_of(PAGE) && capacity >= PAGE);
        sweep_stale();
        let name = format!(
            "/mpirt-{}-{}-{:016x}",
            pid_namespace(),
            std::process::id(),
            random_u64()?
        );
        let key = random_u64()?;
        let c_name = CString::new(name.clone()).expect("no NUL in the name");
        // Armed before the file exists: a signal between its creation and
        // the arming would leave it behind.
        unlink_on_sigterm(&c_name);
        // SAFETY: a NUL-terminated name; O_EXCL: we never reuse a file.
        let fd = match check(unsafe {
            libc::shm_open(
                c_name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                0o600 as libc::mode_t,
            )
        }) {
            Ok(fd) => fd,
            Err(e) => {
                forget_sigterm_name();
                return Err(e);
            }
        };
        let (_, len) = layout(ranks, capacity);
        let mapped = (|| {
            // SAFETY: our descriptor; fchmod in case the umask widened
            // nothing but the mode must be exact.
            check(unsafe { libc::fchmod(fd, 0o600) })?;
            // SAFETY: our descriptor.
            check(unsafe { libc::ftruncate(fd, len as libc::off_t) })?;
            map(fd, len)
        })();
        // SAFETY: our descriptor, closed once; the mapping keeps the memory.
        unsafe { libc::close(fd) };
        let base = match mapped {
            Ok(base) => base,
            Err(e) => {
                // SAFETY: the name we created.
                unsafe { libc::shm_unlink(c_name.as_ptr()) };
                forget_sigterm_name();
                return Err(e);
            }
        };
        let segment = Segment {
            base,
            len,
            name: name[1..].to_string(),
            owned_name: Some(c_name),
            ranks,
            capacity,
            key,
        };
        // SAFETY: the header at offset 0 of a fresh, zeroed, page-aligned
        // mapping of at least a page; nobody else has it yet.
        let header = unsafe { &mut *(base as *mut SegmentHeader) };
        header.version = VERSION;
        header.ranks = ranks as u32;
        header.ring_capacity = capacity as u64;
        header.key = key;
        // Release: a peer that sees the magic (Acquire) sees every field.
        header.magic.store(MAGIC, Ordering::Release);
        Ok(segment)
    }

    /// Maps a peer's segment by the name in its business card.
    pub fn open(name: &str, ranks: usize) -> io::Result<Segment> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        if !name.starts_with("mpirt-") || name.contains('/') || name.len() > 200 {
            return Err(invalid(format!("{name:?} is not a segment name")));
        }
        let c_name = CString::new(format!("/{name}"))
            .map_err(|_| invalid(format!("{name:?} is not a segment name")))?;
        // SAFETY: a NUL-terminated name.
        let fd =
            check(unsafe { libc::shm_open(c_name.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0) })?;
        let result = (|| {
            // SAFETY: an all-zero stat is a valid value to be overwritten.
            let mut stat: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: our descriptor and a stat to fill.
            check(unsafe { libc::fstat(fd, &mut stat) })?;
            let len = stat.st_size as usize;
            if len < CONTROLS_OFFSET {
                return Err(invalid(format!(
                    "segment {name} is too short ({len} bytes)"
                )));
            }
            let base = map(fd, len)?;
            let mut segment = Segment {
                base,
                len,
                name: name.to_string(),
                owned_name: None,
                ranks: 0,
                capacity: 0,
                key: 0,
            };
            // SAFETY: the header lies in the first page of the mapping.
            let header = unsafe { &*(base as *const SegmentHeader) };
            // Acquire: pairs with the creator's Release of the magic.
            if header.magic.load(Ordering::Acquire) != MAGIC || header.version != VERSION {
                return Err(invalid(format!("segment {name} has no mpirt header")));
            }
            let capacity = header.ring_capacity as usize;
            if header.ranks as usize != ranks
                || !capacity.is_power_of_two()
                || capacity < PAGE
                || layout(ranks, capacity).1 > len
            {
                return Err(invalid(format!(
                    "segment {name} does not fit a job of {ranks} ranks"
                )));
            }
            segment.ranks = ranks;
            segment.capacity = capacity;
            segment.key = header.key;
            Ok(segment)
        })();
        // SAFETY: our descriptor, closed once.
        unsafe { libc::close(fd) };
        result
    }

    /// The name as published (without the leading slash).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Removes the name from `/dev/shm` (owner only; later calls do nothing).
    /// Mappings stay valid.
    pub fn unlink(&mut self) -> io::Result<()> {
        if let Some(name) = self.owned_name.take() {
            // Unlink first, then disarm: a signal between the two (a
            // launcher's death ends start-up with both an end of file and
            // SIGTERM) must still find the name to unlink. Seen: 1 in 10.
            // SAFETY: the NUL-terminated name we created.
            let unlinked = check(unsafe { libc::shm_unlink(name.as_ptr()) });
            forget_sigterm_name();
            unlinked?;
        }
        Ok(())
    }

    /// The owner's doorbell.
    pub fn doorbell(&self) -> &Doorbell {
        // SAFETY: inside the first page of the mapping, aligned, and a
        // Doorbell is plain atomics (all-zero is its initial state).
        unsafe { &*(self.base.add(DOORBELL_OFFSET) as *const Doorbell) }
    }

    /// The ring carrying what `sender` sends to the owner.
    pub fn ring(&self, sender: usize) -> RingView {
        assert!(sender < self.ranks);
        let (data, _) = layout(self.ranks, self.capacity);
        let stride = std::mem::size_of::<RingControl>();
        // SAFETY: the control block and the buffer lie inside the mapping
        // (`layout` was checked against its length); the mapping lives as
        // long as this segment, and callers keep the segment alive as long
        // as the view (links hold an `Arc<Segment>`).
        unsafe {
            RingView::new(
                self.base.add(CONTROLS_OFFSET + sender * stride) as *const RingControl,
                self.base.add(data + sender * self.capacity),
                self.capacity as u64,
                self.key ^ (sender as u64).wrapping_mul(0x2545_f491_4f6c_dd1d),
            )
        }
    }

    /// Bytes per ring.
    pub fn ring_capacity(&self) -> usize {
        self.capacity
    }

    /// Maps the pages of `sender`'s ring into this process now, for
    /// writing or for reading, so that messages do not pay a page fault
    /// each time they reach a page for the first time. Only while the
    /// segment's rings together stay within [`POPULATE_LIMIT`] (beyond,
    /// pages are used as they are touched, which pairs that never talk do
    /// not). Changes no byte; best effort (MADV_POPULATE_* is Linux 5.14).
    pub fn populate(&self, sender: usize, write: bool) {
        if self.capacity * self.ranks > POPULATE_LIMIT {
            return;
        }
        let (data, _) = layout(self.ranks, self.capacity);
        let advice = if write {
            libc::MADV_POPULATE_WRITE
        } else {
            libc::MADV_POPULATE_READ
        };
        // SAFETY: a page-aligned range inside our mapping; populating
        // faults pages in without changing their contents.
        let _ = unsafe {
            libc::madvise(
                self.base.add(data + sender * self.capacity).cast(),
                self.capacity,
                advice,
            )
        };
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        let _ = self.unlink();
        // SAFETY: our mapping, unmapped once; every view of it is gone
        // (links drop their rings before their segments).
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// This process's pid namespace (the inode of /proc/self/ns/pid), so that
/// a sweep never judges another namespace's pids.
fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

/// Unlinks the segments of this pid namespace whose creator's pid `doomed`
/// picks (names are `mpirt-<pid namespace>-<pid>-<random>`). Returns how
/// many. (Only the same user's files can be removed: /dev/shm is sticky.)
fn unlink_segments_where(doomed: impl Fn(libc::pid_t) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return 0;
    };
    let namespace = pid_namespace().to_string();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let mut fields = name.split('-');
        let (Some("mpirt"), Some(ns), Some(pid), Some(_), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        let Ok(pid) = pid.parse::<libc::pid_t>() else {
            continue;
        };
        if ns != namespace || pid <= 0 || !doomed(pid) {
            continue;
        }
        let Ok(path) = CString::new(format!("/{name}")) else {
            continue;
        };
        // SAFETY: a NUL-terminated name of a segment its creator left.
        if unsafe { libc::shm_unlink(path.as_ptr()) } == 0 {
            removed += 1;
        }
    }
    removed
}

/// Unlinks segments whose creator, in this pid namespace, no longer exists:
/// what a rank killed with SIGKILL during start-up left behind. Returns how
/// many.
pub fn sweep_stale() -> usize {
    unlink_segments_where(|pid| {
        // SAFETY: signal 0 only checks that the process exists.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    })
}

/// Unlinks the segments that processes `pids` (of this pid namespace)
/// created and did not unlink: for a launcher whose ranks have ended.
/// Returns how many.
pub fn remove_segments_of(pids: &[u32]) -> usize {
    unlink_segments_where(|pid| u32::try_from(pid).is_ok_and(|pid| pids.contains(&pid)))
}

/// Signals that, during start-up, unlink the segment before the process
/// dies of them.
const UNLINK_SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// The segment name a signal must unlink (start-up only).
static SIGTERM_NAME: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn unlink_and_die(signal: libc::c_int) {
    let name = SIGTERM_NAME.swap(std::ptr::null_mut(), Ordering::SeqCst);
    // SAFETY: shm_unlink is unlink(2) of a path under /dev/shm; signal and
    // raise are async-signal-safe; `name` is a leaked CString.
    unsafe {
        if !name.is_null() {
            libc::shm_unlink(name);
        }
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// The disposition of `signal` now.
fn handler_of(signal: libc::c_int) -> libc::sighandler_t {
    // SAFETY: an all-zero sigaction is a valid value to be overwritten.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a query only (no new action); `current` is ours to fill.
    unsafe { libc::sigaction(signal, std::ptr::null(), &mut current) };
    current.sa_sigaction
}

fn our_handler() -> libc::sighandler_t {
    unlink_and_die as extern "C" fn(libc::c_int) as *const () as libc::sighandler_t
}

/// Until the segment is unlinked, SIGTERM, SIGINT and SIGHUP unlink it
/// before the process dies of them (their default action). A program's own
/// handler (or SIG_IGN) for one of them is left alone.
fn unlink_on_sigterm(name: &CStr) {
    let leaked = CString::from(name).into_raw();
    let old = SIGTERM_NAME.swap(leaked, Ordering::SeqCst);
    if !old.is_null() {
        // SAFETY: a CString we leaked before.
        drop(unsafe { CString::from_raw(old) });
    }
    for signal in UNLINK_SIGNALS {
        if handler_of(signal) == libc::SIG_DFL {
            // SAFETY: installing an async-signal-safe handler.
            unsafe { libc::signal(signal, our_handler()) };
        }
    }
    soften_parent_death_signal();
}

/// The parent-death signal before start-up turned SIGKILL into SIGTERM.
static PARENT_DEATH_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// While the segment has a name, a launcher killed with SIGKILL (whose
/// ranks ask for SIGKILL at its death) sends SIGTERM instead, which unlinks
/// the segment before the rank dies.
fn soften_parent_death_signal() {
    let mut current: libc::c_int = 0;
    // SAFETY: PR_GET_PDEATHSIG writes one int into `current`.
    let rc = unsafe { libc::prctl(libc::PR_GET_PDEATHSIG, &mut current as *mut libc::c_int) };
    if rc == 0 && current == libc::SIGKILL && handler_of(libc::SIGTERM) == our_handler() {
        // SAFETY: PR_SET_PDEATHSIG only sets this process's attribute.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) } == 0 {
            PARENT_DEATH_SIGNAL.store(current, Ordering::SeqCst);
        }
    }
}

/// Puts SIGKILL back as the parent-death signal; if the parent died in the
/// meantime (the process was re-parented), dies as it would have.
fn restore_parent_death_signal() {
    let previous = PARENT_DEATH_SIGNAL.swap(0, Ordering::SeqCst);
    if previous == 0 {
        return;
    }
    // SAFETY: getppid has no preconditions.
    let parent_before = unsafe { libc::getppid() };
    // SAFETY: PR_SET_PDEATHSIG only sets this process's attribute.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, previous as libc::c_ulong) };
    // SAFETY: getppid has no preconditions.
    if parent_before == 1 || unsafe { libc::getppid() } != parent_before {
        // SAFETY: raising the signal the launcher asked for at its death.
        unsafe { libc::raise(previous) };
    }
}

/// The name is gone: the signals kill the process as they did before.
fn forget_sigterm_name() {
    let old = SIGTERM_NAME.swap(std::ptr::null_mut(), Ordering::SeqCst);
    if !old.is_null() {
        for signal in UNLINK_SIGNALS {
            if handler_of(signal) == our_handler() {
                // SAFETY: restoring the default that `unlink_on_sigterm`
                // replaced.
                unsafe { libc::signal(signal, libc::SIG_DFL) };
            }
        }
        // SAFETY: a CString we leaked in `unlink_on_sigterm`; the handler
        // takes the pointer with a swap too, so only one of us has it.
        drop(unsafe { CString::from_raw(old) });
        restore_parent_death_signal();
    }
}

/// Segments whose rings total at most this are mapped in whole at start-up
/// (see [`Segment::populate`]).
pub const POPULATE_LIMIT: usize = 16 << 20;

/// Ring bytes one segment may use at most, whatever the rank count: rings
/// of busy pairs get touched whole, and tmpfs pages are memory.
pub const SEGMENT_BUDGET: usize = 64 << 20;

/// The capacity of each ring of a segment for `ranks` senders: `requested`,
/// shrunk so the segment stays within [`SEGMENT_BUDGET`], but always room
/// for two of the largest eager records; a power of two (rings index by
/// mask) of at least a page.
pub fn ring_capacity(requested: usize, eager_limit: usize, ranks: usize) -> usize {
    let largest = eager_limit + 64 + ALIGN as usize;
    let budget = requested.min(SEGMENT_BUDGET / ranks.max(1)).max(1);
    // Round the budget down, the minimum up.
    let budget = 1 << (usize::BITS - 1 - budget.leading_zeros());
    budget.max((2 * largest).next_power_of_two()).max(PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_dev_shm(name: &str) -> bool {
        std::path::Path::new("/dev/shm").join(name).exists()
    }

    #[test]
    fn create_map_and_unlink() {
        let mut mine = Segment::create(3, 8192).unwrap();
        let name = mine.name().to_string();
        assert!(name.starts_with(&format!(
            "mpirt-{}-{}-",
            pid_namespace(),
            std::process::id()
        )));
        assert!(in_dev_shm(&name));
        let meta = std::fs::metadata(format!("/dev/shm/{name}")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let theirs = Segment::open(&name, 3).unwrap();
        assert_eq!(theirs.ring_capacity(), 8192);
        assert!(Segment::open(&name, 4).is_err(), "wrong rank count");
        mine.unlink().unwrap();
        assert!(!in_dev_shm(&name));
        assert!(Segment::open(&name, 3).is_err());
        // Both mappings still work after the unlink: a record written
        // through one is read through the other.
        let mut p = super::super::ring::Producer::new(theirs.ring(1));
        let mut c = super::super::ring::Consumer::new(mine.ring(1));
        let mut slot = p.reserve(5).unwrap();
        slot.body()[..5].copy_from_slice(b"hello");
        p.commit(slot, 5, 1, 0);
        let record = c.peek().unwrap().unwrap();
        assert_eq!(record.body(), b"hello");
    }

    #[test]
    fn dropping_an_owned_segment_unlinks_it() {
        let name = {
            let mine = Segment::create(1, 4096).unwrap();
            mine.name().to_string()
        };
        assert!(!in_dev_shm(&name));
    }

    #[test]
    fn segments_of_dead_processes_are_swept_and_live_ones_kept() {
        // A process that exits at once: its pid is then free.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = format!("mpirt-{}-{dead}-00000000deadbeef", pid_namespace());
        std::fs::write(format!("/dev/shm/{stale}"), b"").unwrap();
        let live = Segment::create(1, 4096).unwrap();
        assert!(!in_dev_shm(&stale), "the stale segment survived");
        assert!(in_dev_shm(live.name()));
        sweep_stale();
        assert!(in_dev_shm(live.name()), "a live segment was swept");
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(Segment::open("../etc/passwd", 1).is_err());
        assert!(Segment::open("other", 1).is_err());
        assert!(Segment::open("mpirt-does-not-exist", 1).is_err());
    }

    #[test]
    fn rings_fit_two_eager_messages_and_the_budget() {
        assert_eq!(ring_capacity(1 << 20, 64 << 10, 8), 1 << 20);
        assert!(ring_capacity(4096, 1 << 20, 8) >= 2 << 20);
        // Many ranks: smaller rings, but never too small for eager data.
        assert_eq!(ring_capacity(1 << 20, 64 << 10, 256), 256 << 10);
        assert!(ring_capacity(1 << 20, 64 << 10, 100_000) >= 2 * (64 << 10));
        // Powers of two (rings index by mask): a request rounds down, the
        // eager minimum up.
        assert_eq!(ring_capacity(3 << 20, 64 << 10, 2), 2 << 20);
        for (requested, eager, ranks) in [(5000, 1000, 3), (1 << 20, 100_000, 7), (1, 1, 1)] {
            let capacity = ring_capacity(requested, eager, ranks);
            assert!(capacity.is_power_of_two() && capacity >= PAGE, "{capacity}");
        }
    }
}
