//! Block-quantized matrices repacked for SIMD, and the exact matrix–vector product.
//!
//! The rule is `verity_primitives::lm::quant::dot_row_acc`: per 32-element block `b` of a row,
//! `acc += amax_b * (d_b * S_b + m_b * A_b)` with `S_b = sum_j qx_j qw_j`, `A_b = sum_j qx_j`,
//! exact in `i128`. Here the weights are decoded once (by the primitives' `decode_block`, so
//! any format, any bytes) into `i8` values and `i64` scales, and laid out for 16 rows at a
//! time: the 16 block sums of a row group come out of eight `vpdpbusd` instructions per
//! activation byte vector (AVX-512 VNNI, the weights stored unsigned times the signed
//! activation bytes, the weights' offset folded into the block's minimum), out of
//! `vpmaddubsw`/`vpmaddwd` on an AVX2 CPU without AVX-512, or out of the portable loop, which
//! all compute the same integers. The combination with the scales is the rule's own integer
//! arithmetic.
//!
//! A batch of vectors (`Packed::matmul`, a batch of prompt positions) on AVX-512 VNNI with
//! 4-bit weights widens each row group's nibbles to bytes and makes its block scales once for
//! the whole batch, and finishes sixteen outputs at a time with an exact `f64` quotient
//! (`finish_lanes`); other kernels run each vector as `matvec` does.
//!
//! On AVX-512 VNNI with 15-bit activations (the models' matrices) the combination with the
//! scales runs first in `f64` (`group_out_f64_avx512`: the block sums are exact integers, the
//! sum over blocks carries a proven error bound), and an output is taken from it only where
//! that bound decides the rule's rounding; a group where it does not (an exact tie, a value
//! within the bound of one: rare, and made on purpose by the tests) is computed again by the
//! exact integer path. Either way the integers are the rule's.

use rayon::prelude::*;
use verity_primitives::lm::{
	fixed::{div_round, sat_i32},
	quant::{decode_block, ActLevels, BlockFormat, BLOCK_LEN},
};

use super::ops::{div_round_i64, quantize_block_fast};

/// Rows per group (one AVX-512 register of `i32` sums).
pub const LANES: usize = 16;
/// Groups of four bytes per block.
const SUBS: usize = BLOCK_LEN / 4;
/// Bytes of one packed block of a row group.
const PACKED_BLOCK: usize = LANES * BLOCK_LEN;
/// The rule's scale unit, `2^-24`.
const REAL: f64 = 1.0 / (1u64 << 24) as f64;

/// The inner kernel computing the block sums `S_b` of a row group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
	/// Plain Rust (any CPU).
	Portable,
	/// AVX-512 VNNI (`vpdpbusd`), x86-64 only, when the CPU has it.
	Vnni,
	/// AVX2 (`vpmaddubsw`, `vpmaddwd`), x86-64 only, when the CPU has it: 4-bit weights
	/// directly, 8-bit weights by their magnitudes times the activations with the weights'
	/// signs (so no byte product can saturate `vpmaddubsw`).
	Avx2,
}

impl Kernel {
	/// The fastest kernel this CPU runs.
	pub fn detect() -> Kernel {
		#[cfg(target_arch = "x86_64")]
		{
			if std::arch::is_x86_feature_detected!("avx512f")
				&& std::arch::is_x86_feature_detected!("avx512bw")
				&& std::arch::is_x86_feature_detected!("avx512dq")
				&& std::arch::is_x86_feature_detected!("avx512vl")
				&& std::arch::is_x86_feature_detected!("avx512vnni")
			{
				return Kernel::Vnni;
			}
			if std::arch::is_x86_feature_detected!("avx2") {
				return Kernel::Avx2;
			}
		}
		Kernel::Portable
	}

	/// `Vnni` if the CPU has it, else `Portable` (so a requested kernel always runs).
	pub fn available(self) -> Kernel {
		match self {
			Kernel::Vnni => Kernel::detect(),
			Kernel::Avx2 => match Kernel::detect() {
				Kernel::Portable => Kernel::Portable,
				_ => Kernel::Avx2,
			},
			Kernel::Portable => Kernel::Portable,
		}
	}
}

/// An activation vector quantized per block by the rule (`quantize_block` at the model's
/// levels), ready for the kernels, which multiply bytes: with 8-bit levels `qx` as signed
/// bytes; with 15-bit levels `qx = 128 hi + lo` (`hi = qx / 128` rounded toward zero, so
/// `|hi|, |lo| <= 127`) as the two signed byte vectors `hi` and `lo`, each multiplied by the
/// same (unsigned) weight bytes. Per block also `amax` and `A_b = sum qx`.
pub struct QuantX {
	levels: ActLevels,
	/// `qx` (8-bit) or `hi` (15-bit), as `i8` bits.
	xh: Vec<u8>,
	/// `lo` as `i8` bits (15-bit levels only; empty otherwise).
	xl: Vec<u8>,
	amax: Vec<i64>,
	asum: Vec<i64>,
}

impl QuantX {
	/// Quantize `x` (length a multiple of 32) at `levels`.
	pub fn new(x: &[i32], levels: ActLevels) -> QuantX {
		#[cfg(target_arch = "x86_64")]
		if Kernel::detect() == Kernel::Vnni {
			// SAFETY: `Kernel::detect` found AVX-512F/BW/DQ/VL.
			#[allow(unsafe_code)]
			return unsafe { QuantX::new_avx512(x, levels) };
		}
		QuantX::new_with(x, levels)
	}

	/// [`QuantX::new`] compiled for AVX-512 (the quantization's divisions eight at a time).
	///
	/// # Safety
	/// The CPU must have AVX-512F/BW/DQ/VL.
	#[cfg(target_arch = "x86_64")]
	#[allow(unsafe_code)]
	#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
	unsafe fn new_avx512(x: &[i32], levels: ActLevels) -> QuantX {
		QuantX::new_with(x, levels)
	}

	#[inline(always)]
	fn new_with(x: &[i32], levels: ActLevels) -> QuantX {
		let blocks = x.len() / BLOCK_LEN;
		let two = levels == ActLevels::L16383;
		let mut q = QuantX {
			levels,
			xh: Vec::with_capacity(x.len()),
			xl: Vec::with_capacity(if two { x.len() } else { 0 }),
			amax: Vec::with_capacity(blocks),
			asum: Vec::with_capacity(blocks),
		};
		for block in x.chunks_exact(BLOCK_LEN) {
			let b = quantize_block_fast(block, levels);
			q.amax.push(b.amax);
			q.asum.push(b.q.iter().map(|&v| i64::from(v)).sum());
			if two {
				// |v| <= 16383: |v / 128| <= 127 and |v % 128| <= 127.
				q.xh.extend(b.q.iter().map(|&v| (v / 128) as i8 as u8));
				q.xl.extend(b.q.iter().map(|&v| (v % 128) as i8 as u8));
			} else {
				q.xh.extend(b.q.iter().map(|&v| v as i8 as u8));
			}
		}
		q
	}

	pub fn len(&self) -> usize {
		self.xh.len()
	}

	pub fn is_empty(&self) -> bool {
		self.xh.is_empty()
	}
}

/// `sums(w, xh, xl, s, s_lo)`: the block sums of one packed block (see
/// [`Packed::group_acc_with`]).
trait BlockSums: Fn(&[u8], &[u8], Option<&[u8]>, &mut [i32; LANES], &mut [i32; LANES]) {}

impl<F: Fn(&[u8], &[u8], Option<&[u8]>, &mut [i32; LANES], &mut [i32; LANES])> BlockSums for F {}

/// A block's scales per lane as the combination uses them: `d` and `m`.
#[derive(Clone, Copy)]
struct BlockScales {
	d: [i64; LANES],
	m: [i64; LANES],
}

impl BlockScales {
	const ZERO: BlockScales = BlockScales { d: [0; LANES], m: [0; LANES] };
}

/// A block's scales per lane as mantissas and shifts (`d = dm << ds`, `m = mm << ms`).
struct StoredScales {
	dm: [i32; LANES],
	ds: [u32; LANES],
	mm: [i32; LANES],
	ms: [u32; LANES],
}

/// A group's stored scales (fp16 bits, 16 lanes per block; `m` absent without minimums).
#[derive(Clone, Copy)]
struct GroupScales<'a> {
	d: &'a [u16],
	m: Option<&'a [u16]>,
}

