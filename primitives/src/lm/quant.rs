//! Block-quantized weights (the GGUF layouts Q8_0, Q4_0, Q4_1) and the exact matmul of
//! block-quantized activations (8-bit in header version 1, 15-bit in version 2) with them.
//!
//! A weight matrix `[N][K]` (`K` a multiple of 32) is stored row-major as `N * K / 32` blocks,
//! each block holding 32 consecutive elements of one row, exactly as in a GGUF file
//! (`ggml-quants.c`):
//!
//! | format | bytes | layout | element `j` of the block |
//! |---|---|---|---|
//! | Q8_0 | 34 | `d: fp16`, `qs: [i8; 32]` | `d * qs[j]` |
//! | Q4_0 | 18 | `d: fp16`, `qs: [u8; 16]` | `d * ((qs[j] & 15) - 8)` for `j < 16`, `d * ((qs[j-16] >> 4) - 8)` for `j >= 16` |
//! | Q4_1 | 20 | `d: fp16`, `m: fp16`, `qs: [u8; 16]` | `d * (qs[j] & 15) + m`, `d * (qs[j-16] >> 4) + m` |
//!
//! fp16 values are little-endian and decoded **exactly** with
//! [`super::fixed::fp16_to_q24`] (an integer number of `2^-24`), so shipped weights
//! are used without any re-quantization loss. Only the activations are quantized, per block of
//! 32, to `-qmax ..= qmax` with an exact rational scale `amax / qmax` (see [`quantize_block`]
//! and [`ActLevels`]).

use alloc::vec::Vec;
use codec::{Decode, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

use super::fixed::{div_round, fp16_to_q24, fp16_to_q24_or_zero, sat_i32};

/// Elements per block.
pub const BLOCK_LEN: usize = 32;

/// How finely activations are quantized before a matrix product: to `-qmax ..= qmax` per
/// block of 32. Fixed by the header's version (`LmHeader::act_levels`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ActLevels {
	/// `qmax = 127` (8-bit activations, as llama.cpp's Q8 dot products): header version 1.
	L127,
	/// `qmax = 16383 = 128 * 127 + 127` (15-bit activations, so that a value splits into two
	/// bytes `128 hi + lo` with `|hi|, |lo| <= 127`): header version 2.
	L16383,
}

impl ActLevels {
	/// The largest `|q|`.
	pub const fn qmax(self) -> i64 {
		match self {
			ActLevels::L127 => 127,
			ActLevels::L16383 => 16383,
		}
	}

	/// Divisor that takes a matmul accumulator to Q16: `qmax * 2^24` (see [`dot_row`]).
	pub const fn divisor(self) -> i128 {
		(self.qmax() as i128) << 24
	}
}

/// A block-quantized weight format (the GGUF type of the same name). SCALE indices fixed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum BlockFormat {
	/// 34-byte blocks: fp16 scale, 32 signed bytes.
	#[codec(index = 0)]
	Q8_0,
	/// 18-byte blocks: fp16 scale, 32 nibbles with offset 8.
	#[codec(index = 1)]
	Q4_0,
	/// 20-byte blocks: fp16 scale, fp16 minimum, 32 unsigned nibbles.
	#[codec(index = 2)]
	Q4_1,
}

impl BlockFormat {
	/// Bytes of one 32-element block.
	pub const fn block_bytes(self) -> usize {
		match self {
			BlockFormat::Q8_0 => 34,
			BlockFormat::Q4_0 => 18,
			BlockFormat::Q4_1 => 20,
		}
	}

	/// Bytes of one row of `k` elements (`k` a multiple of 32), `None` on overflow.
	pub fn row_bytes(self, k: usize) -> Option<usize> {
		(k / BLOCK_LEN).checked_mul(self.block_bytes())
	}
}

/// One decoded block: `element j = d * q[j] + m`, `d` and `m` in units of `2^-24`
/// (`m = 0` except for Q4_1). Non-finite fp16 scales read as 0.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Block {
	pub d: i64,
	pub m: i64,
	pub q: [i8; BLOCK_LEN],
}

