//! SplitMix64 (Steele, Lea and Flood 2014; the generator `java.util.SplittableRandom`
//! and xoshiro's seeding use): 64 bits of state, passes BigCrush, and small
//! enough to write here rather than add a dependency for seeded simulations.

/// A seeded SplitMix64 generator.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by Lemire's multiply-shift; the bias,
    /// at most `n / 2^64`, is far below anything a simulation can see.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A node in `0..n` other than `me` (`n ≥ 2`), uniformly.
    pub fn other_than(&mut self, me: usize, n: usize) -> usize {
        let pick = self.below(n - 1);
        if pick >= me {
            pick + 1
        } else {
            pick
        }
    }
}
