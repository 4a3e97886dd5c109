//! Requests of non-blocking operations (MPI 4.1 §3.7), in rsmpi's shape.
//!
//! A non-blocking operation borrows its buffer for a lifetime `'a` and
//! returns a [`Request`] registered with a [`Scope`] of that lifetime. The
//! scope is the safety net: when [`scope`] returns, every request still in
//! flight (one leaked with `mem::forget`, say) is waited for, so the runtime
//! never touches a buffer after its borrow ends. A request dropped while in
//! flight is reported on stderr and waited for; it is never silently leaked.
//!
//! ```no_run
//! use mpirt::traits::*;
//! let universe = mpirt::initialize().unwrap();
//! let world = universe.world();
//! let x = 7i32;
//! let mut y = 0i32;
//! mpirt::request::scope(|scope| {
//!     let send = world.this_process().immediate_send(scope, &x);
//!     let receive = world.this_process().immediate_receive_into(scope, &mut y);
//!     receive.wait();
//!     send.wait();
//! });
//! assert_eq!(y, 7);
//! ```

use std::cell::RefCell;
use std::marker::PhantomData;
use std::mem::MaybeUninit;

use crate::datatype::Equivalence;
use crate::engine::RequestId;
use crate::error::{Error, Operation};
use crate::point_to_point::Status;
use crate::topology::SimpleCommunicator;
use crate::{Rank, Tag};

/// What a request is for, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Purpose {
    pub(crate) name: &'static str,
    pub(crate) peer: Rank,
    pub(crate) tag: Tag,
    pub(crate) bytes: usize,
}

impl Purpose {
    fn operation(&self) -> Operation<'static> {
        Operation::point_to_point(self.name, self.peer, self.tag, Some(self.bytes))
    }
}

/// Something requests register with, bounding how long their buffers are
/// borrowed (rsmpi's `Scope`).
///
/// # Safety
/// An implementor must make sure every request registered with it has
/// completed before `'a` ends.
pub unsafe trait Scope<'a>: Copy {
    /// Registers a request in flight.
    fn register(&self, id: RequestId, comm: &SimpleCommunicator);
    /// The request completed (or moved to a collection that completes it).
    fn unregister(&self, id: RequestId);
}

/// The scope of requests whose buffers live forever (`'static`).
#[derive(Debug, Clone, Copy, Default)]
pub struct StaticScope;

// SAFETY: 'static buffers outlive every request.
unsafe impl Scope<'static> for StaticScope {
    fn register(&self, _: RequestId, _: &SimpleCommunicator) {}
    fn unregister(&self, _: RequestId) {}
}

/// The scope made by [`scope`]: waits, at its end, for every request still
/// registered.
pub struct LocalScope<'a> {
    live: RefCell<Vec<RequestId>>,
    /// A handle on the runtime the requests wait through (every request of
    /// a process has the same one); taken at the first registration, so
    /// that starting a request costs no reference count here.
    runtime: RefCell<Option<SimpleCommunicator>>,
    // Invariant in 'a, so the scope's lifetime cannot be shortened.
    _lifetime: PhantomData<std::cell::Cell<&'a ()>>,
}

// SAFETY: `scope` waits for every registered request before 'a ends.
unsafe impl<'a> Scope<'a> for &LocalScope<'a> {
    fn register(&self, id: RequestId, comm: &SimpleCommunicator) {
        let mut runtime = self.runtime.borrow_mut();
        if runtime.is_none() {
            *runtime = Some(comm.clone());
        }
        self.live.borrow_mut().push(id);
    }
    fn unregister(&self, id: RequestId) {
        // Most often the newest: a request added to a collection right
        // after it was started.
        let mut live = self.live.borrow_mut();
        if let Some(index) = live.iter().rposition(|r| *r == id) {
            live.swap_remove(index);
        }
    }
}