fn fp16_at(bytes: &[u8], at: usize) -> u16 {
	let lo = bytes.get(at).copied().unwrap_or(0);
	let hi = bytes.get(at + 1).copied().unwrap_or(0);
	u16::from_le_bytes([lo, hi])
}

/// Decode one block of `format` from `bytes` (exactly `format.block_bytes()` long, else
/// `None`).
pub fn decode_block(format: BlockFormat, bytes: &[u8]) -> Option<Block> {
	if bytes.len() != format.block_bytes() {
		return None;
	}
	let d = fp16_to_q24_or_zero(fp16_at(bytes, 0));
	let mut q = [0i8; BLOCK_LEN];
	let (m, nibbles, offset) = match format {
		BlockFormat::Q8_0 => {
			for (dst, &src) in q.iter_mut().zip(bytes.get(2..)?) {
				*dst = src as i8;
			}
			return Some(Block { d, m: 0, q });
		},
		BlockFormat::Q4_0 => (0, bytes.get(2..)?, 8),
		BlockFormat::Q4_1 => (fp16_to_q24_or_zero(fp16_at(bytes, 2)), bytes.get(4..)?, 0),
	};
	let (low, high) = q.split_at_mut(BLOCK_LEN / 2);
	for ((lo, hi), &b) in low.iter_mut().zip(high.iter_mut()).zip(nibbles) {
		*lo = (b & 15) as i8 - offset;
		*hi = (b >> 4) as i8 - offset;
	}
	Some(Block { d, m, q })
}

/// Why weight bytes are refused by [`check_block_scales`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum WeightError {
	/// The byte length is not a whole number of blocks.
	Length,
	/// Block `block` has an infinite or NaN scale or minimum.
	NonFiniteScale { block: u32 },
}

/// Check that `bytes` is a whole number of `format` blocks whose fp16 scales (and minima) are
/// finite. Publishing tools run this on every matrix; execution itself is defined for any
/// bytes (non-finite scales read as 0), so a fraud proof never depends on it.
pub fn check_block_scales(format: BlockFormat, bytes: &[u8]) -> Result<(), WeightError> {
	if !bytes.len().is_multiple_of(format.block_bytes()) {
		return Err(WeightError::Length);
	}
	for (i, block) in bytes.chunks(format.block_bytes()).enumerate() {
		let bad = fp16_to_q24(fp16_at(block, 0)).is_none()
			|| (format == BlockFormat::Q4_1 && fp16_to_q24(fp16_at(block, 2)).is_none());
		if bad {
			return Err(WeightError::NonFiniteScale { block: crate::len_u32(i) });
		}
	}
	Ok(())
}

/// 32 activations quantized with the exact scale `amax / qmax`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct QuantBlock {
	/// `max |a_k|` over the block (Q16, `0 ..= 2^31`).
	pub amax: i64,
	/// `q_k = div_round(a_k * qmax, amax)` (`0` if `amax == 0`), in `-qmax ..= qmax`.
	pub q: [i16; BLOCK_LEN],
}

/// Quantize 32 Q16 activations: `amax = max_k |a_k|`, `q_k = div_round(qmax * a_k, amax)`
/// (round to nearest, ties away from zero), all `q_k = 0` if `amax = 0`. The real value
/// represented is `q_k * amax / qmax` (Q16), so the scale is an exact rational, never rounded.
/// Missing elements (a slice shorter than 32) count as 0.
pub fn quantize_block(a: &[i32], levels: ActLevels) -> QuantBlock {
	let amax = a.iter().take(BLOCK_LEN).map(|v| i64::from(v.unsigned_abs())).max().unwrap_or(0);
	let mut q = [0i16; BLOCK_LEN];
	if amax > 0 {
		for (dst, &v) in q.iter_mut().zip(a) {
			let r = div_round(i128::from(v) * i128::from(levels.qmax()), i128::from(amax));
			*dst = i16::try_from(r).unwrap_or(0); // |r| <= qmax
		}
	}
	QuantBlock { amax, q }
}

