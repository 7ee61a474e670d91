//! Faster evaluations of the primitives' integer rules (docs/MODEL_FORMAT.md section 12) where
//! the plain form is slow: `i64` instead of `i128` where the rule's values provably fit, a
//! constant divisor where the rule's divisor is a constant, a rotary table computed once per
//! position. Each function names the rule it evaluates; the tests compare them on random and
//! extreme arguments, and the differential tests compare whole generations.

use verity_primitives::lm::{
	fixed::{cos_sin_q32, div_round, sat_i32, ACT_FRAC_BITS, LN2_Q32, ONE_Q32},
	ops::AttnPart,
	quant::{ActLevels, QuantBlock, BLOCK_LEN},
};

use super::Kernel;

/// `fixed::div_round` on `i64` (`den > 0`): ties away from zero.
#[inline(always)]
pub fn div_round_i64(num: i64, den: i64) -> i64 {
	debug_assert!(den > 0 && (num != i64::MIN || den > 1));
	let magnitude = num.unsigned_abs();
	let den = den.unsigned_abs();
	let q = magnitude / den;
	let r = magnitude % den;
	let q = (q + u64::from(2 * r >= den)) as i64;
	if num < 0 {
		-q
	} else {
		q
	}
}

/// `fixed::div_round(v, 2^32)`: `floor((|v| + 2^31) / 2^32)` with the sign of `v`.
#[inline(always)]
pub fn div_round_2_32(v: i128) -> i128 {
	let q = ((v.unsigned_abs() + (1 << 31)) >> 32) as i128;
	if v < 0 {
		-q
	} else {
		q
	}
}

/// `quant::quantize_block` without a division per value: `div_round(v qmax, amax) = sign(v)
/// floor((2 |v| qmax + amax) / (2 amax))`, whose numerator (below `2^47`) and denominator (at
/// most `2^32`) are exact in `f64`; the quotient, at most `qmax + 1/2 < 2^14`, is correctly
/// rounded to within `2^-38`, less than the `2^-33` that separates a quotient that is not an
/// integer from the next integer, so truncating it is the floor. (A loop the compiler
/// vectorizes: see [`QuantX::new`](super::kernels::QuantX::new).)
#[inline(always)]
pub fn quantize_block_fast(a: &[i32], levels: ActLevels) -> QuantBlock {
	let amax = a.iter().take(BLOCK_LEN).map(|v| v.unsigned_abs()).max().unwrap_or(0);
	let mut q = [0i16; BLOCK_LEN];
	if amax > 0 {
		let qmax = levels.qmax() as u64;
		let den = (2 * u64::from(amax)) as f64;
		for (dst, &v) in q.iter_mut().zip(a) {
			let n = (2 * u64::from(v.unsigned_abs()) * qmax + u64::from(amax)) as f64;
			// SAFETY: `n / den` is finite and at most `qmax + 1/2`, within `i32`.
			#[allow(unsafe_code)]
			let k = unsafe { (n / den).to_int_unchecked::<i32>() } as i16;
			*dst = if v < 0 { -k } else { k };
		}
	}
	QuantBlock { amax: i64::from(amax), q }
}

/// `fixed::exp_neg_q32` with the twelve divisions by `k * 2^32` unrolled into a shift and a
/// division by the constant `k` (`floor(floor(x / 2^32) / k) = floor(x / (k 2^32))`), and
/// `term * f < 2^64` without saturation (`term <= 2^32`, `f < ln 2 * 2^32`).
#[inline]
pub fn exp_neg_q32_fast(r: u64) -> u64 {
	let n = r / LN2_Q32;
	if n >= 64 {
		return 0;
	}
	let f = r % LN2_Q32;
	let mut term = ONE_Q32;
	let mut sum = ONE_Q32 as i64;
	macro_rules! step {
		($k:literal, $op:tt) => {
			term = ((term * f) >> 32) / $k;
			sum $op (term as i64);
		};
	}
	step!(1, -=);
	step!(2, +=);
	step!(3, -=);
	step!(4, +=);
	step!(5, -=);
	step!(6, +=);
	step!(7, -=);
	step!(8, +=);
	step!(9, -=);
	step!(10, +=);
	step!(11, -=);
	step!(12, +=);
	(u64::try_from(sum).unwrap_or(0)) >> n
}

/// `ops::swiglu` with the fast exponential and a `u128 / u64` division.
#[inline]
pub fn swiglu_fast(g: i32, u: i32) -> i32 {
	let e = exp_neg_q32_fast(u64::from(g.unsigned_abs()) << ACT_FRAC_BITS);
	let w = if g >= 0 { ONE_Q32 } else { e };
	let num = i128::from(g) * i128::from(u) * i128::from(w); // < 2^94
	let den = (ONE_Q32 + e) << ACT_FRAC_BITS; // < 2^50
	let magnitude = num.unsigned_abs();
	let den128 = u128::from(den);
	let q = magnitude / den128;
	let r = magnitude - q * den128;
	let q = q + u128::from(2 * r >= den128);
	let q = i128::try_from(q).unwrap_or(i128::MAX);
	sat_i32(if num < 0 { -q } else { q })
}

/// [`swiglu_fast`] of every pair `(gate[i], up[i])` (the shorter length): eight at a time with
/// [`Kernel::Vnni`] (a CPU with AVX-512), else one at a time. The same integers.
pub fn swiglu_many(gate: &[i32], up: &[i32], kernel: Kernel) -> Vec<i32> {
	match kernel.available() {
		#[cfg(target_arch = "x86_64")]
		// SAFETY: `available` returns `Vnni` only on a CPU with AVX-512F/BW/DQ/VL.
		#[allow(unsafe_code)]
		Kernel::Vnni => unsafe { avx512::swiglu(gate, up) },
		_ => gate.iter().zip(up).map(|(&g, &u)| swiglu_fast(g, u)).collect(),
	}
}

/// The rotary table of one position: `cos_sin_q32(position * inv_freq[i])` for every pair
/// (`None` if an angle overflows, as `ops::rope` fails then).
pub fn rope_table(position: u32, inv_freq: &[u64]) -> Option<Vec<(i64, i64)>> {
	inv_freq.iter().map(|&f| Some(cos_sin_q32(u64::from(position).checked_mul(f)?))).collect()
}

/// `ops::rope` of `v` in place with a table from [`rope_table`] (`v.len() == 2 * table.len()`).
pub fn rope_apply(v: &mut [i32], table: &[(i64, i64)]) {
	for (pair, &(c, s)) in v.chunks_exact_mut(2).zip(table) {
		let (x0, x1) = (i128::from(pair[0]), i128::from(pair[1]));
		let (c, s) = (i128::from(c), i128::from(s));
		pair[0] = sat_i32(div_round_2_32(x0 * c - x1 * s));
		pair[1] = sat_i32(div_round_2_32(x0 * s + x1 * c));
	}
}

/// `ops::attention_part` of query `q` over keys and values stored back to back (`n` of them,
/// each `q.len()` long), given `kmax >= max |k|` and `vmax >= max |v|` over them: dot products
/// in `i64` when `|q|max * kmax * hd < 2^63`, the weighted sums in `i64` when
/// `2^32 * vmax * n < 2^63`, else in `i128` as the rule does. With a head size that is a
/// multiple of 16, the two `i64` loops are intrinsics on 32-bit lanes and the exponentials run
/// several at a time: with [`Kernel::Vnni`] (a CPU with AVX-512) on 512-bit vectors, sixteen
/// exponentials at a time (`avx512`), with [`Kernel::Avx2`] on 256-bit ones, eight (`avx2`);
/// other head sizes take the plain loops (compiled for AVX-512 with [`Kernel::Vnni`]).
/// Integer results do not depend on the kernel.
#[allow(clippy::too_many_arguments)]
pub fn attention_part_fast(
	q: &[i32],
	keys: &[i32],
	values: &[i32],
	kmax: u64,
	vmax: u64,
	scale_q16: u32,
	z: &mut Vec<i32>,
	e: &mut Vec<u64>,
	kernel: Kernel,
) -> AttnPart {
	match kernel.available() {
		#[cfg(target_arch = "x86_64")]
		// SAFETY: `available` returns `Vnni` only on a CPU with AVX-512F/BW/DQ/VL.
		#[allow(unsafe_code)]
		Kernel::Vnni if q.len().is_multiple_of(16) => unsafe {
			avx512::attention_part(q, keys, values, kmax, vmax, scale_q16, z, e)
		},
		#[cfg(target_arch = "x86_64")]
		// SAFETY: as above.
		#[allow(unsafe_code)]
		Kernel::Vnni => unsafe { attention_part_avx512(q, keys, values, kmax, vmax, scale_q16, z, e) },
		#[cfg(target_arch = "x86_64")]
		// SAFETY: `available` returns `Avx2` only on a CPU with AVX2.
		#[allow(unsafe_code)]
		Kernel::Avx2 if q.len().is_multiple_of(16) => unsafe {
			avx2::attention_part(q, keys, values, kmax, vmax, scale_q16, z, e)
		},
		_ => attention_part_body(q, keys, values, kmax, vmax, scale_q16, z, e),
	}
}