impl Drop for LocalScope<'_> {
    fn drop(&mut self) {
        let Some(comm) = self.runtime.take() else {
            return;
        };
        for id in self.live.take() {
            let rank = comm.runtime().rank;
            eprintln!("mpirt: rank {rank}: a request was still in flight at the end of its scope; waiting for it");
            let _ = comm.runtime().wait(id);
        }
    }
}

/// Runs `f` with a scope for non-blocking operations on buffers that live at
/// least as long as the call (rsmpi's `request::scope`).
pub fn scope<'a, F, R>(f: F) -> R
where
    F: FnOnce(&LocalScope<'a>) -> R,
{
    let scope = LocalScope {
        live: RefCell::new(Vec::new()),
        runtime: RefCell::new(None),
        _lifetime: PhantomData,
    };
    f(&scope)
}

/// A non-blocking operation in flight on a buffer of type `D` borrowed for
/// `'a` (MPI_Request). Complete it with [`wait`](Request::wait) or
/// [`test`](Request::test); wrap it in a [`WaitGuard`] or [`CancelGuard`] to
/// complete it on drop.
#[must_use = "a request must be completed with wait or test"]
pub struct Request<'a, D: ?Sized, S: Scope<'a> = StaticScope> {
    id: RequestId,
    comm: SimpleCommunicator,
    scope: S,
    data: *const D,
    purpose: Purpose,
    finished: bool,
    _borrow: PhantomData<&'a D>,
}

impl<'a, D: ?Sized, S: Scope<'a>> Request<'a, D, S> {
    pub(crate) fn new(
        id: RequestId,
        comm: &SimpleCommunicator,
        scope: S,
        data: *const D,
        purpose: Purpose,
    ) -> Self {
        scope.register(id, comm);
        Request {
            id,
            comm: comm.clone(),
            scope,
            data,
            purpose,
            finished: false,
            _borrow: PhantomData,
        }
    }

    fn finish(&mut self, outcome: Result<crate::engine::Status, Error>) -> Result<Status, Error> {
        self.finished = true;
        self.scope.unregister(self.id);
        outcome
            .map(|s| Status::from_engine(&self.comm, s))
            .map_err(|e| self.comm.localize(e))
    }

    /// [`wait`](Self::wait) returning errors (truncation surfaces here).
    pub fn try_wait(mut self) -> Result<Status, Error> {
        let outcome = self.comm.runtime().wait(self.id);
        self.finish(outcome)
    }

    /// Waits for the operation to complete (MPI_Wait, MPI 4.1 §3.7.3).
    pub fn wait(self) -> Status {
        let outcome = self.comm.runtime().wait(self.id);
        self.complete_with(outcome)
    }

    /// Completes the request with the outcome taken from the engine; an
    /// error goes to the communicator's handler.
    fn complete_with(mut self, outcome: Result<crate::engine::Status, Error>) -> Status {
        // The handle is borrowed for an error, not cloned for every wait (a
        // reference count costs an atomic read-modify-write).
        self.finish(outcome)
            .unwrap_or_else(|e| self.comm.handle_error(self.purpose.operation(), e))
    }

    /// Waits, then hands back the buffer (rsmpi's `wait_for_data`).
    pub fn wait_for_data(self) -> &'a D {
        let data = self.data;
        self.wait();
        // SAFETY: the buffer was borrowed for 'a; the operation is complete,
        // so nothing writes to it any more.
        unsafe { &*data }
    }

    /// [`test`](Self::test) returning errors: `Ok(Err(self))` while in
    /// flight.
    pub fn try_test(mut self) -> Result<Result<Status, Self>, Error> {
        let id = self.id;
        let outcome = self
            .comm
            .runtime()
            .progress
            .poll_once_then(|s| s.engine.take_outcome(id));
        match outcome {
            Some(outcome) => self.finish(outcome).map(Ok),
            None => Ok(Err(self)),
        }
    }

    /// Completes the request if it is done: `Ok(status)`, else the request
    /// back (MPI_Test, MPI 4.1 §3.7.3). Makes progress once.
    pub fn test(self) -> Result<Status, Self> {
        let (comm, purpose) = (self.comm.clone(), self.purpose);
        self.try_test()
            .unwrap_or_else(|e| comm.handle_error(purpose.operation(), e))
    }

    /// Asks to cancel the operation (MPI_Cancel, MPI 4.1 §3.8.4). A receive
    /// that has not matched is cancelled and completes with a status whose
    /// [`Status::is_cancelled`] is true; a send, or a receive that already
    /// matched, completes as usual.
    pub fn cancel(&self) {
        let id = self.id;
        self.comm
            .runtime()
            .progress
            .with_state(|s| s.engine.cancel(id));
    }

    /// Whether the operation has completed (without completing the request).
    pub fn is_complete(&self) -> bool {
        let id = self.id;
        self.comm
            .runtime()
            .progress
            .poll_once_then(|s| s.engine.is_complete(id))
    }
}