/// Quantize a whole activation vector block by block (`a.len()` a multiple of 32).
pub fn quantize_vector(a: &[i32], levels: ActLevels) -> Vec<QuantBlock> {
	a.chunks(BLOCK_LEN).map(|b| quantize_block(b, levels)).collect()
}

/// The exact block-sum accumulator of one row: `acc = sum_b amax_b * (d_b * S_b + m_b * A_b)`
/// with `S_b = sum_j q_j w_j` (activation times stored weight integer) and `A_b = sum_j q_j`.
///
/// Bounds (any weight bytes, any activations, `qmax <= 16383 < 2^14`): `|S_b| <= 32 * qmax *
/// 128 < 2^26`, `|A_b| <= 32 * qmax < 2^19`, `|d|, |m| < 2^40`, so `|d S + m A| < 2^67`;
/// times `amax <= 2^31` gives `< 2^98` per block, and a row of `K < 2^32` elements has fewer
/// than `2^27` blocks: `|acc| < 2^125`, exact in `i128`. `None` if `row` is not
/// `blocks.len()` blocks of `format`.
pub fn dot_row_acc(format: BlockFormat, row: &[u8], x: &[QuantBlock]) -> Option<i128> {
	if row.len() != x.len().checked_mul(format.block_bytes())? {
		return None;
	}
	let mut acc: i128 = 0;
	for (bytes, xb) in row.chunks(format.block_bytes()).zip(x) {
		let w = decode_block(format, bytes)?;
		let (mut s, mut a) = (0i64, 0i64);
		for (&qx, &qw) in xb.q.iter().zip(&w.q) {
			s += i64::from(qx) * i64::from(qw);
			a += i64::from(qx);
		}
		let block = i128::from(w.d) * i128::from(s) + i128::from(w.m) * i128::from(a);
		acc += block * i128::from(xb.amax);
	}
	Some(acc)
}

/// One output of a matmul in Q16: `sat_i32(div_round(acc, qmax * 2^24))` with `acc` from
/// [`dot_row_acc`] of activations quantized at `levels`. (The real value of `acc` is `acc *
/// 2^-24 (weight units) * 2^-16 (activation units) / qmax`; dividing by `qmax * 2^24` leaves
/// Q16.) One rounding, ties away from zero, then saturation to `i32`.
pub fn dot_row(
	format: BlockFormat,
	row: &[u8],
	x: &[QuantBlock],
	levels: ActLevels,
) -> Option<i32> {
	Some(sat_i32(div_round(dot_row_acc(format, row, x)?, levels.divisor())))
}

/// Rows `0..rows` of `W x`: `weights` is `rows` rows of `x.len()` elements in `format`;
/// `x` (Q16, length a multiple of 32) is quantized once with [`quantize_vector`] at `levels`;
/// with `residual` (length `rows`), output `i` is `sat_i32(residual[i] + div_round(acc_i, qmax
/// * 2^24))` (one rounding, one saturation), otherwise [`dot_row`]. `None` on length mismatch.
pub fn matmul_rows(
	levels: ActLevels,
	format: BlockFormat,
	weights: &[u8],
	rows: usize,
	x: &[i32],
	residual: Option<&[i32]>,
) -> Option<Vec<i32>> {
	if !x.len().is_multiple_of(BLOCK_LEN) || residual.is_some_and(|r| r.len() != rows) {
		return None;
	}
	let row_bytes = format.row_bytes(x.len())?;
	if weights.len() != rows.checked_mul(row_bytes)? || row_bytes == 0 {
		return None;
	}
	let qx = quantize_vector(x, levels);
	let mut out = Vec::with_capacity(rows);
	for (i, row) in weights.chunks(row_bytes).enumerate() {
		let acc = div_round(dot_row_acc(format, row, &qx)?, levels.divisor());
		let res = residual.and_then(|r| r.get(i)).copied().unwrap_or(0);
		out.push(sat_i32(acc + i128::from(res)));
	}
	Some(out)
}