/// [`attention_part_body`] compiled for AVX-512.
///
/// # Safety
/// The CPU must have AVX-512F, AVX-512BW, AVX-512DQ and AVX-512VL.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
unsafe fn attention_part_avx512(
	q: &[i32],
	keys: &[i32],
	values: &[i32],
	kmax: u64,
	vmax: u64,
	scale_q16: u32,
	z: &mut Vec<i32>,
	e: &mut Vec<u64>,
) -> AttnPart {
	attention_part_body(q, keys, values, kmax, vmax, scale_q16, z, e)
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attention_part_body(
	q: &[i32],
	keys: &[i32],
	values: &[i32],
	kmax: u64,
	vmax: u64,
	scale_q16: u32,
	z: &mut Vec<i32>,
	e: &mut Vec<u64>,
) -> AttnPart {
	attention_part_with(
		q,
		keys,
		values,
		kmax,
		vmax,
		scale_q16,
		z,
		e,
		|q, keys, scale, _, z| scores_with(q, keys, scale, z, dot_i64),
		weighted_sums_i64,
		exps,
		means_i64,
	)
}

/// `sat_i32(div_round(a, sum))` of a part's weighted sums `a` (each `|a| < 2^63`, `sum > 0`):
/// its output, the rule's quotient in `i64`.
#[inline(always)]
fn means_i64(acc: &[i64], sum: u64) -> Vec<i32> {
	acc.iter().map(|&a| sat_i32(i128::from(div_round_i64(a, sum as i64)))).collect()
}

/// `e_j = exp_neg_q32((m - z_j) << 16)` for every score `z_j <= m`.
#[inline(always)]
fn exps(m: i32, z: &[i32], e: &mut Vec<u64>) {
	e.clear();
	e.extend(z.iter().map(|&s| {
		let diff = (i64::from(m) - i64::from(s)) as u64; // < 2^32
		exp_neg_q32_fast(diff << ACT_FRAC_BITS)
	}));
}

/// `sum q_i k_i` in `i64` (the caller has checked that it fits).
#[inline(always)]
fn dot_i64(q: &[i32], k: &[i32]) -> i64 {
	q.iter().zip(k).map(|(&a, &b)| i64::from(a) * i64::from(b)).sum()
}

/// The scores `z_j = sat_i32(div_round_2_32(dot(q, k_j) * scale))` of keys stored back to back,
/// with a dot product that is exact (the caller has checked that every one fits `i64`).
#[inline(always)]
fn scores_with(
	q: &[i32],
	keys: &[i32],
	scale_q16: u32,
	z: &mut Vec<i32>,
	dot: impl Fn(&[i32], &[i32]) -> i64,
) {
	for k in keys.chunks_exact(q.len().max(1)) {
		z.push(sat_i32(div_round_2_32(i128::from(dot(q, k)) * i128::from(scale_q16))));
	}
}

/// `acc_i = sum_j e_j v_j[i]` in `i64` over values stored back to back (the caller has
/// checked that every partial sum fits).
#[inline(always)]
fn weighted_sums_i64(acc: &mut [i64], e: &[u64], values: &[i32]) {
	for (&w, v) in e.iter().zip(values.chunks_exact(acc.len())) {
		let w = w as i64; // <= 2^32
		for (a, &x) in acc.iter_mut().zip(v) {
			*a += w * i64::from(x);
		}
	}
}

/// The rule of `ops::attention_part` with the `i64` dot product and weighted sums given (used
/// where the bounds say the values fit `i64`; the rule's `i128` otherwise).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attention_part_with(
	q: &[i32],
	keys: &[i32],
	values: &[i32],
	kmax: u64,
	vmax: u64,
	scale_q16: u32,
	z: &mut Vec<i32>,
	e: &mut Vec<u64>,
	scores: impl Fn(&[i32], &[i32], u32, u128, &mut Vec<i32>),
	weighted_sums: impl Fn(&mut [i64], &[u64], &[i32]),
	exps: impl Fn(i32, &[i32], &mut Vec<u64>),
	means: impl Fn(&[i64], u64) -> Vec<i32>,
) -> AttnPart {
	let hd = q.len();
	let n = keys.len() / hd.max(1);
	let qmax = q.iter().map(|v| u64::from(v.unsigned_abs())).max().unwrap_or(0);
	let dot_bound = u128::from(qmax) * u128::from(kmax) * (hd as u128);
	z.clear();
	if dot_bound < 1 << 63 {
		scores(q, keys.get(..n * hd).unwrap_or_default(), scale_q16, dot_bound, z);
	} else {
		for k in keys.chunks_exact(hd) {
			let dot: i128 = q.iter().zip(k).map(|(&a, &b)| i128::from(a) * i128::from(b)).sum();
			z.push(sat_i32(div_round_2_32(dot * i128::from(scale_q16))));
		}
	}
	let m = z.iter().copied().max().unwrap_or(i32::MIN);
	exps(m, z, e);
	let sum: u64 = e.iter().sum();
	let out = if (u128::from(vmax) * (n as u128)) << 32 < (1u128 << 63) && sum < 1 << 62 {
		let mut acc = vec![0i64; hd];
		weighted_sums(&mut acc, e, values.get(..n * hd).unwrap_or_default());
		// |acc| < 2^63 and sum >= 2^32 (the maximum's weight): the rule's quotient in i64.
		means(&acc, sum)
	} else {
		let mut num = vec![0i128; hd];
		for (&w, v) in e.iter().zip(values.chunks_exact(hd)) {
			for (a, &x) in num.iter_mut().zip(v) {
				*a += i128::from(w) * i128::from(x);
			}
		}
		num.iter().map(|&a| sat_i32(div_round(a, i128::from(sum)))).collect()
	};
	AttnPart { max: m, sum, out }
}