/// Where the combination takes a group's block scales from.
#[derive(Clone, Copy)]
enum Scales<'a> {
	/// From the packed matrix: the group's.
	Stored(GroupScales<'a>),
	/// Made once for a batch ([`Widened`]).
	Made(&'a [BlockScales]),
}

/// A row group's nibbles widened to bytes and its blocks' scales, made once for a batch of
/// vectors ([`Packed::matmul`]).
#[derive(Default)]
struct Widened {
	bytes: Vec<u8>,
	scales: Vec<BlockScales>,
	/// Per block, for [`group_out_f64_avx512`]: `d` of the 16 lanes, then `m - o d`, as
	/// `f64` in real units (the rule's integers times `2^-24`; exact).
	real: Vec<[f64; 2 * LANES]>,
	/// Minus the group's row offsets (see [`Packed::group_acc_with`]).
	back: [i32; LANES],
}

/// Rows of one or more block-quantized matrices with the same row length `k`, decoded and
/// packed by groups of [`LANES`] rows (the last group padded with zero rows).
///
/// Each block's weight integers are stored unsigned, so that the kernels multiply them with
/// the signed activation bytes directly: as bytes `u = q + 128` (Q8_0), or, when every part
/// is a 4-bit format, as nibbles `u = q + 8` (Q4_0) or `u = q` (Q4_1) two to a byte. The
/// kernels' `S' = sum qx u` is `S + o A` (`o` = 128, 8 or 0, the row's offset), so
/// `S = S' - o A`. The scales `d` and `m` are the block's fp16 values as GGUF stores them
/// (an infinity or NaN, which the rule reads as 0, stored as 0), decoded by the kernels into
/// an 11-bit mantissa and a shift; `m` only if some block has a minimum. A Q4_1 block thus
/// takes 20 bytes, as in GGUF, and a Q8_0 block 34. Weights, `d` and `m` are three arrays
/// (three streams for the prefetchers: one array with each block's scales after its weights
/// was 10-20 % slower from memory here).
pub struct Packed {
	rows: usize,
	k: usize,
	blocks: usize,
	/// Nibble storage (see above).
	nibbles: bool,
	/// `[group][block][sub]`: 64 weight integers per sub-block of four columns, lane `r`'s
	/// four at `4 r ..`; as bytes, or as nibbles: sub-blocks `2 c` and `2 c + 1` in 64 bytes,
	/// value `p` of the first in the low nibble of byte `p`, of the second in its high nibble
	/// (so that one 64-byte load and two masks give both).
	w: Vec<u8>,
	/// `[group][block][lane]`: `d` as fp16 bits.
	d: Vec<u16>,
	/// `[group][block][lane]`: `m` as fp16 bits; empty if no block has a minimum.
	m: Vec<u16>,
	/// `[group][lane]`: the row's offset `o` (0 for padding rows).
	offsets: Vec<i32>,
	/// Whether every block has `|d| < 2^33` and `|m| < 2^40`: then with 15-bit activations
	/// (`|S| < 2^26`, `|A| < 2^19`) the rule's `|d S + m A|` is below `2^60`, so the limb
	/// accumulation below is exact; otherwise (fp16 scales beyond 512, never in a real model)
	/// 15-bit products take the plain `i128` path.
	narrow: bool,
}

/// The fp16 bits of `v` (units of `2^-24`) if `v` is an fp16 value (as the rule decodes one:
/// `fp16_to_q24_or_zero`), else `None`.
fn fp16_bits(v: i64) -> Option<u16> {
	let (sign, a) = (if v < 0 { 0x8000u16 } else { 0 }, v.unsigned_abs());
	if a < 1024 {
		return Some(sign | a as u16);
	}
	// a = (1024 + f) << (e - 1) with 1 <= e <= 30, f < 1024.
	let e = 64 - a.leading_zeros() - 10; // a >> (e - 1) in 1024..2048
	let f = (a >> (e - 1)) - 1024;
	(e <= 30 && (1024 + f) << (e - 1) == a).then_some(sign | (e as u16) << 10 | f as u16)
}

/// fp16 bits (never an infinity or NaN: [`Packed::new`] stores those as 0) as `mantissa <<
/// shift`: the signed 11-bit mantissa and the shift.
#[inline(always)]
fn fp16_parts(h: u16) -> (i32, u32) {
	// Without branches, so that the loops over a block's lanes vectorize.
	let h = u32::from(h);
	let e = (h >> 10) & 31;
	let normal = u32::from(e != 0);
	let mant = ((h & 1023) | normal << 10) as i32;
	let negative = (h >> 15) as i32; // 0 or 1
	((mant ^ -negative) + negative, e - normal)
}

impl Packed {
	/// Pack `parts`, each `(format, bytes)` with a whole number of rows of `k` elements, in
	/// order. `None` if `k` is not a positive multiple of 32 or a part's length is not a whole
	/// number of rows.
	pub fn new(k: usize, parts: &[(BlockFormat, &[u8])]) -> Option<Packed> {
		if k == 0 || !k.is_multiple_of(BLOCK_LEN) {
			return None;
		}
		let blocks = k / BLOCK_LEN;
		let mut rows_bytes: Vec<(BlockFormat, &[u8])> = Vec::new();
		for &(format, bytes) in parts {
			let row_bytes = format.row_bytes(k)?;
			if row_bytes == 0 || !bytes.len().is_multiple_of(row_bytes) {
				return None;
			}
			rows_bytes.extend(bytes.chunks_exact(row_bytes).map(|r| (format, r)));
		}
		let nibbles = parts.iter().all(|(f, _)| *f != BlockFormat::Q8_0);
		let rows = rows_bytes.len();
		let groups = rows.div_ceil(LANES);
		let weights = if nibbles { PACKED_BLOCK / 2 } else { PACKED_BLOCK };
		// Whether any block has a minimum (only Q4_1 blocks can; a real model's first has).
		let has_min = rows_bytes.iter().any(|&(format, row)| {
			format == BlockFormat::Q4_1
				&& row
					.chunks_exact(format.block_bytes())
					.any(|b| decode_block(format, b).is_some_and(|b| b.m != 0))
		});
		let n = groups * blocks * LANES;
		let mut p = Packed {
			rows,
			k,
			blocks,
			nibbles,
			w: vec![0; groups * blocks * weights],
			d: vec![0; n],
			m: vec![0; if has_min { n } else { 0 }],
			offsets: vec![0; groups * LANES],
			narrow: true,
		};
		for (r, (format, row)) in rows_bytes.iter().enumerate() {
			let (g, lane) = (r / LANES, r % LANES);
			// The stored integers' offset (`u = q + offset`, unsigned).
			let offset: i16 = match format {
				BlockFormat::Q8_0 => 128,
				BlockFormat::Q4_0 => 8,
				BlockFormat::Q4_1 => 0,
			};
			p.offsets[r] = i32::from(offset);
			for (b, bytes) in row.chunks_exact(format.block_bytes()).enumerate() {
				let block = decode_block(*format, bytes)?;
				p.narrow &= block.d.unsigned_abs() < 1 << 33 && block.m.unsigned_abs() < 1 << 40;
				let at = (g * blocks + b) * LANES + lane;
				p.d[at] = fp16_bits(block.d)?;
				if has_min {
					p.m[at] = fp16_bits(block.m)?;
				}
				let base = (g * blocks + b) * weights;
				for (j, &v) in block.q.iter().enumerate() {
					let sub = j / 4;
					let pos = lane * 4 + j % 4; // within the sub-block's 64 values
					let u = (i16::from(v) + offset) as u8; // 0..=255, or 0..=15 for nibbles
					if nibbles {
						let byte = base + (sub / 2) * 64 + pos;
						p.w[byte] |= if sub % 2 == 0 { u } else { u << 4 };
					} else {
						p.w[base + sub * LANES * 4 + pos] = u;
					}
				}
			}
		}
		Some(p)
	}

	/// Bytes of one block's weights (of a group): 256 (nibbles) or 512.
	#[inline(always)]
	fn wbytes(&self) -> usize {
		if self.nibbles {
			PACKED_BLOCK / 2
		} else {
			PACKED_BLOCK
		}
	}

	/// Group `g`'s weights (`wbytes` per block).
	#[inline(always)]
	fn group_weights(&self, g: usize) -> &[u8] {
		let len = self.blocks * self.wbytes();
		&self.w[g * len..(g + 1) * len]
	}

	/// Group `g`'s scales: `d` and `m` (empty without minimums), 16 lanes per block.
	#[inline(always)]
	fn group_scales(&self, g: usize) -> GroupScales<'_> {
		let len = self.blocks * LANES;
		GroupScales { d: &self.d[g * len..(g + 1) * len], m: self.m.get(g * len..(g + 1) * len) }
	}

	/// Group `g`'s row offsets.
	#[inline(always)]
	fn group_offsets(&self, g: usize) -> [i32; LANES] {
		let lanes = self.offsets.get(g * LANES..(g + 1) * LANES);
		lanes.and_then(|s| s.try_into().ok()).unwrap_or([0; LANES])
	}

	pub fn rows(&self) -> usize {
		self.rows
	}

	pub fn k(&self) -> usize {
		self.k
	}

	/// Bytes of weights and scales.
	pub fn bytes(&self) -> usize {
		self.w.len() + 2 * (self.d.len() + self.m.len())
	}

	/// The exact accumulators `acc_r` of [`dot_row_acc`](verity_primitives::lm::quant::dot_row_acc)
	/// of the 16 rows of group `g`.
	fn group_acc(&self, g: usize, x: &QuantX, kernel: Kernel) -> [i128; LANES] {
		match (kernel, self.nibbles) {
			#[cfg(target_arch = "x86_64")]
			// SAFETY: `Kernel::Vnni` is only passed here after `Kernel::available` found the
			// CPU features.
			#[allow(unsafe_code)]
			(Kernel::Vnni, false) => unsafe { self.group_acc_vnni(g, x) },
			#[cfg(target_arch = "x86_64")]
			#[allow(unsafe_code)]
			(Kernel::Vnni, true) => unsafe { self.group_acc_vnni_nibbles(g, x) },
			#[cfg(target_arch = "x86_64")]
			// SAFETY: `Kernel::Avx2` is only passed here after `Kernel::available` found AVX2.
			#[allow(unsafe_code)]
			(Kernel::Avx2, true) => unsafe { self.group_acc_avx2_nibbles(g, x) },
			#[cfg(target_arch = "x86_64")]
			#[allow(unsafe_code)]
			(Kernel::Avx2, false) => unsafe { self.group_acc_avx2(g, x) },
			(_, false) => self.group_acc_with(g, x, 0, pair_of(block_sums_portable)),
			(_, true) => self.group_acc_with(g, x, 0, pair_of(block_sums_portable_nibbles)),
		}
	}

	/// [`Packed::group_acc`] with the VNNI block sums inlined.
	///
	/// # Safety
	/// The CPU must have AVX-512F/BW/DQ/VL and AVX-512 VNNI.
	#[cfg(target_arch = "x86_64")]
	#[allow(unsafe_code)]
	#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
	unsafe fn group_acc_vnni(&self, g: usize, x: &QuantX) -> [i128; LANES] {
		if x.levels == ActLevels::L16383 && self.narrow {
			// SAFETY: the caller's CPU features; 15-bit `x` of `k` elements (`matvec` checked
			// the length); `(2 pair + 2) * 64 <= 512` bytes from the start of a block.
			return unsafe {
				group_acc_two_avx512(self, g, x, |block, pair| byte_pair(block, pair))
			};
		}
		// SAFETY: the caller checked the CPU features; `group_acc_with` passes slices of the
		// lengths `block_sums_vnni` reads.
		self.group_acc_with(g, x, 0, |w, xh, xl, s, s_lo| unsafe {
			block_sums_vnni(w, xh, xl, s, s_lo)
		})
	}

	/// [`Packed::group_acc_vnni`] for nibble storage.
	///
	/// # Safety
	/// As [`Packed::group_acc_vnni`].
	#[cfg(target_arch = "x86_64")]
	#[allow(unsafe_code)]
	#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
	unsafe fn group_acc_vnni_nibbles(&self, g: usize, x: &QuantX) -> [i128; LANES] {
		if x.levels == ActLevels::L16383 && self.narrow {
			// SAFETY: as in `group_acc_vnni`; `(pair + 1) * 64 <= 256` bytes from the start of
			// a block.
			return unsafe {
				group_acc_two_avx512(self, g, x, |block, pair| nibble_pair(block, pair))
			};
		}
		// SAFETY: as above, for `block_sums_vnni_nibbles`.
		self.group_acc_with(g, x, 0, |w, xh, xl, s, s_lo| unsafe {
			block_sums_vnni_nibbles(w, xh, xl, s, s_lo)
		})
	}

	/// Group `g`'s outputs from 15-bit `x` by [`group_out_f64_avx512`] with the stored weights
	/// and scales (the fp16 bits converted to `f64` exactly); `None` where that cannot decide
	/// an output (then the caller takes the exact path).
	///
	/// # Safety
	/// As [`Packed::group_acc_vnni`]; `x` must have 15-bit levels.
	#[cfg(target_arch = "x86_64")]
	#[allow(unsafe_code)]
	#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
	unsafe fn group_out_vnni(
		&self,
		g: usize,
		x: &QuantX,
		residual: &[i32; LANES],
	) -> Option<[i32; LANES]> {
		use std::arch::x86_64::*;
		let scales = self.group_scales(g);
		let offsets = self.group_offsets(g).map(f64::from);
		// SAFETY (all loads below): 8 `f64` of an array of 16; 16 `u16` of a block's 16 lanes.
		let (ol, oh) = unsafe {
			(_mm512_loadu_pd(offsets.as_ptr()), _mm512_loadu_pd(offsets.as_ptr().add(8)))
		};
		// fp16 bits of 16 lanes as two vectors of `f64` (`vcvtph2ps` is exact, as is widening).
		let real = |bits: &[u16], b: usize| {
			let lanes = bits.get(b * LANES..(b + 1) * LANES).unwrap_or(&[0; LANES]);
			let v = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) });
			let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
			(_mm512_cvtps_pd(_mm512_castps512_ps256(v)), _mm512_cvtps_pd(hi))
		};
		let zero = _mm512_setzero_pd();
		let scales = |b: usize| {
			let (dl, dh) = real(scales.d, b);
			let (ml, mh) = scales.m.map_or((zero, zero), |m| real(m, b));
			// m - o d, exact (see `Widened::real`).
			[dl, dh, _mm512_fnmadd_pd(ol, dl, ml), _mm512_fnmadd_pd(oh, dh, mh)]
		};
		let w = (self.group_weights(g), self.wbytes());
		// While block `b` computes, the same block of the next row group is fetched.
		let ahead = |b: usize| self.prefetch_block(g + 1, b);
		if self.nibbles {
			// SAFETY: `(pair + 1) * 64 <= 256` bytes from the start of a block.
			unsafe {
				group_out_f64_avx512(self, w, x, scales, residual, ahead, |block, pair| {
					nibble_pair(block, pair)
				})
			}
		} else {
			// SAFETY: `(2 pair + 2) * 64 <= 512` bytes from the start of a block.
			unsafe {
				group_out_f64_avx512(self, w, x, scales, residual, ahead, |block, pair| {
					byte_pair(block, pair)
				})
			}
		}
	}

	/// Asks for block `b` of row group `g` (its weights, and with every even `b` the scales
	/// of blocks `b` and `b + 1`), if there is such a group, to be brought into the core's L2
	/// cache. A decode step reads each matrix once, mostly from memory or the shared L3: with
	/// the block one row group ahead asked for as each block computes (a few lines at a time,
	/// so that the requests never crowd out the loads), the fetching overlaps the arithmetic:
	/// a matrix–vector product read from memory took about as long as one in the caches, and
	/// decode at one thread ran some 1.2–1.4× as fast as with session 29's burst of a whole
	/// group at its start (less with two threads; docs/PERFORMANCE.md, session 30).
	#[cfg(target_arch = "x86_64")]
	#[inline(always)]
	fn prefetch_block(&self, g: usize, b: usize) {
		use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
		if g * LANES >= self.rows || b >= self.blocks {
			return;
		}
		let fetch = |at: *const u8| {
			// SAFETY: SSE is part of x86-64; a prefetch is a hint that reads nothing the
			// program sees and never faults.
			#[allow(unsafe_code)]
			unsafe {
				_mm_prefetch::<_MM_HINT_T1>(at.cast())
			};
		};
		let wb = self.wbytes();
		let block = self.w.as_ptr().wrapping_add((g * self.blocks + b) * wb);
		for at in (0..wb).step_by(64) {
			fetch(block.wrapping_add(at));
		}
		if b.is_multiple_of(2) {
			let lane = (g * self.blocks + b) * LANES;
			fetch(self.d.as_ptr().wrapping_add(lane).cast());
			if !self.m.is_empty() {
				fetch(self.m.as_ptr().wrapping_add(lane).cast());
			}
		}
	}

	/// Group `g`'s nibbles widened into `bytes` as the byte layout (each pair of sub-blocks'
	/// 64 bytes gives the first's 64 values from the low nibbles, then the second's from the
	/// high ones: the values `0..=15` at the places [`Packed::new`] puts byte weights), so
	/// that a batch of vectors multiplies them without unpacking them again for each one.
	fn widen_group(&self, g: usize, widened: &mut Widened) {
		let scales = self.group_scales(g);
		widened.back = self.group_offsets(g).map(|o| -o);
		widened.scales.clear();
		widened.scales.extend((0..self.blocks).map(|b| Self::block_scales(scales, b)));
		// `m - o d` is below `2^48` (`|d| <= 65504 * 2^24`, `o <= 128`, `|m| <= 65504 * 2^24`),
		// so it and `d` are exact in `f64`, as is the scaling by `2^-24`.
		let offsets = self.group_offsets(g);
		widened.real.clear();
		widened.real.extend(widened.scales.iter().map(|sc| {
			core::array::from_fn(|i| {
				let l = i % LANES;
				let v = if i < LANES { sc.d[l] } else { sc.m[l] - i64::from(offsets[l]) * sc.d[l] };
				v as f64 * REAL
			})
		}));
		let bytes = &mut widened.bytes;
		bytes.clear();
		bytes.resize(self.blocks * PACKED_BLOCK, 0);
		const LOW: u64 = 0x0f0f_0f0f_0f0f_0f0f;
		for (out, packed) in bytes.chunks_exact_mut(128).zip(self.group_weights(g).chunks_exact(64))
		{
			let (lo, hi) = out.split_at_mut(64);
			// Eight nibble pairs at a time: the low nibbles, then the high ones.
			for ((l, h), p) in
				lo.chunks_exact_mut(8).zip(hi.chunks_exact_mut(8)).zip(packed.chunks_exact(8))
			{
				let v = u64::from_le_bytes(p.try_into().unwrap_or([0; 8]));
				l.copy_from_slice(&(v & LOW).to_le_bytes());
				h.copy_from_slice(&((v >> 4) & LOW).to_le_bytes());
			}
		}
	}

	/// [`Packed::group_acc_vnni_nibbles`] over the group's nibbles widened by
	/// [`Packed::widen_group`] into `bytes`: the same integers, the weights loaded as
	/// `vpdpbusd` operands.
	///
	/// # Safety
	/// As [`Packed::group_acc_vnni`]; `bytes` must be group `g` widened.
	#[cfg(target_arch = "x86_64")]
	#[allow(unsafe_code)]
	#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
	unsafe fn group_acc_vnni_widened(&self, widened: &Widened, x: &QuantX) -> [i128; LANES] {
		// SAFETY: as above; `group_acc_of` passes `PACKED_BLOCK` bytes of `bytes` per block.
		let (scales, back) = (Scales::Made(&widened.scales), widened.back);
		self.group_acc_of(
			&widened.bytes,
			PACKED_BLOCK,
			scales,
			back,
			x,
			|w, xh, xl, s, s_lo| unsafe { block_sums_vnni(w, xh, xl, s, s_lo) },
		)
	}

	/// Group `g`'s outputs for every vector of a batch into `out` (`[vector][row]`), with
	/// its nibbles widened once into `widened`: [`Packed::matmul`]'s work for one group, all
	/// of it compiled for AVX-512 (the block sums and the outputs inlined).
	///
	/// # Safety
	/// As [`Packed::group_acc_vnni`].
	#[cfg(target_arch = "x86_64")]
	#[allow(unsafe_code)]
	#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
	unsafe fn batch_group_vnni(
		&self,
		g: usize,
		widened: &mut Widened,
		xs: &[QuantX],
		residuals: Option<&[Vec<i32>]>,
		out: &mut [i32],
	) {
		self.widen_group(g, widened);
		let rows = (g * LANES..self.rows.min((g + 1) * LANES)).len();
		for ((j, x), out) in xs.iter().enumerate().zip(out.chunks_exact_mut(rows)) {
			let res = Self::group_residual(g, residuals.map(|v| v[j].as_slice()));
			if x.levels == ActLevels::L16383 {
				use std::arch::x86_64::*;
				let real = &widened.real;
				// SAFETY: the caller's CPU features; `(2 pair + 2) * 64 <= 512` bytes from a
				// block's start; `real` has one entry of 32 `f64` per block.
				let fast = unsafe {
					group_out_f64_avx512(
						self,
						(&widened.bytes, PACKED_BLOCK),
						x,
						|b| {
							let at = real.get(b).unwrap_or(&[0.0; 2 * LANES]).as_ptr();
							[0, 8, 16, 24].map(|i| _mm512_loadu_pd(at.add(i)))
						},
						&res,
						|_| (),
						|block, pair| byte_pair(block, pair),
					)
				};
				if let Some(done) = fast {
					out.copy_from_slice(&done[..rows]);
					continue;
				}
			}
			// SAFETY: the caller's; `widened` is group `g` widened.
			let acc = unsafe { self.group_acc_vnni_widened(widened, x) };
			let done = Self::finish_lanes(&acc, &res, x.levels);
			out.copy_from_slice(&done[..rows]);
		}
	}

	/// [`Packed::group_acc`] with the AVX2 block sums of nibbles inlined.
	///
	/// # Safety
	/// The CPU must have AVX2.
	#[cfg(target_arch = "x86_64")]
	#[allow(unsafe_code)]
	#[target_feature(enable = "avx2")]
	unsafe fn group_acc_avx2_nibbles(&self, g: usize, x: &QuantX) -> [i128; LANES] {
		// SAFETY: as above, for `block_sums_avx2_nibbles`.
		self.group_acc_with(g, x, 0, |w, xh, xl, s, s_lo| unsafe {
			block_sums_avx2_nibbles(w, xh, xl, s, s_lo)
		})
	}

	/// [`Packed::group_acc`] with the AVX2 block sums of bytes inlined (they are `sum qx q`
	/// of the signed weights `q = u - 128`, so they fall short of `S'` by `128 A`).
	///
	/// # Safety
	/// The CPU must have AVX2.
	#[cfg(target_arch = "x86_64")]
	#[allow(unsafe_code)]
	#[target_feature(enable = "avx2")]
	unsafe fn group_acc_avx2(&self, g: usize, x: &QuantX) -> [i128; LANES] {
		// SAFETY: as above, for `block_sums_avx2`.
		self.group_acc_with(g, x, 128, |w, xh, xl, s, s_lo| unsafe {
			block_sums_avx2(w, xh, xl, s, s_lo)
		})
	}

	/// The accumulators of group `g` with `sums` computing each block's 16 sums
	/// `sum_j xh_j u_(lane, j)` of the stored (unsigned) integers.
	///
	/// `sums(w, xh, xl, s, s_lo)` gives `sum_j xh_j u_j` per lane in `s`, and with `Some(xl)`
	/// (15-bit activations) the same of the low bytes in `s_lo`, from one pass over the
	/// block's weights (a kernel may give them short of that by `offset` times the sum of
	/// its activation bytes: then `offset A` is added back). Per row and block,
	/// `S' = 128 s + s_lo` (8-bit: `s`) is `sum_j qx_j u_j = S + o A` (see [`Packed`] for the
	/// row's `o`), so the rule's `S = S' - o A`, and `t = (dm S << ds) + (mm A << ms)` is the
	/// rule's `d_b S_b + m_b A_b` (`|t| < 2^60`); `t * amax` (up to `2^91`) is
	/// accumulated exactly as three 20-bit limbs of `t` times `amax <= 2^31` (each product
	/// `< 2^52`, a `u32 x u32` multiply: the top limb is offset by `2^20` and the offset taken
	/// off at the fold), in `i64` lanes that take 4,095 blocks before they are folded into the
	/// `i128` sum, so the loop vectorizes.
	#[inline(always)]
	fn group_acc_with(
		&self,
		g: usize,
		x: &QuantX,
		offset: i32,
		sums: impl BlockSums,
	) -> [i128; LANES] {
		let (w, scales) = (self.group_weights(g), Scales::Stored(self.group_scales(g)));
		let back = self.group_offsets(g).map(|o| offset - o);
		self.group_acc_of(w, self.wbytes(), scales, back, x, sums)
	}

	/// Of block `b` of a group per lane: the scales as mantissas and shifts.
	#[inline(always)]
	fn stored_scales(scales: GroupScales, b: usize) -> StoredScales {
		let lanes = |v: &[u16]| -> ([i32; LANES], [u32; LANES]) {
			let bits: &[u16; LANES] = v
				.get(b * LANES..(b + 1) * LANES)
				.and_then(|b| b.try_into().ok())
				.unwrap_or(&[0; LANES]);
			let mut parts = ([0; LANES], [0; LANES]);
			for (l, &h) in bits.iter().enumerate() {
				(parts.0[l], parts.1[l]) = fp16_parts(h);
			}
			parts
		};
		let (dm, ds) = lanes(scales.d);
		let (mm, ms) = scales.m.map_or(([0; LANES], [0; LANES]), lanes);
		StoredScales { dm, ds, mm, ms }
	}

	/// Of block `b` of a group per lane: `d` and `m`.
	#[inline(always)]
	fn block_scales(scales: GroupScales, b: usize) -> BlockScales {
		let sc = Self::stored_scales(scales, b);
		BlockScales {
			d: core::array::from_fn(|l| i64::from(sc.dm[l]) << sc.ds[l]),
			m: core::array::from_fn(|l| i64::from(sc.mm[l]) << sc.ms[l]),
		}
	}

	/// [`Packed::group_acc_with`] with group `g`'s weights `w` given (`per_block` bytes per
	/// block): the stored ones, or, for a batch, the nibbles widened to bytes once.
	#[inline(always)]
	fn group_acc_of(
		&self,
		w: &[u8],
		per_block: usize,
		scales: Scales,
		back: [i32; LANES],
		x: &QuantX,
		sums: impl BlockSums,
	) -> [i128; LANES] {
		match (x.levels, self.narrow) {
			(ActLevels::L127, _) => {
				self.group_acc_mode::<false, false>(w, per_block, scales, back, x, &sums)
			},
			(ActLevels::L16383, true) => {
				self.group_acc_mode::<true, false>(w, per_block, scales, back, x, &sums)
			},
			(ActLevels::L16383, false) => {
				self.group_acc_mode::<true, true>(w, per_block, scales, back, x, &sums)
			},
		}
	}

	/// [`Packed::group_acc_with`] for one kind of activations: `TWO` for 15-bit ones (two
	/// byte vectors, `S' = 128 s + s_lo`, `|S'| < 2^27`), `WIDE` when the scales do not keep
	/// `|t|` below `2^60` (then `t * amax` is accumulated in `i128` directly).
	#[inline(always)]
	fn group_acc_mode<const TWO: bool, const WIDE: bool>(
		&self,
		w_group: &[u8],
		per_block: usize,
		scales: Scales,
		back: [i32; LANES],
		x: &QuantX,
		sums: &impl BlockSums,
	) -> [i128; LANES] {
		const MASK: i64 = (1 << 20) - 1;
		const FOLD: usize = 4095;
		let mut acc = [0i128; LANES];
		let mut s = [0i32; LANES];
		let mut s_lo = [0i32; LANES];
		for first in (0..self.blocks).step_by(FOLD) {
			// Limbs of up to 4,095 blocks' products at a time, then folded into `acc`; the sum
			// of `amax` over them: `l2` takes `(t >> 40) + 2^20` (unsigned, below 2^21) times
			// `amax`, and `2^20` times this sum comes off at the fold.
			let (mut l0, mut l1, mut l2) = ([0i64; LANES], [0i64; LANES], [0i64; LANES]);
			let mut amax_sum: i64 = 0;
			for b in first..self.blocks.min(first + FOLD) {
				let w = &w_group[b * per_block..(b + 1) * per_block];
				let block = b * BLOCK_LEN..(b + 1) * BLOCK_LEN;
				let xl = if TWO { Some(&x.xl[block.clone()]) } else { None };
				sums(w, &x.xh[block], xl, &mut s, &mut s_lo);
				let (amax, asum) = (x.amax[b], x.asum[b]);
				// The rule's `S = S' - o A` per lane (`S' = sum qx u`, 15-bit: `128 s + s_lo`,
				// `|S'| < 2^27`), with what the kernel left out (`offset A`) added back: `back` is
				// `offset - o` (`|back A| < 2^26`, `|S| < 2^26`).
				let sb: [i32; LANES] = core::array::from_fn(|lane| {
					let back = back[lane] * asum as i32;
					if TWO {
						128 * s[lane] + s_lo[lane] + back
					} else {
						s[lane] + back
					}
				});
				if WIDE {
					// The rule's |t| < 2^67, times amax <= 2^31.
					let sc = match scales {
						Scales::Made(made) => *made.get(b).unwrap_or(&BlockScales::ZERO),
						Scales::Stored(scales) => Self::block_scales(scales, b),
					};
					for lane in 0..LANES {
						let t = i128::from(sc.d[lane]) * i128::from(sb[lane])
							+ i128::from(sc.m[lane]) * i128::from(asum);
						acc[lane] += t * i128::from(amax);
					}
					continue;
				}
				// Each limb times `amax` as `u32 x u32 -> u64` (one 32-bit vector multiply per lane):
				// the two low limbs are in `0..2^20`, the top one plus `2^20` in `0..2^21`, `amax`
				// in `0..=2^31`. `l2` wraps modulo `2^64` until the fold takes the offset off; the
				// true `l2` is below `4095 * 2^51` in magnitude, so the result is exact.
				let a = amax as u32 as u64;
				amax_sum += amax;
				#[inline(always)]
				fn limbs(
					(l0, l1, l2): (&mut [i64; LANES], &mut [i64; LANES], &mut [i64; LANES]),
					a: u64,
					t_of: impl Fn(usize) -> i64,
				) {
					for lane in 0..LANES {
						let t = t_of(lane);
						l0[lane] += ((t & MASK) as u32 as u64 * a) as i64;
						l1[lane] += (((t >> 20) & MASK) as u32 as u64 * a) as i64;
						let top = ((t >> 40) + (1 << 20)) as u32 as u64;
						l2[lane] = l2[lane].wrapping_add((top * a) as i64);
					}
				}
				// The rule's t: 8-bit: |d| < 2^40, |S| < 2^19, |m| < 2^40, |A| < 2^12; 15-bit
				// (`narrow`): |d| < 2^33, |S| < 2^26, |m| < 2^40, |A| < 2^19; so |t| < 2^60.
				let l = (&mut l0, &mut l1, &mut l2);
				match scales {
					// Made for a batch: `d` and `m` whole (a 64-bit multiply: AVX-512's).
					Scales::Made(made) => {
						let sc = made.get(b).unwrap_or(&BlockScales::ZERO);
						limbs(l, a, |i| sc.d[i] * i64::from(sb[i]) + sc.m[i] * asum);
					},
					// As stored: the 11-bit mantissas times 32-bit values, then the shifts (a
					// 32-bit multiply, which AVX2 has too).
					Scales::Stored(scales) => {
						let sc = Self::stored_scales(scales, b);
						limbs(l, a, |i| {
							((i64::from(sc.dm[i]) * i64::from(sb[i])) << sc.ds[i])
								+ ((i64::from(sc.mm[i]) * asum) << sc.ms[i])
						});
					},
				}
			}
			let offset = amax_sum.wrapping_shl(20);
			for lane in 0..LANES {
				acc[lane] += (i128::from(l2[lane].wrapping_sub(offset)) << 40)
					+ (i128::from(l1[lane]) << 20)
					+ i128::from(l0[lane]);
			}
		}
		acc
	}

	/// Output `r` from its exact accumulator: `sat_i32(residual + div_round(acc, qmax * 2^24))`.
	#[inline]
	fn finish(acc: i128, residual: i32, levels: ActLevels) -> i32 {
		// The divisor as a constant in each arm, so the division is a multiplication.
		let q = match (i64::try_from(acc), levels) {
			(Ok(a), ActLevels::L127) => {
				i128::from(div_round_i64(a, ActLevels::L127.divisor() as i64))
			},
			(Ok(a), ActLevels::L16383) => {
				i128::from(div_round_i64(a, ActLevels::L16383.divisor() as i64))
			},
			(Err(_), _) => div_round(acc, levels.divisor()),
		};
		sat_i32(q + i128::from(residual))
	}

	/// [`Packed::finish`] of a group's 16 accumulators and residuals, sixteen at a time when
	/// all of them fit `i64` (always in a real model: `|acc|` above `2^63` is a value beyond
	/// `2^25` before the residual): with `D = qmax 2^24`, `div_round(a, D) = sign(a)
	/// floor((|a| + D/2) / D) = sign(a) floor(n / qmax)` where `n = (|a| + qmax 2^23) >> 24`
	/// (floors nest), and `n < 2^40`, so the quotient is below `2^33` and `n / qmax` in `f64`
	/// is exact or, correctly rounded, stays in the same integer interval (its rounding
	/// error, at most `2^-20`, is less than the `1 / qmax >= 2^-14` that separates a
	/// non-integer quotient from the next integer): truncating it is the floor.
	#[inline(always)]
	fn finish_lanes(
		acc: &[i128; LANES],
		residual: &[i32; LANES],
		levels: ActLevels,
	) -> [i32; LANES] {
		if !acc.iter().fold(true, |fit, &a| fit & (i128::from(a as i64) == a)) {
			return core::array::from_fn(|l| Self::finish(acc[l], residual[l], levels));
		}
		let qmax = levels.qmax() as u64;
		core::array::from_fn(|l| {
			let a = acc[l] as i64;
			let n = (a.unsigned_abs() + (qmax << 23)) >> 24;
			// SAFETY: `n / qmax` is finite and below `2^40`, within `i64`.
			#[allow(unsafe_code)]
			let k = unsafe { (n as f64 / qmax as f64).to_int_unchecked::<i64>() };
			let v = if a < 0 { -k } else { k } + i64::from(residual[l]);
			v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
		})
	}

	/// [`Packed::finish_lanes`] compiled for AVX-512 (a vector division and conversions).
	///
	/// # Safety
	/// The CPU must have AVX-512F/DQ/VL.
	#[cfg(target_arch = "x86_64")]
	#[allow(unsafe_code)]
	#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
	unsafe fn finish_lanes_avx512(
		acc: &[i128; LANES],
		residual: &[i32; LANES],
		levels: ActLevels,
	) -> [i32; LANES] {
		Self::finish_lanes(acc, residual, levels)
	}

	/// A group's outputs (`rows` of them: fewer in a last, padded group) into `out`.
	#[inline]
	fn finish_group(
		out: &mut [i32],
		acc: &[i128; LANES],
		residual: &[i32; LANES],
		levels: ActLevels,
		kernel: Kernel,
	) {
		#[cfg(target_arch = "x86_64")]
		if kernel == Kernel::Vnni {
			// SAFETY: `Kernel::Vnni` comes from `Kernel::available`, which found AVX-512F, DQ
			// and VL (and more).
			#[allow(unsafe_code)]
			let done = unsafe { Self::finish_lanes_avx512(acc, residual, levels) };
			for (o, v) in out.iter_mut().zip(done) {
				*o = v;
			}
			return;
		}
		// Without AVX-512 (no vector conversions between `u64` and `f64`): one at a time.
		for (lane, o) in out.iter_mut().enumerate() {
			*o = Self::finish(acc[lane], residual[lane], levels);
		}
	}

	/// Group `g`'s residuals (zeros past the last row or without a residual).
	#[inline]
	fn group_residual(g: usize, residual: Option<&[i32]>) -> [i32; LANES] {
		core::array::from_fn(|l| residual.and_then(|v| v.get(g * LANES + l).copied()).unwrap_or(0))
	}

	/// `W x` in Q16 with an optional residual, exactly
	/// `verity_primitives::lm::quant::matmul_rows` over the packed rows: output `r` is
	/// `sat_i32(residual[r] + div_round(acc_r, 127 * 2^24))`. `x.len()` must be `k` and the
	/// residual (if any) `rows` long (else `None`). Row groups are spread over the current
	/// rayon pool when there are many.
	pub fn matvec(&self, x: &QuantX, residual: Option<&[i32]>, kernel: Kernel) -> Option<Vec<i32>> {
		if x.len() != self.k || residual.is_some_and(|r| r.len() != self.rows) {
			return None;
		}
		let kernel = kernel.available();
		let mut out = vec![0i32; self.rows];
		let work = |(g, out): (usize, &mut [i32])| {
			let res = Self::group_residual(g, residual);
			#[cfg(target_arch = "x86_64")]
			if kernel == Kernel::Vnni && x.levels == ActLevels::L16383 {
				// SAFETY: `Kernel::Vnni` comes from `Kernel::available`, which found the CPU
				// features; `x` has `k` elements.
				#[allow(unsafe_code)]
				if let Some(done) = unsafe { self.group_out_vnni(g, x, &res) } {
					out.copy_from_slice(&done[..out.len()]);
					return;
				}
			}
			let acc = self.group_acc(g, x, kernel);
			Self::finish_group(out, &acc, &res, x.levels, kernel);
		};
		if self.rows * self.k >= 1 << 16 {
			out.par_chunks_mut(LANES).enumerate().for_each(work);
		} else {
			out.chunks_mut(LANES).enumerate().for_each(work);
		}
		Some(out)
	}

	/// [`Packed::matvec`] of several vectors at once (`W X`): each row group is read once for
	/// all of them, so a batch of prompt positions costs one pass over the matrix. The same
	/// integers as one `matvec` per vector.
	pub fn matmul(
		&self,
		xs: &[QuantX],
		residuals: Option<&[Vec<i32>]>,
		kernel: Kernel,
	) -> Option<Vec<Vec<i32>>> {
		let bad_residual =
			|r: &[Vec<i32>]| r.len() != xs.len() || r.iter().any(|v| v.len() != self.rows);
		if xs.iter().any(|x| x.len() != self.k) || residuals.is_some_and(bad_residual) {
			return None;
		}
		if let [x] = xs {
			return Some(vec![self.matvec(x, residuals.map(|r| r[0].as_slice()), kernel)?]);
		}
		let kernel = kernel.available();
		let groups = self.rows.div_ceil(LANES);
		// VNNI and 4-bit weights: each row group's nibbles widened and scales made once for
		// the whole batch.
		#[cfg(target_arch = "x86_64")]
		if kernel == Kernel::Vnni && self.nibbles {
			// Per row group, its rows' outputs for every vector in turn (`[vector][row]`).
			let per_group: Vec<Vec<i32>> = (0..groups)
				.into_par_iter()
				.map_init(Widened::default, |widened, g| {
					let rows = (g * LANES..self.rows.min((g + 1) * LANES)).len();
					let mut out = vec![0i32; xs.len() * rows];
					// SAFETY: `Kernel::Vnni` comes from `Kernel::available`, which found the
					// CPU features.
					#[allow(unsafe_code)]
					unsafe {
						self.batch_group_vnni(g, widened, xs, residuals, &mut out)
					};
					out
				})
				.collect();
			let mut outs = vec![vec![0i32; self.rows]; xs.len()];
			for (g, out) in per_group.iter().enumerate() {
				let rows = g * LANES..self.rows.min((g + 1) * LANES);
				for (o, part) in outs.iter_mut().zip(out.chunks_exact(rows.len())) {
					o[rows.clone()].copy_from_slice(part);
				}
			}
			return Some(outs);
		}
		// Other kernels: each vector's sums, then the outputs one at a time.
		let accs: Vec<Vec<[i128; LANES]>> = (0..groups)
			.into_par_iter()
			.map(|g| xs.iter().map(|x| self.group_acc(g, x, kernel)).collect())
			.collect();
		let mut outs = vec![vec![0i32; self.rows]; xs.len()];
		for (g, per_x) in accs.iter().enumerate() {
			for (j, acc) in per_x.iter().enumerate() {
				for (lane, &a) in acc.iter().enumerate().take(self.rows - g * LANES) {
					let r = g * LANES + lane;
					let res = residuals.map_or(0, |v| v[j][r]);
					outs[j][r] = Self::finish(a, res, xs[j].levels);
				}
			}
		}
		Some(outs)
	}
}

