//! Test support (cargo feature `testing`, off by default, `no_std`-compatible).
//!
//! * [`Rng`]: a tiny deterministic PRNG (SplitMix64), so that a `u64` seed names a test case
//!   on every platform and in every crate (no `rand` dependency).
//! * [`random_case`]: a random **valid** model (every op kind; varied shapes; extreme weights,
//!   biases and multipliers; negative zero points; positive and negative shifts; residual adds;
//!   concats; grouped and depthwise convolutions with stride, dilation and asymmetric padding;
//!   pools with padding; lookups) plus weights and an input, sized by a [`Limits`].
//! * [`ModelBuilder`] and [`golden`]: the hand-written models of `testdata/`.
//!
//! The generator proposes ops and keeps those that [`validate_step`] accepts, so every case it
//! returns validates against the given limits (as long as the limits admit a model at all:
//! at least one tensor element, one MAC and 257 proof bytes per step).

use alloc::{string::String, vec, vec::Vec};

use crate::{
	file::ModelFile,
	interp::{execute, ExecError, Trace},
	model::*,
	validate::{validate_step, window_output_size, Limits},
};

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

/// A model with weights and one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestCase {
	pub header: ModelHeader,
	/// `weights[i - 1]` = weight bytes of op `i`.
	pub weights: Vec<Vec<u8>>,
	pub input: Vec<u8>,
}

impl TestCase {
	/// The model file.
	pub fn file(&self) -> ModelFile {
		ModelFile { header: self.header.clone(), weights: self.weights.clone() }
	}

	/// The honest trace.
	pub fn trace(&self) -> Result<Trace, ExecError> {
		execute(&self.header, &self.weights, &self.input)
	}

	/// The honest step hashes `[h_0..h_n]`.
	pub fn step_hashes(&self) -> Result<Vec<Hash>, ExecError> {
		let trace = self.trace()?;
		Ok(trace.step_hashes(&self.header).unwrap_or_default())
	}
}

/// Small limits for fast tests: 12 ops, 4096 elements per tensor, 4 inputs per op, 64 KiB
/// per step proof, 2^18 MACs per step, 64 KiB headers.
pub fn test_limits() -> Limits {
	Limits {
		max_header_bytes: 1 << 16,
		max_ops: 12,
		max_tensor_elements: 4096,
		max_op_inputs: 4,
		max_step_proof_bytes: 1 << 16,
		max_step_macs: 1 << 18,
	}
}

/// Incrementally builds a model (used by the generator and the golden models).
#[derive(Clone, Debug)]
pub struct ModelBuilder {
	pub header: ModelHeader,
	pub weights: Vec<Vec<u8>>,
}

impl ModelBuilder {
	pub fn new(input: TensorSpec) -> Self {
		ModelBuilder {
			header: ModelHeader { version: HEADER_VERSION, input, ops: Vec::new() },
			weights: Vec::new(),
		}
	}

	/// Spec of tensor `index`.
	pub fn spec(&self, index: u32) -> Option<&TensorSpec> {
		self.header.tensor_spec(index)
	}

	/// Number of tensors so far (input + ops).
	pub fn num_tensors(&self) -> u32 {
		self.header.num_ops().saturating_add(1)
	}

	/// Append an op; returns the index of the tensor it produces.
	#[allow(clippy::too_many_arguments)]
	pub fn push(
		&mut self,
		kind: OpKind,
		inputs: Vec<u32>,
		output: TensorSpec,
		clamp: (i8, i8),
		bias: Vec<i32>,
		requant: Vec<Requant>,
		weights: Vec<u8>,
	) -> u32 {
		self.header
			.ops
			.push(Op::with_weights(kind, inputs, output, clamp, bias, requant, &weights));
		self.weights.push(weights);
		self.header.num_ops()
	}

	/// Remove the last op.
	pub fn pop(&mut self) {
		self.header.ops.pop();
		self.weights.pop();
	}

	pub fn finish(self, input: Vec<u8>) -> TestCase {
		TestCase { header: self.header, weights: self.weights, input }
	}
}

const FULL: (i8, i8) = (-128, 127);
/// Conv2d parameters from (kernel, stride, dilation, `[top, left, bottom, right]` padding,
/// groups), in the order of [`Conv2dParams`]' fields.
pub fn conv_params(
	kernel: (u32, u32),
	stride: (u32, u32),
	dilation: (u32, u32),
	pads: [u32; 4],
	groups: u32,
) -> Conv2dParams {
	let [pad_top, pad_left, pad_bottom, pad_right] = pads;
	Conv2dParams {
		kernel_h: kernel.0,
		kernel_w: kernel.1,
		stride_h: stride.0,
		stride_w: stride.1,
		dilation_h: dilation.0,
		dilation_w: dilation.1,
		pad_top,
		pad_left,
		pad_bottom,
		pad_right,
		groups,
	}
}

/// A 3x3 convolution, stride 1, padding 1 on every side (output size = input size).
pub fn same3x3(groups: u32) -> Conv2dParams {
	conv_params((3, 3), (1, 1), (1, 1), [1; 4], groups)
}