/// One row of `k` elements dequantized to Q16: element `j` is
/// `sat_i32(div_round(d * q_j + m, 2^8))` (exact value in `2^-24` units, one rounding to
/// `2^-16`, ties away from zero). `None` if `row` is not `k / 32` blocks.
pub fn dequantize_row(format: BlockFormat, row: &[u8], k: usize) -> Option<Vec<i32>> {
	if !k.is_multiple_of(BLOCK_LEN) || row.len() != format.row_bytes(k)? {
		return None;
	}
	let mut out = Vec::with_capacity(k);
	for bytes in row.chunks(format.block_bytes()) {
		let b = decode_block(format, bytes)?;
		for &q in &b.q {
			let v = b.d * i64::from(q) + b.m; // < 2^48
			out.push(sat_i32(div_round(i128::from(v), 1 << 8)));
		}
	}
	Some(out)
}

#[cfg(test)]
mod tests {
	use super::*;
	use alloc::vec;
	use ActLevels::{L127, L16383};

	const ONE: u16 = 0x3c00; // fp16 1.0
	const HALF: u16 = 0x3800; // fp16 0.5
	const MAX: u16 = 0x7bff; // fp16 65504
	const TINY: u16 = 0x0001; // fp16 2^-24

	fn q8_block(d: u16, qs: [i8; 32]) -> Vec<u8> {
		let mut b = d.to_le_bytes().to_vec();
		b.extend(qs.iter().map(|&q| q as u8));
		b
	}

	fn q4_0_block(d: u16, nibbles: [u8; 16]) -> Vec<u8> {
		let mut b = d.to_le_bytes().to_vec();
		b.extend_from_slice(&nibbles);
		b
	}

	fn q4_1_block(d: u16, m: u16, nibbles: [u8; 16]) -> Vec<u8> {
		let mut b = d.to_le_bytes().to_vec();
		b.extend_from_slice(&m.to_le_bytes());
		b.extend_from_slice(&nibbles);
		b
	}

	#[test]
	fn block_layouts_follow_ggml() {
		let mut qs = [0i8; 32];
		qs[0] = -128;
		qs[31] = 127;
		let b = decode_block(BlockFormat::Q8_0, &q8_block(ONE, qs)).unwrap();
		assert_eq!((b.d, b.m, b.q[0], b.q[31]), (1 << 24, 0, -128, 127));
		// Q4_0: low nibble is element j, high nibble element j + 16, offset 8.
		let mut n = [0u8; 16];
		n[0] = 0xF0; // element 0 = 0 - 8, element 16 = 15 - 8
		n[15] = 0x1E; // element 15 = 14 - 8, element 31 = 1 - 8
		let b = decode_block(BlockFormat::Q4_0, &q4_0_block(HALF, n)).unwrap();
		assert_eq!((b.q[0], b.q[16], b.q[15], b.q[31], b.q[1]), (-8, 7, 6, -7, -8));
		assert_eq!(b.d, 1 << 23);
		// Q4_1: unsigned nibbles plus minimum.
		let b = decode_block(BlockFormat::Q4_1, &q4_1_block(ONE, 0xbc00, n)).unwrap();
		assert_eq!((b.q[0], b.q[16], b.q[15], b.q[31], b.m), (0, 15, 14, 1, -(1 << 24)));
		assert!(decode_block(BlockFormat::Q4_1, &[0; 19]).is_none());
	}

	#[test]
	fn activation_quantization_rounds_ties_away() {
		let mut a = [0i32; 32];
		a[0] = 254; // amax
		a[1] = 1; // 127 / 254 = 0.5 -> 1
		a[2] = -1; // -0.5 -> -1
		a[3] = -254;
		a[4] = 3; // 1.5 -> 2
		let qb = quantize_block(&a, L127);
		assert_eq!(qb.amax, 254);
		assert_eq!(&qb.q[..5], &[127, 1, -1, -127, 2]);
		// Extreme: i32::MIN has magnitude 2^31.
		let mut a = [0i32; 32];
		a[0] = i32::MIN;
		a[1] = i32::MAX;
		let qb = quantize_block(&a, L127);
		assert_eq!((qb.amax, qb.q[0], qb.q[1]), (1 << 31, -127, 127));
		assert_eq!(quantize_block(&[0; 32], L127).q, [0; 32]);
		// 15-bit levels: 16383 / 254 * 1 = 64.5 -> 65 (tie away), 16383 * 3 / 254 = 193.5 -> 194.
		let mut a = [0i32; 32];
		a[0] = -254;
		a[1] = 1;
		a[2] = 3;
		a[3] = -1;
		let qb = quantize_block(&a, L16383);
		assert_eq!(&qb.q[..4], &[-16383, 65, 194, -65]);
		let qb = quantize_block(&[i32::MIN, i32::MAX, 1], L16383);
		assert_eq!((qb.amax, qb.q[0], qb.q[1], qb.q[2]), (1 << 31, -16383, 16383, 0));
	}