/// A block-sums function of one activation vector made into one of two (the second, the low
/// bytes of 15-bit activations, optional) by calling it twice.
#[inline(always)]
fn pair_of(sums: impl Fn(&[u8], &[u8], &mut [i32; LANES])) -> impl BlockSums {
	move |w, xh, xl, s, s_lo| {
		sums(w, xh, s);
		if let Some(xl) = xl {
			sums(w, xl, s_lo);
		}
	}
}

/// The 16 sums `sum_j xh_j u_(lane, j)` of one packed block of bytes (plain Rust; `xh` signed,
/// the weights unsigned).
#[inline(always)]
fn block_sums_portable(w: &[u8], xh: &[u8], s: &mut [i32; LANES]) {
	*s = [0; LANES];
	for sub in 0..SUBS {
		let x = &xh[sub * 4..sub * 4 + 4];
		let w = &w[sub * LANES * 4..(sub + 1) * LANES * 4];
		for (lane, sl) in s.iter_mut().enumerate() {
			for (j, &xj) in x.iter().enumerate() {
				*sl += i32::from(xj as i8) * i32::from(w[lane * 4 + j]);
			}
		}
	}
}

/// [`block_sums_portable`] of a block of nibbles (see [`Packed`] for their places).
#[inline(always)]
fn block_sums_portable_nibbles(w: &[u8], xh: &[u8], s: &mut [i32; LANES]) {
	*s = [0; LANES];
	for sub in 0..SUBS {
		let x = &xh[sub * 4..sub * 4 + 4];
		let pair = &w[(sub / 2) * 64..(sub / 2 + 1) * 64];
		for (lane, sl) in s.iter_mut().enumerate() {
			for (j, &xj) in x.iter().enumerate() {
				let byte = pair[lane * 4 + j];
				let u = if sub % 2 == 0 { byte & 15 } else { byte >> 4 };
				*sl += i32::from(xj as i8) * i32::from(u);
			}
		}
	}
}