impl<'a, D: ?Sized, S: Scope<'a>> Drop for Request<'a, D, S> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let p = self.purpose;
        eprintln!(
            "mpirt: rank {}: a request of {} (rank {}, tag {}, {} bytes) was dropped while in flight; waiting for it",
            self.comm.runtime().rank,
            p.name,
            p.peer,
            p.tag,
            p.bytes
        );
        let _ = self.comm.runtime().wait(self.id);
        self.scope.unregister(self.id);
    }
}

/// Waits for a request when dropped (rsmpi's `WaitGuard`).
pub struct WaitGuard<'a, D: ?Sized, S: Scope<'a> = StaticScope>(Option<Request<'a, D, S>>);

impl<'a, D: ?Sized, S: Scope<'a>> From<Request<'a, D, S>> for WaitGuard<'a, D, S> {
    fn from(request: Request<'a, D, S>) -> Self {
        WaitGuard(Some(request))
    }
}

impl<'a, D: ?Sized, S: Scope<'a>> Drop for WaitGuard<'a, D, S> {
    fn drop(&mut self) {
        if let Some(request) = self.0.take() {
            request.wait();
        }
    }
}

/// Cancels a request and waits for it when dropped (rsmpi's `CancelGuard`).
pub struct CancelGuard<'a, D: ?Sized, S: Scope<'a> = StaticScope>(Option<Request<'a, D, S>>);

impl<'a, D: ?Sized, S: Scope<'a>> From<Request<'a, D, S>> for CancelGuard<'a, D, S> {
    fn from(request: Request<'a, D, S>) -> Self {
        CancelGuard(Some(request))
    }
}

impl<'a, D: ?Sized, S: Scope<'a>> Drop for CancelGuard<'a, D, S> {
    fn drop(&mut self) {
        if let Some(request) = self.0.take() {
            request.cancel();
            let _ = request.try_wait();
        }
    }
}

/// Waits until one of `requests` completes; removes it and returns its index
/// and status (MPI_Waitany, MPI 4.1 §3.7.5). `None` if `requests` is empty.
pub fn wait_any<'a, D: ?Sized + 'a, S: Scope<'a>>(
    requests: &mut Vec<Request<'a, D, S>>,
) -> Option<(usize, Status)> {
    let first = requests.first()?;
    let ids: Vec<RequestId> = requests.iter().map(|r| r.id).collect();
    let runtime = first.comm.runtime();
    let index = runtime
        .progress
        .wait_for(|s| ids.iter().position(|id| s.engine.is_complete(*id)));
    Some((index, requests.remove(index).wait()))
}

/// Waits for every request (MPI_Waitall, MPI 4.1 §3.7.5).
pub fn wait_all<'a, D: ?Sized + 'a, S: Scope<'a>>(requests: Vec<Request<'a, D, S>>) -> Vec<Status> {
    requests.into_iter().map(Request::wait).collect()
}

/// Runs `f` with a scope and a collection of up to `capacity` requests that
/// can be completed together (rsmpi's `multiple_scope`).
pub fn multiple_scope<'a, D: ?Sized + 'a, F, R>(capacity: usize, f: F) -> R
where
    F: FnOnce(&LocalScope<'a>, &mut RequestCollection<'a, D>) -> R,
{
    scope(|s| {
        let mut collection = RequestCollection {
            requests: Vec::with_capacity(capacity),
        };
        let result = f(s, &mut collection);
        drop(collection);
        result
    })
}

