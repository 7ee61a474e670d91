//! Fixed-point arithmetic of the interpreter: the gemmlowp / TFLite requantization rule and
//! the rounding division of the average pools. Every function here is total (defined and
//! non-panicking for every argument) and uses integers only.
//!
//! The requantization rule is written twice, on purpose, side by side:
//!
//! * the **gemmlowp form** ([`saturating_rounding_doubling_high_mul`], [`rounding_divide_by_pot`],
//!   [`multiply_by_quantized_multiplier`]): nudge-and-truncate and mask-and-threshold, as in
//!   gemmlowp's `fixedpoint.h` and TFLite. This is the definition the interpreter runs.
//! * the **closed form** ([`srdhm_closed`], [`rdbpot_closed`],
//!   [`multiply_by_quantized_multiplier_closed`]): the same function written with a floor and an
//!   absolute value, the form that vectorizes and that integer tensor ops express. Fast paths
//!   (the worker's tensor ops and SIMD loops) implement this form.
//!
//! A property test (`closed_forms_agree_with_gemmlowp`) checks that both forms are the same
//! function over random and edge-value arguments; fast paths elsewhere are tested against
//! [`requantize_to_i8`].

use crate::model::Requant;

/// `SaturatingRoundingDoublingHighMul(a, b)` of gemmlowp: `round(a * b / 2^31)` computed
/// exactly, with this precise rule:
///
/// * `ab = a * b` as an exact 64-bit product;
/// * `nudge = 2^30` if `ab >= 0`, else `1 - 2^30`;
/// * result `= (ab + nudge) / 2^31`, the division **truncating toward zero**;
/// * the single overflowing case `a == b == i32::MIN` saturates to `i32::MAX`.
///
/// Consequently exact ties (`ab / 2^31` ending in `.5`) round **away from zero when positive**
/// (`0.5 -> 1`) and **toward zero when negative** (`-0.5 -> 0`, `-1.5 -> -1`), i.e. ties
/// round toward `+inf`. All other values round to the nearest integer.
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
	if a == i32::MIN && b == i32::MIN {
		return i32::MAX;
	}
	let ab = i64::from(a) * i64::from(b); // |ab| <= 2^62: exact
	let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
	// |ab + nudge| < 2^63 and the quotient lies within i32 (the only case reaching 2^31 is
	// excluded above); `/` truncates toward zero.
	let q = (ab + nudge) / (1i64 << 31);
	i32::try_from(q).unwrap_or(if q > 0 { i32::MAX } else { i32::MIN })
}

/// `RoundingDivideByPOT(x, exponent)` of gemmlowp: `x / 2^exponent` rounded to the nearest
/// integer, **ties away from zero** (`5 / 2 -> 3`, `-5 / 2 -> -3`, `-5 / 4 -> -1`).
///
/// Computed in 64 bits: `mask = 2^e - 1`, `remainder = x & mask`,
/// `threshold = (mask >> 1) + (x < 0 ? 1 : 0)`,
/// result `= (x >> e) + (remainder > threshold ? 1 : 0)` (`>>` arithmetic). `exponent` 0 is
/// the identity; exponents above 62 give the same result as 62 (which is `round(x / 2^62)`,
/// 0 for every `i32`).
pub fn rounding_divide_by_pot(x: i32, exponent: u32) -> i32 {
	let e = exponent.min(62);
	let x = i64::from(x);
	let mask: i64 = (1i64 << e) - 1;
	let remainder = x & mask;
	let threshold = (mask >> 1) + i64::from(x < 0);
	let q = (x >> e) + i64::from(remainder > threshold);
	// |q| <= 2^31: only x = i32::MIN, e = 0 gives -2^31 which fits.
	i32::try_from(q).unwrap_or(if q > 0 { i32::MAX } else { i32::MIN })
}

/// `MultiplyByQuantizedMultiplier(x, multiplier, shift)` of TFLite, i.e. `x * multiplier / 2^31
/// * 2^shift` rounded:
///
/// * `shift > 0`: `x` is first multiplied by `2^shift` **saturating** to the i32 range
///   (`i32::saturating_mul`), then [`saturating_rounding_doubling_high_mul`] with `multiplier`;
/// * `shift <= 0`: [`saturating_rounding_doubling_high_mul`] with `multiplier`, then
///   [`rounding_divide_by_pot`] by `-shift`.
///
/// (TFLite leaves the left-shift overflow undefined; Verity defines it as saturation.)
/// Valid models only use `multiplier >= 0` and `MIN_SHIFT <= shift <= MAX_SHIFT`, but the
/// function is defined for every argument.
pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i8) -> i32 {
	let (left, right) = split_shift(shift);
	let high = saturating_rounding_doubling_high_mul(saturating_shift_left(x, left), multiplier);
	rounding_divide_by_pot(high, right)
}