/// [`block_sums_portable`] with `vpdpbusd`: lane `r` of the accumulator gains
/// `sum_(j<4) w[sub][r][j] * xh[4 sub + j]` per sub-block, the weights as its unsigned
/// operand and the activation bytes as its signed one (no saturation: the sums stay below
/// `32 * 255 * 128 < 2^20`); with `xl`, the same of `xl` into `s_lo` from the same loaded
/// weights.
///
/// # Safety
/// The CPU must have AVX-512F, AVX-512BW and AVX-512 VNNI; `w` must hold `16 * 32` bytes, `xh`
/// and `xl` 32.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn block_sums_vnni(
	w: &[u8],
	xh: &[u8],
	xl: Option<&[u8]>,
	s: &mut [i32; LANES],
	s_lo: &mut [i32; LANES],
) {
	debug_assert!(w.len() >= PACKED_BLOCK && xh.len() >= BLOCK_LEN);
	debug_assert!(xl.is_none_or(|xl| xl.len() >= BLOCK_LEN));
	// SAFETY: `(2 pair + 2) * 64 <= 512` bytes of `w`.
	let weights = |pair: usize| unsafe { byte_pair(w.as_ptr(), pair) };
	// SAFETY: as the caller's, for `block_sums_with`.
	unsafe { block_sums_with(weights, xh, xl, s, s_lo) }
}