	#[test]
	fn fifteen_bit_extremes_stay_exact() {
		// The largest accumulator the bounds allow per block: 2^31 * (65504 * 2^24) * (32 *
		// 16383 * 128) (> 2^64, so the block term is computed in i128), on 3 blocks.
		let x = vec![i32::MIN; 96];
		let qx = quantize_vector(&x, L16383);
		let mut row = Vec::new();
		for _ in 0..3 {
			row.extend(q8_block(MAX, [-128; 32]));
		}
		let acc = dot_row_acc(BlockFormat::Q8_0, &row, &qx).unwrap();
		assert_eq!(acc, 3 * (1i128 << 31) * (65504i128 << 24) * (32 * 16383 * 128));
		assert_eq!(dot_row(BlockFormat::Q8_0, &row, &qx, L16383), Some(i32::MAX));
		// Q4_1 with the largest minimum: d S + m A with A = 32 * 16383.
		let x = vec![1 << 16; 32];
		let row = q4_1_block(MAX, 0xfbff, [0xff; 16]);
		let acc = dot_row_acc(BlockFormat::Q4_1, &row, &quantize_vector(&x, L16383)).unwrap();
		let per = (65504i128 << 24) * (32 * 16383 * 15) - (65504i128 << 24) * (32 * 16383);
		assert_eq!(acc, per * 65536);
		// Finer levels, same real value: x = 1.0, weights 2 at d = 0.5 -> 32.
		let row = q8_block(HALF, [2; 32]);
		assert_eq!(
			dot_row(BlockFormat::Q8_0, &row, &quantize_vector(&x, L16383), L16383),
			Some(32 << 16)
		);
	}

	#[test]
	fn dot_product_hand_computed() {
		// x = 1.0 everywhere (Q16 65536): amax = 65536, q = 127.
		let x = vec![1 << 16; 32];
		let qx = quantize_vector(&x, L127);
		// Q8_0, d = 0.5, weights 2 everywhere: real 32 * 1.0 * 1.0 = 32.
		let row = q8_block(HALF, [2; 32]);
		assert_eq!(dot_row(BlockFormat::Q8_0, &row, &qx, L127), Some(32 << 16));
		// acc = 65536 * (2^23 * 32*127*2) exactly.
		assert_eq!(dot_row_acc(BlockFormat::Q8_0, &row, &qx), Some(65536 * (1 << 23) * 8128));
		// Q4_1, d = 1, m = -1, nibble 3: each weight 2 -> 64.
		let row = q4_1_block(ONE, 0xbc00, [0x33; 16]);
		assert_eq!(dot_row(BlockFormat::Q4_1, &row, &qx, L127), Some(64 << 16));
		// Q4_0 nibble 8 is weight 0.
		let row = q4_0_block(MAX, [0x88; 16]);
		assert_eq!(dot_row(BlockFormat::Q4_0, &row, &qx, L127), Some(0));
	}