/// `shift` as `(left, right)` exponents: `(shift, 0)` if positive, else `(0, -shift)`.
#[inline]
pub fn split_shift(shift: i8) -> (u32, u32) {
	let magnitude = u32::from(shift.unsigned_abs());
	if shift > 0 {
		(magnitude, 0)
	} else {
		(0, magnitude)
	}
}

/// `x * 2^exponent` saturated to the i32 range (exact for every exponent: any `|x| >= 1` times
/// `2^32` already saturates, so the exponent is capped at 32).
#[inline]
pub fn saturating_shift_left(x: i32, exponent: u32) -> i32 {
	let shifted = i64::from(x) << exponent.min(32);
	let clamped = shifted.clamp(i64::from(i32::MIN), i64::from(i32::MAX));
	i32::try_from(clamped).unwrap_or(0)
}

/// Closed form of [`saturating_rounding_doubling_high_mul`]:
/// `floor((a * b + 2^30) / 2^31)`, i.e. `a * b / 2^31` rounded to nearest with ties toward
/// `+inf`, saturated to `i32::MAX` (only `a == b == i32::MIN` reaches `2^31`).
///
/// Why it equals the nudge rule: for `ab >= 0` truncation is the floor; for `ab < 0`,
/// `trunc((ab + 1 - 2^30) / 2^31) = ceil((ab + 1 - 2^30) / 2^31) = floor((ab + 2^30) / 2^31)`
/// (`ceil(y / d) = floor((y + d - 1) / d)` for integers).
#[inline]
pub fn srdhm_closed(a: i32, b: i32) -> i32 {
	// |a * b| <= 2^62, so the sum is exact; `>>` on i64 is the floor.
	let q = (i64::from(a) * i64::from(b) + (1 << 30)) >> 31;
	i32::try_from(q).unwrap_or(i32::MAX)
}

/// Closed form of [`rounding_divide_by_pot`]: `sign(x) * floor((|x| + 2^(e-1)) / 2^e)` for
/// `e >= 1` (round half away from zero), `x` for `e == 0`; exponents above 62 as 62.
#[inline]
pub fn rdbpot_closed(x: i32, exponent: u32) -> i32 {
	let e = exponent.min(62);
	let half = if e > 0 { 1u64 << (e - 1) } else { 0 };
	// |x| <= 2^31 and half <= 2^61: no overflow; the quotient is at most 2^31.
	let magnitude = (u64::from(x.unsigned_abs()) + half) >> e;
	let magnitude = i64::try_from(magnitude).unwrap_or(i64::MAX);
	let q = if x < 0 { -magnitude } else { magnitude };
	// Only x = i32::MIN with e = 0 gives -2^31, which fits.
	i32::try_from(q).unwrap_or(if q > 0 { i32::MAX } else { i32::MIN })
}

/// Closed form of [`multiply_by_quantized_multiplier`]: the saturating left shift, then
/// [`srdhm_closed`], then [`rdbpot_closed`] by `-shift` (the same composition, each stage in
/// closed form). Equal to [`multiply_by_quantized_multiplier`] for every argument.
#[inline]
pub fn multiply_by_quantized_multiplier_closed(x: i32, multiplier: i32, shift: i8) -> i32 {
	let (left, right) = split_shift(shift);
	rdbpot_closed(srdhm_closed(saturating_shift_left(x, left), multiplier), right)
}

/// [`multiply_by_quantized_multiplier`] with a [`Requant`].
pub fn requantize(x: i32, rq: Requant) -> i32 {
	multiply_by_quantized_multiplier(x, rq.multiplier, rq.shift)
}

/// The output stage of every arithmetic op: `clamp(v + zero_point, act_min, act_max)` where the
/// addition is exact (no wrap-around), stored as an int8 byte. `act_min <= act_max` for valid
/// ops; if not, the result is `act_max` (never a panic).
pub fn output_stage(v: i32, zero_point: i8, act_min: i8, act_max: i8) -> u8 {
	let with_zp = i64::from(v) + i64::from(zero_point);
	clamp_to_i8(with_zp, act_min, act_max) as u8
}

