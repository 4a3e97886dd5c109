//! Reduction operations on byte slices of whole elements (MPI 4.0 §6.9).
//!
//! An [`Operation`] combines two equally long buffers element by element. The
//! left operand always comes from lower ranks: algorithms for non-commutative
//! operations keep the rank order `x0 ∘ x1 ∘ ... ∘ x(p-1)`. [`SystemOperation`]
//! gives MPI's predefined operations on the primitive types, and
//! [`UserOperation`] wraps a closure.

/// A reduction `∘` applied to buffers of whole elements; must be associative.
pub trait Operation {
    /// `later ← earlier ∘ later`, where `earlier` holds the contribution of
    /// lower ranks (MPI's user-function convention: `inoutvec = invec ∘ inoutvec`).
    fn apply(&self, earlier: &[u8], later: &mut [u8]);

    /// `earlier ← earlier ∘ later`. The default goes through a copy; operations
    /// that can do it in place should override it.
    fn apply_left(&self, earlier: &mut [u8], later: &[u8]) {
        let mut result = later.to_vec();
        self.apply(earlier, &mut result);
        earlier.copy_from_slice(&result);
    }

    /// Whether `a ∘ b == b ∘ a`; if not, results are reduced in rank order.
    fn is_commutative(&self) -> bool;
}

/// The element kinds the system operations work on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Primitive {
    U8,
    U16,
    U32,
    U64,
    Usize,
    I8,
    I16,
    I32,
    I64,
    Isize,
    F32,
    F64,
    /// One byte, zero meaning false (MPI's `MPI_C_BOOL`).
    Bool,
}

impl Primitive {
    /// Bytes per element.
    pub fn size(self) -> usize {
        use std::mem::size_of;
        match self {
            Primitive::U8 | Primitive::I8 | Primitive::Bool => 1,
            Primitive::U16 | Primitive::I16 => 2,
            Primitive::U32 | Primitive::I32 | Primitive::F32 => 4,
            Primitive::U64 | Primitive::I64 | Primitive::F64 => 8,
            Primitive::Usize => size_of::<usize>(),
            Primitive::Isize => size_of::<isize>(),
        }
    }

    fn is_float(self) -> bool {
        matches!(self, Primitive::F32 | Primitive::F64)
    }
}

/// MPI's predefined reduction operations (`MPI_MAX` ... `MPI_BXOR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SystemOp {
    /// `MPI_MAX`
    Max,
    /// `MPI_MIN`
    Min,
    /// `MPI_SUM` (integers wrap)
    Sum,
    /// `MPI_PROD` (integers wrap)
    Product,
    /// `MPI_LAND`: non-zero is true, the result is 0 or 1
    LogicalAnd,
    /// `MPI_LOR`
    LogicalOr,
    /// `MPI_LXOR`
    LogicalXor,
    /// `MPI_BAND`
    BitwiseAnd,
    /// `MPI_BOR`
    BitwiseOr,
    /// `MPI_BXOR`
    BitwiseXor,
}

impl SystemOp {
    fn is_arithmetic(self) -> bool {
        matches!(
            self,
            SystemOp::Max | SystemOp::Min | SystemOp::Sum | SystemOp::Product
        )
    }
}

/// A predefined operation on one primitive type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SystemOperation {
    op: SystemOp,
    primitive: Primitive,
}

/// A system operation that MPI does not define on a type
/// (logical or bitwise on floats, arithmetic on `bool`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{op:?} is not defined on {primitive:?} (MPI_ERR_OP)")]
pub struct UnsupportedOperation {
    /// The operation asked for.
    pub op: SystemOp,
    /// The element type asked for.
    pub primitive: Primitive,
}

impl SystemOperation {
    /// `op` on elements of kind `primitive`, if MPI defines it there.
    pub fn new(op: SystemOp, primitive: Primitive) -> Result<Self, UnsupportedOperation> {
        let defined = match primitive {
            Primitive::F32 | Primitive::F64 => op.is_arithmetic(),
            Primitive::Bool => !op.is_arithmetic(),
            _ => true,
        };
        if defined {
            Ok(SystemOperation { op, primitive })
        } else {
            Err(UnsupportedOperation { op, primitive })
        }
    }

    /// The operation.
    pub fn op(&self) -> SystemOp {
        self.op
    }