/// The attention part's `i64` loops with AVX2 intrinsics, for head sizes that are multiples
/// of 16. Both work modulo `2^64`, which gives the exact sums because the caller has checked
/// that the true sums fit `i64`.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
	use std::arch::x86_64::*;

	use verity_primitives::lm::ops::AttnPart;

	/// [`super::attention_part_with`] with [`dot`] and [`weighted_sums`].
	///
	/// # Safety
	/// The CPU must have AVX2; `q.len()` must be a multiple of 16.
	#[allow(clippy::too_many_arguments)]
	#[target_feature(enable = "avx2")]
	pub(super) unsafe fn attention_part(
		q: &[i32],
		keys: &[i32],
		values: &[i32],
		kmax: u64,
		vmax: u64,
		scale_q16: u32,
		z: &mut Vec<i32>,
		e: &mut Vec<u64>,
	) -> AttnPart {
		// SAFETY (both closures): this function's own requirements (AVX2, `q.len() % 16 == 0`;
		// every key and value slice has `q.len()` elements).
		super::attention_part_with(
			q,
			keys,
			values,
			kmax,
			vmax,
			scale_q16,
			z,
			e,
			|q, keys, scale, _, z| {
				super::scores_with(q, keys, scale, z, |q, k| unsafe { dot(q, k) })
			},
			|acc, e, v| unsafe { weighted_sums(acc, e, v) },
			|m, z, e| unsafe { exps(m, z, e) },
			super::means_i64,
		)
	}

	const TWO_52: f64 = 4_503_599_627_370_496.0;
	const TWO_52_BITS: i64 = 0x4330_0000_0000_0000;

	/// Lanes `u < 2^52` as the `f64` of the same values (their bits under the exponent of
	/// `2^52`, minus `2^52`).
	macro_rules! to_f64 {
		($u:expr) => {
			_mm256_sub_pd(
				_mm256_castsi256_pd(_mm256_or_si256($u, _mm256_set1_epi64x(TWO_52_BITS))),
				_mm256_set1_pd(TWO_52),
			)
		};
	}

	/// Integer-valued `f64` lanes in `0 .. 2^52` as those integers.
	macro_rules! to_u64 {
		($y:expr) => {
			_mm256_xor_si256(
				_mm256_castpd_si256(_mm256_add_pd($y, _mm256_set1_pd(TWO_52))),
				_mm256_set1_epi64x(TWO_52_BITS),
			)
		};
	}

	/// `floor(x / k)` for `x < ln 2 * 2^32` (every `x` the exponential divides) as
	/// `(x * M) >> S`: `(k, M, S)` with `M = ceil(2^S / k) < 2^32`, exact because
	/// `x (M k - 2^S) < 2^S` for every such `x` (test `exp_magic_divisors_are_exact`).
	pub(super) const DIVISORS: [(u64, i64, i32); 11] = [
		(2, 0x8000_0000, 32),
		(3, 0xaaaa_aaab, 33),
		(4, 0x8000_0000, 33),
		(5, 0xcccc_cccd, 34),
		(6, 0xaaaa_aaab, 34),
		(7, 0x9249_2493, 34),
		(8, 0x8000_0000, 34),
		(9, 0xe38e_38e4, 35),
		(10, 0xcccc_cccd, 35),
		(11, 0xba2e_8ba3, 35),
		(12, 0xaaaa_aaab, 35),
	];

	/// [`super::exps`] eight scores at a time (two vectors of four, so the chains of
	/// dependent multiplies overlap), the same integers as `exp_neg_q32_fast`:
	/// `r = (m - z) << 16 < 2^48`; `n = floor(r / ln2)` as the floor of the correctly rounded
	/// `f64` quotient (exact: `r` and `ln2` are exact in `f64`, the quotient is below `2^17`,
	/// and a non-integer quotient lies at least `1 / ln2 > 2^-32` below the next integer, far
	/// more than the rounding error `2^-36`); `f = r - n ln2 < ln 2 * 2^32`; then the twelve
	/// terms, each `((term * f) >> 32) / k` with `term, f < 2^32` (`vpmuludq`) and the
	/// division by the constant `k` as a multiply and shift ([`DIVISORS`]). `n >= 64` gives 0
	/// (`vpsrlvq`), as does a negative sum (the rule's `try_from`).
	///
	/// # Safety
	/// AVX2; every `z_j <= m`.
	#[target_feature(enable = "avx2")]
	pub(super) unsafe fn exps(m: i32, z: &[i32], e: &mut Vec<u64>) {
		use verity_primitives::lm::fixed::{ACT_FRAC_BITS, LN2_Q32, ONE_Q32};
		e.clear();
		e.reserve(z.len());
		const V: usize = 2;
		let r = |s: i32| ((i64::from(m) - i64::from(s)) as u64) << ACT_FRAC_BITS;
		let ln2_f = _mm256_set1_pd(LN2_Q32 as f64);
		let ln2 = _mm256_set1_epi64x(LN2_Q32 as i64);
		let mv = _mm256_set1_epi64x(i64::from(m));
		let zero = _mm256_setzero_si256();
		let mut chunks = z.chunks_exact(4 * V);
		for c in &mut chunks {
			// r = (m - z) << 16, each z widened to 64 bits.
			let rv: [__m256i; V] = core::array::from_fn(|i| {
				// SAFETY: `4 i + 4 <= 4 V == c.len()`; an unaligned load of four `i32`.
				let zs = unsafe { _mm_loadu_si128(c.as_ptr().add(4 * i).cast()) };
				_mm256_slli_epi64::<16>(_mm256_sub_epi64(mv, _mm256_cvtepi32_epi64(zs)))
			});
			let n = rv.map(|rv| to_u64!(_mm256_floor_pd(_mm256_div_pd(to_f64!(rv), ln2_f))));
			// n < 2^17: one 32-bit multiply.
			let f: [__m256i; V] =
				core::array::from_fn(|i| _mm256_sub_epi64(rv[i], _mm256_mul_epu32(n[i], ln2)));
			let mut term = f;
			let mut sum = f.map(|f| _mm256_sub_epi64(_mm256_set1_epi64x(ONE_Q32 as i64), f));
			for (j, &(_, magic, shift)) in DIVISORS.iter().enumerate() {
				let magic = _mm256_set1_epi64x(magic);
				let shift = _mm_set_epi64x(0, i64::from(shift));
				for i in 0..V {
					let x = _mm256_srli_epi64::<32>(_mm256_mul_epu32(term[i], f[i]));
					term[i] = _mm256_srl_epi64(_mm256_mul_epu32(x, magic), shift);
					// k = j + 2: even k adds, odd k subtracts.
					sum[i] = if j % 2 == 0 {
						_mm256_add_epi64(sum[i], term[i])
					} else {
						_mm256_sub_epi64(sum[i], term[i])
					};
				}
			}
			for i in 0..V {
				let negative = _mm256_cmpgt_epi64(zero, sum[i]);
				let out = _mm256_andnot_si256(negative, _mm256_srlv_epi64(sum[i], n[i]));
				let mut lanes = [0u64; 4];
				// SAFETY: a store of 32 bytes into a `[u64; 4]`.
				unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), out) };
				e.extend_from_slice(&lanes);
			}
		}
		e.extend(chunks.remainder().iter().map(|&s| super::exp_neg_q32_fast(r(s))));
	}

	/// `sum q_i k_i` modulo `2^64`: `vpmuldq` of the even and (shifted down) odd 32-bit lanes.
	///
	/// # Safety
	/// AVX2; `q.len() == k.len()`, a multiple of 8.
	#[target_feature(enable = "avx2")]
	unsafe fn dot(q: &[i32], k: &[i32]) -> i64 {
		let len = q.len().min(k.len()) / 8 * 8;
		let (mut even, mut odd) = (_mm256_setzero_si256(), _mm256_setzero_si256());
		let mut i = 0;
		while i < len {
			// SAFETY: `i + 8 <= len <= q.len(), k.len()`; unaligned loads.
			let (a, b) = unsafe {
				(
					_mm256_loadu_si256(q.as_ptr().add(i).cast()),
					_mm256_loadu_si256(k.as_ptr().add(i).cast()),
				)
			};
			even = _mm256_add_epi64(even, _mm256_mul_epi32(a, b));
			odd = _mm256_add_epi64(
				odd,
				_mm256_mul_epi32(_mm256_srli_epi64(a, 32), _mm256_srli_epi64(b, 32)),
			);
			i += 8;
		}
		let s = _mm256_add_epi64(even, odd);
		let s = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
		_mm_cvtsi128_si64(s).wrapping_add(_mm_extract_epi64(s, 1))
	}

	/// `acc_i = sum_j e_j v_j[i]` modulo `2^64` over values stored back to back
	/// (`acc.len()` a multiple of 16, each `e_j <= 2^32`). A weight below `2^32` multiplies
	/// `x + 2^31` as `u32 x u32 -> u64` (`vpmuludq`; `x + 2^31` is `x` with its sign bit
	/// flipped), and `2^31 sum e_j` over those weights is taken off once at the end; a weight
	/// of `2^32` or more (the part's maximum, whose weight is exactly `2^32`) is added in
	/// scalar code. Sixteen lanes at a time, kept in registers across all keys.
	///
	/// # Safety
	/// AVX2; `acc.len()` a multiple of 16.
	#[target_feature(enable = "avx2")]
	unsafe fn weighted_sums(acc: &mut [i64], e: &[u64], values: &[i32]) {
		let hd = acc.len();
		let flip = _mm256_set1_epi32(i32::MIN);
		let mut small: u64 = 0;
		let mut c = 0;
		while c + 16 <= hd {
			let mut a = [_mm256_setzero_si256(); 4];
			for (&w, v) in e.iter().zip(values.chunks_exact(hd)) {
				if w >> 32 != 0 {
					continue;
				}
				let wv = _mm256_set1_epi64x(w as i64);
				// SAFETY: `c + 16 <= hd == v.len()`; unaligned loads.
				let (x0, x1) = unsafe {
					(
						_mm256_loadu_si256(v.as_ptr().add(c).cast()),
						_mm256_loadu_si256(v.as_ptr().add(c + 8).cast()),
					)
				};
				let (x0, x1) = (_mm256_xor_si256(x0, flip), _mm256_xor_si256(x1, flip));
				a[0] = _mm256_add_epi64(a[0], _mm256_mul_epu32(x0, wv));
				a[1] = _mm256_add_epi64(a[1], _mm256_mul_epu32(_mm256_srli_epi64(x0, 32), wv));
				a[2] = _mm256_add_epi64(a[2], _mm256_mul_epu32(x1, wv));
				a[3] = _mm256_add_epi64(a[3], _mm256_mul_epu32(_mm256_srli_epi64(x1, 32), wv));
			}
			// a[0] holds elements c, c+2, c+4, c+6; a[1] c+1, c+3, c+5, c+7; a[2], a[3] the
			// same from c+8.
			let mut lanes = [[0i64; 4]; 4];
			for (dst, src) in lanes.iter_mut().zip(a) {
				// SAFETY: a store of 32 bytes into a `[i64; 4]`.
				unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), src) };
			}
			for (half, pair) in lanes.chunks_exact(2).enumerate() {
				let (even, odd) = (pair[0], pair[1]);
				for j in 0..4 {
					let at = c + 8 * half + 2 * j;
					if let Some(dst) = acc.get_mut(at) {
						*dst = dst.wrapping_add(even[j]);
					}
					if let Some(dst) = acc.get_mut(at + 1) {
						*dst = dst.wrapping_add(odd[j]);
					}
				}
			}
			c += 16;
		}
		for (&w, v) in e.iter().zip(values.chunks_exact(hd)) {
			if w >> 32 == 0 {
				small = small.wrapping_add(w);
			} else {
				for (a, &x) in acc.iter_mut().zip(v) {
					*a = a.wrapping_add((w as i64).wrapping_mul(i64::from(x)));
				}
			}
		}
		let correction = small.wrapping_shl(31) as i64;
		acc.iter_mut().for_each(|a| *a = a.wrapping_sub(correction));
	}
}

