//! Token selection: greedy and seeded sampling (temperature, top-k, top-p), in integers.

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;
use sp_crypto_hashing::blake2_256;

use super::fixed::exp_neg_q32;

/// Domain tag of the sampler's random source.
pub const SAMPLE_TAG: &[u8] = b"verity/lm/sample/v1";

/// How the next token is chosen (part of a generation job).
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
	Encode,
	Decode,
	DecodeWithMemTracking,
	TypeInfo,
	MaxEncodedLen,
)]
pub struct SamplingParams {
	/// Temperature in Q16 (`65536` = 1.0); `0` selects greedy decoding.
	pub temperature_q16: u32,
	/// Keep only the `top_k` most likely tokens; `0` = no limit.
	pub top_k: u32,
	/// Nucleus threshold in Q16 (`65536` = 1.0 = off): keep the shortest prefix of the
	/// candidates whose weight reaches `top_p` of the total (`0` keeps one candidate).
	pub top_p_q16: u32,
	/// The job's seed.
	pub seed: [u8; 32],
}

impl SamplingParams {
	/// Greedy decoding (the seed is unused).
	pub const GREEDY: SamplingParams =
		SamplingParams { temperature_q16: 0, top_k: 0, top_p_q16: 1 << 16, seed: [0; 32] };
}

/// Greedy selection: the index of the largest logit, the **lowest index** among ties;
/// `None` for no logits.
pub fn argmax(logits: &[i32]) -> Option<u32> {
	let mut best: Option<(usize, i32)> = None;
	for (i, &z) in logits.iter().enumerate() {
		if best.is_none_or(|(_, b)| z > b) {
			best = Some((i, z));
		}
	}
	best.and_then(|(i, _)| u32::try_from(i).ok())
}

/// The sampler's random number for the token chosen at `position`: the first 8 bytes, as a
/// little-endian `u64`, of `blake2_256(b"verity/lm/sample/v1" || seed || u32_le(position))`.
pub fn sample_random(seed: &[u8; 32], position: u32) -> u64 {
	let mut buf = Vec::with_capacity(SAMPLE_TAG.len() + 36);
	buf.extend_from_slice(SAMPLE_TAG);
	buf.extend_from_slice(seed);
	buf.extend_from_slice(&position.to_le_bytes());
	let h = blake2_256(&buf);
	let mut first = [0u8; 8];
	first.copy_from_slice(h.get(..8).unwrap_or(&[0; 8]));
	u64::from_le_bytes(first)
}

/// The token chosen at `position` from `logits` (Q16, one per vocabulary entry).
///
/// * `temperature_q16 == 0`: [`argmax`].
/// * otherwise:
///   1. candidates: all indices sorted by logit descending, ties by index ascending; the first
///      `top_k` are kept (all if `top_k` is 0 or at least the vocabulary);
///   2. weights: with `m` the first candidate's logit,
///      `w_j = exp_neg_q32(floor((m - z_j) * 2^32 / temperature_q16))` (saturated to `u64`),
///      so `w_0 = 2^32`;
///   3. top-p: with `W = sum w_j`, keep the shortest prefix whose sum `C` satisfies
///      `C * 2^16 >= top_p_q16 * W` (all candidates if none does);
///   4. with `W'` the kept sum and `u = sample_random(seed, position)`,
///      `r = floor(u * W' / 2^64)`; the result is the first kept candidate whose running sum
///      exceeds `r`.
///
/// `None` for no logits.
pub fn select_token(logits: &[i32], params: &SamplingParams, position: u32) -> Option<u32> {
	if params.temperature_q16 == 0 {
		return argmax(logits);
	}
	let mut order: Vec<u32> = (0..crate::len_u32(logits.len())).collect();
	let logit = |i: u32| logits.get(usize::try_from(i).unwrap_or(usize::MAX)).copied();
	order.sort_by(|&a, &b| logit(b).cmp(&logit(a)).then(a.cmp(&b)));
	let keep = match usize::try_from(params.top_k) {
		Ok(0) | Err(_) => order.len(),
		Ok(k) => k.min(order.len()),
	};
	order.truncate(keep);
	let m = logit(*order.first()?)?;
	let t = u128::from(params.temperature_q16);
	let weights: Vec<u128> = order
		.iter()
		.map(|&i| {
			let d = u128::try_from(i64::from(m) - i64::from(logit(i).unwrap_or(m))).unwrap_or(0);
			let r = u64::try_from((d << 32) / t).unwrap_or(u64::MAX);
			u128::from(exp_neg_q32(r))
		})
		.collect();
	let total: u128 = weights.iter().sum();
	let threshold = u128::from(params.top_p_q16) * total;
	let mut kept = weights.len();
	let mut running: u128 = 0;
	for (j, &w) in weights.iter().enumerate() {
		running += w;
		if running << 16 >= threshold {
			kept = j + 1;
			break;
		}
	}
	let kept_total: u128 = weights.iter().take(kept).sum();
	let r = (u128::from(sample_random(&params.seed, position)) * kept_total) >> 64;
	let mut running: u128 = 0;
	for (&i, &w) in order.iter().zip(&weights).take(kept) {
		running += w;
		if running > r {
			return Some(i);
		}
	}
	order.first().copied()
}