    /// The element kind.
    pub fn primitive(&self) -> Primitive {
        self.primitive
    }

    /// Bytes per element.
    pub fn element_size(&self) -> usize {
        self.primitive.size()
    }
}

impl Operation for SystemOperation {
    fn apply(&self, earlier: &[u8], later: &mut [u8]) {
        debug_assert!(!self.primitive.is_float() || self.op.is_arithmetic());
        match self.primitive {
            Primitive::U8 => integer_u8(self.op, earlier, later),
            Primitive::U16 => integer_u16(self.op, earlier, later),
            Primitive::U32 => integer_u32(self.op, earlier, later),
            Primitive::U64 => integer_u64(self.op, earlier, later),
            Primitive::Usize => integer_usize(self.op, earlier, later),
            Primitive::I8 => integer_i8(self.op, earlier, later),
            Primitive::I16 => integer_i16(self.op, earlier, later),
            Primitive::I32 => integer_i32(self.op, earlier, later),
            Primitive::I64 => integer_i64(self.op, earlier, later),
            Primitive::Isize => integer_isize(self.op, earlier, later),
            Primitive::F32 => float_f32(self.op, earlier, later),
            Primitive::F64 => float_f64(self.op, earlier, later),
            // Logical and bitwise operations on 0/1 bytes: the u8 kernels do it.
            Primitive::Bool => integer_u8(self.op, earlier, later),
        }
    }

    fn apply_left(&self, earlier: &mut [u8], later: &[u8]) {
        // Every system operation is symmetric element by element.
        self.apply(later, earlier)
    }

    fn is_commutative(&self) -> bool {
        true
    }
}

/// A user-defined operation from a closure `|earlier, later| later = earlier ∘ later`
/// on whole elements (`MPI_Op_create`).
pub struct UserOperation<F> {
    function: F,
    commutative: bool,
}

impl<F: Fn(&[u8], &mut [u8])> UserOperation<F> {
    /// A commutative operation: algorithms may combine in any order.
    pub fn commutative(function: F) -> Self {
        UserOperation {
            function,
            commutative: true,
        }
    }

    /// A non-commutative operation: results are combined in rank order.
    pub fn non_commutative(function: F) -> Self {
        UserOperation {
            function,
            commutative: false,
        }
    }
}

impl<F: Fn(&[u8], &mut [u8])> Operation for UserOperation<F> {
    fn apply(&self, earlier: &[u8], later: &mut [u8]) {
        (self.function)(earlier, later)
    }

    fn is_commutative(&self) -> bool {
        self.commutative
    }
}

/// A fixed-size value read from and written to native-endian bytes.
trait Element: Copy {
    const SIZE: usize;
    fn load(bytes: &[u8]) -> Self;
    fn store(self, bytes: &mut [u8]);
}

macro_rules! element {
    ($($t:ty),*) => {$(
        impl Element for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn load(bytes: &[u8]) -> Self {
                let mut raw = [0u8; std::mem::size_of::<$t>()];
                raw.copy_from_slice(bytes);
                <$t>::from_ne_bytes(raw)
            }
            fn store(self, bytes: &mut [u8]) {
                bytes.copy_from_slice(&self.to_ne_bytes())
            }
        }
    )*};
}
element!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, f32, f64);

/// `later[i] ← f(earlier[i], later[i])` over whole elements.
#[inline]
fn combine<T: Element>(earlier: &[u8], later: &mut [u8], f: impl Fn(T, T) -> T) {
    if earlier.len() == T::SIZE && later.len() == T::SIZE {
        // One element (a scalar allreduce): the iterators cost more.
        f(T::load(earlier), T::load(later)).store(later);
        return;
    }
    for (e, l) in earlier
        .chunks_exact(T::SIZE)
        .zip(later.chunks_exact_mut(T::SIZE))
    {
        f(T::load(e), T::load(l)).store(l);
    }
}