/// The attention part's loops with AVX-512 intrinsics, for head sizes that are multiples of 16:
/// [`avx2`]'s algorithms on eight 64-bit lanes instead of four, with the weighted sums'
/// accumulators of up to 64 head elements kept in registers across all keys. Both `i64` loops
/// work modulo `2^64`, which gives the exact sums because the caller has checked that the true
/// sums fit `i64`.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
	use std::arch::x86_64::*;

	use verity_primitives::lm::ops::AttnPart;

	/// [`super::attention_part_with`] with [`dot`], [`weighted_sums`] and [`exps`].
	///
	/// # Safety
	/// The CPU must have AVX-512F/BW/DQ/VL; `q.len()` must be a multiple of 16.
	#[allow(clippy::too_many_arguments)]
	#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
	pub(super) unsafe fn attention_part(
		q: &[i32],
		keys: &[i32],
		values: &[i32],
		kmax: u64,
		vmax: u64,
		scale_q16: u32,
		z: &mut Vec<i32>,
		e: &mut Vec<u64>,
	) -> AttnPart {
		// SAFETY (all four closures): this function's own requirements (the CPU features,
		// `q.len() % 16 == 0`; every key and value slice has `q.len()` elements; every score is
		// at most the part's maximum); `means` is called with `|acc| < 2^63` and
		// `sum < 2^62` (`attention_part_with`), and `sum >= 2^32` is checked here.
		super::attention_part_with(
			q,
			keys,
			values,
			kmax,
			vmax,
			scale_q16,
			z,
			e,
			|q, keys, scale, bound, z| unsafe { scores(q, keys, scale, bound, z) },
			|acc, e, v| unsafe { weighted_sums(acc, e, v) },
			|m, z, e| unsafe { exps(m, z, e) },
			|acc, sum| {
				if sum >= 1 << 32 {
					unsafe { means(acc, sum) }
				} else {
					super::means_i64(acc, sum)
				}
			},
		)
	}

	/// [`super::avx2::exps`] sixteen scores at a time (two vectors of eight), the same integers
	/// as `exp_neg_q32_fast`: `r = (m - z) << 16 < 2^48` converted to `f64` exactly
	/// (`vcvtuqq2pd`), `n = floor(r / ln2)` as the floor of the correctly rounded quotient (exact,
	/// as there), `f = r - n ln2`, the twelve terms with the same multiply-and-shift divisors,
	/// `n >= 64` giving 0 (`vpsrlvq`) as does a negative sum.
	///
	/// # Safety
	/// AVX-512F/DQ; every `z_j <= m`.
	#[target_feature(enable = "avx512f,avx512dq")]
	pub(super) unsafe fn exps(m: i32, z: &[i32], e: &mut Vec<u64>) {
		use verity_primitives::lm::fixed::ACT_FRAC_BITS;
		e.clear();
		e.reserve(z.len());
		const V: usize = 2;
		let r = |s: i32| ((i64::from(m) - i64::from(s)) as u64) << ACT_FRAC_BITS;
		let mv = _mm512_set1_epi64(i64::from(m));
		let mut chunks = z.chunks_exact(8 * V);
		for c in &mut chunks {
			// r = (m - z) << 16, each z widened to 64 bits.
			let rv: [__m512i; V] = core::array::from_fn(|i| {
				// SAFETY: `8 i + 8 <= 8 V == c.len()`; an unaligned load of eight `i32`.
				let zs = unsafe { _mm256_loadu_si256(c.as_ptr().add(8 * i).cast()) };
				_mm512_slli_epi64::<16>(_mm512_sub_epi64(mv, _mm512_cvtepi32_epi64(zs)))
			});
			for rv in rv {
				// SAFETY: this function's CPU features; `r < 2^48` (`m - z < 2^32`).
				let out = unsafe { exp8(rv) };
				let mut lanes = [0u64; 8];
				// SAFETY: a store of 64 bytes into a `[u64; 8]`.
				unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), out) };
				e.extend_from_slice(&lanes);
			}
		}
		e.extend(chunks.remainder().iter().map(|&s| super::exp_neg_q32_fast(r(s))));
	}

	/// `exp_neg_q32_fast(r)` of eight lanes `r < 2^48` (see [`exps`]): `n = floor(r / ln2)`
	/// (`n < 2^17`), `f = r - n ln2`, the twelve terms, the sum shifted right by `n` (0 from
	/// `n >= 64`), 0 for a negative sum.
	///
	/// # Safety
	/// AVX-512F/DQ.
	#[inline]
	#[target_feature(enable = "avx512f,avx512dq")]
	unsafe fn exp8(r: __m512i) -> __m512i {
		use verity_primitives::lm::fixed::{LN2_Q32, ONE_Q32};
		// Below 2^48: exact in f64 both ways.
		let q = _mm512_div_pd(_mm512_cvtepu64_pd(r), _mm512_set1_pd(LN2_Q32 as f64));
		let n = _mm512_cvttpd_epu64(_mm512_roundscale_pd::<{ _MM_FROUND_TO_NEG_INF }>(q));
		// n < 2^17: one 32-bit multiply.
		let f = _mm512_sub_epi64(r, _mm512_mul_epu32(n, _mm512_set1_epi64(LN2_Q32 as i64)));
		let mut term = f;
		let mut sum = _mm512_sub_epi64(_mm512_set1_epi64(ONE_Q32 as i64), f);
		for (j, &(_, magic, shift)) in super::avx2::DIVISORS.iter().enumerate() {
			let x = _mm512_srli_epi64::<32>(_mm512_mul_epu32(term, f));
			term = _mm512_srl_epi64(
				_mm512_mul_epu32(x, _mm512_set1_epi64(magic)),
				_mm_set_epi64x(0, i64::from(shift)),
			);
			// k = j + 2: even k adds, odd k subtracts.
			sum =
				if j % 2 == 0 { _mm512_add_epi64(sum, term) } else { _mm512_sub_epi64(sum, term) };
		}
		let nonnegative = _mm512_cmpge_epi64_mask(sum, _mm512_setzero_si512());
		_mm512_maskz_mov_epi64(nonnegative, _mm512_srlv_epi64(sum, n))
	}

	/// [`super::means_i64`] eight at a time, for `2^32 <= sum < 2^62`: `|a| / sum < 2^31` is
	/// estimated in `f64` (`|a|` and `sum` rounded once each, the quotient once: a relative
	/// error below `2^-51`, so an absolute one below `2^-20`) and truncated, which is
	/// `floor(|a| / sum)` or one off either way; the remainder `|a| - q sum` (in `(-sum, 2 sum)`,
	/// exact modulo `2^64`) corrects it ([`rounded`]: ties up, so away from zero once the sign of
	/// `a` is applied, as the rule), and `vpmovsqd` saturates to `i32`.
	///
	/// # Safety
	/// AVX-512F/DQ; `2^32 <= sum < 2^62`; every `|a| < 2^63`.
	#[target_feature(enable = "avx512f,avx512dq")]
	pub(super) unsafe fn means(acc: &[i64], sum: u64) -> Vec<i32> {
		let mut out = Vec::with_capacity(acc.len());
		let zero = _mm512_setzero_si512();
		let (d, df) = (_mm512_set1_epi64(sum as i64), _mm512_set1_pd(sum as f64));
		let mut chunks = acc.chunks_exact(8);
		for c in &mut chunks {
			// SAFETY: an unaligned load of eight `i64`.
			let a = unsafe { _mm512_loadu_si512(c.as_ptr().cast()) };
			let m = _mm512_abs_epi64(a);
			let q = _mm512_cvttpd_epu64(_mm512_div_pd(_mm512_cvtepu64_pd(m), df));
			// SAFETY: this function's CPU features; `m - q d` is in `(-sum, 2 sum)`.
			let q = unsafe { rounded(q, _mm512_sub_epi64(m, _mm512_mullo_epi64(q, d)), d) };
			let signed = _mm512_mask_sub_epi64(q, _mm512_cmplt_epi64_mask(a, zero), zero, q);
			let mut lanes = [0i32; 8];
			// SAFETY: a store of 32 bytes into a `[i32; 8]`.
			unsafe {
				_mm256_storeu_si256(lanes.as_mut_ptr().cast(), _mm512_cvtsepi64_epi32(signed))
			};
			out.extend_from_slice(&lanes);
		}
		out.extend(super::means_i64(chunks.remainder(), sum));
		out
	}

	/// `round(m w / d)`, halves up, of eight lanes with `m < 2^63`, `w <= 2^32`, `2^48 <= d <
	/// 2^50` and `m w / d <= 2^46`: the quotient is estimated in `f64` (`m` rounded once, the
	/// product and the quotient once each: a relative error below `2^-51`, so an absolute one
	/// below `2^-5`) and floored, which is `floor(m w / d)` or one off; the remainder
	/// `m w - q d` (in `(-d, 2 d)`, so exact modulo `2^64`) corrects it by one either way, then
	/// `2 r >= d` rounds up.
	///
	/// # Safety
	/// AVX-512F/DQ.
	#[inline]
	#[target_feature(enable = "avx512f,avx512dq")]
	pub(super) unsafe fn div_round8(m: __m512i, w: __m512i, d: __m512i) -> __m512i {
		let estimate = _mm512_div_pd(
			_mm512_mul_pd(_mm512_cvtepu64_pd(m), _mm512_cvtepu64_pd(w)),
			_mm512_cvtepu64_pd(d),
		);
		let q = _mm512_cvttpd_epu64(_mm512_roundscale_pd::<{ _MM_FROUND_TO_NEG_INF }>(estimate));
		// SAFETY: this function's CPU features; `m w - q d` is in `(-d, 2 d)`.
		unsafe {
			rounded(q, _mm512_sub_epi64(_mm512_mullo_epi64(m, w), _mm512_mullo_epi64(q, d)), d)
		}
	}

	/// The quotient by `d` rounded half up, from an estimate `q` that is the floor or one off
	/// it either way and its remainder `r` (the dividend minus `q d`, in `(-d, 2 d)`, so exact
	/// modulo `2^64` with `d < 2^62`): `r < 0` takes one off, `r >= d` adds one, then
	/// `2 r >= d` rounds up.
	///
	/// # Safety
	/// AVX-512F.
	#[inline]
	#[target_feature(enable = "avx512f")]
	unsafe fn rounded(mut q: __m512i, mut r: __m512i, d: __m512i) -> __m512i {
		let (zero, one) = (_mm512_setzero_si512(), _mm512_set1_epi64(1));
		let below = _mm512_cmplt_epi64_mask(r, zero);
		q = _mm512_mask_sub_epi64(q, below, q, one);
		r = _mm512_mask_add_epi64(r, below, r, d);
		let above = _mm512_cmpge_epi64_mask(r, d);
		q = _mm512_mask_add_epi64(q, above, q, one);
		r = _mm512_mask_sub_epi64(r, above, r, d);
		_mm512_mask_add_epi64(q, _mm512_cmpge_epi64_mask(_mm512_add_epi64(r, r), d), q, one)
	}

	/// [`super::swiglu_fast`] of every pair `(gate[i], up[i])`, eight at a time: `E` of `|g|`
	/// by [`exp8`] (`|g| << 16 <= 2^47`), `W = 2^32` or `E`, the magnitude of the quotient
	/// `|g u| W / ((2^32 + E) << 16)` rounded by [`div_round8`] (ties up: away from zero once
	/// the sign of `g u` is applied, as the rule), then `vpmovsqd` saturates to `i32`.
	///
	/// # Safety
	/// AVX-512F/DQ.
	#[target_feature(enable = "avx512f,avx512dq")]
	pub(super) unsafe fn swiglu(gate: &[i32], up: &[i32]) -> Vec<i32> {
		let n = gate.len().min(up.len());
		let mut out = Vec::with_capacity(n);
		let zero = _mm512_setzero_si512();
		let two_32 = _mm512_set1_epi64(1 << 32);
		let (mut gs, mut us) = (gate[..n].chunks_exact(8), up[..n].chunks_exact(8));
		for (g8, u8) in (&mut gs).zip(&mut us) {
			// SAFETY: unaligned loads of eight `i32` each.
			let (g, u) = unsafe {
				(
					_mm512_cvtepi32_epi64(_mm256_loadu_si256(g8.as_ptr().cast())),
					_mm512_cvtepi32_epi64(_mm256_loadu_si256(u8.as_ptr().cast())),
				)
			};
			let (ga, ua) = (_mm512_abs_epi64(g), _mm512_abs_epi64(u));
			// SAFETY: this function's CPU features; `|g| << 16 <= 2^47`.
			let e = unsafe { exp8(_mm512_slli_epi64::<16>(ga)) };
			let w = _mm512_mask_mov_epi64(two_32, _mm512_cmplt_epi64_mask(g, zero), e);
			let m = _mm512_mul_epu32(ga, ua);
			let d = _mm512_slli_epi64::<16>(_mm512_add_epi64(two_32, e));
			// SAFETY: this function's CPU features; `m <= 2^62`, `w <= 2^32`, `d >= 2^48`.
			let q = unsafe { div_round8(m, w, d) };
			// g u < 0 exactly when the signs differ (and then neither is 0; with a 0, q is 0).
			let negative = _mm512_cmplt_epi64_mask(_mm512_xor_si512(g, u), zero);
			let h = _mm512_cvtsepi64_epi32(_mm512_mask_sub_epi64(q, negative, zero, q));
			let mut lanes = [0i32; 8];
			// SAFETY: a store of 32 bytes into a `[i32; 8]`.
			unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), h) };
			out.extend_from_slice(&lanes);
		}
		out.extend(
			gs.remainder().iter().zip(us.remainder()).map(|(&g, &u)| super::swiglu_fast(g, u)),
		);
		out
	}

	/// Head sizes up to this many 16-element vectors take [`scores`]' batches of eight keys.
	const Q_VECTORS: usize = 8;

	/// The scores of keys stored back to back (`z_j = sat_i32(div_round_2_32(dot_j * scale))`,
	/// every dot product below `bound < 2^63` in magnitude), eight keys at a time when
	/// `bound * scale + 2^31 < 2^63` and the head has at most 128 elements: the query is held
	/// in registers (its even and odd 32-bit lanes), each key's products summed into eight
	/// 64-bit lanes ([`dot_lanes`]), the eight keys' lanes added up together ([`sum_lanes`]),
	/// and the product with the scale, the rounding (`(|p| + 2^31) >> 32` with the sign of `p`)
	/// and the saturation to `i32` (`vpmovsqd`) done on the eight at once; other keys one at a
	/// time, the rule's arithmetic after [`dot`].
	///
	/// # Safety
	/// AVX-512F/DQ; `q.len()` a multiple of 16, `keys.len()` a multiple of it.
	#[target_feature(enable = "avx512f,avx512dq")]
	unsafe fn scores(q: &[i32], keys: &[i32], scale: u32, bound: u128, z: &mut Vec<i32>) {
		let hd = q.len();
		let vectors = hd / 16;
		let mut rest = keys;
		if bound * u128::from(scale) + (1 << 31) < 1 << 63 && vectors <= Q_VECTORS && hd > 0 {
			let mut qe = [_mm512_setzero_si512(); Q_VECTORS];
			let mut qo = [_mm512_setzero_si512(); Q_VECTORS];
			for (i, (e, o)) in qe.iter_mut().zip(&mut qo).take(vectors).enumerate() {
				// SAFETY: `16 i + 16 <= hd`; an unaligned load.
				*e = unsafe { _mm512_loadu_si512(q.as_ptr().add(16 * i).cast()) };
				*o = _mm512_srli_epi64::<32>(*e);
			}
			let sv = _mm512_set1_epi64(i64::from(scale));
			let half = _mm512_set1_epi64(1 << 31);
			let zero = _mm512_setzero_si512();
			let mut batches = keys.chunks_exact(8 * hd);
			for batch in &mut batches {
				let lanes: [__m512i; 8] = core::array::from_fn(|j| {
					// SAFETY: key `j` of the batch: `hd` elements from `j hd`, within the batch.
					unsafe { dot_lanes(&qe[..vectors], &qo[..vectors], batch.as_ptr().add(j * hd)) }
				});
				// |dot * scale| + 2^31 < 2^63: the product, its rounding and sign in i64.
				let p = _mm512_mullo_epi64(sum_lanes(lanes), sv);
				let magnitude =
					_mm512_srli_epi64::<32>(_mm512_add_epi64(_mm512_abs_epi64(p), half));
				let negative = _mm512_cmplt_epi64_mask(p, zero);
				let rounded = _mm512_mask_sub_epi64(magnitude, negative, zero, magnitude);
				let mut out = [0i32; 8];
				// SAFETY: a store of 32 bytes into a `[i32; 8]`.
				unsafe {
					_mm256_storeu_si256(out.as_mut_ptr().cast(), _mm512_cvtsepi64_epi32(rounded))
				};
				z.extend_from_slice(&out);
			}
			rest = batches.remainder();
		}
		// SAFETY (the closure): `q` and every key have `hd` elements, a multiple of 16.
		super::scores_with(q, rest, scale, z, |q, k| unsafe { dot(q, k) });
	}

	/// The products of one key with the query (`qe`: its 16-element vectors, `qo`: the same
	/// shifted down 32 bits), summed into eight 64-bit lanes (modulo `2^64`).
	///
	/// # Safety
	/// AVX-512F; `k` points to `16 qe.len()` readable `i32`; `qo.len() == qe.len()`.
	#[inline]
	#[target_feature(enable = "avx512f")]
	unsafe fn dot_lanes(qe: &[__m512i], qo: &[__m512i], k: *const i32) -> __m512i {
		let (mut even, mut odd) = (_mm512_setzero_si512(), _mm512_setzero_si512());
		for (i, (&e, &o)) in qe.iter().zip(qo).enumerate() {
			// SAFETY: `16 i + 16 <= 16 qe.len()` elements from `k`; an unaligned load.
			let b = unsafe { _mm512_loadu_si512(k.add(16 * i).cast()) };
			even = _mm512_add_epi64(even, _mm512_mul_epi32(e, b));
			odd = _mm512_add_epi64(odd, _mm512_mul_epi32(o, _mm512_srli_epi64::<32>(b)));
		}
		_mm512_add_epi64(even, odd)
	}

	/// Lane `j` of the result is the sum (modulo `2^64`) of the eight lanes of `v[j]`: pairs
	/// within 128-bit blocks (`vpunpck[lh]qdq`), then blocks (`vshufi64x2`) twice.
	#[inline]
	#[target_feature(enable = "avx512f")]
	fn sum_lanes(v: [__m512i; 8]) -> __m512i {
		// b[i], block c: [sum of v[2i] lanes 2c, 2c+1; the same of v[2i+1]].
		let b: [__m512i; 4] = core::array::from_fn(|i| {
			let (x, y) = (v[2 * i], v[2 * i + 1]);
			_mm512_add_epi64(_mm512_unpacklo_epi64(x, y), _mm512_unpackhi_epi64(x, y))
		});
		// Blocks (0, 2 of the first; 0, 2 of the second) plus (1, 3; 1, 3).
		let pair = |x: __m512i, y: __m512i| {
			_mm512_add_epi64(
				_mm512_shuffle_i64x2::<0b10_00_10_00>(x, y),
				_mm512_shuffle_i64x2::<0b11_01_11_01>(x, y),
			)
		};
		// c[0]: blocks [v0 v1 (lanes 0..4), v0 v1 (4..8), v2 v3 (0..4), v2 v3 (4..8)]; c[1] the
		// same of v4..v8; then the two halves of each pair of blocks added.
		pair(pair(b[0], b[1]), pair(b[2], b[3]))
	}

	/// `sum q_i k_i` modulo `2^64`: `vpmuldq` of the even and (shifted down) odd 32-bit lanes.
	///
	/// # Safety
	/// AVX-512F; `q.len() == k.len()`, a multiple of 16.
	#[target_feature(enable = "avx512f")]
	unsafe fn dot(q: &[i32], k: &[i32]) -> i64 {
		let len = q.len().min(k.len()) / 16 * 16;
		let (mut even, mut odd) = (_mm512_setzero_si512(), _mm512_setzero_si512());
		let mut i = 0;
		while i < len {
			// SAFETY: `i + 16 <= len <= q.len(), k.len()`; unaligned loads.
			let (a, b) = unsafe {
				(
					_mm512_loadu_si512(q.as_ptr().add(i).cast()),
					_mm512_loadu_si512(k.as_ptr().add(i).cast()),
				)
			};
			even = _mm512_add_epi64(even, _mm512_mul_epi32(a, b));
			odd = _mm512_add_epi64(
				odd,
				_mm512_mul_epi32(_mm512_srli_epi64::<32>(a), _mm512_srli_epi64::<32>(b)),
			);
			i += 16;
		}
		_mm512_reduce_add_epi64(_mm512_add_epi64(even, odd))
	}

	/// `acc_i = sum_j e_j v_j[i]` modulo `2^64` over values stored back to back (`acc.len()`
	/// a multiple of 16, each `e_j <= 2^32`), as [`super::avx2::weighted_sums`] does it (a
	/// weight below `2^32` times `x + 2^31` as `u32 x u32 -> u64`, `2^31 sum e_j` taken off at
	/// the end, a weight of `2^32` added in scalar code), 64, 32 or 16 elements of the head at
	/// a time, kept in registers across all keys.
	///
	/// # Safety
	/// AVX-512F; `acc.len()` a multiple of 16.
	#[target_feature(enable = "avx512f")]
	unsafe fn weighted_sums(acc: &mut [i64], e: &[u64], values: &[i32]) {
		let hd = acc.len();
		let mut c = 0;
		while c + 16 <= hd {
			// SAFETY: each `weighted_chunk` reads `16 L` elements from `c` of every value,
			// within its `hd`.
			unsafe {
				if c + 64 <= hd {
					weighted_chunk::<4, 8>(acc, e, values, c);
					c += 64;
				} else if c + 32 <= hd {
					weighted_chunk::<2, 4>(acc, e, values, c);
					c += 32;
				} else {
					weighted_chunk::<1, 2>(acc, e, values, c);
					c += 16;
				}
			}
		}
		let mut small: u64 = 0;
		for (&w, v) in e.iter().zip(values.chunks_exact(hd)) {
			if w >> 32 == 0 {
				small = small.wrapping_add(w);
			} else {
				for (a, &x) in acc.iter_mut().zip(v) {
					*a = a.wrapping_add((w as i64).wrapping_mul(i64::from(x)));
				}
			}
		}
		let correction = small.wrapping_shl(31) as i64;
		acc.iter_mut().for_each(|a| *a = a.wrapping_sub(correction));
	}

	/// The weights below `2^32` times elements `c .. c + 16 L` of every value (`A = 2 L`
	/// accumulators), added to `acc` (without the `2^31 sum e_j` correction).
	///
	/// # Safety
	/// AVX-512F; `c + 16 L <= acc.len()`, the length of every value.
	#[inline]
	#[target_feature(enable = "avx512f")]
	unsafe fn weighted_chunk<const L: usize, const A: usize>(
		acc: &mut [i64],
		e: &[u64],
		values: &[i32],
		c: usize,
	) {
		let hd = acc.len();
		let flip = _mm512_set1_epi32(i32::MIN);
		let mut a = [_mm512_setzero_si512(); A];
		for (&w, v) in e.iter().zip(values.chunks_exact(hd)) {
			if w >> 32 != 0 {
				continue;
			}
			let wv = _mm512_set1_epi64(w as i64);
			for l in 0..L {
				// SAFETY: `c + 16 l + 16 <= c + 16 L <= hd == v.len()`; an unaligned load.
				let x = unsafe { _mm512_loadu_si512(v.as_ptr().add(c + 16 * l).cast()) };
				let x = _mm512_xor_si512(x, flip);
				a[2 * l] = _mm512_add_epi64(a[2 * l], _mm512_mul_epu32(x, wv));
				a[2 * l + 1] = _mm512_add_epi64(
					a[2 * l + 1],
					_mm512_mul_epu32(_mm512_srli_epi64::<32>(x), wv),
				);
			}
		}
		// a[2 l] holds elements c + 16 l + 0, 2, .., 14; a[2 l + 1] the odd ones.
		for l in 0..L {
			let (mut even, mut odd) = ([0i64; 8], [0i64; 8]);
			// SAFETY: stores of 64 bytes into `[i64; 8]`s.
			unsafe {
				_mm512_storeu_si512(even.as_mut_ptr().cast(), a[2 * l]);
				_mm512_storeu_si512(odd.as_mut_ptr().cast(), a[2 * l + 1]);
			}
			for j in 0..8 {
				let at = c + 16 * l + 2 * j;
				if let Some(dst) = acc.get_mut(at) {
					*dst = dst.wrapping_add(even[j]);
				}
				if let Some(dst) = acc.get_mut(at + 1) {
					*dst = dst.wrapping_add(odd[j]);
				}
			}
		}
	}
}

