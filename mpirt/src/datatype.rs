//! Datatypes (MPI 4.1 chapter 5): which Rust types travel as messages, and
//! buffers of them.
//!
//! A type is [`Equivalence`] when its bytes can be sent as they sit in
//! memory: the primitive numeric types, `bool`, and arrays of them. Payload
//! travels in the sender's byte order; every host mpirt runs on today is
//! little-endian (the wire header's `FLAG_BIG_ENDIAN` marks the exception).

use std::mem::size_of;

pub use collectives::Primitive;

/// The description of an element type: its size and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatatypeRef {
    size: usize,
    name: &'static str,
    /// The primitive it is, for the predefined reduction operations.
    primitive: Option<Primitive>,
}

impl DatatypeRef {
    /// Bytes per element.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The Rust type's name, for messages.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The primitive kind, for the predefined operations (none for arrays).
    pub fn primitive(&self) -> Option<Primitive> {
        self.primitive
    }
}

/// Something that describes an element type (rsmpi's `Datatype`).
pub trait Datatype {
    /// Bytes per element.
    fn size_in_bytes(&self) -> usize;
}

impl Datatype for DatatypeRef {
    fn size_in_bytes(&self) -> usize {
        self.size
    }
}

/// A type whose values can be sent as their bytes (MPI's predefined
/// datatypes; rsmpi's `Equivalence`).
///
/// # Safety
/// Implementors must be plain data: every bit pattern of the right size that
/// a sender of the same type produced is a valid value, and the type has no
/// padding bytes, pointers or drop glue.
pub unsafe trait Equivalence: Copy + Send + Sync + 'static {
    /// The datatype describing `Self`.
    fn equivalent_datatype() -> DatatypeRef;
}

macro_rules! equivalent {
    ($($t:ty => $kind:expr),*) => {$(
        // SAFETY: a primitive with no padding and no invalid bit patterns
        // among those a sender of the same type produces.
        unsafe impl Equivalence for $t {
            fn equivalent_datatype() -> DatatypeRef {
                DatatypeRef { size: size_of::<$t>(), name: stringify!($t), primitive: $kind }
            }
        }
    )*};
}

equivalent!(
    u8 => Some(Primitive::U8), u16 => Some(Primitive::U16), u32 => Some(Primitive::U32), u64 => Some(Primitive::U64),
    usize => Some(Primitive::Usize), i8 => Some(Primitive::I8), i16 => Some(Primitive::I16),
    i32 => Some(Primitive::I32), i64 => Some(Primitive::I64), isize => Some(Primitive::Isize),
    f32 => Some(Primitive::F32), f64 => Some(Primitive::F64), bool => Some(Primitive::Bool),
    u128 => None, i128 => None, char => None
);

// SAFETY: an array of plain data is plain data, with no padding between
// elements.
unsafe impl<T: Equivalence, const N: usize> Equivalence for [T; N] {
    fn equivalent_datatype() -> DatatypeRef {
        DatatypeRef {
            size: size_of::<[T; N]>(),
            name: "array",
            primitive: None,
        }
    }
}

/// Something to send from: a value, a slice, a `Vec` or an array of an
/// [`Equivalence`] type.
///
/// # Safety
/// `as_bytes` must cover exactly the buffer's elements.
pub unsafe trait Buffer {
    /// The element type.
    fn datatype(&self) -> DatatypeRef;
    /// The bytes to send.
    fn as_bytes(&self) -> &[u8];
}

/// Something to receive into.
///
/// # Safety
/// `as_bytes_mut` must cover exactly the buffer's elements, and any bytes
/// written there by a sender of the same element type must leave valid
/// values.
pub unsafe trait BufferMut {
    /// The element type.
    fn datatype(&self) -> DatatypeRef;
    /// The bytes to receive into.
    fn as_bytes_mut(&mut self) -> &mut [u8];
}

fn bytes_of<T: Equivalence>(elements: &[T]) -> &[u8] {
    // SAFETY: T is plain data (Equivalence), so its memory is initialized
    // bytes; the slice covers exactly the elements.
    unsafe { std::slice::from_raw_parts(elements.as_ptr().cast(), std::mem::size_of_val(elements)) }
}

fn bytes_of_mut<T: Equivalence>(elements: &mut [T]) -> &mut [u8] {
    // SAFETY: as above; every byte pattern a sender of T wrote is a valid T.
    unsafe {
        std::slice::from_raw_parts_mut(
            elements.as_mut_ptr().cast(),
            std::mem::size_of_val(elements),
        )
    }
}

// SAFETY: one element, its own bytes.
unsafe impl<T: Equivalence> Buffer for T {
    fn datatype(&self) -> DatatypeRef {
        T::equivalent_datatype()
    }
    fn as_bytes(&self) -> &[u8] {
        bytes_of(std::slice::from_ref(self))
    }
}

