//! The elementwise and reduction ops of a Llama-family model, one plain function per op.
//! Every activation is an `i32` in Q16 (see [`ACT_FRAC_BITS`]); the matmuls are in
//! [`super::quant`], token selection in [`super::sample`].

use alloc::vec::Vec;

use super::fixed::{cos_sin_q32, div_round, exp_neg_q32, isqrt, sat_i32, ACT_FRAC_BITS, ONE_Q32};

/// `i32` values as little-endian bytes (the stored form of every activation vector).
pub fn i32s_to_bytes(v: &[i32]) -> Vec<u8> {
	v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes as `i32` values; `None` unless the length is a multiple of 4.
pub fn bytes_to_i32s(b: &[u8]) -> Option<Vec<i32>> {
	if !b.len().is_multiple_of(4) {
		return None;
	}
	b.chunks_exact(4).map(|c| c.try_into().ok().map(i32::from_le_bytes)).collect()
}

/// RMSNorm: `y_i = x_i * g_i / sqrt(mean(x^2) + eps)` with `x`, `g`, `y` in Q16 and `eps` in
/// units of `2^-32` (the units of `x^2`).
///
/// Rule: `ss = sum x_i^2` (exact, `< 2^94`), `ms = floor(ss / n) + eps`,
/// `r = isqrt(ms * 2^32)` (floor of the exact square root: the RMS in Q32),
/// `y_i = sat_i32(div_round(x_i * g_i * 2^16, r))` (ties away from zero). With `eps >= 1`
/// (validation), `r >= 2^16`. `None` if the lengths differ, `x` is empty or `r == 0`.
pub fn rms_norm(x: &[i32], gamma: &[i32], eps: u32) -> Option<Vec<i32>> {
	if x.len() != gamma.len() || x.is_empty() {
		return None;
	}
	let ss: u128 = x.iter().map(|&v| u128::from(v.unsigned_abs()).pow(2)).sum();
	let n = u128::try_from(x.len()).ok()?;
	let ms = ss / n + u128::from(eps); // <= 2^62 + 2^32
	let r = i128::try_from(isqrt(ms << 32)).ok()?;
	if r == 0 {
		return None;
	}
	Some(
		x.iter()
			.zip(gamma)
			.map(|(&v, &g)| sat_i32(div_round((i128::from(v) * i128::from(g)) << ACT_FRAC_BITS, r)))
			.collect(),
	)
}

/// Rotary position embedding of one head vector at `position`, adjacent pairs (GGML "normal"
/// mode, what llama.cpp uses for the Llama family: GGUF files store Q/K rows permuted for it).
///
/// For pair `i` (`x0 = v[2i]`, `x1 = v[2i + 1]`): angle `a = position * inv_freq[i]` (Q32,
/// exact in `u64`), `(c, s) = cos_sin_q32(a)`,
/// `v'[2i] = sat_i32(div_round(x0 c - x1 s, 2^32))`,
/// `v'[2i + 1] = sat_i32(div_round(x0 s + x1 c, 2^32))`. At position 0 this is the identity.
/// `None` unless `v.len() == 2 * inv_freq.len()` or if an angle overflows `u64`.
pub fn rope(v: &[i32], position: u32, inv_freq: &[u64]) -> Option<Vec<i32>> {
	if v.len() != inv_freq.len().checked_mul(2)? {
		return None;
	}
	let mut out = Vec::with_capacity(v.len());
	for (pair, &f) in v.chunks_exact(2).zip(inv_freq) {
		let (x0, x1) = (i128::from(*pair.first()?), i128::from(*pair.get(1)?));
		let (c, s) = cos_sin_q32(u64::from(position).checked_mul(f)?);
		let (c, s) = (i128::from(c), i128::from(s));
		out.push(sat_i32(div_round(x0 * c - x1 * s, 1 << 32)));
		out.push(sat_i32(div_round(x0 * s + x1 * c, 1 << 32)));
	}
	Some(out)
}

/// The attention score of one key: `sat_i32(div_round(sum_i q_i k_i * scale, 2^32))`, i.e.
/// the dot product (Q32) times `scale` (Q16) taken back to Q16 with one rounding.
pub fn attention_score(q: &[i32], k: &[i32], scale_q16: u32) -> i32 {
	let dot: i128 = q.iter().zip(k).map(|(&a, &b)| i128::from(a) * i128::from(b)).sum();
	sat_i32(div_round(dot * i128::from(scale_q16), 1 << 32))
}

/// Softmax weights of scores `z` (Q16): `e_s = exp_neg_q32((max z - z_s) * 2^16)` (Q32,
/// unnormalized; the maximum gets exactly `2^32`, so their sum is at least `2^32`).
pub fn softmax_weights(z: &[i32]) -> Vec<u64> {
	let m = z.iter().copied().max().unwrap_or(0);
	z.iter()
		.map(|&s| {
			let diff = u64::try_from(i64::from(m) - i64::from(s)).unwrap_or(0); // < 2^32
			exp_neg_q32(diff << ACT_FRAC_BITS)
		})
		.collect()
}

/// A partial attention result over one block of keys (the output of an `AttnPart` step):
/// `max` = the block's largest score `m_b` (Q16), `sum = S_b = sum_s e_s`, and
/// `out[i] = o_(b,i) = sat_i32(div_round(sum_s e_s v_(s,i), S_b))`, the block's own attention
/// output (Q16), with `e_s = exp_neg_q32((m_b - z_s) * 2^16)`.
/// The empty part (a block after the query's position) is `(i32::MIN, 0, [0; hd])`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AttnPart {
	pub max: i32,
	pub sum: u64,
	pub out: Vec<i32>,
}