/// `ops::attention_merge` with the division by `2^32` as a shift ([`div_round_2_32`]), the
/// merge factors by [`exp_neg_q32_fast`], and the final division in `i64` where both operands
/// fit (the rule's `i128` division otherwise).
pub fn attention_merge_fast(parts: &[AttnPart]) -> Vec<i32> {
	let hd = parts.first().map(|p| p.out.len()).unwrap_or(0);
	let live = || parts.iter().filter(|p| p.sum > 0);
	let Some(m) = live().map(|p| p.max).max() else {
		return vec![0; hd];
	};
	let mut total: i128 = 0;
	let mut num = vec![0i128; hd];
	for p in live() {
		let diff = u64::try_from(i64::from(m) - i64::from(p.max)).unwrap_or(0); // < 2^32
		let f = i128::from(exp_neg_q32_fast(diff << ACT_FRAC_BITS));
		let w = div_round_2_32(i128::from(p.sum) * f); // < 2^64: no saturation below
		total = total.saturating_add(w);
		for (n, &x) in num.iter_mut().zip(&p.out) {
			*n = n.saturating_add(w * i128::from(x));
		}
	}
	num.iter()
		.map(|&n| match (i64::try_from(n), i64::try_from(total)) {
			(Ok(a), Ok(b)) if b > 0 && a != i64::MIN => sat_i32(i128::from(div_round_i64(a, b))),
			_ => sat_i32(div_round(n, total)),
		})
		.collect()
}

