//! [`Rng`]: the deterministic PRNG of the test support.

use alloc::vec::Vec;

/// SplitMix64: tiny, fast, deterministic, good enough for test data.
#[derive(Clone, Debug)]
pub struct Rng {
	state: u64,
}

impl Rng {
	pub fn new(seed: u64) -> Self {
		Rng { state: seed }
	}

	pub fn next_u64(&mut self) -> u64 {
		self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
		let mut z = self.state;
		z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
		z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
		z ^ (z >> 31)
	}

	/// Uniform in `0..n` (0 if `n == 0`).
	pub fn below(&mut self, n: u64) -> u64 {
		if n == 0 {
			0
		} else {
			self.next_u64() % n
		}
	}

	/// Uniform in `lo..=hi` (`lo` if `hi < lo`).
	pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
		if hi <= lo {
			return lo;
		}
		let span = (hi as i128 - lo as i128 + 1) as u128;
		let r = (self.next_u64() as u128) % span;
		(lo as i128 + r as i128) as i64
	}

	/// `true` with probability `percent / 100`.
	pub fn chance(&mut self, percent: u64) -> bool {
		self.below(100) < percent
	}

	pub fn byte(&mut self) -> u8 {
		self.next_u64() as u8
	}

	pub fn i8(&mut self) -> i8 {
		self.next_u64() as i8
	}

	pub fn bytes(&mut self, n: usize) -> Vec<u8> {
		(0..n).map(|_| self.byte()).collect()
	}

	/// A uniformly chosen element.
	pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
		let i = self.below(items.len() as u64) as usize;
		items.get(i).copied()
	}

	/// An index chosen with the given relative weights.
	pub fn weighted(&mut self, weights: &[u64]) -> usize {
		let total: u64 = weights.iter().sum();
		let mut r = self.below(total);
		for (i, &w) in weights.iter().enumerate() {
			if r < w {
				return i;
			}
			r -= w;
		}
		0
	}
}