/// Bytes of an encoded [`AttnPart`] of head dimension `hd`: `4 + 8 + 4 hd`.
pub fn attn_part_bytes(hd: usize) -> usize {
	hd.saturating_mul(4).saturating_add(12)
}

impl AttnPart {
	/// The empty part of head dimension `hd`.
	pub fn empty(hd: usize) -> AttnPart {
		AttnPart { max: i32::MIN, sum: 0, out: alloc::vec![0; hd] }
	}

	/// `i32_le(max) || u64_le(sum) || i32_le(out[0]) || ...`.
	pub fn encode(&self) -> Vec<u8> {
		let mut out = Vec::with_capacity(attn_part_bytes(self.out.len()));
		self.encode_into(&mut out);
		out
	}

	/// [`AttnPart::encode`] appended to `out`.
	pub fn encode_into(&self, out: &mut Vec<u8>) {
		out.extend_from_slice(&self.max.to_le_bytes());
		out.extend_from_slice(&self.sum.to_le_bytes());
		for o in &self.out {
			out.extend_from_slice(&o.to_le_bytes());
		}
	}

	/// The inverse of [`AttnPart::encode`] for head dimension `hd` (any bytes of the right
	/// length decode).
	pub fn decode(bytes: &[u8], hd: usize) -> Option<AttnPart> {
		if bytes.len() != attn_part_bytes(hd) {
			return None;
		}
		let (max, rest) = bytes.split_first_chunk::<4>()?;
		let (sum, rest) = rest.split_first_chunk::<8>()?;
		Some(AttnPart {
			max: i32::from_le_bytes(*max),
			sum: u64::from_le_bytes(*sum),
			out: bytes_to_i32s(rest)?,
		})
	}
}