/// [`block_sums_portable_nibbles`] with AVX2: a pair of sub-blocks' 64 bytes are two vectors,
/// lanes 0..8 and lanes 8..16, whose low nibbles are the first sub-block's weights and high
/// nibbles the second's; `vpmaddubsw` multiplies them (`0..=15`, unsigned) with the broadcast
/// activation bytes (`-127..=127`) and adds pairs (at most `2 * 15 * 127 < 2^15`: no
/// saturation), `vpmaddwd` with ones adds the pairs of pairs into each lane's `i32`.
///
/// # Safety
/// The CPU must have AVX2; `w` must hold `16 * 16` bytes and `xh` 32.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block_sums_avx2_nibbles(
	w: &[u8],
	xh: &[u8],
	xl: Option<&[u8]>,
	s: &mut [i32; LANES],
	s_lo: &mut [i32; LANES],
) {
	use std::arch::x86_64::*;
	debug_assert!(w.len() >= PACKED_BLOCK / 2 && xh.len() >= BLOCK_LEN);
	debug_assert!(xl.is_none_or(|xl| xl.len() >= BLOCK_LEN));
	let low = _mm256_set1_epi8(15);
	let ones = _mm256_set1_epi16(1);
	let weights = |pair: usize| {
		// SAFETY: `(pair + 1) * 64 <= 256` bytes of `w`.
		let (a, b) = unsafe {
			(
				_mm256_loadu_si256(w.as_ptr().add(pair * 64).cast()),
				_mm256_loadu_si256(w.as_ptr().add(pair * 64 + 32).cast()),
			)
		};
		let high = |v: __m256i| _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
		((_mm256_and_si256(a, low), _mm256_and_si256(b, low)), (high(a), high(b)))
	};
	let sums = |xv: __m256i, (lo, hi): (__m256i, __m256i)| {
		(
			_mm256_madd_epi16(_mm256_maddubs_epi16(lo, xv), ones),
			_mm256_madd_epi16(_mm256_maddubs_epi16(hi, xv), ones),
		)
	};
	// SAFETY: as the caller's, for `block_sums_avx2_with`.
	unsafe { block_sums_avx2_with(weights, sums, xh, xl, s, s_lo) }
}

/// The AVX2 block sums of one block: `weights(pair)` gives what sub-blocks `2 pair` and
/// `2 pair + 1` multiply (made once for both activation vectors), `sums(x, weights)` the pair
/// sums of lanes 0..8 and 8..16 for the four activation bytes `x` broadcast; `s` from `xh`,
/// `s_lo` from `xl` if given.
///
/// # Safety
/// The CPU must have AVX2; `xh` and `xl` must hold 32 bytes.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block_sums_avx2_with<W: Copy>(
	weights: impl Fn(usize) -> (W, W),
	sums: impl Fn(
		std::arch::x86_64::__m256i,
		W,
	) -> (std::arch::x86_64::__m256i, std::arch::x86_64::__m256i),
	xh: &[u8],
	xl: Option<&[u8]>,
	s: &mut [i32; LANES],
	s_lo: &mut [i32; LANES],
) {
	use std::arch::x86_64::*;
	// SAFETY: `sub * 4 + 4 <= 32` bytes of `x`.
	let x4 = |x: &[u8], sub: usize| unsafe {
		_mm256_set1_epi32(core::ptr::read_unaligned(x.as_ptr().add(sub * 4).cast::<i32>()))
	};
	let add = |(a, b): (__m256i, __m256i), (c, d): (__m256i, __m256i)| {
		(_mm256_add_epi32(a, c), _mm256_add_epi32(b, d))
	};
	// SAFETY (both): `out` is 16 `i32`: lanes 0..8, then 8..16.
	let store = |out: &mut [i32; LANES], (lo, hi): (__m256i, __m256i)| unsafe {
		_mm256_storeu_si256(out.as_mut_ptr().cast(), lo);
		_mm256_storeu_si256(out.as_mut_ptr().add(8).cast(), hi);
	};
	let zero = (_mm256_setzero_si256(), _mm256_setzero_si256());
	let mut acc = zero;
	if let Some(xl) = xl {
		let mut acc_lo = zero;
		for pair in 0..SUBS / 2 {
			let (w0, w1) = weights(pair);
			acc = add(acc, sums(x4(xh, 2 * pair), w0));
			acc_lo = add(acc_lo, sums(x4(xl, 2 * pair), w0));
			acc = add(acc, sums(x4(xh, 2 * pair + 1), w1));
			acc_lo = add(acc_lo, sums(x4(xl, 2 * pair + 1), w1));
		}
		store(s_lo, acc_lo);
	} else {
		for pair in 0..SUBS / 2 {
			let (w0, w1) = weights(pair);
			acc = add(acc, sums(x4(xh, 2 * pair), w0));
			acc = add(acc, sums(x4(xh, 2 * pair + 1), w1));
		}
	}
	store(s, acc);
}

/// `sum_j qx_j q_(lane, j)` of one packed block of bytes with AVX2, of the signed weights
/// `q = u - 128` (so `128 A` short of [`block_sums_portable`]'s sums: the caller's offset is
/// 128). Per sub-block, the 64 weight bytes are two vectors (lanes 0..8, lanes 8..16, four
/// bytes each); `vpmaddubsw` multiplies their magnitudes `|q| <= 128` (`vpabsb`, unsigned)
/// with the broadcast `qx` (`-127..=127`) given each weight's sign (`vpsignb`; zero where `q`
/// is zero) and adds pairs: at most `2 * 128 * 127 < 2^15`, so nothing saturates (`u` itself,
/// up to 255, would); `vpmaddwd` with ones adds the pairs of pairs into each lane's `i32`.
///
/// # Safety
/// The CPU must have AVX2; `w` must hold `16 * 32` bytes and `xh` 32, each `xh` byte an `i8`
/// in `-127..=127` (as [`QuantX::new`] makes them).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block_sums_avx2(
	w: &[u8],
	xh: &[u8],
	xl: Option<&[u8]>,
	s: &mut [i32; LANES],
	s_lo: &mut [i32; LANES],
) {
	use std::arch::x86_64::*;
	debug_assert!(w.len() >= PACKED_BLOCK && xh.len() >= BLOCK_LEN);
	debug_assert!(xl.is_none_or(|xl| xl.len() >= BLOCK_LEN));
	let flip = _mm256_set1_epi8(i8::MIN);
	let ones = _mm256_set1_epi16(1);
	// The signed weights of lanes 0..8 and 8..16 of sub-block `sub`, with their magnitudes.
	let one = |sub: usize| {
		// SAFETY: `(sub + 1) * 64 <= 512` bytes of `w`.
		let (w_lo, w_hi) = unsafe {
			(
				_mm256_loadu_si256(w.as_ptr().add(sub * LANES * 4).cast()),
				_mm256_loadu_si256(w.as_ptr().add(sub * LANES * 4 + 32).cast()),
			)
		};
		let (w_lo, w_hi) = (_mm256_xor_si256(w_lo, flip), _mm256_xor_si256(w_hi, flip));
		(w_lo, _mm256_abs_epi8(w_lo), w_hi, _mm256_abs_epi8(w_hi))
	};
	let weights = |pair: usize| (one(2 * pair), one(2 * pair + 1));
	let sums = |qx: __m256i, (w_lo, a_lo, w_hi, a_hi): (__m256i, __m256i, __m256i, __m256i)| {
		let lo = _mm256_maddubs_epi16(a_lo, _mm256_sign_epi8(qx, w_lo));
		let hi = _mm256_maddubs_epi16(a_hi, _mm256_sign_epi8(qx, w_hi));
		(_mm256_madd_epi16(lo, ones), _mm256_madd_epi16(hi, ones))
	};
	// SAFETY: as the caller's, for `block_sums_avx2_with`.
	unsafe { block_sums_avx2_with(weights, sums, xh, xl, s, s_lo) }
}

/// [`block_sums_vnni`] of a block of nibbles: each pair of sub-blocks is one 64-byte load,
/// its low nibbles the first sub-block's 64 weights and its high nibbles the second's.
///
/// # Safety
/// As [`block_sums_vnni`], with `w` holding `16 * 16` bytes.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn block_sums_vnni_nibbles(
	w: &[u8],
	xh: &[u8],
	xl: Option<&[u8]>,
	s: &mut [i32; LANES],
	s_lo: &mut [i32; LANES],
) {
	debug_assert!(w.len() >= PACKED_BLOCK / 2 && xh.len() >= BLOCK_LEN);
	debug_assert!(xl.is_none_or(|xl| xl.len() >= BLOCK_LEN));
	// SAFETY: `(pair + 1) * 64 <= 256` bytes of `w`.
	let weights = |pair: usize| unsafe { nibble_pair(w.as_ptr(), pair) };
	// SAFETY: as the caller's, for `block_sums_with`.
	unsafe { block_sums_with(weights, xh, xl, s, s_lo) }
}

/// The VNNI block sums of one block whose sub-blocks `2 pair` and `2 pair + 1` have the 64
/// weights (lane `r`'s four at bytes `4 r ..`) `weights(pair)`: `s` from `xh`, and `s_lo`
/// from `xl` if given, each weight vector made once for both.
///
/// # Safety
/// The CPU must have AVX-512F, AVX-512BW and AVX-512 VNNI; `xh` and `xl` must hold 32 bytes.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn block_sums_with(
	weights: impl Fn(usize) -> (std::arch::x86_64::__m512i, std::arch::x86_64::__m512i),
	xh: &[u8],
	xl: Option<&[u8]>,
	s: &mut [i32; LANES],
	s_lo: &mut [i32; LANES],
) {
	use std::arch::x86_64::*;
	// SAFETY: `sub * 4 + 4 <= 32` bytes of `x`.
	let x4 = |x: &[u8], sub: usize| unsafe {
		_mm512_set1_epi32(core::ptr::read_unaligned(x.as_ptr().add(sub * 4).cast::<i32>()))
	};
	let mut acc = _mm512_setzero_si512();
	if let Some(xl) = xl {
		// Two accumulators per vector (even and odd sub-blocks): chains of four dependent
		// `vpdpbusd` instead of eight.
		let mut acc_lo = _mm512_setzero_si512();
		let (mut acc1, mut acc_lo1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
		for pair in 0..SUBS / 2 {
			let (w0, w1) = weights(pair);
			acc = _mm512_dpbusd_epi32(acc, w0, x4(xh, 2 * pair));
			acc_lo = _mm512_dpbusd_epi32(acc_lo, w0, x4(xl, 2 * pair));
			acc1 = _mm512_dpbusd_epi32(acc1, w1, x4(xh, 2 * pair + 1));
			acc_lo1 = _mm512_dpbusd_epi32(acc_lo1, w1, x4(xl, 2 * pair + 1));
		}
		acc = _mm512_add_epi32(acc, acc1);
		// SAFETY: `s_lo` is 16 `i32`.
		unsafe { _mm512_storeu_si512(s_lo.as_mut_ptr().cast(), _mm512_add_epi32(acc_lo, acc_lo1)) };
	} else {
		let mut acc1 = _mm512_setzero_si512();
		for pair in 0..SUBS / 2 {
			let (w0, w1) = weights(pair);
			acc = _mm512_dpbusd_epi32(acc, w0, x4(xh, 2 * pair));
			acc1 = _mm512_dpbusd_epi32(acc1, w1, x4(xh, 2 * pair + 1));
		}
		acc = _mm512_add_epi32(acc, acc1);
	}
	// SAFETY: `s` is 16 `i32`.
	unsafe { _mm512_storeu_si512(s.as_mut_ptr().cast(), acc) };
}

/// The weights of sub-blocks `2 pair` and `2 pair + 1` of a block of bytes at `block`.
///
/// # Safety
/// The CPU must have AVX-512F; `block` must point to `(2 pair + 2) * 64` readable bytes.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn byte_pair(
	block: *const u8,
	pair: usize,
) -> (std::arch::x86_64::__m512i, std::arch::x86_64::__m512i) {
	use std::arch::x86_64::*;
	// SAFETY: the caller's.
	unsafe {
		let at = block.add(pair * 128);
		(_mm512_loadu_si512(at.cast()), _mm512_loadu_si512(at.add(64).cast()))
	}
}

