//! Fixed-point building blocks of the language-model ops: exact fp16 decoding, rounded
//! division, saturation, the integer square root, `exp(-x)` and `cos`/`sin`.
//!
//! Every function here is total (no panic, no overflow on any argument) and its rounding is
//! stated in its doc comment; `docs/MODEL_FORMAT.md` section 12 repeats the rules.

/// Fractional bits of every activation vector of a language model (residual stream, normed
/// vectors, queries, keys, values, attention outputs, FFN hidden values, logits): an `i32`
/// `v` means `v / 2^16` (range about ±32768, resolution 1.5e-5).
pub const ACT_FRAC_BITS: u32 = 16;

/// `1.0` in Q32 (the format of `exp` results, `cos`/`sin` and angles).
pub const ONE_Q32: u64 = 1 << 32;

/// `round(ln 2 * 2^32)`.
pub const LN2_Q32: u64 = 2_977_044_472;

/// `round(pi / 2 * 2^32)`.
pub const HALF_PI_Q32: u64 = 6_746_518_852;

/// `4 * HALF_PI_Q32`: the period used to reduce angles (so that the quadrant split is exact).
pub const TWO_PI_Q32: u64 = 4 * HALF_PI_Q32;

/// Number of Taylor terms `k = 1..=EXP_TERMS` of [`exp_neg_q32`].
pub const EXP_TERMS: u64 = 12;

/// Largest odd power of the sine series and largest even power (+1) of the cosine series of
/// [`cos_sin_q32`].
pub const TRIG_MAX_POWER: u64 = 17;

/// Largest magnitude of a decoded fp16 in units of 2^-24: `65504 * 2^24 = 2047 * 2^29`.
pub const FP16_MAX_Q24: i64 = 2047 << 29;

/// An IEEE-754 binary16 value as an **exact** integer multiple of `2^-24`, `None` for
/// infinities and NaNs.
///
/// Every finite fp16 is `±mantissa * 2^(e - 25)` with an integer mantissa, so it is an
/// integer number of `2^-24` units: subnormals (`e == 0`) are `frac`, normals
/// (`1 <= e <= 30`) are `(1024 + frac) << (e - 1)`; the magnitude is at most
/// [`FP16_MAX_Q24`] `< 2^40`. `-0.0` decodes to `0`.
pub fn fp16_to_q24(bits: u16) -> Option<i64> {
	let negative = bits & 0x8000 != 0;
	let exponent = u32::from((bits >> 10) & 0x1f);
	let frac = i64::from(bits & 0x03ff);
	let magnitude = match exponent {
		0 => frac,
		31 => return None,
		e => (1024 + frac) << (e - 1),
	};
	Some(if negative { -magnitude } else { magnitude })
}

/// [`fp16_to_q24`] with infinities and NaNs read as `0`, so that execution is defined for any
/// weight bytes (weight checks reject such scales before a model is published, see
/// [`crate::lm::quant::check_block_scales`]).
pub fn fp16_to_q24_or_zero(bits: u16) -> i64 {
	fp16_to_q24(bits).unwrap_or(0)
}

/// `num / den` rounded to the nearest integer, **ties away from zero** (`5/2 -> 3`,
/// `-5/2 -> -3`, `-5/4 -> -1`): `sign(num) * (q + (2 r >= den ? 1 : 0))` where `q` and `r`
/// are the quotient and remainder of `|num| / den`. `0` if `den <= 0` (never reached by the
/// ops, whose denominators are positive); saturates instead of overflowing.
#[inline]
pub fn div_round(num: i128, den: i128) -> i128 {
	if den <= 0 {
		return 0;
	}
	let magnitude = num.unsigned_abs();
	let den = den.unsigned_abs();
	// floor(|num| / den) plus one if the remainder is at least half of den (2 r >= den).
	let q = magnitude / den;
	let r = magnitude % den;
	let q = if r.saturating_mul(2) >= den { q.saturating_add(1) } else { q };
	let q = i128::try_from(q).unwrap_or(i128::MAX);
	if num < 0 {
		-q
	} else {
		q
	}
}

/// `v` clamped to the `i32` range.
#[inline]
pub fn sat_i32(v: i128) -> i32 {
	i32::try_from(v.clamp(i128::from(i32::MIN), i128::from(i32::MAX))).unwrap_or(0)
}

/// `floor(sqrt(n))`, the exact integer square root.
pub fn isqrt(n: u128) -> u128 {
	n.isqrt()
}

