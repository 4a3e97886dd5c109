//! Shared pieces of the conformance tests: the rank counts, a runner that
//! checks nothing is left undelivered, deterministic inputs, and the
//! operations tested with their input generators.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use collectives::memory::{run_with, MemoryTransport, SendMode};
use collectives::{Operation, Primitive, SystemOp, SystemOperation, UserOperation};

/// Long enough for 64 threads on 2 cores, short enough that a hang fails fast.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Every count up to 16, then both sides of the powers of two up to 64.
pub const RANK_COUNTS: &[usize] = &[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 31, 32, 33, 63, 64,
];

/// Runs `body` on every rank of every rank count, then checks with a barrier
/// that every message sent was received.
pub fn on_every_rank_count(body: impl Fn(&MemoryTransport) + Sync) {
    for &size in RANK_COUNTS {
        on_ranks(size, &body);
    }
}

/// Up to this many ranks, tests run twice: with synchronous sends too.
pub const SYNCHRONOUS_MAX_RANKS: usize = 17;

/// Runs `body` on `size` ranks, with eager sends and, on small groups, with
/// synchronous ones too (which would deadlock an algorithm that relies on
/// buffering); checks each time that no message is left over.
pub fn on_ranks(size: usize, body: &(impl Fn(&MemoryTransport) + Sync)) {
    let modes: &[SendMode] = if size <= SYNCHRONOUS_MAX_RANKS {
        &[SendMode::Eager, SendMode::Synchronous]
    } else {
        &[SendMode::Eager]
    };
    for &mode in modes {
        run_with(mode, size, TIMEOUT, |transport| {
            body(transport);
            collectives::barrier(transport).expect("final barrier");
            assert_eq!(transport.undelivered(), 0, "messages left over");
        });
    }
}

/// All roots on small groups, a spread of them on large ones.
pub fn roots(size: usize) -> Vec<usize> {
    if size <= 8 {
        (0..size).collect()
    } else {
        let mut roots = vec![0, 1, size / 2, size - 1];
        roots.dedup();
        roots
    }
}

/// A deterministic pseudo-random value for `(rank, index, salt)`.
pub fn mix(rank: usize, index: usize, salt: u64) -> u64 {
    let mut z = (rank as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(salt.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `len` arbitrary bytes of `rank`.
pub fn bytes(rank: usize, len: usize, salt: u64) -> Vec<u8> {
    (0..len).map(|i| mix(rank, i, salt) as u8).collect()
}

/// A reduction tested: its operation and how to make valid inputs.
pub struct Case {
    pub name: &'static str,
    pub element_size: usize,
    pub op: Box<dyn Operation + Send + Sync>,
    /// `make(rank, elements, salt)`: `elements` elements of rank `rank`.
    pub make: fn(usize, usize, u64) -> Vec<u8>,
    /// References already computed, by `(last, elements, salt)`: every rank
    /// of every group asks for the same ones.
    references: Mutex<References>,
}

/// Reference results by `(last rank, elements, salt)`.
type References = HashMap<(usize, usize, u64), Arc<Vec<u8>>>;

impl Case {
    fn new(
        name: &'static str,
        element_size: usize,
        op: Box<dyn Operation + Send + Sync>,
        make: fn(usize, usize, u64) -> Vec<u8>,
    ) -> Self {
        Case {
            name,
            element_size,
            op,
            make,
            references: Mutex::default(),
        }
    }

    /// The rank-order reference `x0 ∘ x1 ∘ ... ∘ x(last)` over ranks `0..=last`.
    pub fn prefix(&self, last: usize, elements: usize, salt: u64) -> Arc<Vec<u8>> {
        let mut references = self.references.lock().unwrap();
        if let Some(done) = references.get(&(last, elements, salt)) {
            return Arc::clone(done);
        }
        let (mut result, first) = match last
            .checked_sub(1)
            .and_then(|previous| references.get(&(previous, elements, salt)))
        {
            Some(previous) => (previous.to_vec(), last),
            None => ((self.make)(0, elements, salt), 1),
        };
        for rank in first..=last {
            self.op
                .apply_left(&mut result, &(self.make)(rank, elements, salt));
        }
        let result = Arc::new(result);
        references.insert((last, elements, salt), Arc::clone(&result));
        result
    }
}

fn system(op: SystemOp, primitive: Primitive) -> Box<dyn Operation + Send + Sync> {
    Box::new(SystemOperation::new(op, primitive).expect("defined"))
}

fn u64s(rank: usize, n: usize, salt: u64) -> Vec<u8> {
    (0..n)
        .flat_map(|i| mix(rank, i, salt).to_ne_bytes())
        .collect()
}
fn i32s(rank: usize, n: usize, salt: u64) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (mix(rank, i, salt) as i32).to_ne_bytes())
        .collect()
}
fn i64s(rank: usize, n: usize, salt: u64) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (mix(rank, i, salt) as i64).to_ne_bytes())
        .collect()
}
fn u8s(rank: usize, n: usize, salt: u64) -> Vec<u8> {
    (0..n).map(|i| mix(rank, i, salt) as u8).collect()
}
fn u32_flags(rank: usize, n: usize, salt: u64) -> Vec<u8> {
    // Mostly zero, so that logical or is not always true.
    (0..n)
        .flat_map(|i| u32::from(mix(rank, i, salt) % 97 == 0).to_ne_bytes())
        .collect()
}
fn bools(rank: usize, n: usize, salt: u64) -> Vec<u8> {
    (0..n).map(|i| (mix(rank, i, salt) & 1) as u8).collect()
}
/// Small integers: any summation order gives the exact same f64.
fn f64_integers(rank: usize, n: usize, salt: u64) -> Vec<u8> {
    (0..n)
        .flat_map(|i| ((mix(rank, i, salt) % 1000) as f64 - 500.0).to_ne_bytes())
        .collect()
}
/// Powers of two: any product order is exact.
fn f64_powers(rank: usize, n: usize, salt: u64) -> Vec<u8> {
    (0..n)
        .flat_map(|i| [0.5f64, 1.0, 2.0][(mix(rank, i, salt) % 3) as usize].to_ne_bytes())
        .collect()
}
fn f32s(rank: usize, n: usize, salt: u64) -> Vec<u8> {
    (0..n)
        .flat_map(|i| ((mix(rank, i, salt) % 100_000) as f32 / 7.0).to_ne_bytes())
        .collect()
}