/// Pool parameters from (kernel, stride, `[top, left, bottom, right]` padding).
pub fn pool_params(kernel: (u32, u32), stride: (u32, u32), pads: [u32; 4]) -> PoolParams {
	let [pad_top, pad_left, pad_bottom, pad_right] = pads;
	PoolParams {
		kernel_h: kernel.0,
		kernel_w: kernel.1,
		stride_h: stride.0,
		stride_w: stride.1,
		pad_top,
		pad_left,
		pad_bottom,
		pad_right,
	}
}

/// Largest reduction length for which a zero bias passes the accumulator bound.
const MAX_K: u64 = (i32::MAX as u64) / (MAX_PRODUCT as u64);

fn spec(shape: Vec<u32>, zero_point: i8) -> TensorSpec {
	TensorSpec { shape, zero_point, scale_bits: 0x3c00_0000 } // 2^-7
}

fn numel(shape: &[u32]) -> u64 {
	shape.iter().map(|&d| u64::from(d)).product()
}

/// Random generator state.
struct Gen<'a> {
	rng: Rng,
	limits: &'a Limits,
	b: ModelBuilder,
}

impl Gen<'_> {
	fn zero_point(&mut self) -> i8 {
		match self.rng.below(20) {
			0..=5 => 0,
			6..=7 => -128,
			8 => 127,
			_ => self.rng.i8(),
		}
	}

	fn clamp(&mut self, zp: i8) -> (i8, i8) {
		match self.rng.below(20) {
			0..=8 => FULL,
			9..=13 => (zp, 127), // ReLU
			14..=16 => (zp, (i64::from(zp) + self.rng.range(30, 127)).min(127) as i8), // ReLU6-like
			17 => {
				let (a, b) = (self.rng.i8(), self.rng.i8());
				(a.min(b), a.max(b))
			},
			_ => {
				let lo = (i64::from(zp) + self.rng.range(-60, 10)).clamp(-128, 111);
				(lo as i8, self.rng.range(lo + 16, 127) as i8)
			},
		}
	}

	fn data_clamp(&mut self, zp: i8) -> (i8, i8) {
		if self.rng.chance(75) {
			FULL
		} else {
			self.clamp(zp)
		}
	}

	fn weights(&mut self, len: u64) -> Vec<u8> {
		let len = len as usize;
		let regime = self.rng.below(20);
		(0..len)
			.map(|_| match regime {
				0..=11 => self.rng.byte(),
				12..=13 => {
					if self.rng.chance(50) {
						0x80
					} else {
						0x7f
					}
				},
				14 => 0x80,
				15..=16 => self.rng.range(-3, 3) as i8 as u8,
				_ => {
					if self.rng.chance(80) {
						0
					} else {
						self.rng.byte()
					}
				},
			})
			.collect()
	}

	fn bias(&mut self, n: u64, k: u64) -> Vec<i32> {
		let bound = (i32::MAX as i64 - (k as i64) * MAX_PRODUCT).max(0);
		let regime = self.rng.below(20);
		(0..n)
			.map(|_| {
				let v = match regime {
					0..=3 => 0,
					4..=16 => self.rng.range(-(k as i64) * 3000, (k as i64) * 3000),
					17 => self.rng.range(-bound, bound),
					_ => {
						if self.rng.chance(50) {
							bound
						} else {
							-bound
						}
					},
				};
				v.clamp(-bound, bound) as i32
			})
			.collect()
	}

	/// A requantization for a reduction of length `k` (chooses "useful" scales mostly).
	fn requant_for(&mut self, regime: u64, k: u64) -> Requant {
		let bits = 64 - i64::from(k.max(1).leading_zeros()); // ~log2(k) + 1
		let useful_shift = -(7 + (bits + 1) / 2) + self.rng.range(-2, 2);
		match regime {
			// a normalized multiplier in [2^30, 2^31) and a shift that keeps outputs in range
			0..=15 => Requant {
				multiplier: self.rng.range(1 << 30, i32::MAX as i64) as i32,
				shift: useful_shift.clamp(-31, 30) as i8,
			},
			16 => Requant { multiplier: 0, shift: self.rng.range(-31, 30) as i8 },
			17 => Requant {
				multiplier: if self.rng.chance(50) {
					i32::MAX
				} else {
					self.rng.range(0, i32::MAX as i64) as i32
				},
				shift: self.rng.range(-31, 30) as i8,
			},
			// positive shifts: the saturating left shift
			18 => Requant {
				multiplier: self.rng.range(1 << 30, i32::MAX as i64) as i32,
				shift: self.rng.range(1, 30) as i8,
			},
			// an unnormalized multiplier with a compensating shift
			_ => {
				let m = self.rng.range(1 << 12, 1 << 30);
				let m_bits = 64 - i64::from(m.leading_zeros());
				Requant {
					multiplier: m as i32,
					shift: (useful_shift + 31 - m_bits).clamp(-31, 30) as i8,
				}
			},
		}
	}

	fn requants(&mut self, n: u64, k: u64) -> Vec<Requant> {
		let op_regime = self.rng.below(20);
		let mixed = self.rng.chance(20);
		(0..n)
			.map(|_| {
				let regime = if mixed { self.rng.below(20) } else { op_regime };
				self.requant_for(regime, k)
			})
			.collect()
	}

	/// A random existing tensor: mostly the latest one.
	fn pick_tensor(&mut self) -> u32 {
		let n = self.b.num_tensors();
		if self.rng.chance(50) {
			n - 1
		} else {
			self.rng.below(u64::from(n)) as u32
		}
	}

	fn spec_of(&self, t: u32) -> TensorSpec {
		self.b.spec(t).cloned().unwrap_or_else(|| spec(vec![1], 0))
	}

	fn budget(&self, input_elems: u64) -> (u64, u64) {
		// (MACs, weight bytes) still available to one step reading `input_elems` bytes.
		(self.limits.max_step_macs, self.limits.max_step_proof_bytes.saturating_sub(input_elems))
	}

	fn fully_connected(&mut self, t: u32) -> bool {
		let x = self.spec_of(t);
		let k = numel(&x.shape);
		if k > MAX_K {
			return false;
		}
		let (macs, wbytes) = self.budget(k);
		let max_n =
			(macs / k).min(wbytes / k).min(u64::from(self.limits.max_tensor_elements)).min(48);
		if max_n == 0 {
			return false;
		}
		let n = if self.rng.chance(15) { 1 } else { 1 + self.rng.below(max_n) };
		let zp = self.zero_point();
		let clamp = self.clamp(zp);
		let w = self.weights(n * k);
		let bias = self.bias(n, k);
		let rq = self.requants(n, k);
		self.b.push(OpKind::FullyConnected, vec![t], spec(vec![n as u32], zp), clamp, bias, rq, w);
		true
	}

	fn conv2d(&mut self, t: u32) -> bool {
		let x = self.spec_of(t);
		let (c, h, w) = match x.shape.as_slice() {
			[c, h, w] => (*c, *h, *w),
			_ => return false,
		};
		let residual = self.rng.chance(25);
		let (groups, cout) = match self.rng.below(4) {
			_ if residual => (1, c),
			0 | 1 => (1, if self.rng.chance(30) { c } else { 1 + self.rng.below(12) as u32 }),
			2 => (c, c * (1 + self.rng.below(2) as u32)),
			_ => {
				let mut divisors: Vec<u32> = (2..c).filter(|d| c.is_multiple_of(*d)).collect();
				if divisors.is_empty() {
					divisors.push(c);
				}
				let g = self.rng.pick(&divisors).unwrap_or(1);
				(g, g * (1 + self.rng.below(3) as u32))
			},
		};
		let kernels = [1u32, 1, 2, 3, 3, 3, 4, 5];
		let kh = if residual {
			self.rng.pick(&[1u32, 3, 3, 5]).unwrap_or(3)
		} else {
			self.rng.pick(&kernels).unwrap_or(3)
		};
		let kw =
			if residual || self.rng.chance(70) { kh } else { self.rng.pick(&kernels).unwrap_or(3) };
		let dil =
			|rng: &mut Rng| if residual || rng.chance(80) { 1 } else { rng.range(2, 3) as u32 };
		let (dh, dw) = (dil(&mut self.rng), dil(&mut self.rng));
		let stride = |rng: &mut Rng| {
			if residual {
				1
			} else {
				rng.pick(&[1u32, 1, 1, 2, 2, 3]).unwrap_or(1)
			}
		};
		let (sh, sw) = (stride(&mut self.rng), stride(&mut self.rng));
		let (eh, ew) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
		let same = residual || self.rng.chance(50);
		let pads = |rng: &mut Rng, e: u32| {
			if same {
				((e - 1) / 2, e - 1 - (e - 1) / 2)
			} else {
				(rng.below(u64::from(e)) as u32, rng.below(u64::from(e)) as u32)
			}
		};
		let (pt, pb) = pads(&mut self.rng, eh);
		let (pl, pr) = pads(&mut self.rng, ew);
		let (Ok(oh), Ok(ow)) =
			(window_output_size(h, kh, sh, dh, pt, pb), window_output_size(w, kw, sw, dw, pl, pr))
		else {
			return false;
		};
		let k = u64::from(c / groups) * u64::from(kh) * u64::from(kw);
		let (macs, wbytes) = self.budget(numel(&x.shape));
		let n_out = u64::from(cout) * u64::from(oh) * u64::from(ow);
		if k > MAX_K || n_out.saturating_mul(k) > macs || u64::from(cout) * k > wbytes {
			return false;
		}
		let p = conv_params((kh, kw), (sh, sw), (dh, dw), [pt, pl, pb, pr], groups);
		let zp = self.zero_point();
		let clamp = self.clamp(zp);
		let wts = self.weights(u64::from(cout) * k);
		let bias = self.bias(u64::from(cout), k);
		let rq = self.requants(u64::from(cout), k);
		self.b.push(OpKind::Conv2d(p), vec![t], spec(vec![cout, oh, ow], zp), clamp, bias, rq, wts);
		true
	}

	fn pool(&mut self, t: u32, max: bool) -> bool {
		let x = self.spec_of(t);
		let (c, h, w) = match x.shape.as_slice() {
			[c, h, w] => (*c, *h, *w),
			_ => return false,
		};
		let kh = self.rng.range(1, 4) as u32;
		let kw = if self.rng.chance(70) { kh } else { self.rng.range(1, 4) as u32 };
		let sh = if self.rng.chance(50) { kh } else { self.rng.range(1, 3) as u32 };
		let sw = if self.rng.chance(70) { sh } else { self.rng.range(1, 3) as u32 };
		let padded = self.rng.chance(60);
		let pad = |rng: &mut Rng, k: u32| if padded { rng.below(u64::from(k)) as u32 } else { 0 };
		let (pt, pb, pl, pr) = (
			pad(&mut self.rng, kh),
			pad(&mut self.rng, kh),
			pad(&mut self.rng, kw),
			pad(&mut self.rng, kw),
		);
		let (Ok(oh), Ok(ow)) =
			(window_output_size(h, kh, sh, 1, pt, pb), window_output_size(w, kw, sw, 1, pl, pr))
		else {
			return false;
		};
		let p = pool_params((kh, kw), (sh, sw), [pt, pl, pb, pr]);
		let kind = if max { OpKind::MaxPool(p) } else { OpKind::AvgPool(p) };
		let clamp = self.data_clamp(x.zero_point);
		self.b.push(
			kind,
			vec![t],
			spec(vec![c, oh, ow], x.zero_point),
			clamp,
			vec![],
			vec![],
			vec![],
		);
		true
	}

	fn global_avg_pool(&mut self, t: u32) -> bool {
		let x = self.spec_of(t);
		let [c, _, _] = x.shape.as_slice() else { return false };
		let clamp = self.data_clamp(x.zero_point);
		self.b.push(
			OpKind::GlobalAvgPool,
			vec![t],
			spec(vec![*c], x.zero_point),
			clamp,
			vec![],
			vec![],
			vec![],
		);
		true
	}

	fn add(&mut self, t: u32) -> bool {
		let x = self.spec_of(t);
		let partners: Vec<u32> =
			(0..self.b.num_tensors()).filter(|&j| self.spec_of(j).shape == x.shape).collect();
		let others: Vec<u32> = partners.iter().copied().filter(|&j| j != t).collect();
		let other = if !others.is_empty() && self.rng.chance(80) {
			self.rng.pick(&others).unwrap_or(t)
		} else {
			t
		};
		let inputs = if self.rng.chance(50) { vec![t, other] } else { vec![other, t] };
		let extreme = self.rng.chance(10);
		let left_shift = if self.rng.chance(60) { 20 } else { self.rng.range(0, 20) as u8 };
		let side = |rng: &mut Rng| {
			if extreme {
				Requant {
					multiplier: rng.range(0, i32::MAX as i64) as i32,
					shift: rng.range(-31, 0) as i8,
				}
			} else {
				Requant {
					multiplier: rng.range(1 << 30, i32::MAX as i64) as i32,
					shift: rng.range(-3, -1) as i8,
				}
			}
		};
		let (lhs, rhs) = (side(&mut self.rng), side(&mut self.rng));
		let out_rq = if extreme {
			Requant {
				multiplier: self.rng.range(0, i32::MAX as i64) as i32,
				shift: self.rng.range(-31, 30) as i8,
			}
		} else {
			Requant {
				multiplier: self.rng.range(1 << 30, i32::MAX as i64) as i32,
				shift: (-i64::from(left_shift) + self.rng.range(-1, 3)).clamp(-31, 30) as i8,
			}
		};
		let zp = self.zero_point();
		let clamp = self.clamp(zp);
		let p = AddParams { left_shift, lhs, rhs };
		self.b.push(
			OpKind::Add(p),
			inputs,
			spec(x.shape.clone(), zp),
			clamp,
			vec![],
			vec![out_rq],
			vec![],
		);
		true
	}

	fn concat(&mut self, t: u32) -> bool {
		let x = self.spec_of(t);
		let rank = x.shape.len();
		let max_inputs = u64::from(self.limits.max_op_inputs.min(5));
		if max_inputs < 2 {
			return false;
		}
		let axis = self.rng.below(rank as u64) as usize;
		let compatible = |s: &TensorSpec| {
			s.zero_point == x.zero_point
				&& s.shape.len() == rank
				&& s.shape.iter().zip(&x.shape).enumerate().all(|(d, (a, b))| d == axis || a == b)
		};
		let partners: Vec<u32> =
			(0..self.b.num_tensors()).filter(|&j| compatible(&self.spec_of(j))).collect();
		let count = 2 + self.rng.below(max_inputs - 1);
		let mut inputs = vec![t];
		for _ in 1..count {
			inputs.push(self.rng.pick(&partners).unwrap_or(t));
		}
		let along: u64 = inputs
			.iter()
			.map(|&j| u64::from(self.spec_of(j).shape.get(axis).copied().unwrap_or(0)))
			.sum();
		let mut shape = x.shape.clone();
		if let Some(d) = shape.get_mut(axis) {
			*d = u32::try_from(along).unwrap_or(u32::MAX);
		}
		let clamp = self.data_clamp(x.zero_point);
		self.b.push(
			OpKind::Concat { axis: axis as u32 },
			inputs,
			spec(shape, x.zero_point),
			clamp,
			vec![],
			vec![],
			vec![],
		);
		true
	}

	fn reshape(&mut self, t: u32) -> bool {
		let x = self.spec_of(t);
		let total = numel(&x.shape);
		let rank = if self.rng.chance(30) { 1 } else { self.rng.range(1, 4) as usize };
		let mut remaining = total;
		let mut shape = Vec::with_capacity(rank);
		for _ in 1..rank {
			let divisors: Vec<u64> = (1..=remaining)
				.take_while(|d| d * d <= remaining)
				.filter(|d| remaining.is_multiple_of(*d))
				.collect();
			let small = self.rng.pick(&divisors).unwrap_or(1);
			let d = if self.rng.chance(50) { small } else { remaining / small };
			shape.push(d as u32);
			remaining /= d;
		}
		shape.push(remaining as u32);
		let clamp = self.data_clamp(x.zero_point);
		self.b.push(
			OpKind::Reshape,
			vec![t],
			spec(shape, x.zero_point),
			clamp,
			vec![],
			vec![],
			vec![],
		);
		true
	}

	fn table(&mut self) -> Vec<u8> {
		let regime = self.rng.below(10);
		let (num, den, off) =
			(self.rng.range(-300, 300), self.rng.range(1, 200), self.rng.range(-60, 60));
		let zp = self.rng.i8();
		let constant = self.rng.byte();
		(0..256i64)
			.map(|i| {
				let x = i - 128;
				match regime {
					0..=3 => self.rng.byte(),
					4 => x as u8,
					5..=6 => (x * num / den + off).clamp(-128, 127) as u8,
					7 => {
						// a saturating "sigmoid": steep in the middle
						let y = if x.abs() < 32 {
							x * 4
						} else if x > 0 {
							127
						} else {
							-128
						};
						y.clamp(-128, 127) as u8
					},
					8 => constant,
					_ => x.max(i64::from(zp)) as u8,
				}
			})
			.collect()
	}

	fn lookup(&mut self, t: u32) -> bool {
		let x = self.spec_of(t);
		let table = self.table();
		let zp = self.zero_point();
		let clamp = self.data_clamp(zp);
		self.b.push(
			OpKind::Lookup,
			vec![t],
			spec(x.shape.clone(), zp),
			clamp,
			vec![],
			vec![],
			table,
		);
		true
	}

	/// Propose one op (pushed onto the builder); `false` if no proposal was made.
	fn propose(&mut self) -> bool {
		let t = self.pick_tensor();
		let rank3 = self.spec_of(t).shape.len() == 3;
		if rank3 {
			// Conv, FC, Add, MaxPool, AvgPool, GAP, Reshape, Concat, Lookup
			match self.rng.weighted(&[28, 7, 12, 9, 9, 5, 6, 12, 7]) {
				0 => self.conv2d(t),
				1 => self.fully_connected(t),
				2 => self.add(t),
				3 => self.pool(t, true),
				4 => self.pool(t, false),
				5 => self.global_avg_pool(t),
				6 => self.reshape(t),
				7 => self.concat(t),
				_ => self.lookup(t),
			}
		} else {
			// FC, Add, Reshape (sometimes into an image), Concat, Lookup
			match self.rng.weighted(&[35, 15, 20, 15, 15]) {
				0 => self.fully_connected(t),
				1 => self.add(t),
				2 => self.reshape(t),
				3 => self.concat(t),
				_ => self.lookup(t),
			}
		}
	}

	fn input_spec(&mut self) -> TensorSpec {
		let l = self.limits;
		let cap = u64::from(l.max_tensor_elements)
			.min(l.max_step_macs)
			.min(l.max_step_proof_bytes.saturating_sub(u64::from(LOOKUP_TABLE_LEN)))
			.max(1);
		let mut shape: Vec<u32> = match self.rng.below(20) {
			// big vector (large reductions, long accumulations)
			0..=1 => {
				let big = cap.clamp(1, MAX_K);
				vec![(big / 2 + self.rng.below(big / 2 + 1)).max(1) as u32]
			},
			2..=6 => vec![self.rng.range(1, 64) as u32],
			7..=8 => {
				let r = self.rng.range(2, 4) as usize;
				(0..r).map(|_| self.rng.range(1, 6) as u32).collect()
			},
			_ => {
				let c = self.rng.range(1, 8) as u32;
				vec![c, self.rng.range(1, 12) as u32, self.rng.range(1, 12) as u32]
			},
		};
		while numel(&shape) > cap {
			if let Some(d) = shape.iter_mut().max() {
				*d = (*d / 2).max(1);
			}
		}
		let zp = self.zero_point();
		spec(shape, zp)
	}

	fn input(&mut self, s: &TensorSpec) -> Vec<u8> {
		let n = numel(&s.shape) as usize;
		match self.rng.below(40) {
			0 => vec![0x80; n],
			1 => vec![0x7f; n],
			2 => vec![s.zero_point as u8; n],
			3..=5 => (0..n).map(|_| if self.rng.chance(50) { 0x80 } else { 0x7f }).collect(),
			6..=9 => (0..n)
				.map(|_| (i64::from(s.zero_point) + self.rng.range(-20, 20)).clamp(-128, 127) as u8)
				.collect(),
			_ => self.rng.bytes(n),
		}
	}
}