/// `exp(-r / 2^32) * 2^32`, for `r >= 0` in Q32, as a Q32 value in `0 ..= 2^32`.
///
/// Rule (every step an exact integer operation):
/// 1. `n = floor(r / LN2_Q32)`, `f = r - n * LN2_Q32` (so `0 <= f < LN2_Q32`);
/// 2. `t_0 = 2^32`, `t_k = floor(t_(k-1) * f / (k * 2^32))` for `k = 1 ..= EXP_TERMS` (12),
///    `s = t_0 - t_1 + t_2 - ...` (alternating, `0 <= s <= 2^32`);
/// 3. the result is `floor(s / 2^n)` (`0` for `n >= 64`).
///
/// `exp_neg_q32(0) = 2^32` exactly; the error is a few units of `2^-32` (each floor loses
/// less than one unit; the series remainder is below `2^-35`).
pub fn exp_neg_q32(r: u64) -> u64 {
	let n = r / LN2_Q32;
	let f = r % LN2_Q32;
	let mut term = ONE_Q32;
	let mut sum: i64 = ONE_Q32 as i64;
	for k in 1..=EXP_TERMS {
		// term <= 2^32 and f < 2^32: the product fits a u64.
		term = term.saturating_mul(f) / (k << 32);
		let t = i64::try_from(term).unwrap_or(0);
		sum = if k % 2 == 1 { sum - t } else { sum + t };
	}
	let s = u64::try_from(sum).unwrap_or(0);
	if n >= 64 {
		0
	} else {
		s >> n
	}
}