#[cfg(test)]
mod tests {
	use super::*;
	use verity_primitives::{
		lm::{
			fixed::{div_round, exp_neg_q32},
			ops::{attention_part, rope, swiglu},
			quant::quantize_block,
		},
		testing::Rng,
	};

	#[test]
	fn exp_equals_the_rule() {
		let mut rng = Rng::new(1);
		for r in (0..200_000u64).map(|i| i * 1_234_567).chain([
			0,
			1,
			LN2_Q32,
			u64::MAX,
			63 * LN2_Q32,
			64 * LN2_Q32 - 1,
		]) {
			assert_eq!(exp_neg_q32_fast(r), exp_neg_q32(r), "{r}");
		}
		for _ in 0..200_000 {
			let r = rng.next_u64() >> rng.below(64);
			assert_eq!(exp_neg_q32_fast(r), exp_neg_q32(r), "{r}");
		}
	}

	#[test]
	fn division_quantization_and_swiglu_equal_the_rule() {
		let mut rng = Rng::new(2);
		for _ in 0..100_000 {
			let num = (rng.next_u64() as i64 >> rng.below(63)).max(i64::MIN + 1);
			let den = (rng.next_u64() >> rng.below(64)).clamp(1, i64::MAX as u64) as i64;
			assert_eq!(i128::from(div_round_i64(num, den)), div_round(num.into(), den.into()));
			let v = (rng.next_u64() as i128) << 60 >> rng.below(120);
			assert_eq!(div_round_2_32(v), div_round(v, 1 << 32));
		}
		let edge = [i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX, 65536, -65536];
		for &g in &edge {
			for &u in &edge {
				assert_eq!(swiglu_fast(g, u), swiglu(g, u), "{g} {u}");
			}
		}
		for _ in 0..200_000 {
			let g = (rng.next_u64() as i32) >> rng.below(32);
			let u = (rng.next_u64() as i32) >> rng.below(32);
			assert_eq!(swiglu_fast(g, u), swiglu(g, u), "{g} {u}");
		}
		// Whole vectors (every kernel; eight at a time with AVX-512 plus the rest one at a
		// time): the edges in every pairing, then random lengths and magnitudes.
		let (g, u): (Vec<i32>, Vec<i32>) =
			edge.iter().flat_map(|&g| edge.iter().map(move |&u| (g, u))).unzip();
		let want: Vec<i32> = g.iter().zip(&u).map(|(&g, &u)| swiglu(g, u)).collect();
		for kernel in [Kernel::Portable, Kernel::Avx2, Kernel::Vnni] {
			assert_eq!(swiglu_many(&g, &u, kernel), want, "{kernel:?}");
		}
		for case in 0..5_000 {
			let len = rng.below(40) as usize;
			let mut pick = || match rng.below(20) {
				0 => i32::MIN,
				1 => i32::MAX,
				2 => 0,
				_ => (rng.next_u64() as i32) >> rng.below(32),
			};
			let g: Vec<i32> = (0..len).map(|_| pick()).collect();
			let u: Vec<i32> = (0..len).map(|_| pick()).collect();
			let want: Vec<i32> = g.iter().zip(&u).map(|(&g, &u)| swiglu(g, u)).collect();
			for kernel in [Kernel::Portable, Kernel::Avx2, Kernel::Vnni] {
				assert_eq!(swiglu_many(&g, &u, kernel), want, "case {case} {kernel:?}");
			}
		}
		for levels in [ActLevels::L127, ActLevels::L16383] {
			for _ in 0..20_000 {
				let shift = rng.below(32);
				let a: Vec<i32> = (0..32).map(|_| (rng.next_u64() as i32) >> shift).collect();
				assert_eq!(quantize_block_fast(&a, levels), quantize_block(&a, levels));
			}
			for a in [[i32::MIN; 32], [i32::MAX; 32], [0; 32]] {
				assert_eq!(quantize_block_fast(&a, levels), quantize_block(&a, levels));
			}
			// Exact halves (`v qmax / amax = k + 1/2`: `amax = 2 qmax c`, `v = (2 k + 1) c`)
			// and one either side, where rounding up and down differ.
			let qmax = levels.qmax() as i32;
			for c in [1, 2, 3, 7, 1000, i32::MAX / (2 * qmax)] {
				let amax = 2 * qmax * c;
				for _ in 0..200 {
					let mut a = [0i32; 32];
					a[0] = if rng.chance(2) { amax } else { -amax };
					for v in a.iter_mut().skip(1) {
						let half = (2 * rng.below(qmax as u64) as i32 + 1) * c;
						let near = half + rng.range(-1, 2) as i32;
						*v = if rng.chance(2) { near } else { -near };
					}
					assert_eq!(quantize_block_fast(&a, levels), quantize_block(&a, levels));
				}
			}
		}
	}