/// Requests completed together: any, some or all at once.
pub struct RequestCollection<'a, D: ?Sized> {
    requests: Vec<Option<Request<'a, D, Collected>>>,
}

/// The scope of requests inside a [`RequestCollection`].
#[derive(Clone, Copy)]
struct Collected;

// SAFETY: a collection lives only inside `multiple_scope`, which drops it
// before 'a ends; dropping it waits for every request still inside.
unsafe impl<'a> Scope<'a> for Collected {
    fn register(&self, _: RequestId, _: &SimpleCommunicator) {}
    fn unregister(&self, _: RequestId) {}
}

impl<'a, D: ?Sized> RequestCollection<'a, D> {
    /// Adds a request; returns its index. The collection now owns its
    /// completion.
    pub fn add<S: Scope<'a>>(&mut self, request: Request<'a, D, S>) -> usize {
        request.scope.unregister(request.id);
        // Completion moves to the collection: the old handle goes without
        // its drop (which would wait), and its communicator handle moves
        // over rather than being counted again.
        let request = std::mem::ManuallyDrop::new(request);
        // SAFETY: `request` is never dropped or used again, so the handle
        // read out of it has exactly one owner from here on.
        let comm = unsafe { std::ptr::read(&request.comm) };
        let owned = Request {
            id: request.id,
            comm,
            scope: Collected,
            data: request.data,
            purpose: request.purpose,
            finished: false,
            _borrow: PhantomData,
        };
        self.requests.push(Some(owned));
        self.requests.len() - 1
    }

    /// Requests not completed yet.
    pub fn incomplete(&self) -> usize {
        self.requests.iter().filter(|r| r.is_some()).count()
    }

    fn live_ids(&self) -> Vec<(usize, RequestId)> {
        self.requests
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| (i, r.id)))
            .collect()
    }

    /// The progress engine the requests complete through (every request of
    /// a process has the same one); `None` when none is left.
    fn progress(&self) -> Option<&crate::progress::Progress> {
        let first = self.requests.iter().flatten().next()?;
        Some(&first.comm.runtime().progress)
    }

    /// Completes request `index` with the outcome already taken from the
    /// engine, or by waiting for it (`None`).
    fn complete(
        &mut self,
        index: usize,
        taken: Option<Result<crate::engine::Status, Error>>,
    ) -> (usize, Status, &'a D) {
        let request = self.requests[index].take().expect("a live request");
        let data = request.data;
        let status = match taken {
            Some(outcome) => request.complete_with(outcome),
            None => request.wait(),
        };
        // SAFETY: borrowed for 'a and complete.
        (index, status, unsafe { &*data })
    }

    fn completed_now(&self, live: &[(usize, RequestId)]) -> Vec<usize> {
        let Some(progress) = self.progress() else {
            return Vec::new();
        };
        progress.poll_once_then(|s| {
            live.iter()
                .filter(|(_, id)| s.engine.is_complete(*id))
                .map(|(i, _)| *i)
                .collect()
        })
    }

    /// Waits for any request (MPI_Waitany): `(index, status, buffer)`, or
    /// `None` when none is left.
    pub fn wait_any(&mut self) -> Option<(usize, Status, &'a D)> {
        let live = self.live_ids();
        let index = self.progress()?.wait_for(|s| {
            live.iter()
                .find(|(_, id)| s.engine.is_complete(*id))
                .map(|(i, _)| *i)
        });
        Some(self.complete(index, None))
    }

    /// Waits until at least one request completes and puts every completed
    /// one in `result` (MPI_Waitsome).
    pub fn wait_some(&mut self, result: &mut Vec<(usize, Status, &'a D)>) {
        result.clear();
        if let Some(first) = self.wait_any() {
            result.push(first);
            self.test_some(result);
        }
    }

    /// Waits for every request; `result` gets them all (MPI_Waitall).
    /// One progress loop waits until all are complete, and one hold of the
    /// lock takes their outcomes (a wait per request made a window of 64
    /// 8-byte messages take 0.091 us per message instead of 0.085).
    pub fn wait_all(&mut self, result: &mut Vec<(usize, Status, &'a D)>) {
        result.clear();
        let live = self.live_ids();
        let Some(progress) = self.progress() else {
            return;
        };
        let outcomes = progress.wait_for(|s| {
            if !live.iter().all(|&(_, id)| s.engine.is_complete(id)) {
                return None;
            }
            let taken = live.iter().map(|&(_, id)| s.engine.take_outcome(id));
            Some(taken.collect::<Vec<_>>())
        });
        // Every request of a collection stays in the engine until its
        // outcome is taken, so each has one; were one missing, `complete`
        // would wait for it.
        for (&(index, _), taken) in live.iter().zip(outcomes) {
            result.push(self.complete(index, taken));
        }
    }

    /// Completes one request if any is done (MPI_Testany).
    pub fn test_any(&mut self) -> Option<(usize, Status, &'a D)> {
        let live = self.live_ids();
        self.completed_now(&live)
            .first()
            .map(|&i| self.complete(i, None))
    }

    /// Adds every request that is done to `result` (MPI_Testsome).
    pub fn test_some(&mut self, result: &mut Vec<(usize, Status, &'a D)>) {
        let live = self.live_ids();
        for index in self.completed_now(&live) {
            result.push(self.complete(index, None));
        }
    }

    /// Completes all requests if all are done, filling `result`; else
    /// completes none and returns false (MPI_Testall).
    pub fn test_all(&mut self, result: &mut Vec<(usize, Status, &'a D)>) -> bool {
        let live = self.live_ids();
        if self.completed_now(&live).len() < live.len() {
            return false;
        }
        self.wait_all(result);
        true
    }
}

impl<D: ?Sized> Drop for RequestCollection<'_, D> {
    fn drop(&mut self) {
        // Requests left in the collection are waited for by their own drop,
        // which reports them.
        self.requests.clear();
    }
}

/// A receive of one value of `T` in flight (rsmpi's `ReceiveFuture`);
/// [`get`](ReceiveFuture::get) waits for it.
#[must_use = "a receive future must be completed with get"]
pub struct ReceiveFuture<T: Equivalence> {
    value: Box<MaybeUninit<T>>,
    request: Option<Request<'static, [u8], StaticScope>>,
}

impl<T: Equivalence> ReceiveFuture<T> {
    pub(crate) fn new(
        value: Box<MaybeUninit<T>>,
        request: Request<'static, [u8], StaticScope>,
    ) -> Self {
        ReceiveFuture {
            value,
            request: Some(request),
        }
    }

    /// [`get`](Self::get) returning errors.
    pub fn try_get(mut self) -> Result<(T, Status), Error> {
        let request = self.request.take().expect("a pending receive");
        let status = request.try_wait()?;
        if status.byte_count() != std::mem::size_of::<T>() {
            return Err(Error::Datatype {
                message_bytes: status.byte_count(),
                element_bytes: std::mem::size_of::<T>(),
            });
        }
        // SAFETY: all bytes of T were written by a sender of T.
        Ok((unsafe { self.value.assume_init_read() }, status))
    }

    /// Waits for the value (MPI_Wait on an MPI_Irecv of one element).
    pub fn get(self) -> (T, Status) {
        let request = self.request.as_ref().expect("a pending receive");
        let (comm, purpose) = (request.comm.clone(), request.purpose);
        self.try_get()
            .unwrap_or_else(|e| comm.handle_error(purpose.operation(), e))
    }
}

impl<T: Equivalence> Drop for ReceiveFuture<T> {
    fn drop(&mut self) {
        // A pending request's own drop reports it and waits, before the box
        // it writes into is freed (fields drop after this body, in order:
        // `value` would go first, so drop the request now).
        self.request.take();
    }
}