/// A random valid model with weights and input, deterministic in `seed`, validating against
/// `limits` (its ops never exceed `min(limits.max_ops, 16)`).
pub fn random_case(seed: u64, limits: &Limits) -> TestCase {
	let mut g = Gen { rng: Rng::new(seed), limits, b: ModelBuilder::new(spec(vec![1], 0)) };
	let input = g.input_spec();
	g.b = ModelBuilder::new(input.clone());
	let target = 1 + g.rng.below(u64::from(limits.max_ops.clamp(1, 16)));
	for _ in 0..target {
		let step = g.b.num_tensors();
		let mut accepted = false;
		for _attempt in 0..16 {
			if !g.propose() {
				continue;
			}
			if validate_step(&g.b.header, step, limits).is_ok() {
				accepted = true;
				break;
			}
			g.b.pop();
		}
		if !accepted {
			// Fallback that always fits: flatten the latest tensor.
			let x = g.spec_of(step - 1);
			let flat = vec![u32::try_from(numel(&x.shape)).unwrap_or(u32::MAX)];
			g.b.push(
				OpKind::Reshape,
				vec![step - 1],
				spec(flat, x.zero_point),
				FULL,
				vec![],
				vec![],
				vec![],
			);
			if validate_step(&g.b.header, step, limits).is_err() {
				g.b.pop();
				break;
			}
		}
	}
	use codec::Encode;
	while g.b.header.ops.len() > 1
		&& g.b.header.encoded_size() as u64 > u64::from(limits.max_header_bytes)
	{
		g.b.pop();
	}
	let data = g.input(&input);
	g.b.finish(data)
}