/// The weights of sub-blocks `2 pair` and `2 pair + 1` of a block of nibbles at `block`: one
/// 64-byte load, the low nibbles and the high ones.
///
/// # Safety
/// The CPU must have AVX-512F/BW; `block` must point to `(pair + 1) * 64` readable bytes.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn nibble_pair(
	block: *const u8,
	pair: usize,
) -> (std::arch::x86_64::__m512i, std::arch::x86_64::__m512i) {
	use std::arch::x86_64::*;
	let low = _mm512_set1_epi8(15);
	// SAFETY: the caller's.
	let v = unsafe { _mm512_loadu_si512(block.add(pair * 64).cast()) };
	(_mm512_and_si512(v, low), _mm512_and_si512(_mm512_srli_epi16(v, 4), low))
}

/// `S' = 128 s + s_lo` of block `b` in sixteen lanes: the sums of the block's weights
/// (`weights(block, pair)`, as [`block_sums_with`]) times the 15-bit activations' high and low
/// bytes `xh`, `xl` (`|S'| < 2^27`).
///
/// # Safety
/// The CPU must have AVX-512F/BW and AVX-512 VNNI; `xh` and `xl` must hold block `b`'s 32
/// bytes; `weights(block, pair)` must read only the weights of the block at `block`.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn block_sums_two(
	block: *const u8,
	(xh, xl): (&[u8], &[u8]),
	b: usize,
	weights: &impl Fn(*const u8, usize) -> (std::arch::x86_64::__m512i, std::arch::x86_64::__m512i),
) -> std::arch::x86_64::__m512i {
	use std::arch::x86_64::*;
	// SAFETY: `4 sub + 4 <= 32` bytes of block `b`'s activations, within `xh`/`xl`.
	let x4 = |x: &[u8], sub: usize| unsafe {
		_mm512_set1_epi32(core::ptr::read_unaligned(
			x.as_ptr().add(b * BLOCK_LEN + sub * 4).cast::<i32>(),
		))
	};
	let z = _mm512_setzero_si512();
	// Two accumulators per byte vector (even and odd sub-blocks): shorter dependency chains.
	let (mut s0, mut s1, mut t0, mut t1) = (z, z, z, z);
	for pair in 0..SUBS / 2 {
		let (w0, w1) = weights(block, pair);
		s0 = _mm512_dpbusd_epi32(s0, w0, x4(xh, 2 * pair));
		t0 = _mm512_dpbusd_epi32(t0, w0, x4(xl, 2 * pair));
		s1 = _mm512_dpbusd_epi32(s1, w1, x4(xh, 2 * pair + 1));
		t1 = _mm512_dpbusd_epi32(t1, w1, x4(xl, 2 * pair + 1));
	}
	_mm512_add_epi32(_mm512_slli_epi32::<7>(_mm512_add_epi32(s0, s1)), _mm512_add_epi32(t0, t1))
}

/// [`Packed::group_acc_mode`] for 15-bit activations on the limb path (`narrow`) with the
/// stored scales, all in AVX-512 registers: the block sums of `weights(block, pair)` (as
/// [`block_sums_with`]), `S = 128 s + s_lo - o A` in sixteen `i32` lanes, the fp16 scales
/// decoded into mantissas and shifts (as [`fp16_parts`]), `t = (dm S << ds) + (mm A << ms)`
/// for the even and the odd lanes (`vpmuldq` takes each 64-bit lane's low 32 bits, so the odd
/// lanes are shifted down first; `vpsllvq`), and the three limbs of `t` times `amax`
/// (`vpmuludq`) added to six vectors of eight `i64` lanes, folded into the `i128` sums every
/// 4,095 blocks. The same integers as the generic loop, which the tests compare.
///
/// # Safety
/// The CPU must have AVX-512F/BW/DQ/VL and AVX-512 VNNI; `x` must have 15-bit levels and
/// `p.k` elements; `weights(block, pair)` must read only the weights of the block at `block`.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
unsafe fn group_acc_two_avx512(
	p: &Packed,
	g: usize,
	x: &QuantX,
	weights: impl Fn(*const u8, usize) -> (std::arch::x86_64::__m512i, std::arch::x86_64::__m512i),
) -> [i128; LANES] {
	use std::arch::x86_64::*;
	const FOLD: usize = 4095;
	let z = _mm512_setzero_si512();
	let mask = _mm512_set1_epi64((1 << 20) - 1);
	let low32 = _mm512_set1_epi64(0xffff_ffff);
	let top_offset = _mm512_set1_epi64(1 << 20);
	let (w, wbytes) = (p.group_weights(g), p.wbytes());
	let scales = p.group_scales(g);
	let (d16, m16) = (scales.d, scales.m.unwrap_or_default());
	let offsets = p.group_offsets(g);
	// SAFETY: an unaligned load of 16 `i32`.
	let offsets = unsafe { _mm512_loadu_si512(offsets.as_ptr().cast()) };
	// fp16 bits (zero-extended `i32` lanes) as the signed mantissa and the shift.
	let parts = |h: __m512i| {
		let e = _mm512_and_si512(_mm512_srli_epi32::<10>(h), _mm512_set1_epi32(31));
		let f = _mm512_and_si512(h, _mm512_set1_epi32(1023));
		let normal = _mm512_test_epi32_mask(h, _mm512_set1_epi32(0x7c00));
		let mant = _mm512_mask_add_epi32(f, normal, f, _mm512_set1_epi32(1024));
		let shift = _mm512_maskz_sub_epi32(normal, e, _mm512_set1_epi32(1));
		let negative = _mm512_test_epi32_mask(h, _mm512_set1_epi32(0x8000));
		(_mm512_mask_sub_epi32(mant, negative, z, mant), shift)
	};
	let (xh, xl) = (&x.xh[..p.blocks * BLOCK_LEN], &x.xl[..p.blocks * BLOCK_LEN]);
	let (amaxs, asums) = (&x.amax[..p.blocks], &x.asum[..p.blocks]);
	let mut acc = [0i128; LANES];
	for first in (0..p.blocks).step_by(FOLD) {
		let (mut l0e, mut l1e, mut l2e, mut l0o, mut l1o, mut l2o) = (z, z, z, z, z, z);
		let mut amax_sum: i64 = 0;
		for b in first..p.blocks.min(first + FOLD) {
			let block = &w[b * wbytes..(b + 1) * wbytes];
			// SAFETY: the block's weights; `b < p.blocks`.
			let sp = unsafe { block_sums_two(block.as_ptr(), (xh, xl), b, &weights) };
			let asum = asums[b];
			// S = S' - o A (|S'| < 2^27, |o A| < 2^26, |S| < 2^26).
			let sb =
				_mm512_sub_epi32(sp, _mm512_mullo_epi32(offsets, _mm512_set1_epi32(asum as i32)));
			// The block's 16 lanes of `d` (and `m`): `bits[b 16 .. b 16 + 16]` (`b < p.blocks`).
			let scales = |bits: &[u16]| {
				let lanes = bits.get(b * LANES..(b + 1) * LANES).unwrap_or(&[0; LANES]);
				// SAFETY: an unaligned load of 16 `u16` from a slice of 16.
				parts(_mm512_cvtepu16_epi32(unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) }))
			};
			let (dm, ds) = scales(d16);
			let a = _mm512_set1_epi64(asum);
			// t of the even lanes (`dm`, `S`, `mm` in the low halves; shifts masked to them) and
			// of the odd ones (shifted down): `vpmuldq` of values that fit 32 bits (|dm|, |mm|
			// < 2^11, |S| < 2^26, |A| < 2^19), exact below 2^60 (see `group_acc_mode`).
			let mut te = _mm512_sllv_epi64(_mm512_mul_epi32(dm, sb), _mm512_and_si512(ds, low32));
			let mut to = _mm512_sllv_epi64(
				_mm512_mul_epi32(_mm512_srli_epi64::<32>(dm), _mm512_srli_epi64::<32>(sb)),
				_mm512_srli_epi64::<32>(ds),
			);
			if !m16.is_empty() {
				let (mm, ms) = scales(m16);
				te = _mm512_add_epi64(
					te,
					_mm512_sllv_epi64(_mm512_mul_epi32(mm, a), _mm512_and_si512(ms, low32)),
				);
				to = _mm512_add_epi64(
					to,
					_mm512_sllv_epi64(
						_mm512_mul_epi32(_mm512_srli_epi64::<32>(mm), a),
						_mm512_srli_epi64::<32>(ms),
					),
				);
			}
			let amax = amaxs[b];
			amax_sum += amax;
			let av = _mm512_set1_epi64(amax);
			// The limbs (as `group_acc_mode`): `vpmuludq` takes each lane's low 32 bits.
			let limbs = |t: __m512i, l0: &mut __m512i, l1: &mut __m512i, l2: &mut __m512i| {
				*l0 = _mm512_add_epi64(*l0, _mm512_mul_epu32(_mm512_and_si512(t, mask), av));
				let mid = _mm512_and_si512(_mm512_srli_epi64::<20>(t), mask);
				*l1 = _mm512_add_epi64(*l1, _mm512_mul_epu32(mid, av));
				let top = _mm512_add_epi64(_mm512_srai_epi64::<40>(t), top_offset);
				*l2 = _mm512_add_epi64(*l2, _mm512_mul_epu32(top, av));
			};
			limbs(te, &mut l0e, &mut l1e, &mut l2e);
			limbs(to, &mut l0o, &mut l1o, &mut l2o);
		}
		let offset = amax_sum.wrapping_shl(20);
		let lanes = |v: __m512i| {
			let mut out = [0i64; 8];
			// SAFETY: a store of 64 bytes into an `[i64; 8]`.
			unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), v) };
			out
		};
		// Lane `j` of the even vectors is row `2 j`, of the odd ones row `2 j + 1`.
		for (parity, (l0, l1, l2)) in [(l0e, l1e, l2e), (l0o, l1o, l2o)].into_iter().enumerate() {
			let (l0, l1, l2) = (lanes(l0), lanes(l1), lanes(l2));
			for j in 0..8 {
				acc[2 * j + parity] += (i128::from(l2[j].wrapping_sub(offset)) << 40)
					+ (i128::from(l1[j]) << 20)
					+ i128::from(l0[j]);
			}
		}
	}
	acc
}