/// Partial attention of query `q` over one non-empty block of keys and values (Q16 vectors of
/// the head dimension): `z_s = attention_score(q, k_s, scale)`, `m = max z_s`,
/// `e_s = exp_neg_q32((m - z_s) * 2^16)` (the maximum gets exactly `2^32`),
/// `sum = sum_s e_s` (`>= 2^32`), `out_i = sat_i32(div_round(sum_s e_s v_(s,i), sum))` (the
/// weighted sums are exact: `e_s <= 2^32`, `|v| <= 2^31`, at most `2^24` keys, so
/// `|.| < 2^87`; the quotient is a weighted mean of values, so within `i32`). `None` if there
/// is no key or the lengths disagree.
pub fn attention_part(
	q: &[i32],
	keys: &[&[i32]],
	values: &[&[i32]],
	scale_q16: u32,
) -> Option<AttnPart> {
	if keys.is_empty() || keys.len() != values.len() {
		return None;
	}
	if keys.iter().chain(values).any(|v| v.len() != q.len()) {
		return None;
	}
	let z: Vec<i32> = keys.iter().map(|k| attention_score(q, k, scale_q16)).collect();
	let e = softmax_weights(&z);
	let mut num = alloc::vec![0i128; q.len()];
	for (&w, v) in e.iter().zip(values) {
		for (n, &x) in num.iter_mut().zip(v.iter()) {
			*n += i128::from(w) * i128::from(x);
		}
	}
	let sum: u64 = e.iter().sum();
	let out = num.iter().map(|&n| sat_i32(div_round(n, i128::from(sum)))).collect();
	Some(AttnPart { max: z.iter().copied().max()?, sum, out })
}

/// Merge the parts of one query head (output `[hd]`, Q16): over the parts with `sum > 0`,
/// `m = max m_b`, `f_b = exp_neg_q32((m - m_b) * 2^16)` (the largest part gets exactly
/// `2^32`), the weights `w_b = div_round(sum_b * f_b, 2^32)`, and
/// `o_i = sat_i32(div_round(sum_b w_b out_(b,i), sum_b w_b))` (`0` if no part is non-empty).
/// Products and sums saturate in `i128`, which honest parts never reach (`w_b < 2^56`,
/// `|out| <= 2^31`, at most `2^24` parts), so the merge is total on any bytes. With a single
/// part the weight cancels and the result is that part's `out`.
pub fn attention_merge(parts: &[AttnPart]) -> Vec<i32> {
	let hd = parts.first().map(|p| p.out.len()).unwrap_or(0);
	let live = || parts.iter().filter(|p| p.sum > 0);
	let Some(m) = live().map(|p| p.max).max() else {
		return alloc::vec![0; hd];
	};
	let mut total: i128 = 0;
	let mut num = alloc::vec![0i128; hd];
	for p in live() {
		let diff = u64::try_from(i64::from(m) - i64::from(p.max)).unwrap_or(0); // < 2^32
		let f = i128::from(exp_neg_q32(diff << ACT_FRAC_BITS));
		let w = div_round(i128::from(p.sum) * f, 1 << 32);
		total = total.saturating_add(w);
		for (n, &x) in num.iter_mut().zip(&p.out) {
			*n = n.saturating_add(w.saturating_mul(i128::from(x)));
		}
	}
	num.iter().map(|&n| sat_i32(div_round(n, total))).collect()
}

/// Causal attention of one query head over all its keys and values at once: the merge of the
/// single part [`attention_part`], i.e. `o_i = sat_i32(div_round(sum_s e_s v_(s,i),
/// sum_s e_s))`. A model splits the keys into blocks of `attn_block` positions (one
/// `AttnPart` step each) and merges them; with one block the two agree exactly.
pub fn attention(
	q: &[i32],
	keys: &[&[i32]],
	values: &[&[i32]],
	scale_q16: u32,
) -> Option<Vec<i32>> {
	Some(attention_merge(&[attention_part(q, keys, values, scale_q16)?]))
}

/// The SiLU-gated product `h = silu(g) * u = g * sigmoid(g) * u` of two Q16 values.
///
/// Rule: `E = exp_neg_q32(|g| * 2^16)` (`e^-|g|` in Q32); `W = 2^32` if `g >= 0` else `E`
/// (so `sigmoid(g) = W / (2^32 + E)` exactly in both cases);
/// `h = sat_i32(div_round(g * u * W, 2^16 * (2^32 + E)))`: one rounding, ties away from zero.
pub fn swiglu(g: i32, u: i32) -> i32 {
	let e = exp_neg_q32(u64::from(g.unsigned_abs()) << ACT_FRAC_BITS);
	let w = if g >= 0 { ONE_Q32 } else { e };
	let num = i128::from(g) * i128::from(u) * i128::from(w); // < 2^94
	let den = i128::from(ONE_Q32 + e) << ACT_FRAC_BITS;
	sat_i32(div_round(num, den))
}