/// `min(max(v, act_min), act_max)` as an `i8`.
pub fn clamp_to_i8(v: i64, act_min: i8, act_max: i8) -> i8 {
	let c = v.max(i64::from(act_min)).min(i64::from(act_max));
	i8::try_from(c).unwrap_or(act_max)
}

/// Requantize an accumulator and run the output stage:
/// `clamp(multiply_by_quantized_multiplier(acc, m, s) + zero_point, act_min, act_max)`.
pub fn requantize_to_i8(acc: i32, rq: Requant, zero_point: i8, act_min: i8, act_max: i8) -> u8 {
	output_stage(requantize(acc, rq), zero_point, act_min, act_max)
}

/// `sum / count` rounded to the nearest integer, **ties away from zero**, as TFLite's average
/// pool computes it: `(sum + count / 2) / count` if `sum >= 0`, else
/// `(sum - count / 2) / count`, divisions truncating toward zero. `None` if `count <= 0` or on
/// overflow.
pub fn div_round_half_away(sum: i64, count: i64) -> Option<i64> {
	if count <= 0 {
		return None;
	}
	let half = count / 2;
	let num = if sum >= 0 { sum.checked_add(half)? } else { sum.checked_sub(half)? };
	num.checked_div(count)
}

/// The stored byte as a signed value.
#[inline]
pub fn as_i8(b: u8) -> i8 {
	b as i8
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn srdhm_rounding_ties() {
		// 2^15 * 2^15 = 2^30 -> 2^30 / 2^31 = 0.5 -> 1 (positive tie away from zero)
		assert_eq!(saturating_rounding_doubling_high_mul(1 << 15, 1 << 15), 1);
		// -0.5 -> 0 (negative tie toward zero)
		assert_eq!(saturating_rounding_doubling_high_mul(-(1 << 15), 1 << 15), 0);
		assert_eq!(saturating_rounding_doubling_high_mul(1 << 15, -(1 << 15)), 0);
		// 1.5 -> 2, -1.5 -> -1
		assert_eq!(saturating_rounding_doubling_high_mul(3 << 15, 1 << 15), 2);
		assert_eq!(saturating_rounding_doubling_high_mul(-(3 << 15), 1 << 15), -1);
		// -0.5 - tiny -> -1, 0.5 - tiny -> 0
		assert_eq!(saturating_rounding_doubling_high_mul(-((1 << 30) + 1), 1), -1);
		assert_eq!(saturating_rounding_doubling_high_mul((1 << 30) - 1, 1), 0);
		// not ties
		assert_eq!(saturating_rounding_doubling_high_mul(100, 1 << 30), 50);
		assert_eq!(saturating_rounding_doubling_high_mul(-100, 1 << 30), -50);
		assert_eq!(saturating_rounding_doubling_high_mul(101, 1 << 30), 51); // 50.5 -> 51
		assert_eq!(saturating_rounding_doubling_high_mul(-101, 1 << 30), -50); // -50.5 -> -50
		assert_eq!(saturating_rounding_doubling_high_mul(7, 0), 0);
	}

	#[test]
	fn srdhm_saturation_and_extremes() {
		assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN), i32::MAX);
		assert_eq!(saturating_rounding_doubling_high_mul(i32::MAX, i32::MAX), i32::MAX - 1);
		assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX), i32::MIN + 1);
		assert_eq!(saturating_rounding_doubling_high_mul(i32::MAX, 1), 1);
		assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, 1), -1);
	}

	#[test]
	fn rdbpot_ties_and_negatives() {
		assert_eq!(rounding_divide_by_pot(5, 1), 3); // 2.5 -> 3
		assert_eq!(rounding_divide_by_pot(-5, 1), -3); // -2.5 -> -3
		assert_eq!(rounding_divide_by_pot(3, 1), 2); // 1.5 -> 2
		assert_eq!(rounding_divide_by_pot(-3, 1), -2); // -1.5 -> -2
		assert_eq!(rounding_divide_by_pot(-5, 2), -1); // -1.25 -> -1
		assert_eq!(rounding_divide_by_pot(-6, 2), -2); // -1.5 -> -2
		assert_eq!(rounding_divide_by_pot(6, 2), 2); // 1.5 -> 2
		assert_eq!(rounding_divide_by_pot(7, 2), 2); // 1.75 -> 2
		assert_eq!(rounding_divide_by_pot(-7, 2), -2);
		assert_eq!(rounding_divide_by_pot(1, 1), 1); // 0.5 -> 1
		assert_eq!(rounding_divide_by_pot(-1, 1), -1); // -0.5 -> -1
		assert_eq!(rounding_divide_by_pot(-1, 2), 0); // -0.25 -> 0
		assert_eq!(rounding_divide_by_pot(123, 0), 123);
		assert_eq!(rounding_divide_by_pot(i32::MIN, 0), i32::MIN);
		assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
		assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
		assert_eq!(rounding_divide_by_pot(i32::MIN, 32), -1); // -0.5 -> -1
		assert_eq!(rounding_divide_by_pot(i32::MAX, 32), 0); // 0.4999..
		assert_eq!(rounding_divide_by_pot(i32::MIN, 200), 0);
	}

	#[test]
	fn mbqm_positive_shift_saturates() {
		// multiplier 2^30 = 0.5; shift 1 -> x * 2 * 0.5 = x
		assert_eq!(multiply_by_quantized_multiplier(1000, 1 << 30, 1), 1000);
		// x * 2^30 saturates before the high multiply
		assert_eq!(multiply_by_quantized_multiplier(4, 1 << 30, 30), (i32::MAX / 2) + 1);
		assert_eq!(multiply_by_quantized_multiplier(-4, 1 << 30, 30), i32::MIN / 2);
		assert_eq!(multiply_by_quantized_multiplier(-4, i32::MAX, 30), i32::MIN + 1);
		assert_eq!(multiply_by_quantized_multiplier(1, i32::MAX, 127), i32::MAX - 1);
		// negative shift: 0.5 * 2^-1 = 0.25: 10 * 0.25 = 2.5 -> SRDHM gives 5, then 5/2 -> 3
		assert_eq!(multiply_by_quantized_multiplier(10, 1 << 30, -1), 3);
		assert_eq!(multiply_by_quantized_multiplier(-10, 1 << 30, -1), -3);
		// double rounding: -3 * 0.5 = -1.5 -> -1 (SRDHM), then /2 = -0.5 -> -1
		assert_eq!(multiply_by_quantized_multiplier(-3, 1 << 30, -1), -1);
		assert_eq!(multiply_by_quantized_multiplier(i32::MIN, i32::MAX, -31), -1);
		assert_eq!(multiply_by_quantized_multiplier(i32::MIN, i32::MAX, i8::MIN), 0);
		assert_eq!(multiply_by_quantized_multiplier(12345, 0, 5), 0);
	}

	/// Edge values of an i32 argument: the extremes and their neighbours, zero, ±1, and
	/// powers of two with their neighbours (where exact rounding ties appear), both signs.
	fn edge_i32s() -> alloc::vec::Vec<i32> {
		let mut v = alloc::vec![0, 1, -1, i32::MAX, i32::MIN, i32::MAX - 1, i32::MIN + 1];
		for k in 0..31 {
			let p = 1i32 << k;
			v.extend([
				p,
				-p,
				p + 1,
				-p - 1,
				p - 1,
				1 - p,
				p.saturating_mul(3),
				p.saturating_mul(-3),
			]);
		}
		v
	}

	/// Both forms on the cross product of edge values, every shift of an `i8`, and every
	/// exponent the rounding division distinguishes.
	#[test]
	fn closed_forms_agree_with_gemmlowp_on_edges() {
		let edges = edge_i32s();
		for &a in &edges {
			for &b in &edges {
				assert_eq!(
					srdhm_closed(a, b),
					saturating_rounding_doubling_high_mul(a, b),
					"{a} {b}"
				);
			}
			for e in 0..=70 {
				assert_eq!(rdbpot_closed(a, e), rounding_divide_by_pot(a, e), "{a} {e}");
			}
			assert_eq!(rdbpot_closed(a, u32::MAX), rounding_divide_by_pot(a, u32::MAX), "{a}");
		}
		for &x in &edges {
			for &m in &[0, 1, -1, 1 << 30, (1 << 30) + 1, i32::MAX, i32::MIN, 1_518_500_250] {
				for shift in i8::MIN..=i8::MAX {
					assert_eq!(
						multiply_by_quantized_multiplier_closed(x, m, shift),
						multiply_by_quantized_multiplier(x, m, shift),
						"x {x} m {m} shift {shift}"
					);
				}
			}
		}
	}

	/// An i32 strategy that mixes uniform values with edge values (uniform values almost never
	/// hit a tie or an extreme).
	fn any_i32_with_edges() -> impl proptest::strategy::Strategy<Value = i32> {
		use proptest::prelude::*;
		prop_oneof![3 => any::<i32>(), 1 => proptest::sample::select(edge_i32s())]
	}

	proptest::proptest! {
		#![proptest_config(proptest::prelude::ProptestConfig {
			cases: 20_000,
			failure_persistence: None,
			..proptest::prelude::ProptestConfig::default()
		})]

		/// The closed form and the gemmlowp form are the same function (random arguments).
		#[test]
		fn closed_forms_agree_with_gemmlowp(
			x in any_i32_with_edges(),
			m in any_i32_with_edges(),
			shift in proptest::prelude::any::<i8>(),
			e in 0u32..80,
		) {
			proptest::prop_assert_eq!(srdhm_closed(x, m), saturating_rounding_doubling_high_mul(x, m));
			proptest::prop_assert_eq!(rdbpot_closed(x, e), rounding_divide_by_pot(x, e));
			proptest::prop_assert_eq!(
				multiply_by_quantized_multiplier_closed(x, m, shift),
				multiply_by_quantized_multiplier(x, m, shift)
			);
		}
	}

	#[test]
	fn closed_form_ties_and_saturation() {
		// Ties of the high multiply go toward +inf, ties of the division away from zero.
		assert_eq!(srdhm_closed(1 << 15, 1 << 15), 1); // 0.5 -> 1
		assert_eq!(srdhm_closed(-(1 << 15), 1 << 15), 0); // -0.5 -> 0
		assert_eq!(srdhm_closed(-(3 << 15), 1 << 15), -1); // -1.5 -> -1
		assert_eq!(srdhm_closed(i32::MIN, i32::MIN), i32::MAX);
		assert_eq!(rdbpot_closed(-5, 1), -3); // -2.5 -> -3
		assert_eq!(rdbpot_closed(5, 1), 3);
		assert_eq!(rdbpot_closed(i32::MIN, 32), -1); // -0.5 -> -1
		assert_eq!(rdbpot_closed(i32::MIN, 0), i32::MIN);
		assert_eq!(saturating_shift_left(-4, 30), i32::MIN);
		assert_eq!(saturating_shift_left(1, 200), i32::MAX);
		assert_eq!(saturating_shift_left(0, 200), 0);
		assert_eq!(split_shift(-31), (0, 31));
		assert_eq!(split_shift(i8::MIN), (0, 128));
		assert_eq!(split_shift(5), (5, 0));
	}

	#[test]
	fn output_stage_clamps_and_never_wraps() {
		assert_eq!(output_stage(i32::MAX, 127, -128, 127) as i8, 127);
		assert_eq!(output_stage(i32::MIN, -128, -128, 127) as i8, -128);
		assert_eq!(output_stage(-5, -3, -3, 127) as i8, -3); // ReLU at zero point -3
		assert_eq!(output_stage(10, -3, -3, 3) as i8, 3); // ReLU6-like clamp
		assert_eq!(output_stage(1, 1, 5, 2) as i8, 2); // invalid clamp: no panic
	}

	#[test]
	fn avg_rounding() {
		assert_eq!(div_round_half_away(1, 2), Some(1)); // 0.5 -> 1
		assert_eq!(div_round_half_away(-1, 2), Some(-1)); // -0.5 -> -1
		assert_eq!(div_round_half_away(3, 2), Some(2));
		assert_eq!(div_round_half_away(-3, 2), Some(-2));
		assert_eq!(div_round_half_away(1, 3), Some(0));
		assert_eq!(div_round_half_away(2, 3), Some(1));
		assert_eq!(div_round_half_away(-2, 3), Some(-1));
		assert_eq!(div_round_half_away(-1, 3), Some(0));
		assert_eq!(div_round_half_away(-6, 4), Some(-2)); // -1.5 -> -2
		assert_eq!(div_round_half_away(-5, 4), Some(-1)); // -1.25 -> -1
		assert_eq!(div_round_half_away(0, 9), Some(0));
		assert_eq!(div_round_half_away(5, 0), None);
	}
}