/// Human-readable one-line summary of a model (for test failure messages).
pub fn describe(header: &ModelHeader) -> String {
	use core::fmt::Write;
	let mut s = String::new();
	let _ = write!(s, "input {:?} zp {}", header.input.shape, header.input.zero_point);
	for (i, op) in header.ops.iter().enumerate() {
		let kind = match op.kind {
			OpKind::FullyConnected => "fc",
			OpKind::Conv2d(_) => "conv",
			OpKind::Add(_) => "add",
			OpKind::MaxPool(_) => "maxpool",
			OpKind::AvgPool(_) => "avgpool",
			OpKind::GlobalAvgPool => "gap",
			OpKind::Reshape => "reshape",
			OpKind::Concat { .. } => "concat",
			OpKind::Lookup => "lookup",
		};
		let _ = write!(s, "; {}:{}{:?}->{:?}", i + 1, kind, op.inputs, op.output.shape);
	}
	s
}

/// The hand-written models of `primitives/testdata/` (weights from fixed seeds).
pub mod golden {
	use super::*;

	fn rq(multiplier: i32, shift: i8) -> Requant {
		Requant { multiplier, shift }
	}

	/// All golden cases, by name.
	pub fn cases() -> Vec<(&'static str, TestCase)> {
		vec![
			("mlp", mlp()),
			("cnn", cnn()),
			("op_fc", op_fc()),
			("op_conv", op_conv()),
			("op_dwconv", op_dwconv()),
			("op_add", op_add()),
			("op_maxpool", op_maxpool()),
			("op_avgpool", op_avgpool()),
			("op_gap", op_gap()),
			("op_reshape", op_reshape()),
			("op_concat", op_concat()),
			("op_lookup", op_lookup()),
		]
	}