/// [`swiglu`] elementwise; `None` if the lengths differ.
pub fn swiglu_vec(gate: &[i32], up: &[i32]) -> Option<Vec<i32>> {
	if gate.len() != up.len() {
		return None;
	}
	Some(gate.iter().zip(up).map(|(&g, &u)| swiglu(g, u)).collect())
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::lm::fixed::{LN2_Q32, TWO_PI_Q32};
	use alloc::vec;

	const ONE: i32 = 1 << 16;

	#[test]
	fn bytes_round_trip() {
		let v = vec![0, -1, i32::MIN, i32::MAX, 123456];
		assert_eq!(bytes_to_i32s(&i32s_to_bytes(&v)), Some(v));
		assert_eq!(i32s_to_bytes(&[-2]), vec![0xfe, 0xff, 0xff, 0xff]);
		assert!(bytes_to_i32s(&[1, 2, 3]).is_none());
	}

	#[test]
	fn rms_norm_hand_computed() {
		// x = [3, 4] (real), g = 1, eps = 0: mean(x^2) = 12.5, rms = 3.5355339...
		// ss = (9 + 16) * 2^32, ms = 12.5 * 2^32, r = isqrt(12.5 * 2^64) = floor(3.5355339 * 2^32)
		let x = [3 * ONE, 4 * ONE];
		let y = rms_norm(&x, &[ONE, ONE], 0).unwrap();
		let r = isqrt(((25u128 << 32) / 2) << 32);
		assert_eq!(r, 15_185_002_499); // floor(sqrt(12.5) * 2^32)
		assert_eq!(y[0], div_round((3i128 << 32) << 16, r as i128) as i32);
		assert_eq!(y, vec![55_609, 74_146]); // 0.8485.., 1.1313..
									   // Uniform input normalizes to exactly 1.0 (r = 2^32 exactly), times gamma.
		let y = rms_norm(&[ONE; 4], &[ONE, 2 * ONE, -ONE, 0], 0).unwrap();
		assert_eq!(y, vec![ONE, 2 * ONE, -ONE, 0]);
		// eps dominates a zero input: r = isqrt(eps * 2^32) and every output is 0.
		assert_eq!(rms_norm(&[0; 4], &[ONE; 4], 1).unwrap(), vec![0; 4]);
		// Inverse-sqrt rounding: the floor of the square root, not its rounding:
		// x = [1] Q16 (ss = 1, tiny), eps = 1: ms = 2, r = isqrt(2^33) = 92681 (92681.9..),
		// y = div_round(1 * 65536 * 65536, 92681) = 46341 (46340.95 -> 46341).
		let y = rms_norm(&[1], &[ONE], 1).unwrap();
		assert_eq!(isqrt(2u128 << 32), 92_681);
		assert_eq!(y, vec![46_341]);
		// Extremes saturate, never overflow.
		let y = rms_norm(&[i32::MIN, i32::MAX], &[i32::MAX, i32::MIN], 1).unwrap();
		assert_eq!(y, vec![-i32::MAX, -i32::MAX]); // |x g| / rms just below 2^31
		assert!(rms_norm(&[], &[], 1).is_none());
		assert!(rms_norm(&[1], &[1, 2], 1).is_none());
		assert!(rms_norm(&[0], &[1], 0).is_none());
	}

	#[test]
	fn rope_position_zero_is_identity() {
		let v = vec![ONE, -ONE, 12345, i32::MIN, i32::MAX, 7];
		let f = [1 << 32, 1 << 20, 1];
		assert_eq!(rope(&v, 0, &f).unwrap(), v);
		assert!(rope(&v, 0, &f[..2]).is_none());
	}

	#[test]
	fn rope_quarter_turn_and_near_max() {
		// inv_freq = pi/2 (Q32): position 1 rotates (x0, x1) by exactly a quarter turn.
		let f = [crate::lm::fixed::HALF_PI_Q32];
		assert_eq!(rope(&[ONE, 2 * ONE], 1, &f).unwrap(), vec![-2 * ONE, ONE]);
		assert_eq!(rope(&[ONE, 2 * ONE], 2, &f).unwrap(), vec![-ONE, -2 * ONE]);
		// Near the maximum context with theta = 1: compare with f64 within 2 units.
		let f = [1u64 << 32, 4_294_967]; // 1.0, ~1e-3
		for position in [2046u32, 2047, 65_535, (1 << 31) - 1] {
			let v = rope(&[ONE, 0, ONE, 0], position, &f).unwrap();
			for (i, &fr) in f.iter().enumerate() {
				let a = (u64::from(position) * fr % TWO_PI_Q32) as f64 / 2f64.powi(32);
				let (c, s) = cos_sin_q32(u64::from(position) * fr);
				assert_eq!(v[2 * i], div_round(i128::from(c) << 16, 1 << 32) as i32);
				#[cfg(feature = "std")]
				{
					assert!((f64::from(v[2 * i]) - a.cos() * 65536.0).abs() <= 2.0);
					assert!((f64::from(v[2 * i + 1]) - a.sin() * 65536.0).abs() <= 2.0);
				}
				let _ = (a, s);
			}
		}
		// The angle overflows u64 only for inv_freq far above 2^32 (validation bounds it).
		assert!(rope(&[1, 1], u32::MAX, &[u64::MAX]).is_none());
	}

	#[test]
	fn softmax_uniform_row_and_ties() {
		// A uniform row: every weight is exactly 2^32, so attention is the exact mean.
		let z = [5 * ONE; 4];
		assert_eq!(softmax_weights(&z), vec![ONE_Q32; 4]);
		// Ties at the maximum both get 2^32; a score lower by ln 2 gets exactly half.
		let ln2_q16 = (LN2_Q32 >> 16) as i32; // floor(ln2 * 2^16)
		let w = softmax_weights(&[ONE, ONE, ONE - ln2_q16]);
		assert_eq!(&w[..2], &[ONE_Q32, ONE_Q32]);
		assert_eq!(w[2], exp_neg_q32((ln2_q16 as u64) << 16));
		assert!(w[2].abs_diff(ONE_Q32 / 2) < 1 << 17);
		// Scores far apart: the small one vanishes.
		assert_eq!(softmax_weights(&[i32::MAX, i32::MIN]), vec![ONE_Q32, 0]);
	}

	#[test]
	fn attention_hand_computed() {
		// Two positions with equal scores: the output is the rounded mean of the values.
		let q = [ONE, 0];
		let k = [ONE, 0];
		let v0 = [ONE, 3];
		let v1 = [0, -4];
		let o = attention(&q, &[&k, &k], &[&v0, &v1], 1 << 16).unwrap();
		assert_eq!(o, vec![ONE / 2, -1]); // (3 - 4) / 2 = -0.5 -> -1 (ties away from zero)
									// One position: the output is the value itself.
		assert_eq!(attention(&q, &[&k], &[&v0], 1 << 16).unwrap(), v0.to_vec());
		// Score: q.k = 1.0 (Q32 2^32) times scale 0.125 (8192) -> 0.125 (Q16 8192).
		assert_eq!(attention_score(&q, &k, 8192), 8192);
		assert_eq!(attention_score(&[i32::MIN; 4], &[i32::MIN; 4], u32::MAX), i32::MAX);
		assert!(attention(&q, &[], &[], 1).is_none());
		assert!(attention(&q, &[&k], &[&v0[..1]], 1).is_none());
	}

	#[test]
	fn attention_parts_merge_exactly() {
		let q = [ONE, 0];
		let k = [ONE, 0];
		let (v0, v1, v2) = ([ONE, 3], [0, -4], [2 * ONE, 1]);
		let keys = [&k[..], &k, &k];
		let values = [&v0[..], &v1, &v2];
		// Equal scores: every part's factor is exactly 1, so blocks of any size give the
		// exact mean: (1 + 0 + 2) / 3 = 1.0 and (3 - 4 + 1) / 3 = 0.
		let whole = attention(&q, &keys, &values, 1 << 16).unwrap();
		assert_eq!(whole, vec![ONE, 0]);
		let a = attention_part(&q, &keys[..2], &values[..2], 1 << 16).unwrap();
		let b = attention_part(&q, &keys[2..], &values[2..], 1 << 16).unwrap();
		assert_eq!((a.max, a.sum, b.sum), (1 << 16, 2 << 32, 1 << 32));
		// A part's output is the attention over its block alone; one part merges to itself.
		assert_eq!(a.out, attention(&q, &keys[..2], &values[..2], 1 << 16).unwrap());
		assert_eq!(a.out, vec![ONE / 2, -1]);
		assert_eq!(attention_merge(core::slice::from_ref(&a)), a.out);
		assert_eq!(attention_merge(&[a.clone(), b.clone(), AttnPart::empty(2)]), whole);
		// Empty parts are ignored wherever they are; no part at all gives zeros.
		assert_eq!(attention_merge(&[AttnPart::empty(2), b.clone(), a.clone()]), whole);
		assert_eq!(attention_merge(&[AttnPart::empty(2)]), vec![0, 0]);
		// Different maxima: the lower part is scaled by exp(-(m - m_b)).
		let k2 = [2 * ONE, 0];
		let hi = attention_part(&q, &[&k2], &[&v2], 1 << 16).unwrap(); // score 2.0
		let lo = attention_part(&q, &[&k], &[&v0], 1 << 16).unwrap(); // score 1.0
		let f = exp_neg_q32(1 << 32); // e^-1 in Q32
		let s = (1i128 << 32) + div_round((1i128 << 32) * i128::from(f), 1 << 32);
		let n0 = ((2i128 * i128::from(ONE)) << 32)
			+ div_round((i128::from(ONE) << 32) * i128::from(f), 1 << 32);
		assert_eq!(attention_merge(&[lo.clone(), hi.clone()])[0], div_round(n0, s) as i32);
		// The same as one part over both keys up to the rounding of the scaled part.
		let both = attention(&q, &[&k, &k2], &[&v0, &v2], 1 << 16).unwrap();
		assert!((both[0] - attention_merge(&[lo, hi])[0]).abs() <= 1);
		// Encoding round trip; garbage parts merge without panicking.
		assert_eq!(AttnPart::decode(&a.encode(), 2), Some(a.clone()));
		assert_eq!(a.encode().len(), attn_part_bytes(2));
		let junk = AttnPart { max: i32::MIN, sum: u64::MAX, out: vec![i32::MAX, i32::MIN] };
		let _ = attention_merge(&[junk.clone(), a, junk]);
		assert!(AttnPart::decode(&[0; 19], 2).is_none());
	}

	#[test]
	fn swiglu_hand_computed() {
		// g = 0: silu(0) = 0.
		assert_eq!(swiglu(0, ONE), 0);
		// g = 1, u = 1: sigmoid(1) = 0.7310585.., h = 0.7310585 -> Q16 47911.
		let e = exp_neg_q32(1 << 32);
		let want = div_round(
			i128::from(ONE) * i128::from(ONE) * i128::from(ONE_Q32),
			i128::from(ONE_Q32 + e) << 16,
		);
		assert_eq!(i128::from(swiglu(ONE, ONE)), want);
		assert_eq!(swiglu(ONE, ONE), 47_911);
		// g = -1: silu(-1) = -0.2689414.. -> -17625.
		assert_eq!(swiglu(-ONE, ONE), -17_625);
		// Large |g|: silu(g) ~ g for g >> 0 and ~ 0 for g << 0.
		assert_eq!(swiglu(100 * ONE, ONE), 100 * ONE);
		assert_eq!(swiglu(-100 * ONE, ONE), 0);
		assert_eq!(swiglu(i32::MAX, i32::MAX), i32::MAX);
		assert_eq!(swiglu(i32::MAX, i32::MIN), i32::MIN);
		assert!(swiglu_vec(&[1], &[]).is_none());
	}
}