// SAFETY: one element, its own bytes.
unsafe impl<T: Equivalence> BufferMut for T {
    fn datatype(&self) -> DatatypeRef {
        T::equivalent_datatype()
    }
    fn as_bytes_mut(&mut self) -> &mut [u8] {
        bytes_of_mut(std::slice::from_mut(self))
    }
}

// SAFETY: the slice's elements, contiguous.
unsafe impl<T: Equivalence> Buffer for [T] {
    fn datatype(&self) -> DatatypeRef {
        T::equivalent_datatype()
    }
    fn as_bytes(&self) -> &[u8] {
        bytes_of(self)
    }
}

// SAFETY: the slice's elements, contiguous.
unsafe impl<T: Equivalence> BufferMut for [T] {
    fn datatype(&self) -> DatatypeRef {
        T::equivalent_datatype()
    }
    fn as_bytes_mut(&mut self) -> &mut [u8] {
        bytes_of_mut(self)
    }
}

// SAFETY: the vector's elements, contiguous.
unsafe impl<T: Equivalence> Buffer for Vec<T> {
    fn datatype(&self) -> DatatypeRef {
        T::equivalent_datatype()
    }
    fn as_bytes(&self) -> &[u8] {
        bytes_of(self)
    }
}

// SAFETY: the vector's elements, contiguous.
unsafe impl<T: Equivalence> BufferMut for Vec<T> {
    fn datatype(&self) -> DatatypeRef {
        T::equivalent_datatype()
    }
    fn as_bytes_mut(&mut self) -> &mut [u8] {
        bytes_of_mut(self)
    }
}

/// A buffer cut into one block per rank, for the varcount collectives
/// (rsmpi's `Partition`): block `i` is `counts[i]` elements starting at
/// element `displs[i]`.
pub struct Partition<'a, B: ?Sized> {
    buffer: &'a B,
    counts: Vec<usize>,
    displs: Vec<usize>,
}

/// A buffer to receive into, cut into one block per rank (rsmpi's
/// `PartitionMut`); blocks must not overlap.
pub struct PartitionMut<'a, B: ?Sized> {
    buffer: &'a mut B,
    counts: Vec<usize>,
    displs: Vec<usize>,
}

fn to_bytes(values: &[crate::Count], element: usize, what: &str) -> Vec<usize> {
    values
        .iter()
        .map(|&v| {
            let v = usize::try_from(v).unwrap_or_else(|_| panic!("partition: negative {what} {v}"));
            v * element
        })
        .collect()
}

impl<'a, B: Buffer + ?Sized> Partition<'a, B> {
    /// Blocks of `counts[i]` elements at element offsets `displs[i]`.
    pub fn new(
        buffer: &'a B,
        counts: impl std::borrow::Borrow<[crate::Count]>,
        displs: impl std::borrow::Borrow<[crate::Count]>,
    ) -> Self {
        let element = buffer.datatype().size();
        Partition {
            counts: to_bytes(counts.borrow(), element, "count"),
            displs: to_bytes(displs.borrow(), element, "displacement"),
            buffer,
        }
    }

    /// The byte layout the collective algorithms take.
    pub(crate) fn bytes(&self) -> collectives::Partition<'_> {
        collectives::Partition {
            buffer: self.buffer.as_bytes(),
            counts: &self.counts,
            displacements: &self.displs,
        }
    }
}

impl<'a, B: BufferMut + ?Sized> PartitionMut<'a, B> {
    /// Blocks of `counts[i]` elements at element offsets `displs[i]`.
    pub fn new(
        buffer: &'a mut B,
        counts: impl std::borrow::Borrow<[crate::Count]>,
        displs: impl std::borrow::Borrow<[crate::Count]>,
    ) -> Self {
        let element = buffer.datatype().size();
        PartitionMut {
            counts: to_bytes(counts.borrow(), element, "count"),
            displs: to_bytes(displs.borrow(), element, "displacement"),
            buffer,
        }
    }

    /// The element type.
    pub fn datatype(&self) -> DatatypeRef {
        self.buffer.datatype()
    }

    /// The byte layout the collective algorithms take.
    pub(crate) fn bytes(&mut self) -> collectives::PartitionMut<'_> {
        collectives::PartitionMut {
            buffer: self.buffer.as_bytes_mut(),
            counts: &self.counts,
            displacements: &self.displs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_expose_their_bytes() {
        assert_eq!(7u32.as_bytes(), &7u32.to_ne_bytes());
        assert_eq!([1u16, 2].as_bytes().len(), 4);
        assert_eq!(vec![1.5f64; 3].as_bytes().len(), 24);
        assert_eq!(<[u8; 5]>::equivalent_datatype().size(), 5);
        let mut v = vec![0i32; 2];
        v.as_bytes_mut().copy_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(v, [1, 2]);
    }
}