	fn tanh_table() -> Vec<u8> {
		// integer approximation of 127 * tanh(x / 32): x * (27 * 32^2 + x^2) / (27 * 32^2 + 9 x^2) * 4
		(0..256i64)
			.map(|i| {
				let x = i - 128;
				let num = x * (27 * 1024 + x * x) * 4;
				let den = 27 * 1024 + 9 * x * x;
				(num / den).clamp(-128, 127) as u8
			})
			.collect()
	}

	/// A 3-layer MLP with a tanh-like lookup: `[16]` -> 12 (ReLU) -> 8 -> tanh -> 4.
	pub fn mlp() -> TestCase {
		let mut r = Rng::new(1);
		let mut b = ModelBuilder::new(spec(vec![16], -3));
		let w1 = r.bytes(12 * 16);
		let t1 = b.push(
			OpKind::FullyConnected,
			vec![0],
			spec(vec![12], -128),
			(-128, 127),
			(0..12).map(|i| i * 100 - 600).collect(),
			(0..12).map(|i| rq((1 << 30) + i * 12345, -9)).collect(),
			w1,
		);
		let w2 = r.bytes(8 * 12);
		let t2 = b.push(
			OpKind::FullyConnected,
			vec![t1],
			spec(vec![8], 0),
			(-128, 127),
			vec![-5000, 5000, 0, 123, -123, 77, 0, 1],
			(0..8).map(|i| rq(1_500_000_000 + i * 1000, -10)).collect(),
			w2,
		);
		let t3 =
			b.push(OpKind::Lookup, vec![t2], spec(vec![8], 0), FULL, vec![], vec![], tanh_table());
		let w4 = r.bytes(4 * 8);
		b.push(
			OpKind::FullyConnected,
			vec![t3],
			spec(vec![4], 10),
			FULL,
			vec![0, 10, -10, 1000],
			vec![rq(1 << 30, -6); 4],
			w4,
		);
		let input = r.bytes(16);
		b.finish(input)
	}