/// A row group's outputs from 15-bit activations with the combination in `f64`, or `None` if
/// the `f64` sums cannot decide some output (then the caller computes it exactly).
///
/// Per block `b` and lane: the block sums `S' = 128 s + s_lo` of `weights(block, pair)` (as
/// [`block_sums_with`]), and `scales(b)` = `[d (lanes 0..8), d (8..16), m' (0..8), m' (8..16)]`
/// in real units (the rule's integers times `2^-24`, exact), where `m' = m - o d` so that
/// `t = d S' + m' A` is the rule's `d S + m A` (`S = S' - o A`). `d S'` is exact in `f64`
/// (11 significant bits times 27), `t` one `vfmadd` (one rounding: `t~ = t (1 + e)`,
/// `|e| <= u = 2^-53`), and `acc~ = sum t~ amax` one `vfmadd` per block (`amax`, `A`
/// exact). By the usual bound on a recursive sum, `|acc~ - acc| <= g E` with
/// `E = sum |t| amax` and `g = (n + 1) u / (1 - (n + 1) u)` for `n` blocks; `E~`, summed the
/// same way from `|t~|`, is at least `(1 - g) E`, so `err = (n + 2) 2^-52 E~` bounds the error
/// (with room for its own rounding). In output units `y = |acc~| / qmax` is off from the exact
/// `|acc| / (qmax 2^24)` by at most `delta = err / qmax + 2^-50 y` (the division's rounding).
/// The rule's `div_round` is `sign(acc) floor(|acc| / D + 1/2)`: with `z = y + 1/2` (exact
/// for `y < 2^40`), if `z`'s fraction is more than `delta` from 0 and from 1, `floor(z)` is the
/// exact `floor`, and (for a non-zero result) `acc~` has the sign of `acc`. Otherwise — an
/// exact tie, a value within `delta` of one, or `y >= 2^40` — the group is `None`. Then
/// `sat_i32(residual + q)`. The same integers as the rule; the tests compare, and
/// `float_combination_refuses_ties` makes exact ties. `ahead(b)` runs as block `b` starts
/// (decode asks there for the next row group's block; it must not change anything the
/// result depends on).
///
/// # Safety
/// The CPU must have AVX-512F/BW/DQ/VL and AVX-512 VNNI; `x` must have 15-bit levels and
/// `p.k` elements; `(w, wbytes)` a group's weights, `wbytes` per block;
/// `weights(block, pair)` must read only the weights of the block at `block`.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
unsafe fn group_out_f64_avx512(
	p: &Packed,
	(w, wbytes): (&[u8], usize),
	x: &QuantX,
	scales: impl Fn(usize) -> [std::arch::x86_64::__m512d; 4],
	residual: &[i32; LANES],
	ahead: impl Fn(usize),
	weights: impl Fn(*const u8, usize) -> (std::arch::x86_64::__m512i, std::arch::x86_64::__m512i),
) -> Option<[i32; LANES]> {
	use std::arch::x86_64::*;
	let z = _mm512_setzero_si512();
	let zero = _mm512_setzero_pd();
	let abs = _mm512_castsi512_pd(_mm512_set1_epi64(i64::MAX));
	let (xh, xl) = (&x.xh[..p.blocks * BLOCK_LEN], &x.xl[..p.blocks * BLOCK_LEN]);
	let (amaxs, asums) = (&x.amax[..p.blocks], &x.asum[..p.blocks]);
	let (mut acc0, mut acc1, mut e0, mut e1) = (zero, zero, zero, zero);
	for b in 0..p.blocks {
		ahead(b);
		let block = &w[b * wbytes..(b + 1) * wbytes];
		// SAFETY: the block's weights; `b < p.blocks`. `|S'| < 2^27`: exact in `f64`.
		let sp = unsafe { block_sums_two(block.as_ptr(), (xh, xl), b, &weights) };
		let sl = _mm512_cvtepi32_pd(_mm512_castsi512_si256(sp));
		let sh = _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64::<1>(sp));
		let [dl, dh, ml, mh] = scales(b);
		let (a, am) = (_mm512_set1_pd(asums[b] as f64), _mm512_set1_pd(amaxs[b] as f64));
		let tl = _mm512_fmadd_pd(ml, a, _mm512_mul_pd(dl, sl));
		let th = _mm512_fmadd_pd(mh, a, _mm512_mul_pd(dh, sh));
		acc0 = _mm512_fmadd_pd(tl, am, acc0);
		acc1 = _mm512_fmadd_pd(th, am, acc1);
		e0 = _mm512_fmadd_pd(_mm512_and_pd(tl, abs), am, e0);
		e1 = _mm512_fmadd_pd(_mm512_and_pd(th, abs), am, e1);
	}
	let inv = 1.0 / ActLevels::L16383.qmax() as f64;
	// err / qmax = (n + 2) 2^-52 E~ / qmax, with a little more for the roundings here.
	let bound = _mm512_set1_pd((p.blocks as f64 + 2.0) * f64::powi(2.0, -52) * inv * 1.001);
	let (half, one, big) =
		(_mm512_set1_pd(0.5), _mm512_set1_pd(1.0), _mm512_set1_pd((1u64 << 40) as f64));
	let mut out = [0i32; LANES];
	for (i, (acc, e)) in [(acc0, e0), (acc1, e1)].into_iter().enumerate() {
		let y = _mm512_mul_pd(_mm512_and_pd(acc, abs), _mm512_set1_pd(inv));
		let delta =
			_mm512_fmadd_pd(y, _mm512_set1_pd(f64::powi(2.0, -50)), _mm512_mul_pd(e, bound));
		let zz = _mm512_add_pd(y, half);
		let k = _mm512_roundscale_pd::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(zz);
		let f = _mm512_sub_pd(zz, k);
		let ok = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(f, delta)
			& _mm512_cmp_pd_mask::<_CMP_LT_OQ>(_mm512_add_pd(f, delta), one)
			& _mm512_cmp_pd_mask::<_CMP_LT_OQ>(y, big);
		if ok != 0xff {
			return None;
		}
		// |q| < 2^40: exact as i64; the sign of acc~ is acc's where q != 0.
		let q = _mm512_cvttpd_epi64(k);
		let negative = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(acc, zero);
		let q = _mm512_mask_sub_epi64(q, negative, z, q);
		// SAFETY: 8 `i32` of 16.
		let res = unsafe { _mm256_loadu_si256(residual.as_ptr().add(8 * i).cast()) };
		let v = _mm512_add_epi64(q, _mm512_cvtepi32_epi64(res));
		let v = _mm512_min_epi64(
			_mm512_max_epi64(v, _mm512_set1_epi64(i32::MIN.into())),
			_mm512_set1_epi64(i32::MAX.into()),
		);
		// SAFETY: 8 `i32` into 16.
		unsafe {
			_mm256_storeu_si256(out.as_mut_ptr().add(8 * i).cast(), _mm512_cvtepi64_epi32(v))
		};
	}
	Some(out)
}

#[cfg(test)]
mod tests {
	use super::*;
	use verity_primitives::{lm::quant::matmul_rows, testing::Rng};
	use ActLevels::{L127, L16383};

	/// Random rows. Scales from tiny to the largest fp16 (or, if `narrow`, to the largest
	/// that keeps a matrix on the limb path with 15-bit activations: `|d| < 2^33`, `|m| <
	/// 2^40`), and the odd infinity or NaN.
	fn random_rows(
		rng: &mut Rng,
		format: BlockFormat,
		rows: usize,
		k: usize,
		narrow: bool,
	) -> Vec<u8> {
		let mut out = Vec::new();
		for _ in 0..rows * k / 32 {
			let d: u16 = match rng.below(50) {
				0 if narrow => 0x5bff, // (2^11 - 1) 2^22 units of 2^-24: just below 2^33
				0 => 0x7bff,
				1 => 0x7c00,
				2 => 0x0001,
				_ => ((rng.range(1, 20) as u16) << 10) | rng.below(1024) as u16,
			} | if rng.chance(30) { 0x8000 } else { 0 };
			out.extend_from_slice(&d.to_le_bytes());
			if format == BlockFormat::Q4_1 {
				let top = if narrow { 18 } else { 31 };
				out.extend_from_slice(&(((rng.range(1, top) as u16) << 10) | 0x8000).to_le_bytes());
			}
			let n = format.block_bytes() - if format == BlockFormat::Q4_1 { 4 } else { 2 };
			out.extend(rng.bytes(n));
		}
		out
	}

	/// Sixteen outputs at a time (the `f64` quotient) are [`Packed::finish`]'s: at and one
	/// either side of every multiple of the divisor and of every rounding boundary (a half),
	/// at the ends of `i64`, beyond it (the `i128` path), with residuals that saturate.
	#[test]
	fn group_outputs_equal_one_at_a_time() {
		let mut rng = Rng::new(11);
		for levels in [L127, L16383] {
			let d = levels.divisor() as i64;
			let mut accs: Vec<i128> = Vec::new();
			for _ in 0..4000 {
				let k = match rng.below(3) {
					0 => rng.range(-40, 40),
					1 => rng.range(-(1 << 24), 1 << 24),
					_ => rng.range(-(i64::MAX / d), i64::MAX / d),
				};
				let base = k * d + if rng.below(2) == 0 { 0 } else { d / 2 };
				for delta in [-1, 0, 1] {
					accs.push(i128::from(base.saturating_add(delta)));
				}
			}
			accs.extend(
				[i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - d / 2, 0, -1, 1].map(i128::from),
			);
			let residual_of = |rng: &mut Rng| match rng.below(8) {
				0 => i32::MAX,
				1 => i32::MIN,
				_ => rng.range(-(1 << 30), 1 << 30) as i32,
			};
			let check = |acc: [i128; LANES], rng: &mut Rng| {
				let residual: [i32; LANES] = core::array::from_fn(|_| residual_of(rng));
				let want: [i32; LANES] =
					core::array::from_fn(|l| Packed::finish(acc[l], residual[l], levels));
				assert_eq!(Packed::finish_lanes(&acc, &residual, levels), want, "{levels:?}");
				for kernel in [Kernel::Portable, Kernel::Vnni, Kernel::Avx2] {
					let mut out = [0i32; LANES];
					Packed::finish_group(&mut out, &acc, &residual, levels, kernel.available());
					assert_eq!(out, want, "{levels:?} {kernel:?}");
				}
			};
			for chunk in accs.chunks_exact(LANES) {
				check(core::array::from_fn(|l| chunk[l]), &mut rng);
			}
			// One accumulator beyond `i64`: the group takes the `i128` path.
			for big in [i128::from(i64::MAX) + 1, i128::from(i64::MIN) - 1, 1 << 100, -(1 << 100)] {
				let mut acc: [i128; LANES] = core::array::from_fn(|l| accs[l]);
				acc[rng.below(LANES as u64) as usize] = big;
				check(acc, &mut rng);
			}
		}
	}

	/// Rows longer than 4,095 blocks, so the limbs are folded in the middle of a row (with the
	/// top limb's offset taken off), at extreme activations and scales. Blocks come in pairs
	/// with the same weights and opposite activations, so their products cancel in the sum
	/// (one pair straddles the fold) and the outputs stay far from saturation, where a wrong
	/// limb or fold could not hide.
	#[test]
	fn long_rows_fold_exactly() {
		let mut rng = Rng::new(8);
		let cases = [BlockFormat::Q8_0, BlockFormat::Q4_0, BlockFormat::Q4_1]
			.into_iter()
			.flat_map(|f| [(f, L127, false), (f, L16383, true), (f, L16383, false)]);
		for (format, levels, narrow) in cases {
			let (pairs, tail) = (4095, 7);
			let blocks = 2 * pairs + tail;
			let (k, rows) = (32 * blocks, 3);
			let mut bytes = random_rows(&mut rng, format, rows, k, narrow);
			let bb = format.block_bytes();
			for row in bytes.chunks_exact_mut(blocks * bb) {
				for pair in row[..2 * pairs * bb].chunks_exact_mut(2 * bb) {
					let (first, second) = pair.split_at_mut(bb);
					second.copy_from_slice(first);
				}
			}
			let mut x = Vec::with_capacity(k);
			for b in 0..pairs {
				let block: Vec<i32> = (0..32)
					.map(|_| match b % 3 {
						0 => {
							if rng.chance(50) {
								i32::MAX
							} else {
								-i32::MAX
							}
						},
						1 => rng.range(-(1 << 30), 1 << 30) as i32,
						_ => rng.range(-300, 300) as i32,
					})
					.collect();
				x.extend(block.iter().copied());
				x.extend(block.iter().map(|v| -v));
			}
			// One block of the tail at ±1 (a sum of a block's extreme weights and scales stays
			// below 2^29), so the outputs are not all zero.
			x.extend((0..32).map(|_| rng.range(-1, 1) as i32));
			x.resize(k, 0);
			let packed = Packed::new(k, &[(format, &bytes)]).unwrap();
			if levels == L16383 {
				assert_eq!(packed.narrow, narrow, "both the limb and the i128 path are tested");
			}
			let want = matmul_rows(levels, format, &bytes, rows, &x, None).unwrap();
			assert!(
				want.iter().all(|v| v.unsigned_abs() < 1 << 30),
				"{format:?} {levels:?}: outputs near saturation {want:?}"
			);
			assert!(want.iter().any(|&v| v != 0), "{format:?} {levels:?}: all outputs zero");
			for kernel in [Kernel::Portable, Kernel::Vnni, Kernel::Avx2] {
				let got = packed.matvec(&QuantX::new(&x, levels), None, kernel).unwrap();
				assert_eq!(got, want, "{format:?} {levels:?} narrow {narrow} {kernel:?}");
			}
		}
	}