macro_rules! integer_kernel {
    ($name:ident, $t:ty) => {
        fn $name(op: SystemOp, earlier: &[u8], later: &mut [u8]) {
            let truth = |x: $t| x != 0;
            match op {
                SystemOp::Max => combine::<$t>(earlier, later, |a, b| a.max(b)),
                SystemOp::Min => combine::<$t>(earlier, later, |a, b| a.min(b)),
                SystemOp::Sum => combine::<$t>(earlier, later, |a, b| a.wrapping_add(b)),
                SystemOp::Product => combine::<$t>(earlier, later, |a, b| a.wrapping_mul(b)),
                SystemOp::LogicalAnd => {
                    combine::<$t>(earlier, later, |a, b| (truth(a) && truth(b)) as $t)
                }
                SystemOp::LogicalOr => {
                    combine::<$t>(earlier, later, |a, b| (truth(a) || truth(b)) as $t)
                }
                SystemOp::LogicalXor => {
                    combine::<$t>(earlier, later, |a, b| (truth(a) != truth(b)) as $t)
                }
                SystemOp::BitwiseAnd => combine::<$t>(earlier, later, |a, b| a & b),
                SystemOp::BitwiseOr => combine::<$t>(earlier, later, |a, b| a | b),
                SystemOp::BitwiseXor => combine::<$t>(earlier, later, |a, b| a ^ b),
            }
        }
    };
}
integer_kernel!(integer_u8, u8);
integer_kernel!(integer_u16, u16);
integer_kernel!(integer_u32, u32);
integer_kernel!(integer_u64, u64);
integer_kernel!(integer_usize, usize);
integer_kernel!(integer_i8, i8);
integer_kernel!(integer_i16, i16);
integer_kernel!(integer_i32, i32);
integer_kernel!(integer_i64, i64);
integer_kernel!(integer_isize, isize);

macro_rules! float_kernel {
    ($name:ident, $t:ty) => {
        fn $name(op: SystemOp, earlier: &[u8], later: &mut [u8]) {
            match op {
                SystemOp::Max => combine::<$t>(earlier, later, |a, b| a.max(b)),
                SystemOp::Min => combine::<$t>(earlier, later, |a, b| a.min(b)),
                SystemOp::Sum => combine::<$t>(earlier, later, |a, b| a + b),
                SystemOp::Product => combine::<$t>(earlier, later, |a, b| a * b),
                // `SystemOperation::new` refuses the others on floats.
                _ => {}
            }
        }
    };
}
float_kernel!(float_f32, f32);
float_kernel!(float_f64, f64);

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_i32(values: &[i32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    #[test]
    fn integer_operations_match_rust() {
        let a = [3i32, -4, 0, 7];
        let b = [5i32, -9, 2, 0];
        type Reference = fn(i32, i32) -> i32;
        let cases: [(SystemOp, Reference); 7] = [
            (SystemOp::Max, |x, y| x.max(y)),
            (SystemOp::Min, |x, y| x.min(y)),
            (SystemOp::Sum, |x, y| x + y),
            (SystemOp::Product, |x, y| x * y),
            (SystemOp::LogicalAnd, |x, y| (x != 0 && y != 0) as i32),
            (SystemOp::LogicalXor, |x, y| ((x != 0) != (y != 0)) as i32),
            (SystemOp::BitwiseXor, |x, y| x ^ y),
        ];
        for (op, f) in cases {
            let operation = SystemOperation::new(op, Primitive::I32).unwrap();
            let mut later = bytes_i32(&b);
            operation.apply(&bytes_i32(&a), &mut later);
            let expected: Vec<i32> = a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect();
            assert_eq!(later, bytes_i32(&expected), "{op:?}");
        }
    }

    #[test]
    fn undefined_combinations_are_refused() {
        assert!(SystemOperation::new(SystemOp::BitwiseAnd, Primitive::F64).is_err());
        assert!(SystemOperation::new(SystemOp::LogicalOr, Primitive::F32).is_err());
        assert!(SystemOperation::new(SystemOp::Sum, Primitive::Bool).is_err());
        assert!(SystemOperation::new(SystemOp::LogicalOr, Primitive::Bool).is_ok());
    }

    #[test]
    fn user_operation_keeps_operand_order() {
        // Digit concatenation: 1 ∘ 2 = 12, 2 ∘ 1 = 21.
        let op = UserOperation::non_commutative(|earlier: &[u8], later: &mut [u8]| {
            later[0] += earlier[0] * 10;
        });
        let mut later = [2u8];
        op.apply(&[1], &mut later);
        assert_eq!(later, [12]);
        let mut earlier = [1u8];
        op.apply_left(&mut earlier, &[2]);
        assert_eq!(earlier, [12]);
        assert!(!op.is_commutative());
    }
}