	/// A small CNN touching every op: conv, depthwise conv, residual add, max pool, 1x1 conv,
	/// average pool, concat, lookup, global average pool, reshape, fully connected.
	pub fn cnn() -> TestCase {
		let mut r = Rng::new(2);
		let mut b = ModelBuilder::new(spec(vec![3, 8, 8], 5));
		let w = r.bytes(8 * 3 * 9);
		let t1 = b.push(
			OpKind::Conv2d(same3x3(1)),
			vec![0],
			spec(vec![8, 8, 8], -20),
			(-20, 127),
			(0..8).map(|i| (i - 4) * 300).collect(),
			(0..8).map(|i| rq(1_200_000_000 + i * 7_000_000, -10)).collect(),
			w,
		);
		let w = r.bytes(8 * 9);
		let t2 = b.push(
			OpKind::Conv2d(same3x3(8)),
			vec![t1],
			spec(vec![8, 8, 8], -20),
			(-20, 40),
			vec![50; 8],
			vec![rq(1_800_000_000, -8); 8],
			w,
		);
		let add = AddParams { left_shift: 20, lhs: rq(1 << 30, -1), rhs: rq(1_500_000_000, -1) };
		let t3 = b.push(
			OpKind::Add(add),
			vec![t1, t2],
			spec(vec![8, 8, 8], 0),
			FULL,
			vec![],
			vec![rq(1_700_000_000, -19)],
			vec![],
		);
		let pool2 = pool_params((2, 2), (2, 2), [0, 0, 0, 0]);
		let t4 = b.push(
			OpKind::MaxPool(pool2),
			vec![t3],
			spec(vec![8, 4, 4], 0),
			FULL,
			vec![],
			vec![],
			vec![],
		);
		let w = r.bytes(8 * 8);
		let t5 = b.push(
			OpKind::Conv2d(conv_params((1, 1), (1, 1), (1, 1), [0; 4], 1)),
			vec![t4],
			spec(vec![8, 4, 4], 0),
			(0, 127),
			vec![0; 8],
			vec![rq(1 << 30, -7); 8],
			w,
		);
		let avg = pool_params((3, 3), (1, 1), [1, 1, 1, 1]);
		let t6 = b.push(
			OpKind::AvgPool(avg),
			vec![t5],
			spec(vec![8, 4, 4], 0),
			FULL,
			vec![],
			vec![],
			vec![],
		);
		let t7 = b.push(
			OpKind::Concat { axis: 0 },
			vec![t4, t6],
			spec(vec![16, 4, 4], 0),
			FULL,
			vec![],
			vec![],
			vec![],
		);
		let t8 = b.push(
			OpKind::Lookup,
			vec![t7],
			spec(vec![16, 4, 4], 3),
			FULL,
			vec![],
			vec![],
			tanh_table(),
		);
		let t9 = b.push(
			OpKind::GlobalAvgPool,
			vec![t8],
			spec(vec![16], 3),
			FULL,
			vec![],
			vec![],
			vec![],
		);
		let t10 =
			b.push(OpKind::Reshape, vec![t9], spec(vec![2, 8], 3), FULL, vec![], vec![], vec![]);
		let w = r.bytes(4 * 16);
		b.push(
			OpKind::FullyConnected,
			vec![t10],
			spec(vec![4], -7),
			FULL,
			vec![1, 2, 3, 4],
			vec![rq(1 << 30, -5); 4],
			w,
		);
		let input = r.bytes(3 * 64);
		b.finish(input)
	}