	/// Both kernels give exactly `matmul_rows` on random matrices (every format, row counts
	/// that do not fill the last group) and activations up to the extremes.
	#[test]
	fn kernels_equal_the_rule() {
		let mut rng = Rng::new(7);
		for case in 0..600 {
			let format = [BlockFormat::Q8_0, BlockFormat::Q4_0, BlockFormat::Q4_1][case % 3];
			// 8-bit activations, then 15-bit ones with narrow and with any scales.
			let (levels, narrow) = [(L127, false), (L16383, true), (L16383, false)][case % 9 / 3];
			let k = 32 * rng.range(1, 6) as usize;
			let rows = rng.range(1, 40) as usize;
			let bytes = random_rows(&mut rng, format, rows, k, narrow);
			let x: Vec<i32> = (0..k)
				.map(|_| match rng.below(30) {
					0 => i32::MIN,
					1 => i32::MAX,
					2 => 0,
					_ => rng.range(-(1 << (8 + case % 20)), 1 << (8 + case % 20)) as i32,
				})
				.collect();
			let residual: Vec<i32> =
				(0..rows).map(|_| rng.range(-(1 << 30), 1 << 30) as i32).collect();
			let packed = Packed::new(k, &[(format, &bytes)]).unwrap();
			let q = QuantX::new(&x, levels);
			for res in [None, Some(residual.as_slice())] {
				let want = matmul_rows(levels, format, &bytes, rows, &x, res).unwrap();
				for kernel in [Kernel::Portable, Kernel::Vnni, Kernel::Avx2] {
					assert_eq!(
						packed.matvec(&q, res, kernel).unwrap(),
						want,
						"case {case} {kernel:?}"
					);
				}
			}
			// Several vectors at once: each column is its own matvec (the vector above, and
			// the same one scaled, negated and rotated).
			let xs: Vec<Vec<i32>> = vec![
				x.clone(),
				x.iter().map(|v| v / 3).collect(),
				x.iter().map(|v| v.saturating_neg()).collect(),
				x.iter().cycle().skip(5).take(k).copied().collect(),
			];
			let residuals: Vec<Vec<i32>> = (0..xs.len())
				.map(|j| residual.iter().map(|r| r.wrapping_add(j as i32)).collect())
				.collect();
			let qs: Vec<QuantX> = xs.iter().map(|x| QuantX::new(x, levels)).collect();
			for kernel in [Kernel::Portable, Kernel::Vnni, Kernel::Avx2] {
				let got = packed.matmul(&qs, Some(&residuals), kernel).unwrap();
				let plain = packed.matmul(&qs, None, kernel).unwrap();
				for (j, x) in xs.iter().enumerate() {
					let want =
						matmul_rows(levels, format, &bytes, rows, x, Some(&residuals[j])).unwrap();
					assert_eq!(got[j], want, "case {case} column {j}");
					let want = matmul_rows(levels, format, &bytes, rows, x, None).unwrap();
					assert_eq!(plain[j], want);
				}
			}
			assert!(packed.matmul(&qs, Some(&residuals[..2]), Kernel::Portable).is_none());
		}
	}

	/// Batches of 2 to 37 vectors of 4-bit rows of both formats, with residuals, on the VNNI
	/// kernel (widened weights, the `f64` combination): every column equals its own `matvec`
	/// on the portable kernel.
	#[test]
	fn batches_equal_the_rule() {
		let mut rng = Rng::new(23);
		for case in 0..12 {
			let k = 32 * rng.range(1, 9) as usize;
			let rows = rng.range(1, 60) as usize;
			let narrow = case % 2 == 0;
			let q4_0 = random_rows(&mut rng, BlockFormat::Q4_0, rows / 2, k, narrow);
			let q4_1 = random_rows(&mut rng, BlockFormat::Q4_1, rows - rows / 2, k, narrow);
			let parts =
				[(BlockFormat::Q4_0, q4_0.as_slice()), (BlockFormat::Q4_1, q4_1.as_slice())];
			let packed = Packed::new(k, &parts).unwrap();
			let n = [37, 16, 17, 2][case % 4];
			let xs: Vec<Vec<i32>> = (0..n)
				.map(|_| {
					let bits = rng.range(4, 31) as u32;
					(0..k).map(|_| rng.range(-(1 << bits), 1 << bits) as i32).collect()
				})
				.collect();
			let qs: Vec<QuantX> = xs.iter().map(|x| QuantX::new(x, L16383)).collect();
			let residuals: Vec<Vec<i32>> = (0..n)
				.map(|_| (0..rows).map(|_| rng.range(-(1 << 30), 1 << 30) as i32).collect())
				.collect();
			let want: Vec<Vec<i32>> = qs
				.iter()
				.zip(&residuals)
				.map(|(q, r)| packed.matvec(q, Some(r), Kernel::Portable).unwrap())
				.collect();
			let got = packed.matmul(&qs, Some(&residuals), Kernel::Vnni).unwrap();
			assert_eq!(got, want, "case {case}");
		}
	}

	/// Outputs that are exact ties of the rule's rounding (`acc = (q + 1/2) D`): the `f64`
	/// combination refuses a group with one (`None`), and `matvec`/`matmul` then give the
	/// rule's half-away-from-zero rounding from the exact path; a group without ties is
	/// decided by the `f64` combination and equals the rule.
	#[test]
	fn float_combination_refuses_ties() {
		// One Q4_1 block per row, d = 1/2, no minimum; row r's first weight `w(r)`, others 0.
		let rows_of = |w: &dyn Fn(u8) -> u8| -> Vec<u8> {
			(0..LANES as u8)
				.flat_map(|r| {
					let mut block = vec![0x00, 0x38, 0, 0];
					block.push(w(r));
					block.extend([0; 15]);
					block
				})
				.collect()
		};
		// x = (+-1, 16383, 0, ...): amax = 16383, qx = (+-1, 16383, 0, ...), so S = +-w(r) and
		// acc / D = +-w(r) / 2: a tie wherever w(r) is odd.
		for sign in [1, -1] {
			let mut x = vec![0i32; 32];
			(x[0], x[1]) = (sign, 16383);
			let q = QuantX::new(&x, L16383);
			for (w, ties) in [(&(|r: u8| r) as &dyn Fn(u8) -> u8, true), (&|r: u8| r & !1, false)] {
				let bytes = rows_of(w);
				let packed = Packed::new(32, &[(BlockFormat::Q4_1, &bytes)]).unwrap();
				let want = matmul_rows(L16383, BlockFormat::Q4_1, &bytes, LANES, &x, None).unwrap();
				assert_eq!(want[1], if ties { sign } else { 0 }, "half away from zero");
				assert_eq!(packed.matvec(&q, None, Kernel::Vnni).unwrap(), want);
				let batch = packed
					.matmul(&[QuantX::new(&x, L16383), QuantX::new(&x, L16383)], None, Kernel::Vnni)
					.unwrap();
				assert_eq!(batch, vec![want.clone(), want.clone()]);
				#[cfg(target_arch = "x86_64")]
				if Kernel::detect() == Kernel::Vnni {
					// SAFETY: the CPU has the features; `q` has 15-bit levels and 32 elements.
					#[allow(unsafe_code)]
					let fast = unsafe { packed.group_out_vnni(0, &q, &[0; LANES]) };
					assert_eq!(fast.is_none(), ties, "sign {sign}");
					if let Some(fast) = fast {
						assert_eq!(fast.to_vec(), want);
					}
				}
			}
		}
	}

	/// Catastrophic cancellation: each row's two blocks have the same weights and activations
	/// and scales `d = 65504` and `-65504`, the first also a small minimum `m`, so the exact
	/// `acc` is `amax m A` while the `f64` terms are some `2^69`: their rounding (up to
	/// `2^16` in `acc`, several units of an output) must make the `f64` combination give up,
	/// not round wrongly (with its error bound taken out this test fails).
	#[test]
	fn float_combination_survives_cancellation() {
		let mut rng = Rng::new(11);
		for _ in 0..20 {
			let rows = 2 * LANES;
			let mut bytes = Vec::new();
			for _ in 0..rows {
				let nibbles = rng.bytes(16);
				let m = rng.range(1, 1 << 10) as u16 | if rng.below(2) == 0 { 0x8000 } else { 0 };
				for (d, m) in [(0x7bffu16, m), (0xfbff, 0)] {
					bytes.extend(d.to_le_bytes());
					bytes.extend(m.to_le_bytes());
					bytes.extend(&nibbles);
				}
			}
			let half: Vec<i32> = (0..32).map(|_| rng.range(-(1 << 30), 1 << 30) as i32).collect();
			let x: Vec<i32> = half.iter().chain(&half).copied().collect();
			let want = matmul_rows(L16383, BlockFormat::Q4_1, &bytes, rows, &x, None).unwrap();
			let packed = Packed::new(64, &[(BlockFormat::Q4_1, &bytes)]).unwrap();
			let q = QuantX::new(&x, L16383);
			assert_eq!(packed.matvec(&q, None, Kernel::Vnni).unwrap(), want);
			let xs = [QuantX::new(&x, L16383), QuantX::new(&x, L16383)];
			assert_eq!(packed.matmul(&xs, None, Kernel::Vnni).unwrap(), vec![want.clone(), want]);
		}
	}

	/// Byte weights at the ends of their range times activations at the ends of theirs: the
	/// AVX2 products of adjacent pairs reach `2 * 128 * 127`, just below `vpmaddubsw`'s
	/// saturation (which the stored bytes `u = q + 128` times `qx` would exceed), in every sign
	/// combination.
	#[test]
	fn extreme_byte_products_are_exact() {
		let ends: [i8; 5] = [i8::MIN, -127, 0, 127, 1];
		let k = 32 * 4;
		let mut bytes = Vec::new();
		let mut rows = 0;
		for a in ends {
			for b in ends {
				for block in 0..k / 32 {
					bytes.extend_from_slice(&0x0400u16.to_le_bytes()); // d = 2^-14: no output saturates
					bytes.extend((0..32).map(|j| {
						let v = if (j + block) % 2 == 0 { a } else { b };
						v as u8
					}));
				}
				rows += 1;
			}
		}
		let packed = Packed::new(k, &[(BlockFormat::Q8_0, &bytes)]).unwrap();
		// Activations that quantize to +-127 in every block, in patterns of signs.
		let signs: [fn(usize) -> bool; 4] =
			[|_| true, |_| false, |j| j % 2 == 0, |j| (j / 2) % 2 == 0];
		// (With 15-bit levels both bytes `hi` and `lo` of -16383 and 16383 are -127 and 127.)
		for (sign, levels) in signs.into_iter().flat_map(|s| [(s, L127), (s, L16383)]) {
			let x: Vec<i32> = (0..k).map(|j| if sign(j) { 1 << 20 } else { -(1 << 20) }).collect();
			let want = matmul_rows(levels, BlockFormat::Q8_0, &bytes, rows, &x, None).unwrap();
			for kernel in [Kernel::Portable, Kernel::Vnni, Kernel::Avx2] {
				let got = packed.matvec(&QuantX::new(&x, levels), None, kernel).unwrap();
				assert_eq!(got, want, "{kernel:?} {levels:?}");
			}
			assert!(want.iter().all(|&v| v > i32::MIN && v < i32::MAX), "{want:?}");
		}
	}

	/// Every fp16 bit pattern: the rule's value is stored as bits that [`fp16_parts`] (the
	/// scalar form of the AVX-512 decoding) turns back into it; infinities and NaNs (0 by the
	/// rule) as 0; values that are no fp16 number are refused.
	#[test]
	fn scales_round_trip_through_fp16_bits() {
		use verity_primitives::lm::fixed::fp16_to_q24_or_zero;
		for h in 0..=u16::MAX {
			let v = fp16_to_q24_or_zero(h);
			let bits = fp16_bits(v).expect("an fp16 value");
			let (mant, shift) = fp16_parts(bits);
			assert_eq!(i64::from(mant) << shift, v, "{h:#06x}");
			if (h >> 10) & 31 != 31 && v != 0 {
				assert_eq!(bits, h, "{h:#06x}");
			}
		}
		for v in [2047 << 30, 2049, 2049 << 3, -(4095 << 5), 1 << 41] {
			assert_eq!(fp16_bits(v), None, "{v}");
		}
	}

	#[test]
	fn mixed_formats_concatenate_rows() {
		let mut rng = Rng::new(9);
		let a = random_rows(&mut rng, BlockFormat::Q8_0, 5, 64, true);
		let b = random_rows(&mut rng, BlockFormat::Q4_1, 20, 64, true);
		let c = random_rows(&mut rng, BlockFormat::Q4_0, 7, 64, true);
		let x: Vec<i32> = (0..64).map(|_| rng.range(-(1 << 20), 1 << 20) as i32).collect();
		for levels in [L127, L16383] {
			let rule = |f, w: &[u8], rows| matmul_rows(levels, f, w, rows, &x, None).unwrap();
			let q = QuantX::new(&x, levels);
			let packed =
				Packed::new(64, &[(BlockFormat::Q8_0, &a), (BlockFormat::Q4_1, &b)]).unwrap();
			let mut want = rule(BlockFormat::Q8_0, &a, 5);
			want.extend(rule(BlockFormat::Q4_1, &b, 20));
			assert_eq!(packed.matvec(&q, None, Kernel::detect()).unwrap(), want);
			// Q4_0 and Q4_1 rows together: nibble storage, the Q4_0 offset in the minimum.
			let packed =
				Packed::new(64, &[(BlockFormat::Q4_0, &c), (BlockFormat::Q4_1, &b)]).unwrap();
			assert!(packed.nibbles);
			let mut want = rule(BlockFormat::Q4_0, &c, 7);
			want.extend(rule(BlockFormat::Q4_1, &b, 20));
			for kernel in [Kernel::Portable, Kernel::Vnni, Kernel::Avx2] {
				assert_eq!(packed.matvec(&q, None, kernel).unwrap(), want);
			}
		}
		assert!(Packed::new(64, &[(BlockFormat::Q8_0, &a[1..])]).is_none());
		assert!(Packed::new(48, &[]).is_none());
	}
}