#[cfg(test)]
mod tests {
	use super::*;
	use alloc::vec;

	const ONE: i32 = 1 << 16;
	const T1: u32 = 1 << 16;

	fn params(t: u32, top_k: u32, top_p: u32, seed: u8) -> SamplingParams {
		SamplingParams { temperature_q16: t, top_k, top_p_q16: top_p, seed: [seed; 32] }
	}

	#[test]
	fn greedy_lowest_index_wins_ties() {
		assert_eq!(argmax(&[1, 5, 5, 2]), Some(1));
		assert_eq!(argmax(&[i32::MIN, i32::MIN]), Some(0));
		assert_eq!(argmax(&[-3]), Some(0));
		assert_eq!(argmax(&[]), None);
		let greedy = SamplingParams::GREEDY;
		assert_eq!(select_token(&[0, 7, 7, 7], &greedy, 3), Some(1));
	}

	#[test]
	fn random_source_layout() {
		let mut buf = b"verity/lm/sample/v1".to_vec();
		buf.extend_from_slice(&[9; 32]);
		buf.extend_from_slice(&5u32.to_le_bytes());
		let h = blake2_256(&buf);
		let want = u64::from_le_bytes(h[..8].try_into().unwrap());
		assert_eq!(sample_random(&[9; 32], 5), want);
		assert_ne!(sample_random(&[9; 32], 5), sample_random(&[9; 32], 6));
		assert_ne!(sample_random(&[9; 32], 5), sample_random(&[8; 32], 5));
	}

	#[test]
	fn top_k_one_and_top_p_zero_are_greedy() {
		let logits = [3 * ONE, 9 * ONE, 9 * ONE, -ONE];
		for seed in 0..20 {
			assert_eq!(select_token(&logits, &params(T1, 1, 1 << 16, seed), 0), Some(1));
			assert_eq!(select_token(&logits, &params(T1, 0, 0, seed), 7), Some(1));
		}
	}

	#[test]
	fn sampler_ties_are_ordered_by_index() {
		// Two tied logits, top_k = 2: weights are both 2^32, so r < 2^32 picks token 2 (lower
		// index first in the sorted order) and r >= 2^32 picks token 5.
		let mut logits = vec![-100 * ONE; 8];
		logits[5] = ONE;
		logits[2] = ONE;
		let mut seen = [0u32; 8];
		for seed in 0..64u8 {
			let p = params(T1, 2, 1 << 16, seed);
			let tok = select_token(&logits, &p, 0).unwrap();
			let u = sample_random(&p.seed, 0);
			let r = (u128::from(u) * (2u128 << 32)) >> 64;
			assert_eq!(tok, if r < 1 << 32 { 2 } else { 5 });
			seen[tok as usize] += 1;
		}
		assert!(seen[2] > 0 && seen[5] > 0 && seen[2] + seen[5] == 64);
	}

	#[test]
	fn seed_and_position_change_the_sample() {
		// A uniform row over 16 tokens: the choice follows the random number exactly,
		// token = floor(u * 16 / 2^64) = u >> 60.
		let logits = vec![ONE; 16];
		let mut distinct = alloc::collections::BTreeSet::new();
		for seed in 0..32u8 {
			let p = params(T1, 0, 1 << 16, seed);
			let tok = select_token(&logits, &p, 4).unwrap();
			assert_eq!(u64::from(tok), sample_random(&p.seed, 4) >> 60);
			distinct.insert(tok);
		}
		assert!(distinct.len() > 8);
		let p = params(T1, 0, 1 << 16, 1);
		let by_position: alloc::collections::BTreeSet<u32> =
			(0..32).map(|pos| select_token(&logits, &p, pos).unwrap()).collect();
		assert!(by_position.len() > 8);
	}

	#[test]
	fn temperature_and_top_p_hand_computed() {
		// Logits 0 and -ln2 at T = 1: weights 2^32 and ~2^31. top_p = 0.6 keeps only the
		// first (2^32 * 2^16 >= 0.6 * 1.5 * 2^32 * 2^16), top_p = 0.7 keeps both.
		let ln2 = (crate::lm::fixed::LN2_Q32 >> 16) as i32;
		let logits = [-ln2, 0];
		let w1 = exp_neg_q32((ln2 as u64) << 16);
		assert!(w1.abs_diff(1 << 31) < 1 << 17);
		for seed in 0..32 {
			assert_eq!(select_token(&logits, &params(T1, 0, 39_322, seed), 0), Some(1));
		}
		let both: alloc::collections::BTreeSet<u32> = (0..32)
			.map(|seed| select_token(&logits, &params(T1, 0, 45_875, seed), 0).unwrap())
			.collect();
		assert_eq!(both.len(), 2);
		// A tiny temperature makes the runner-up vanish: (ln2 / 2^-16) -> r = ln2 * 2^48 -> 0.
		for seed in 0..32 {
			assert_eq!(select_token(&logits, &params(1, 0, 1 << 16, seed), 0), Some(1));
		}
		assert_eq!(select_token(&[], &params(T1, 0, 1 << 16, 0), 0), None);
	}
}