	#[test]
	fn rope_and_attention_equal_the_rule() {
		let mut rng = Rng::new(3);
		let (mut z, mut e) = (Vec::new(), Vec::new());
		for case in 0..3000u64 {
			let hd = 2 * rng.range(1, 33) as usize;
			let shift = rng.below(32);
			let vec = |n: usize, rng: &mut Rng| -> Vec<i32> {
				(0..n)
					.map(
						|_| if rng.chance(2) { i32::MIN } else { (rng.next_u64() as i32) >> shift },
					)
					.collect()
			};
			let freqs: Vec<u64> = (0..hd / 2).map(|_| rng.below((1 << 32) + 1)).collect();
			let position = rng.below(1 << 24) as u32;
			let mut v = vec(hd, &mut rng);
			let want = rope(&v, position, &freqs).unwrap();
			rope_apply(&mut v, &rope_table(position, &freqs).unwrap());
			assert_eq!(v, want, "case {case}");
			let n = rng.range(1, 20) as usize;
			let q = vec(hd, &mut rng);
			let keys = vec(n * hd, &mut rng);
			let values = vec(n * hd, &mut rng);
			let max = |x: &[i32]| x.iter().map(|v| u64::from(v.unsigned_abs())).max().unwrap();
			let scale = rng.below(1 << 17) as u32;
			let k: Vec<&[i32]> = keys.chunks(hd).collect();
			let vv: Vec<&[i32]> = values.chunks(hd).collect();
			let want = attention_part(&q, &k, &vv, scale).unwrap();
			for kernel in [Kernel::Portable, Kernel::Vnni, Kernel::Avx2] {
				let (kmax, vmax) = (max(&keys), max(&values));
				let got = attention_part_fast(
					&q, &keys, &values, kmax, vmax, scale, &mut z, &mut e, kernel,
				);
				assert_eq!(got, want, "case {case} {kernel:?}");
			}
		}
	}

	/// The AVX2 and AVX-512 exponentials of attention scores against the rule: random scores,
	/// the extremes, and differences on both sides of every multiple of `ln 2` that a result
	/// can depend on (`n < 64`).
	#[cfg(target_arch = "x86_64")]
	#[test]
	fn simd_exponentials_equal_the_rule() {
		let avx2 = std::arch::is_x86_feature_detected!("avx2");
		let avx512 = Kernel::Vnni.available() == Kernel::Vnni;
		if !avx2 {
			eprintln!("no AVX2 on this CPU: nothing to compare");
			return;
		}
		if !avx512 {
			eprintln!("no AVX-512 on this CPU: the AVX2 exponentials only");
		}
		let mut rng = Rng::new(11);
		let mut boundaries = Vec::new();
		for n in 0..66u64 {
			let d = (n * LN2_Q32).div_ceil(1 << ACT_FRAC_BITS) as i64;
			boundaries.extend([d - 1, d, d + 1].into_iter().filter(|&d| d >= 0));
		}
		for case in 0..20_000 {
			let len = rng.below(40) as usize;
			let mut z: Vec<i32> = (0..len)
				.map(|_| match rng.below(8) {
					0 => i32::MIN,
					1 => i32::MAX,
					2 => rng.range(-5, 5) as i32,
					_ => (rng.next_u64() as i32) >> rng.below(32),
				})
				.collect();
			let m = z.iter().copied().max().unwrap_or(i32::MIN);
			if case % 2 == 0 {
				// Scores whose differences to the maximum sit at the boundaries.
				for (j, v) in z.iter_mut().enumerate() {
					let d = boundaries[(case + j) % boundaries.len()];
					*v = (i64::from(m) - d).max(i64::from(i32::MIN)) as i32;
				}
				z.push(m);
			}
			let m = z.iter().copied().max().unwrap_or(i32::MIN);
			let want: Vec<u64> = z
				.iter()
				.map(|&s| exp_neg_q32(((i64::from(m) - i64::from(s)) as u64) << ACT_FRAC_BITS))
				.collect();
			let mut e = vec![7];
			// SAFETY: AVX2 is present (checked above); every score is at most `m`.
			#[allow(unsafe_code)]
			unsafe {
				avx2::exps(m, &z, &mut e)
			};
			assert_eq!(e, want, "case {case} m {m} z {z:?}");
			if avx512 {
				let mut e = vec![7];
				// SAFETY: AVX-512F/DQ are present (`Kernel::Vnni` is available); as above.
				#[allow(unsafe_code)]
				unsafe {
					avx512::exps(m, &z, &mut e)
				};
				assert_eq!(e, want, "AVX-512, case {case} m {m} z {z:?}");
			}
		}
	}

	/// The AVX-512 rounded division of SwiGLU against `u128` arithmetic where its corrections
	/// are needed: quotients just below and at integers (the `f64` estimate one too high or one
	/// too low), exact halves (rounded up) and just below them, at both ends of the quotient's
	/// range (`m` beyond `2^53`, so rounded in `f64`), and random arguments.
	#[cfg(target_arch = "x86_64")]
	#[test]
	fn avx512_rounded_division_is_exact() {
		if Kernel::Vnni.available() != Kernel::Vnni {
			eprintln!("no AVX-512 on this CPU: nothing to compare");
			return;
		}
		let want = |m: u64, w: u64, d: u64| {
			let n = u128::from(m) * u128::from(w);
			let (q, r) = (n / u128::from(d), n % u128::from(d));
			(q + u128::from(2 * r >= u128::from(d))) as u64
		};
		let mut rng = Rng::new(12);
		let mut cases: Vec<(u64, u64, u64)> = Vec::new();
		for _ in 0..4_000 {
			// d = (2^32 + e) << 16 as SwiGLU makes it, e a multiple of 2^17 here so that d is a
			// multiple of 2^33 (its halves and every q d are multiples of 2^32).
			let e = rng.below(1 << 15) << 17;
			let d = ((1u64 << 32) + e) << 16;
			// w = 1: m = q d + rem, q < 2^13; w = 2^32: m = (q d + rem) / 2^32, q < 2^46.
			for (w, qmax) in [(1u64, (1u64 << 62) / d), (1 << 32, 1 << 46)] {
				let q = rng.below(qmax);
				for rem in [0, 1, d / 2 - 1, d / 2, d / 2 + 1, d - 1] {
					let rem = rem / w * w; // a multiple of w
					let n = u128::from(q) * u128::from(d) + u128::from(rem);
					if let Ok(m) = u64::try_from(n / u128::from(w)) {
						if m < 1 << 62 {
							cases.push((m, w, d));
						}
					}
				}
			}
			let m = rng.next_u64() >> (2 + rng.below(60));
			cases.push((m, rng.below((1 << 32) + 1), d));
		}
		let (mut ties, mut beyond_f64) = (0, 0);
		for chunk in cases.chunks_exact(8) {
			let m: [u64; 8] = core::array::from_fn(|i| chunk[i].0);
			let w: [u64; 8] = core::array::from_fn(|i| chunk[i].1);
			let d: [u64; 8] = core::array::from_fn(|i| chunk[i].2);
			let mut got = [0u64; 8];
			// SAFETY: AVX-512F/DQ are present (`Kernel::Vnni` is available); loads and a store
			// of eight `u64`.
			#[allow(unsafe_code)]
			unsafe {
				use std::arch::x86_64::*;
				let q = avx512::div_round8(
					_mm512_loadu_si512(m.as_ptr().cast()),
					_mm512_loadu_si512(w.as_ptr().cast()),
					_mm512_loadu_si512(d.as_ptr().cast()),
				);
				_mm512_storeu_si512(got.as_mut_ptr().cast(), q);
			}
			for i in 0..8 {
				assert_eq!(got[i], want(m[i], w[i], d[i]), "m {} w {} d {}", m[i], w[i], d[i]);
				let n = u128::from(m[i]) * u128::from(w[i]);
				ties += usize::from(2 * (n % u128::from(d[i])) == u128::from(d[i]));
				beyond_f64 += usize::from(m[i] > 1 << 53);
			}
		}
		assert!(ties > 1_000 && beyond_f64 > 1_000, "{ties} {beyond_f64}");
	}