	/// FC with a negative input zero point, extreme weights, a positive (saturating) shift,
	/// a zero multiplier and a ReLU6-like clamp.
	pub fn op_fc() -> TestCase {
		let mut r = Rng::new(3);
		let mut b = ModelBuilder::new(spec(vec![2, 3], -128));
		let mut w = r.bytes(4 * 6);
		if let Some(x) = w.get_mut(0..6) {
			x.copy_from_slice(&[0x80; 6]);
		}
		b.push(
			OpKind::FullyConnected,
			vec![0],
			spec(vec![4], -10),
			(-10, 50),
			vec![-100_000, 0, 7, i32::MAX - 6 * MAX_PRODUCT as i32],
			vec![rq(1 << 30, -8), rq(i32::MAX, 3), rq(0, 0), rq(1_073_741_824, -31)],
			w,
		);
		b.finish(vec![0x7f, 0x80, 0, 1, 0xff, 0x40])
	}

	/// Grouped convolution with stride 2, dilation 2 and asymmetric padding.
	pub fn op_conv() -> TestCase {
		let mut r = Rng::new(4);
		let mut b = ModelBuilder::new(spec(vec![4, 7, 6], 9));
		let p = conv_params((3, 2), (2, 1), (2, 1), [4, 0, 1, 1], 2);
		// H: (7 + 5 - 5) / 2 + 1 = 4; W: (6 + 1 - 2) / 1 + 1 = 6
		let w = r.bytes(6 * 2 * 3 * 2);
		b.push(
			OpKind::Conv2d(p),
			vec![0],
			spec(vec![6, 4, 6], -1),
			FULL,
			vec![10, -10, 300, -300, 0, 5],
			(0..6).map(|i| rq(1_100_000_000 + i * 50_000_000, -7)).collect(),
			w,
		);
		let input = r.bytes(4 * 7 * 6);
		b.finish(input)
	}