	#[test]
	fn dot_product_extreme_scales() {
		// Largest scale, largest weights, largest activations: saturates, never overflows.
		let x = vec![i32::MIN; 64];
		let qx = quantize_vector(&x, L127);
		let mut row = q8_block(MAX, [-128; 32]);
		row.extend(q8_block(MAX, [-128; 32]));
		let acc = dot_row_acc(BlockFormat::Q8_0, &row, &qx).unwrap();
		// 2 blocks * 2^31 * (65504 * 2^24) * (32 * 127 * 128)
		assert_eq!(acc, 2 * (1i128 << 31) * (65504i128 << 24) * (32 * 127 * 128));
		assert_eq!(dot_row(BlockFormat::Q8_0, &row, &qx, L127), Some(i32::MAX));
		let neg = q8_block(MAX, [127; 32]);
		assert_eq!(dot_row(BlockFormat::Q8_0, &neg, &qx[..1], L127), Some(i32::MIN));
		// Smallest scale: 2^-24 * 127 * 1.0 per element; 32 elements of x = 1.0:
		// real = 32 * 127 * 2^-24 = 0.000242... -> Q16 round(15.875) = 16.
		let x = vec![1 << 16; 32];
		let row = q8_block(TINY, [127; 32]);
		assert_eq!(dot_row(BlockFormat::Q8_0, &row, &quantize_vector(&x, L127), L127), Some(16));
		// Q4_1 with extreme minimum and scale.
		let row = q4_1_block(MAX, 0xfbff, [0xff; 16]);
		let acc = dot_row_acc(BlockFormat::Q4_1, &row, &quantize_vector(&x, L127)).unwrap();
		let per = (65504i128 << 24) * (32 * 127 * 15) - (65504i128 << 24) * (32 * 127);
		assert_eq!(acc, per * 65536);
		// Non-finite scales read as zero.
		let row = q8_block(0x7c00, [127; 32]);
		assert_eq!(dot_row(BlockFormat::Q8_0, &row, &quantize_vector(&x, L127), L127), Some(0));
	}

	#[test]
	fn matmul_with_residual_and_rounding() {
		// x[0] = 1.0, others 0; weights of row r: element 0 = r (Q8_0, d = 2^-24 * 2^8 = 2^-16).
		let mut x = vec![0; 32];
		x[0] = 1 << 16;
		let d = 0x1c00u16; // 2^-8
		let mut w = Vec::new();
		for r in 0..3i8 {
			let mut qs = [0i8; 32];
			qs[0] = r;
			w.extend(q8_block(d, qs));
		}
		// row r: real r * 2^-8 -> Q16 r * 256
		let y = matmul_rows(L127, BlockFormat::Q8_0, &w, 3, &x, None).unwrap();
		assert_eq!(y, vec![0, 256, 512]);
		let y = matmul_rows(L127, BlockFormat::Q8_0, &w, 3, &x, Some(&[i32::MAX, -5, 7])).unwrap();
		assert_eq!(y, vec![i32::MAX, 251, 519]);
		assert!(matmul_rows(L127, BlockFormat::Q8_0, &w, 2, &x, None).is_none());
		assert!(matmul_rows(L127, BlockFormat::Q8_0, &w, 3, &x[..31], None).is_none());
	}

	#[test]
	fn dequantize_rounds_to_q16() {
		let mut qs = [0i8; 32];
		qs[0] = 1;
		qs[1] = -1;
		qs[2] = 3;
		// d = 2^-24 * 128 = 2^-17 -> 1 * 2^-17 = 0.5 Q16 -> 1; -0.5 -> -1; 1.5 -> 2
		let row = q8_block(0x0080, qs);
		let y = dequantize_row(BlockFormat::Q8_0, &row, 32).unwrap();
		assert_eq!(&y[..4], &[1, -1, 2, 0]);
		let row = q8_block(MAX, [-128; 32]);
		assert_eq!(dequantize_row(BlockFormat::Q8_0, &row, 32).unwrap()[0], i32::MIN);
	}

	#[test]
	fn scale_check_rejects_non_finite() {
		let mut good = q4_1_block(ONE, HALF, [0; 16]);
		assert_eq!(check_block_scales(BlockFormat::Q4_1, &good), Ok(()));
		good.extend(q4_1_block(ONE, 0x7e00, [0; 16]));
		assert_eq!(
			check_block_scales(BlockFormat::Q4_1, &good),
			Err(WeightError::NonFiniteScale { block: 1 })
		);
		assert_eq!(check_block_scales(BlockFormat::Q8_0, &[0; 33]), Err(WeightError::Length));
	}
}