	/// Each multiply-and-shift divisor of the AVX2 exponential is exact for every dividend
	/// it can get (below `ln 2 * 2^32`).
	#[cfg(target_arch = "x86_64")]
	#[test]
	fn exp_magic_divisors_are_exact() {
		for (k, magic, shift) in avx2::DIVISORS {
			let (magic, s) = (magic as u128, 1u128 << shift);
			assert!(magic < 1 << 32 && magic * u128::from(k) >= s, "{k}");
			let excess = magic * u128::from(k) - s;
			assert!(u128::from(LN2_Q32) * excess < s, "{k}");
			for x in [0, 1, k - 1, k, LN2_Q32 - 1, LN2_Q32 - 1 - (LN2_Q32 - 1) % k - 1] {
				assert_eq!((u128::from(x) * magic / s) as u64, x / k, "{k} {x}");
			}
		}
	}

	/// The AVX2 and AVX-512 attention loops (head sizes that are multiples of 16) on long parts
	/// whose sums come close to the `i64` bounds, and on parts just past them (the `i128`
	/// paths), against the rule and the portable loops; scales that put the scores' products
	/// on both sides of the AVX-512 batches' bound (`|dot| scale + 2^31 < 2^63`).
	#[test]
	fn wide_attention_parts_equal_the_rule() {
		let mut rng = Rng::new(4);
		let (mut z, mut e) = (Vec::new(), Vec::new());
		let (mut between, mut batched, mut unbatched) = (0, 0, 0);
		for case in 0..120u64 {
			let hd = 16 * rng.range(1, 9) as usize;
			let n = rng.range(1, 300) as usize;
			// Magnitudes up to the weighted sums' bound `vmax n 2^32 < 2^63` and the dot
			// products' `qmax kmax hd < 2^63`, sometimes just past them; half of the cases with
			// smaller keys and a score scale that leaves the scores a few units apart, so that
			// most weights lie strictly between 0 and 2^32.
			let bits = |x: usize| 64 - (x as u64).leading_zeros();
			let vbits = 62 - 32 - bits(n) + rng.below(3) as u32;
			let kbits_max = (62 - bits(hd)) / 2 + rng.below(2) as u32;
			let kbits =
				if rng.chance(50) { kbits_max } else { rng.range(4, i64::from(kbits_max)) as u32 };
			let dot_bits = 2 * kbits + bits(hd);
			let scale = rng.range(1, 4) as u32 * (1u32 << 48u32.saturating_sub(dot_bits).min(15));
			let vec = |len: usize, bits: u32, rng: &mut Rng| -> Vec<i32> {
				let bits = bits.min(31);
				(0..len)
					.map(|_| match rng.below(8) {
						0 => -(1i64 << bits).min(1 << 31) as i32,
						1 => ((1i64 << bits) - 1) as i32,
						_ => ((rng.next_u64() as i64) >> (64 - bits - 1)) as i32,
					})
					.collect()
			};
			let q = vec(hd, kbits, &mut rng);
			let keys = vec(n * hd, kbits, &mut rng);
			let values = vec(n * hd, vbits, &mut rng);
			let max = |x: &[i32]| x.iter().map(|v| u64::from(v.unsigned_abs())).max().unwrap();
			let (kmax, vmax) = (max(&keys), max(&values));
			let k: Vec<&[i32]> = keys.chunks(hd).collect();
			let vv: Vec<&[i32]> = values.chunks(hd).collect();
			let want = attention_part(&q, &k, &vv, scale).unwrap();
			for kernel in [Kernel::Portable, Kernel::Avx2, Kernel::Vnni] {
				let got = attention_part_fast(
					&q, &keys, &values, kmax, vmax, scale, &mut z, &mut e, kernel,
				);
				assert_eq!(got, want, "case {case} hd {hd} n {n} {kernel:?}");
			}
			let qmax = max(&q);
			let bound = u128::from(qmax) * u128::from(kmax) * hd as u128;
			if bound < 1 << 63 {
				if bound * u128::from(scale) + (1 << 31) < 1 << 63 {
					batched += 1;
				} else {
					unbatched += 1;
				}
			}
			// `e`: this part's weights.
			between += e.iter().filter(|&&w| w > 0 && w < 1 << 32).count();
		}
		// The cases reach the weights that the AVX2 loop multiplies as 32-bit lanes, and both
		// kinds of AVX-512 scores.
		assert!(between > 5_000, "{between}");
		assert!(batched > 10 && unbatched > 10, "{batched} {unbatched}");
	}

	/// A part's outputs, its weighted sums over its normaliser: the portable quotient and the
	/// AVX-512 one (where the CPU has it) equal the rule's `sat_i32(div_round(a, sum))` on
	/// exact halves, one off them, multiples, the extremes and random sums.
	#[test]
	fn means_equal_the_rule() {
		let mut rng = Rng::new(6);
		for case in 0..20_000 {
			let sum = (1u64 << 32) + (rng.next_u64() >> (3 + rng.below(30)));
			let a: Vec<i64> = (0..11)
				.map(|_| {
					let k = (rng.next_u64() >> (33 + rng.below(31))) as i64;
					let at = |x: Option<i64>| x.unwrap_or(i64::MAX);
					let half = (sum / 2) as i64;
					let v = match rng.below(8) {
						0 => at(k.checked_mul(sum as i64).and_then(|x| x.checked_add(half))),
						1 => at(k.checked_mul(sum as i64).and_then(|x| x.checked_add(half - 1))),
						2 => at(k.checked_mul(sum as i64)),
						3 => at(k.checked_mul(sum as i64).and_then(|x| x.checked_sub(1))),
						4 => i64::MAX,
						_ => ((rng.next_u64() as i64) >> rng.below(64)).max(-i64::MAX),
					};
					if rng.chance(50) {
						-v
					} else {
						v
					}
				})
				.collect();
			let want: Vec<i32> =
				a.iter().map(|&x| sat_i32(div_round(i128::from(x), i128::from(sum)))).collect();
			assert_eq!(means_i64(&a, sum), want, "case {case}");
			#[cfg(target_arch = "x86_64")]
			if std::arch::is_x86_feature_detected!("avx512f")
				&& std::arch::is_x86_feature_detected!("avx512dq")
			{
				// SAFETY: the CPU features were checked; 2^32 <= sum < 2^62; |a| < 2^63.
				#[allow(unsafe_code)]
				let got = unsafe { avx512::means(&a, sum) };
				assert_eq!(got, want, "case {case}");
			}
		}
	}

	#[test]
	fn merge_equals_the_rule() {
		use verity_primitives::lm::ops::attention_merge;
		let mut rng = Rng::new(5);
		for case in 0..20_000 {
			let hd = 1 + rng.below(8) as usize;
			let n = rng.below(5) as usize;
			let wide = case % 4 == 0;
			let parts: Vec<AttnPart> = (0..n)
				.map(|_| AttnPart {
					max: match rng.below(6) {
						0 => i32::MIN,
						1 => i32::MAX,
						_ => rng.range(-(1 << 20), 1 << 20) as i32,
					},
					sum: match rng.below(6) {
						0 => 0,
						1 => u64::MAX,
						2 => 1,
						_ => rng.next_u64() >> rng.below(64),
					},
					out: (0..hd)
						.map(|_| match rng.below(10) {
							0 if wide => i32::MAX,
							1 if wide => i32::MIN,
							2 => rng.range(-(1 << 20), 1 << 20) as i32,
							_ => (rng.next_u64() as i32) >> rng.below(32),
						})
						.collect(),
				})
				.collect();
			assert_eq!(attention_merge_fast(&parts), attention_merge(&parts), "case {case}");
		}
	}
}