	/// Depthwise convolution with channel multiplier 2 and "same" padding, ReLU.
	pub fn op_dwconv() -> TestCase {
		let mut r = Rng::new(5);
		let mut b = ModelBuilder::new(spec(vec![3, 5, 5], -50));
		let p = same3x3(3);
		let w = r.bytes(6 * 9);
		b.push(
			OpKind::Conv2d(p),
			vec![0],
			spec(vec![6, 5, 5], 20),
			(20, 127),
			vec![0, 100, -100, 1000, -1000, 0],
			vec![rq(1 << 30, -6); 6],
			w,
		);
		let input = r.bytes(3 * 25);
		b.finish(input)
	}

	/// Add of a tensor and its lookup (different zero points), plus an add of a tensor with
	/// itself with extreme output scaling.
	pub fn op_add() -> TestCase {
		let mut r = Rng::new(6);
		let mut b = ModelBuilder::new(spec(vec![2, 4, 4], -7));
		let t1 = b.push(
			OpKind::Lookup,
			vec![0],
			spec(vec![2, 4, 4], 12),
			FULL,
			vec![],
			vec![],
			r.bytes(256),
		);
		let p = AddParams { left_shift: 20, lhs: rq(1 << 30, -1), rhs: rq(1_610_612_736, -2) };
		let t2 = b.push(
			OpKind::Add(p),
			vec![0, t1],
			spec(vec![2, 4, 4], -3),
			(-3, 127),
			vec![],
			vec![rq(1_431_655_765, -19)],
			vec![],
		);
		let p = AddParams { left_shift: 7, lhs: rq(i32::MAX, 0), rhs: rq(i32::MAX, 0) };
		b.push(
			OpKind::Add(p),
			vec![t2, t2],
			spec(vec![2, 4, 4], 0),
			FULL,
			vec![],
			vec![rq(1 << 30, 2)],
			vec![],
		);
		let input = r.bytes(32);
		b.finish(input)
	}

	/// Max pool with asymmetric padding and a clamp.
	pub fn op_maxpool() -> TestCase {
		let mut r = Rng::new(7);
		let mut b = ModelBuilder::new(spec(vec![2, 5, 5], 3));
		let p = pool_params((3, 2), (2, 2), [2, 1, 0, 1]);
		// H: (5 + 2 - 3) / 2 + 1 = 3; W: (5 + 2 - 2) / 2 + 1 = 3
		b.push(
			OpKind::MaxPool(p),
			vec![0],
			spec(vec![2, 3, 3], 3),
			(-100, 100),
			vec![],
			vec![],
			vec![],
		);
		let input = r.bytes(50);
		b.finish(input)
	}

	/// Average pool with padding (count excludes padding) on values that produce ties.
	pub fn op_avgpool() -> TestCase {
		let mut b = ModelBuilder::new(spec(vec![1, 4, 4], -2));
		let p = pool_params((2, 2), (1, 1), [1, 1, 0, 0]);
		b.push(OpKind::AvgPool(p), vec![0], spec(vec![1, 4, 4], -2), FULL, vec![], vec![], vec![]);
		let input: Vec<u8> = [1i8, 2, -1, -2, 3, 0, -3, -6, 127, -128, 5, 5, -128, -127, 0, 1]
			.iter()
			.map(|&v| v as u8)
			.collect();
		b.finish(input)
	}

	/// Global average pool.
	pub fn op_gap() -> TestCase {
		let mut r = Rng::new(9);
		let mut b = ModelBuilder::new(spec(vec![3, 3, 2], 100));
		b.push(OpKind::GlobalAvgPool, vec![0], spec(vec![3], 100), FULL, vec![], vec![], vec![]);
		let input = r.bytes(18);
		b.finish(input)
	}

	/// Reshape with a clamp (a standalone ReLU).
	pub fn op_reshape() -> TestCase {
		let mut r = Rng::new(10);
		let mut b = ModelBuilder::new(spec(vec![2, 3, 4], -5));
		b.push(OpKind::Reshape, vec![0], spec(vec![6, 4], -5), (-5, 127), vec![], vec![], vec![]);
		let input = r.bytes(24);
		b.finish(input)
	}

	/// Concat of three inputs along the last axis.
	pub fn op_concat() -> TestCase {
		let mut r = Rng::new(11);
		let mut b = ModelBuilder::new(spec(vec![2, 2, 3], 4));
		let p = pool_params((1, 2), (1, 1), [0, 0, 0, 0]);
		let t1 = b.push(
			OpKind::MaxPool(p),
			vec![0],
			spec(vec![2, 2, 2], 4),
			FULL,
			vec![],
			vec![],
			vec![],
		);
		b.push(
			OpKind::Concat { axis: 2 },
			vec![0, t1, 0],
			spec(vec![2, 2, 8], 4),
			FULL,
			vec![],
			vec![],
			vec![],
		);
		let input = r.bytes(12);
		b.finish(input)
	}

	/// Lookup with every byte value as input.
	pub fn op_lookup() -> TestCase {
		let mut b = ModelBuilder::new(spec(vec![256], 0));
		b.push(
			OpKind::Lookup,
			vec![0],
			spec(vec![256], -1),
			(-100, 120),
			vec![],
			vec![],
			tanh_table(),
		);
		b.finish((0..=255u8).collect())
	}
}