/// `(cos, sin)` of the angle `a / 2^32` radians (`a >= 0` in Q32), each in Q32 as an `i64`
/// (about `-2^32 ..= 2^32`).
///
/// Rule:
/// 1. `a' = a mod TWO_PI_Q32`, quadrant `q = floor(a' / HALF_PI_Q32)`, `x = a' mod HALF_PI_Q32`;
/// 2. `x2 = floor(x * x / 2^32)`;
/// 3. sine: `t_1 = x`, `t_k = floor(t_(k-2) * x2 / (k (k-1) 2^32))` for odd `k = 3 ..= 17`,
///    `s = t_1 - t_3 + t_5 - ...`; cosine: `t_0 = 2^32`, the same recurrence for even
///    `k = 2 ..= 16`, `c = t_0 - t_2 + t_4 - ...`;
/// 4. by quadrant: `0: (c, s)`, `1: (-s, c)`, `2: (-c, -s)`, `3: (s, -c)`.
///
/// `cos_sin_q32(0) = (2^32, 0)` exactly; the error is a few units of `2^-32`.
pub fn cos_sin_q32(a: u64) -> (i64, i64) {
	let reduced = a % TWO_PI_Q32;
	let quadrant = reduced / HALF_PI_Q32;
	let x = u128::from(reduced % HALF_PI_Q32);
	let x2 = (x * x) >> 32; // x < 2^33: exact
	let series = |first: u128, first_power: u64| -> i64 {
		let mut term = first;
		let mut sum = i128::try_from(first).unwrap_or(0);
		let mut k = first_power + 2;
		let mut negative = true;
		while k <= TRIG_MAX_POWER {
			// term < 2^34 and x2 < 2^34: the product fits a u128.
			term = term * x2 / (u128::from(k * (k - 1)) << 32);
			let t = i128::try_from(term).unwrap_or(0);
			sum = if negative { sum - t } else { sum + t };
			negative = !negative;
			k += 2;
		}
		i64::try_from(sum).unwrap_or(0)
	};
	let s = series(x, 1);
	let c = series(u128::from(ONE_Q32), 0);
	match quadrant {
		0 => (c, s),
		1 => (-s, c),
		2 => (-c, -s),
		_ => (s, -c),
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn fp16_exact() {
		assert_eq!(fp16_to_q24(0x0000), Some(0));
		assert_eq!(fp16_to_q24(0x8000), Some(0)); // -0
		assert_eq!(fp16_to_q24(0x0001), Some(1)); // smallest subnormal 2^-24
		assert_eq!(fp16_to_q24(0x03ff), Some(1023)); // largest subnormal
		assert_eq!(fp16_to_q24(0x0400), Some(1024)); // smallest normal 2^-14
		assert_eq!(fp16_to_q24(0x3c00), Some(1 << 24)); // 1.0
		assert_eq!(fp16_to_q24(0xbc00), Some(-(1 << 24))); // -1.0
		assert_eq!(fp16_to_q24(0x3555), Some(0x555 << 12)); // 0.333251953125
		assert_eq!(fp16_to_q24(0x7bff), Some(FP16_MAX_Q24)); // 65504
		assert_eq!(FP16_MAX_Q24, 65504 << 24);
		assert_eq!(fp16_to_q24(0xfbff), Some(-FP16_MAX_Q24));
		assert_eq!(fp16_to_q24(0x7c00), None); // +inf
		assert_eq!(fp16_to_q24(0xfc00), None); // -inf
		assert_eq!(fp16_to_q24(0x7e00), None); // NaN
		assert_eq!(fp16_to_q24_or_zero(0x7e01), 0);
	}

	/// Every finite fp16 decodes to the same value as the hardware conversion to f64.
	#[cfg(feature = "std")]
	#[test]
	fn fp16_matches_float_for_all_finite() {
		for bits in 0..=u16::MAX {
			let e = (bits >> 10) & 0x1f;
			let frac = f64::from(bits & 0x3ff);
			let mag = match e {
				0 => frac * 2f64.powi(-24),
				31 => {
					assert_eq!(fp16_to_q24(bits), None);
					continue;
				},
				e => (1.0 + frac / 1024.0) * 2f64.powi(i32::from(e) - 15),
			};
			let v = if bits & 0x8000 != 0 { -mag } else { mag };
			assert_eq!(fp16_to_q24(bits).unwrap() as f64 * 2f64.powi(-24), v, "{bits:#x}");
		}
	}

	#[test]
	fn div_round_ties_away() {
		assert_eq!(div_round(5, 2), 3);
		assert_eq!(div_round(-5, 2), -3);
		assert_eq!(div_round(3, 2), 2);
		assert_eq!(div_round(-3, 2), -2);
		assert_eq!(div_round(-5, 4), -1);
		assert_eq!(div_round(-6, 4), -2);
		assert_eq!(div_round(7, 3), 2);
		assert_eq!(div_round(8, 3), 3);
		assert_eq!(div_round(-8, 3), -3);
		assert_eq!(div_round(0, 7), 0);
		assert_eq!(div_round(1, 0), 0);
		assert_eq!(div_round(1, -1), 0);
		assert_eq!(div_round(i128::MIN, 1), -i128::MAX); // saturates, never panics
	}

	#[test]
	fn isqrt_rounds_down() {
		assert_eq!(isqrt(0), 0);
		assert_eq!(isqrt(1), 1);
		assert_eq!(isqrt(3), 1);
		assert_eq!(isqrt(4), 2);
		assert_eq!(isqrt(15), 3);
		assert_eq!(isqrt(16), 4);
		assert_eq!(isqrt((1 << 64) - 1), (1 << 32) - 1);
		assert_eq!(isqrt(1 << 64), 1 << 32);
		assert_eq!(isqrt(u128::MAX), u64::MAX as u128);
	}

	#[test]
	fn exp_neg_exact_points() {
		assert_eq!(exp_neg_q32(0), ONE_Q32);
		// exp(-ln 2) = 1/2 exactly: n = 1, f = 0.
		assert_eq!(exp_neg_q32(LN2_Q32), ONE_Q32 / 2);
		assert_eq!(exp_neg_q32(10 * LN2_Q32), ONE_Q32 >> 10);
		assert_eq!(exp_neg_q32(64 * LN2_Q32), 0);
		assert_eq!(exp_neg_q32(u64::MAX), 0);
		// Hand-computed: f = 1 (2^-32): t_1 = floor(2^32 * 1 / 2^32) = 1, t_2 = 0 -> 2^32 - 1.
		assert_eq!(exp_neg_q32(1), ONE_Q32 - 1);
		// Monotone non-increasing on a sweep.
		let mut last = u64::MAX;
		for i in 0..5000u64 {
			let v = exp_neg_q32(i * 12_345_679);
			assert!(v <= last);
			last = v;
		}
	}

	#[cfg(feature = "std")]
	#[test]
	fn exp_neg_close_to_float() {
		for i in 0..20_000u64 {
			let r = i * 9_876_543; // up to ~46
			let got = exp_neg_q32(r) as f64;
			let want = (-(r as f64) / 2f64.powi(32)).exp() * 2f64.powi(32);
			assert!((got - want).abs() <= 16.0, "r {r}: {got} vs {want}");
		}
	}

	#[test]
	fn cos_sin_exact_points() {
		assert_eq!(cos_sin_q32(0), (ONE_Q32 as i64, 0));
		assert_eq!(cos_sin_q32(TWO_PI_Q32), (ONE_Q32 as i64, 0)); // one period
															// pi/2: quadrant 1, x = 0 -> (-0, 1)
		assert_eq!(cos_sin_q32(HALF_PI_Q32), (0, ONE_Q32 as i64));
		assert_eq!(cos_sin_q32(2 * HALF_PI_Q32), (-(ONE_Q32 as i64), 0));
		assert_eq!(cos_sin_q32(3 * HALF_PI_Q32), (0, -(ONE_Q32 as i64)));
		// No panic at the extremes.
		let (c, s) = cos_sin_q32(u64::MAX);
		assert!(c.abs() <= 1 << 33 && s.abs() <= 1 << 33);
	}

	#[cfg(feature = "std")]
	#[test]
	fn cos_sin_close_to_float() {
		for i in 0..20_000u64 {
			let a = i.wrapping_mul(0x9E37_79B9_7F4A) % (4000u64 << 32);
			let (c, s) = cos_sin_q32(a);
			// the reference uses the same reduced period, so compare on the reduced angle
			let reduced = (a % TWO_PI_Q32) as f64 / 2f64.powi(32);
			let (wc, ws) = (reduced.cos() * 2f64.powi(32), reduced.sin() * 2f64.powi(32));
			assert!((c as f64 - wc).abs() <= 16.0, "a {a}: cos {c} vs {wc}");
			assert!((s as f64 - ws).abs() <= 16.0, "a {a}: sin {s} vs {ws}");
		}
	}
}