/// Modulus of the 2×2 matrix product, the non-commutative operation.
const PRIME: u64 = 1_000_000_007;

fn matrices(rank: usize, n: usize, salt: u64) -> Vec<u8> {
    (0..4 * n)
        .flat_map(|i| (mix(rank, i, salt) % PRIME).to_ne_bytes())
        .collect()
}

fn load(bytes: &[u8]) -> [u64; 4] {
    let mut m = [0u64; 4];
    for (value, chunk) in m.iter_mut().zip(bytes.chunks_exact(8)) {
        *value = u64::from_ne_bytes(chunk.try_into().unwrap());
    }
    m
}

/// `later ← earlier × later` on 2×2 matrices mod `PRIME`, 32 bytes each.
fn matrix_product(earlier: &[u8], later: &mut [u8]) {
    for (e, l) in earlier.chunks_exact(32).zip(later.chunks_exact_mut(32)) {
        let (a, b) = (load(e), load(l));
        let mul = |x: u64, y: u64| (u128::from(x) * u128::from(y) % u128::from(PRIME)) as u64;
        let product = [
            (mul(a[0], b[0]) + mul(a[1], b[2])) % PRIME,
            (mul(a[0], b[1]) + mul(a[1], b[3])) % PRIME,
            (mul(a[2], b[0]) + mul(a[3], b[2])) % PRIME,
            (mul(a[2], b[1]) + mul(a[3], b[3])) % PRIME,
        ];
        for (value, chunk) in product.iter().zip(l.chunks_exact_mut(8)) {
            chunk.copy_from_slice(&value.to_ne_bytes());
        }
    }
}

/// `later ← earlier + later` on u32, as a user closure.
fn wrapping_add_u32(earlier: &[u8], later: &mut [u8]) {
    for (e, l) in earlier.chunks_exact(4).zip(later.chunks_exact_mut(4)) {
        let sum = u32::from_ne_bytes(e.try_into().unwrap())
            .wrapping_add(u32::from_ne_bytes(l[..].try_into().unwrap()));
        l.copy_from_slice(&sum.to_ne_bytes());
    }
}

/// The reductions every reducing collective is checked with.
pub fn cases() -> Vec<Case> {
    vec![
        Case::new("u64 sum", 8, system(SystemOp::Sum, Primitive::U64), u64s),
        Case::new("i32 max", 4, system(SystemOp::Max, Primitive::I32), i32s),
        Case::new("i64 min", 8, system(SystemOp::Min, Primitive::I64), i64s),
        Case::new(
            "u8 bitwise xor",
            1,
            system(SystemOp::BitwiseXor, Primitive::U8),
            u8s,
        ),
        Case::new(
            "u32 logical or",
            4,
            system(SystemOp::LogicalOr, Primitive::U32),
            u32_flags,
        ),
        Case::new(
            "bool logical xor",
            1,
            system(SystemOp::LogicalXor, Primitive::Bool),
            bools,
        ),
        Case::new(
            "f64 sum",
            8,
            system(SystemOp::Sum, Primitive::F64),
            f64_integers,
        ),
        Case::new(
            "f64 product",
            8,
            system(SystemOp::Product, Primitive::F64),
            f64_powers,
        ),
        Case::new("f32 max", 4, system(SystemOp::Max, Primitive::F32), f32s),
        Case::new(
            "u32 sum closure (commutative)",
            4,
            Box::new(UserOperation::commutative(wrapping_add_u32)),
            |rank, n, salt| {
                (0..n)
                    .flat_map(|i| (mix(rank, i, salt) as u32).to_ne_bytes())
                    .collect()
            },
        ),
        Case::new(
            "2x2 matrix product mod p (non-commutative)",
            32,
            Box::new(UserOperation::non_commutative(matrix_product)),
            matrices,
        ),
    ]
}

/// Element counts: empty, tiny, odd, and long enough for `select` to pick
/// the long-message algorithms for elements of 4 bytes or more.
pub const ELEMENT_COUNTS: &[usize] = &[0, 1, 5, 67, 600];
