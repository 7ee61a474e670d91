//! The exact libtorch backend: executes a Verity model with tch tensors and produces the same
//! bytes as the reference interpreter (`verity_primitives::execute`), for a batch of inputs.
//!
//! How exactness is obtained (see `docs/MODEL_FORMAT.md` for the semantics):
//!
//! * **Matmul and convolution in fp32, chunked.** Inputs are int8, so `x - z_x` and the weights
//!   are small integers, exactly representable in fp32. A sum of integer products is exact in
//!   fp32, in any order and with any blocking or FMA, as long as every partial sum stays below
//!   2^24. For each op the reduction dimension is cut into chunks such that
//!   `max|x - z_x| * max_n sum_{k in chunk} |w[n][k]| < 2^24` (the sum of absolute values bounds
//!   every partial sum of the chunk, whatever the order). `max|x - z_x|` comes from the clamp
//!   range of the op that produced `x`. Chunk results are converted to int64 and summed exactly.
//!   With the weights of real models one chunk is the rule. A convolution whose single input
//!   channel would already exceed the bound runs in fp64 (exact: validation bounds every
//!   accumulator by 2^31).
//! * **Requantization with integer tensor ops (int64).** `SRDHM(x, m)` is
//!   `(x * m + 2^30) >> 31` (an arithmetic shift is a floor; this equals gemmlowp's
//!   nudge-and-truncate rule for both signs), `RoundingDivideByPOT(y, e)` is
//!   `sign(y) * ((|y| + 2^(e-1)) >> e)` (round half away from zero), the saturating left shift
//!   is a multiply and a clamp. Per-channel parameters broadcast over the batch.
//! * **Elementwise functions of one int8 input are tables.** The per-input scaling of Add and
//!   the Lookup op (with its clamp) are 256-entry tables computed with the reference
//!   arithmetic and applied with `take`.
//! * **Pools.** Max pool pads with the smallest value (every window holds a real element);
//!   average pools sum in floating point (exact for these sizes) and divide by the number of
//!   real positions with integer ops, rounding half away from zero.
//!
//! A batch is a leading dimension `N` on every tensor; nothing depends on `N`, so the result
//! is the same at every batch size.
//!
//! ## Where the integer stages run ([`TchOptions`])
//!
//! Every step's output has to come back to the host anyway (it is hashed into the trace), so on
//! CPU the backend copies back the *accumulator* (or the window sums) instead of the int8
//! result and runs the output stage in Rust with the same closed forms (`host_finish`); pools
//! and the memory ops (reshape, concat, lookup) run on the host bytes directly, and steps too
//! small for libtorch's per-op overhead (`small_step_macs`) run the reference op. On CUDA the
//! whole step stays on the device in integer tensor ops and only the int8 result is copied
//! back. The differential tests run every configuration against the reference.

use std::{
	sync::Arc,
	time::{Duration, Instant},
};

use tch::{Device, Kind, Tensor};
use verity_primitives::{
	arith::{clamp_to_i8, div_round_half_away, multiply_by_quantized_multiplier, requantize_to_i8},
	execute_step, step_hash, validate, Hash, Limits, ModelHeader, OpKind, Requant,
};

use crate::model::LoadedModel;

/// Errors of the tch backend.
#[derive(Debug, thiserror::Error)]
pub enum TchBackendError {
	#[error("libtorch: {0}")]
	Torch(#[from] tch::TchError),
	#[error("invalid model: {0}")]
	Invalid(String),
	#[error("input {index} has {got} bytes, the model takes {expected}")]
	InputSize { index: usize, expected: usize, got: usize },
}

type Result<T> = std::result::Result<T, TchBackendError>;

/// Largest magnitude below which every integer is exact in fp32.
const F32_EXACT: i64 = 1 << 24;

/// One executed sample: every tensor of the trace (`tensors[0]` = input, `tensors[i]` =
/// output of op `i`) and the step hashes `h_0..h_n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleTrace {
	pub tensors: Vec<Vec<u8>>,
	pub step_hashes: Vec<Hash>,
}

impl SampleTrace {
	pub fn output(&self) -> &[u8] {
		self.tensors.last().map(|t| t.as_slice()).unwrap_or(&[])
	}
}

/// Time spent in a batch: executing (tensor ops and copies back) and hashing the trace.
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchTimings {
	pub exec: Duration,
	pub hash: Duration,
}

/// Requantization parameters as tensors, broadcast against an accumulator `[N, C, ...]`.
struct RequantT {
	/// `2^shift` for positive shifts (saturating left shift), `None` if no shift is positive.
	left: Option<Tensor>,
	multiplier: Tensor,
	/// `(2^(e-1) or 0, e)` for the rounding right shift by `e = -shift`, `None` if all are 0.
	right: Option<(Tensor, Tensor)>,
	zero_point: i64,
	act_min: i64,
	act_max: i64,
}

impl RequantT {
	/// `rq` per channel, broadcast shape `[1, C, 1, ...]` with `trailing` ones.
	fn new(
		rq: &[Requant],
		trailing: usize,
		zero_point: i8,
		(act_min, act_max): (i8, i8),
		device: Device,
	) -> Result<Self> {
		let c = rq.len() as i64;
		let mut shape = vec![1i64, c];
		shape.extend(std::iter::repeat_n(1i64, trailing));
		let t = |v: Vec<i64>| -> Result<Tensor> {
			Ok(Tensor::f_from_slice(&v)?.f_reshape(shape.as_slice())?.f_to_device(device)?)
		};
		let left = if rq.iter().any(|r| r.shift > 0) {
			Some(t(rq.iter().map(|r| 1i64 << r.shift.max(0)).collect())?)
		} else {
			None
		};
		let right = if rq.iter().any(|r| r.shift < 0) {
			let e: Vec<i64> = rq.iter().map(|r| i64::from((-r.shift).max(0))).collect();
			let half: Vec<i64> =
				e.iter().map(|&e| if e > 0 { 1i64 << (e - 1) } else { 0 }).collect();
			Some((t(half)?, t(e)?))
		} else {
			None
		};
		Ok(RequantT {
			left,
			multiplier: t(rq.iter().map(|r| i64::from(r.multiplier)).collect())?,
			right,
			zero_point: i64::from(zero_point),
			act_min: i64::from(act_min),
			act_max: i64::from(act_max),
		})
	}

	/// `clamp(MBQM(acc, m, s) + z, act_min, act_max)` as int8; `acc` is int64 with values in
	/// the i32 range (guaranteed by validation) and is consumed.
	fn apply(&self, mut x: Tensor) -> Result<Tensor> {
		if let Some(p2) = &self.left {
			x = x.f_mul(p2)?.f_clamp(i64::from(i32::MIN), i64::from(i32::MAX))?;
		}
		// SRDHM: |x| <= 2^31 and 0 <= m < 2^31, so x * m + 2^30 fits i64.
		let _ = x.f_mul_(&self.multiplier)?;
		let _ = x.f_add_scalar_(1i64 << 30)?;
		let _ = x.f_bitwise_right_shift_tensor_scalar_(31i64)?;
		if let Some((half, e)) = &self.right {
			let sign = x.f_sign()?;
			let _ = x.f_abs_()?;
			let _ = x.f_add_(half)?;
			let _ = x.f_bitwise_right_shift_(e)?;
			let _ = x.f_mul_(&sign)?;
		}
		Ok(x.f_clamp(self.act_min - self.zero_point, self.act_max - self.zero_point)?
			.f_add_scalar(self.zero_point)?
			.f_to_kind(Kind::Int8)?)
	}
}

/// `sign(sum) * ((|sum| + count / 2) / count)` (round half away from zero), int64.
fn div_round_half_away_t(sum: &Tensor, count: &Tensor, half: &Tensor) -> Result<Tensor> {
	let sign = sum.f_sign()?;
	let q = sum.f_abs()?.f_add(half)?.f_div_tensor_mode(count, "trunc")?;
	Ok(q.f_mul(&sign)?)
}

fn full_range((lo, hi): (i8, i8)) -> bool {
	lo == i8::MIN && hi == i8::MAX
}

/// Receives the output of each step (all samples, back to back).
type Emit<'a> = dyn FnMut(u32, &Arc<Vec<u8>>) -> Result<()> + 'a;

/// One chunk of a reduction: `(start, length)` along the reduced (input) dimension.
type Chunk = (i64, i64);

/// Cut `0..k` into chunks such that for every output row `n`,
/// `xmax * sum_{k in chunk} |w(n, k)| < 2^24`. `row_abs(n, k)` is `|w|` summed over everything
/// that column `k` stands for (for a convolution: one input channel's whole kernel).
fn chunks_for(n: usize, k: usize, xmax: i64, row_abs: impl Fn(usize, usize) -> i64) -> Vec<Chunk> {
	let mut chunks = Vec::new();
	let mut start = 0usize;
	let mut sums = vec![0i64; n];
	for kk in 0..k {
		let fits = (0..n).all(|r| xmax * (sums[r] + row_abs(r, kk)) < F32_EXACT);
		if !fits && kk > start {
			chunks.push((start as i64, (kk - start) as i64));
			start = kk;
			sums.iter_mut().for_each(|s| *s = 0);
		}
		for (r, s) in sums.iter_mut().enumerate() {
			*s += row_abs(r, kk);
		}
	}
	if k > start {
		chunks.push((start as i64, (k - start) as i64));
	}
	chunks
}

enum Step {
	Fc {
		k: i64,
		x_zp: f64,
		/// `(W^T chunk [len, N] f32)` per chunk.
		chunks: Vec<Tensor>,
		chunk_ranges: Vec<Chunk>,
		/// Bias added in fp32 by `addmm` (single chunk, small enough), else in int64.
		bias_f32: Option<Tensor>,
		bias_i64: Tensor,
		rq: RequantT,
		host: HostRequant,
	},
	Conv {
		x_zp: f64,
		/// `[left, right, top, bottom]` explicit padding, or `None` when symmetric.
		pad: Option<[i64; 4]>,
		sym_pad: [i64; 2],
		stride: [i64; 2],
		dilation: [i64; 2],
		groups: i64,
		/// `(input channel index tensor (None = all), weight chunk)` per chunk.
		chunks: Vec<(Option<Tensor>, Tensor)>,
		kind: Kind,
		bias_float: Option<Tensor>,
		bias_i64: Tensor,
		rq: RequantT,
		host: HostRequant,
	},
	Add {
		lhs: Tensor,
		rhs: Tensor,
		rq: RequantT,
		host: HostRequant,
	},
	MaxPool {
		pad: Option<[i64; 4]>,
		kernel: [i64; 2],
		stride: [i64; 2],
		clamp: (i8, i8),
	},
	AvgPool {
		pad: Option<[i64; 4]>,
		kernel: [i64; 2],
		stride: [i64; 2],
		kind: Kind,
		count: Tensor,
		half: Tensor,
		/// Real positions of each output position (`OH * OW`).
		counts: Vec<i64>,
		clamp: (i8, i8),
	},
	Gap {
		count: Tensor,
		half: Tensor,
		counts: Vec<i64>,
		clamp: (i8, i8),
	},
	Reshape {
		shape: Vec<i64>,
		clamp: (i8, i8),
	},
	Concat {
		axis: i64,
		clamp: (i8, i8),
	},
	Lookup {
		table: Tensor,
	},
}

/// Requantization parameters for the host output stage: the accumulator is a sequence of
/// blocks of `plane` values, block `b` belonging to channel `b % rq.len()`.
struct HostRequant {
	rq: Vec<Requant>,
	plane: usize,
	zero_point: i8,
	clamp: (i8, i8),
}

/// How the tch backend runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TchOptions {
	/// Run the integer output stage of each step (requantization, rounding division, clamp)
	/// on the host in Rust with the reference arithmetic, fused with the copy back that the
	/// trace needs anyway (the default on CPU). Off: integer tensor ops on the device (the
	/// default on CUDA), only the int8 result is copied back.
	pub host_finish: bool,
	/// Steps whose cost (`macs * batch`) is below this run with the reference op on the host
	/// (libtorch's per-op overhead dominates there). 0: every step in libtorch.
	pub small_step_macs: u64,
	/// Hash the trace on a second thread, overlapped with the execution of later steps.
	pub hash_thread: bool,
	/// Compute the step hashes (off only to measure the cost of hashing).
	pub hash_trace: bool,
	/// `host_finish` only for step outputs of at most this many elements (whole batch); larger
	/// ones use the device tensor ops.
	pub host_max_elements: usize,
	/// Use the hashing thread only for batches whose trace has at least this many bytes
	/// (handing small traces to another thread costs more than hashing them).
	pub hash_thread_min_bytes: usize,
}

impl TchOptions {
	/// The defaults for a device.
	pub fn for_device(device: Device) -> Self {
		match device {
			Device::Cpu => TchOptions {
				host_finish: true,
				small_step_macs: 16_384,
				hash_thread: true,
				hash_trace: true,
				host_max_elements: 1 << 26,
				hash_thread_min_bytes: 1 << 18,
			},
			_ => TchOptions {
				host_finish: false,
				small_step_macs: 0,
				hash_thread: true,
				hash_trace: true,
				host_max_elements: 1 << 26,
				hash_thread_min_bytes: 1 << 18,
			},
		}
	}

	/// Everything in libtorch tensor ops, inline hashing (the plainest configuration).
	pub fn tensor_ops_only() -> Self {
		TchOptions {
			host_finish: false,
			small_step_macs: 0,
			hash_thread: false,
			hash_trace: true,
			host_max_elements: 0,
			hash_thread_min_bytes: 0,
		}
	}
}

/// A model prepared for the tch backend on one device: weights as tensors, tables, chunking.
pub struct TchModel {
	header: ModelHeader,
	weights: Vec<Vec<u8>>,
	macs: Vec<u64>,
	options: TchOptions,
	/// Declared shape of every tensor (for the step hashes).
	tensor_shapes: Arc<Vec<Vec<u32>>>,
	/// Started on the first batch that uses it.
	hash_thread: std::sync::OnceLock<Option<HashThread>>,
	steps: Vec<Step>,
	/// Per tensor: its shape as `i64` (without the batch dimension) and element count.
	shapes: Vec<(Vec<i64>, usize)>,
	device: Device,
}

fn i64s(v: &[u32]) -> Vec<i64> {
	v.iter().map(|&d| i64::from(d)).collect()
}

fn dim(shape: &[u32], i: usize) -> Result<i64> {
	shape
		.get(i)
		.map(|&d| i64::from(d))
		.ok_or_else(|| TchBackendError::Invalid(format!("shape {shape:?} has no dimension {i}")))
}

/// Explicit `[left, right, top, bottom]` padding, or `None` if it can be given to the op as a
/// symmetric `[pad_h, pad_w]`.
fn padding(top: u32, left: u32, bottom: u32, right: u32) -> (Option<[i64; 4]>, [i64; 2]) {
	if top == bottom && left == right {
		(None, [i64::from(top), i64::from(left)])
	} else {
		(Some([i64::from(left), i64::from(right), i64::from(top), i64::from(bottom)]), [0, 0])
	}
}

/// Number of real (non-padded) positions of each window along one axis.
fn real_counts(size: u32, out: u32, kernel: u32, stride: u32, pad_before: u32) -> Vec<i64> {
	(0..i64::from(out))
		.map(|o| {
			let start = o * i64::from(stride) - i64::from(pad_before);
			let end = start + i64::from(kernel);
			(end.min(i64::from(size)) - start.max(0)).max(0)
		})
		.collect()
}

impl TchModel {
	/// Prepare a verified model for `device`. The header is validated (any failure is an
	/// error, never a panic later).
	pub fn new(model: &LoadedModel, device: Device) -> Result<Self> {
		Self::with_options(model, device, TchOptions::for_device(device))
	}

	/// Prepare with explicit options.
	pub fn with_options(model: &LoadedModel, device: Device, options: TchOptions) -> Result<Self> {
		let header = &model.header;
		validate(header, &Limits::UNLIMITED)
			.map_err(|e| TchBackendError::Invalid(format!("{e:?}")))?;
		let mut shapes = Vec::with_capacity(header.ops.len() + 1);
		for i in 0..=header.num_ops() {
			let spec = header
				.tensor_spec(i)
				.ok_or_else(|| TchBackendError::Invalid(format!("no tensor {i}")))?;
			let numel = spec.num_elements().unwrap_or(0) as usize;
			shapes.push((i64s(&spec.shape), numel));
		}
		// Largest |x - z| of every tensor, from the clamp range of the op that produced it.
		let xmax = |t: u32, zp: i8| -> i64 {
			let (lo, hi) = match header.op(t) {
				Some(op) if t > 0 => (op.act_min, op.act_max),
				_ => (i8::MIN, i8::MAX),
			};
			(i64::from(hi) - i64::from(zp)).abs().max((i64::from(lo) - i64::from(zp)).abs())
		};
		let mut steps = Vec::with_capacity(header.ops.len());
		for (i, (op, weights)) in header.ops.iter().zip(&model.weights).enumerate() {
			let first =
				*op.inputs.first().ok_or_else(|| TchBackendError::Invalid("no input".into()))?;
			let x_spec = header
				.tensor_spec(first)
				.ok_or_else(|| TchBackendError::Invalid(format!("op {}: bad input", i + 1)))?;
			let clamp = (op.act_min, op.act_max);
			let out = &op.output;
			let w_i8: Vec<i8> = weights.iter().map(|&b| b as i8).collect();
			let step = match &op.kind {
				OpKind::FullyConnected => {
					let n = op.bias.len();
					let k = x_spec.num_elements().unwrap_or(0) as usize;
					let xm = xmax(first, x_spec.zero_point);
					let w_at = |r: usize, c: usize| i64::from(w_i8[r * k + c]).abs();
					let ranges = chunks_for(n, k, xm, w_at);
					let w = Tensor::f_from_slice(&w_i8)?
						.f_reshape([n as i64, k as i64])?
						.f_to_kind(Kind::Float)?
						.f_t_()?
						.f_contiguous()?
						.f_to_device(device)?; // [K, N]
					let chunks = ranges
						.iter()
						.map(|&(s, l)| Ok(w.f_narrow(0, s, l)?.f_contiguous()?))
						.collect::<Result<Vec<_>>>()?;
					let bound: i64 = (0..n)
						.map(|r| (0..k).map(|c| w_at(r, c)).sum::<i64>() * xm)
						.max()
						.unwrap_or(0);
					let max_bias = op.bias.iter().map(|b| i64::from(*b).abs()).max().unwrap_or(0);
					let bias64: Vec<i64> = op.bias.iter().map(|&b| i64::from(b)).collect();
					let bias_i64 = Tensor::f_from_slice(&bias64)?
						.f_reshape([1, n as i64])?
						.f_to_device(device)?;
					let bias_f32 = if chunks.len() == 1 && bound + max_bias < F32_EXACT {
						Some(bias_i64.f_to_kind(Kind::Float)?)
					} else {
						None
					};
					Step::Fc {
						k: k as i64,
						x_zp: f64::from(x_spec.zero_point),
						chunks,
						chunk_ranges: ranges,
						bias_f32,
						bias_i64,
						rq: RequantT::new(&op.requant, 0, out.zero_point, clamp, device)?,
						host: HostRequant {
							rq: op.requant.clone(),
							plane: 1,
							zero_point: out.zero_point,
							clamp,
						},
					}
				},
				OpKind::Conv2d(p) => {
					let cin = dim(&x_spec.shape, 0)? as usize;
					let cout = op.bias.len();
					let groups = p.groups as usize;
					let cin_g = cin / groups.max(1);
					let taps = (p.kernel_h * p.kernel_w) as usize;
					let per_out = cin_g * taps;
					let xm = xmax(first, x_spec.zero_point);
					// |w| summed over one input channel's kernel, per output channel.
					let ch_abs = |co: usize, c: usize| -> i64 {
						w_i8[co * per_out + c * taps..co * per_out + (c + 1) * taps]
							.iter()
							.map(|&v| i64::from(v).abs())
							.sum()
					};
					let single_too_big =
						(0..cout).any(|co| (0..cin_g).any(|c| xm * ch_abs(co, c) >= F32_EXACT));
					let (kind, ranges) = if single_too_big {
						(Kind::Double, vec![(0i64, cin_g as i64)])
					} else {
						(Kind::Float, chunks_for(cout, cin_g, xm, ch_abs))
					};
					let w = Tensor::f_from_slice(&w_i8)?
						.f_reshape([
							cout as i64,
							cin_g as i64,
							i64::from(p.kernel_h),
							i64::from(p.kernel_w),
						])?
						.f_to_kind(kind)?
						.f_to_device(device)?;
					let mut chunks = Vec::with_capacity(ranges.len());
					for &(s, l) in &ranges {
						let wc = w.f_narrow(1, s, l)?.f_contiguous()?;
						let index = if ranges.len() == 1 {
							None
						} else {
							let idx: Vec<i64> = (0..groups as i64)
								.flat_map(|g| (s..s + l).map(move |c| g * cin_g as i64 + c))
								.collect();
							Some(Tensor::f_from_slice(&idx)?.f_to_device(device)?)
						};
						chunks.push((index, wc));
					}
					let bound: i64 = (0..cout)
						.map(|co| (0..cin_g).map(|c| ch_abs(co, c)).sum::<i64>() * xm)
						.max()
						.unwrap_or(0);
					let max_bias = op.bias.iter().map(|b| i64::from(*b).abs()).max().unwrap_or(0);
					let bias64: Vec<i64> = op.bias.iter().map(|&b| i64::from(b)).collect();
					let bias_i64 = Tensor::f_from_slice(&bias64)?
						.f_reshape([1, cout as i64, 1, 1])?
						.f_to_device(device)?;
					let bias_float = if chunks.len() == 1
						&& (kind == Kind::Double || bound + max_bias < F32_EXACT)
					{
						Some(Tensor::f_from_slice(&bias64)?.f_to_kind(kind)?.f_to_device(device)?)
					} else {
						None
					};
					let (pad, sym_pad) = padding(p.pad_top, p.pad_left, p.pad_bottom, p.pad_right);
					Step::Conv {
						x_zp: f64::from(x_spec.zero_point),
						pad,
						sym_pad,
						stride: [i64::from(p.stride_h), i64::from(p.stride_w)],
						dilation: [i64::from(p.dilation_h), i64::from(p.dilation_w)],
						groups: groups as i64,
						chunks,
						kind,
						bias_float,
						bias_i64,
						rq: RequantT::new(&op.requant, 2, out.zero_point, clamp, device)?,
						host: HostRequant {
							rq: op.requant.clone(),
							plane: (dim(&out.shape, 1)? * dim(&out.shape, 2)?) as usize,
							zero_point: out.zero_point,
							clamp,
						},
					}
				},
				OpKind::Add(p) => {
					let second = *op
						.inputs
						.get(1)
						.ok_or_else(|| TchBackendError::Invalid("add needs 2 inputs".into()))?;
					let y_spec = header
						.tensor_spec(second)
						.ok_or_else(|| TchBackendError::Invalid("bad add input".into()))?;
					let table = |zp: i8, rq: Requant| -> Result<Tensor> {
						let v: Vec<i64> = (-128i32..=127)
							.map(|q| {
								let a = (q - i32::from(zp)) * (1i32 << p.left_shift);
								i64::from(multiply_by_quantized_multiplier(
									a,
									rq.multiplier,
									rq.shift,
								))
							})
							.collect();
						Ok(Tensor::f_from_slice(&v)?.f_to_device(device)?)
					};
					let out_rq =
						op.requant.first().copied().ok_or_else(|| {
							TchBackendError::Invalid("add without requant".into())
						})?;
					Step::Add {
						lhs: table(x_spec.zero_point, p.lhs)?,
						rhs: table(y_spec.zero_point, p.rhs)?,
						rq: RequantT::new(&[out_rq], 0, out.zero_point, clamp, device)?,
						host: HostRequant {
							rq: vec![out_rq],
							plane: 1,
							zero_point: out.zero_point,
							clamp,
						},
					}
				},
				OpKind::MaxPool(p) => {
					let (pad, sym) = padding(p.pad_top, p.pad_left, p.pad_bottom, p.pad_right);
					// torch's own padding (-inf) needs pad <= kernel / 2; else pad explicitly.
					let pad = match pad {
						None if 2 * sym[0] <= i64::from(p.kernel_h)
							&& 2 * sym[1] <= i64::from(p.kernel_w) =>
						{
							None
						},
						_ => Some([
							i64::from(p.pad_left),
							i64::from(p.pad_right),
							i64::from(p.pad_top),
							i64::from(p.pad_bottom),
						]),
					};
					Step::MaxPool {
						pad,
						kernel: [i64::from(p.kernel_h), i64::from(p.kernel_w)],
						stride: [i64::from(p.stride_h), i64::from(p.stride_w)],
						clamp,
					}
				},
				OpKind::AvgPool(p) => {
					let h = dim(&x_spec.shape, 1)? as u32;
					let w = dim(&x_spec.shape, 2)? as u32;
					let oh = dim(&out.shape, 1)? as u32;
					let ow = dim(&out.shape, 2)? as u32;
					let ry = real_counts(h, oh, p.kernel_h, p.stride_h, p.pad_top);
					let rx = real_counts(w, ow, p.kernel_w, p.stride_w, p.pad_left);
					let count: Vec<i64> =
						ry.iter().flat_map(|&a| rx.iter().map(move |&b| a * b)).collect();
					let half: Vec<i64> = count.iter().map(|c| c / 2).collect();
					let to_t = |v: &[i64]| -> Result<Tensor> {
						Ok(Tensor::f_from_slice(v)?
							.f_reshape([1, 1, i64::from(oh), i64::from(ow)])?
							.f_to_device(device)?)
					};
					let window = i64::from(p.kernel_h) * i64::from(p.kernel_w) * 128;
					Step::AvgPool {
						pad: Some([
							i64::from(p.pad_left),
							i64::from(p.pad_right),
							i64::from(p.pad_top),
							i64::from(p.pad_bottom),
						]),
						kernel: [i64::from(p.kernel_h), i64::from(p.kernel_w)],
						stride: [i64::from(p.stride_h), i64::from(p.stride_w)],
						kind: if window < F32_EXACT { Kind::Float } else { Kind::Double },
						count: to_t(&count)?,
						counts: count.clone(),
						half: to_t(&half)?,
						clamp,
					}
				},
				OpKind::GlobalAvgPool => {
					let plane = dim(&x_spec.shape, 1)? * dim(&x_spec.shape, 2)?;
					Step::Gap {
						count: Tensor::f_from_slice(&[plane])?.f_to_device(device)?,
						counts: vec![plane],
						half: Tensor::f_from_slice(&[plane / 2])?.f_to_device(device)?,
						clamp,
					}
				},
				OpKind::Reshape => Step::Reshape { shape: i64s(&out.shape), clamp },
				OpKind::Concat { axis } => Step::Concat { axis: i64::from(*axis) + 1, clamp },
				OpKind::Lookup => {
					let table: Vec<i8> =
						w_i8.iter().map(|&v| v.clamp(op.act_min, op.act_max)).collect();
					Step::Lookup { table: Tensor::f_from_slice(&table)?.f_to_device(device)? }
				},
			};
			steps.push(step);
		}
		let macs = model.info.steps.iter().map(|s| s.macs).collect();
		let tensor_shapes: Arc<Vec<Vec<u32>>> = Arc::new(
			(0..=header.num_ops())
				.map(|i| header.tensor_spec(i).map(|s| s.shape.clone()).unwrap_or_default())
				.collect(),
		);
		let hash_thread = std::sync::OnceLock::new();
		Ok(TchModel {
			tensor_shapes,
			hash_thread,
			header: header.clone(),
			weights: model.weights.clone(),
			macs,
			options,
			steps,
			shapes,
			device,
		})
	}

	pub fn header(&self) -> &ModelHeader {
		&self.header
	}

	pub fn device(&self) -> Device {
		self.device
	}

	/// The options in use.
	pub fn options(&self) -> TchOptions {
		self.options
	}

	/// Run a batch of inputs; returns one trace per input (in order) and the timings.
	pub fn run_batch<I: AsRef<[u8]>>(
		&self,
		inputs: &[I],
	) -> Result<(Vec<SampleTrace>, BatchTimings)> {
		let t0 = Instant::now();
		let n = inputs.len();
		let in_len = self.shapes.first().map(|s| s.1).unwrap_or(0);
		let mut flat: Vec<u8> = Vec::with_capacity(n * in_len);
		for (index, x) in inputs.iter().enumerate() {
			let x = x.as_ref();
			if x.len() != in_len {
				return Err(TchBackendError::InputSize { index, expected: in_len, got: x.len() });
			}
			flat.extend_from_slice(x);
		}
		if n == 0 {
			return Ok((Vec::new(), BatchTimings::default()));
		}
		let hash = self.options.hash_trace;
		let trace_bytes = n * self.shapes.iter().map(|s| s.1).sum::<usize>();
		let thread = if self.options.hash_thread
			&& hash && trace_bytes >= self.options.hash_thread_min_bytes
		{
			self.hash_thread.get_or_init(|| HashThread::spawn(self.tensor_shapes.clone())).as_ref()
		} else {
			None
		};
		let Some(thread) = thread else {
			// Inline: keep the step outputs and hash them all at the end in one `hash_many`
			// (SIMD lanes filled across samples and steps).
			let mut hasher = Hasher::new(self.tensor_shapes.clone(), n, false);
			let mut outputs: Vec<(u32, Arc<Vec<u8>>)> = Vec::with_capacity(self.steps.len() + 1);
			let input = Arc::new(flat);
			hasher.add(0, &input);
			outputs.push((0, input.clone()));
			self.execute(n, input, &mut |i, buf| {
				hasher.add(i, buf);
				outputs.push((i, buf.clone()));
				Ok(())
			})?;
			if hash {
				hasher.hash_all(&outputs);
			}
			let hash_time = hasher.busy;
			let total = t0.elapsed();
			let timings = BatchTimings { exec: total.saturating_sub(hash_time), hash: hash_time };
			return Ok((hasher.traces, timings));
		};
		// Hash on the model's hashing thread, overlapped with the execution of later steps.
		let stopped = || TchBackendError::Invalid("hashing thread stopped".into());
		let (tx, rx) = std::sync::mpsc::channel::<(u32, Arc<Vec<u8>>)>();
		let (done_tx, done_rx) = std::sync::mpsc::channel::<Hasher>();
		thread
			.jobs
			.lock()
			.map_err(|_| stopped())?
			.send(HashJob { n, steps: rx, done: done_tx })
			.map_err(|_| stopped())?;
		let input = Arc::new(flat);
		tx.send((0, input.clone())).map_err(|_| stopped())?;
		let ran =
			self.execute(n, input, &mut |i, buf| tx.send((i, buf.clone())).map_err(|_| stopped()));
		drop(tx);
		// `exec`: until the last step was computed; `hash`: the hashing thread's busy time
		// (overlapped with execution; the caller only waits for its tail).
		let t_exec = t0.elapsed();
		let hasher = done_rx.recv().map_err(|_| stopped())?;
		ran?;
		Ok((hasher.traces, BatchTimings { exec: t_exec, hash: hasher.busy }))
	}

	/// Execute every step on a batch whose input bytes are `input` (`n` samples back to back);
	/// `emit(i, bytes)` receives the output of step `i` (all samples, back to back).
	fn execute(&self, n: usize, input: Arc<Vec<u8>>, emit: &mut Emit<'_>) -> Result<()> {
		let count = self.steps.len() + 1;
		let mut host: Vec<Option<Arc<Vec<u8>>>> = vec![None; count];
		let mut dev: Vec<Option<Tensor>> = (0..count).map(|_| None).collect();
		host[0] = Some(input);
		for (i, (step, op)) in self.steps.iter().zip(&self.header.ops).enumerate() {
			let index = i + 1;
			let len = self.shapes.get(index).map(|s| s.1).unwrap_or(0);
			let small = self.options.small_step_macs > 0
				&& self.macs.get(i).copied().unwrap_or(u64::MAX).saturating_mul(n as u64)
					< self.options.small_step_macs;
			let on_host =
				matches!(step, Step::Reshape { .. } | Step::Concat { .. } | Step::Lookup { .. });
			let host_ok = self.options.host_finish && n * len <= self.options.host_max_elements;
			let (bytes, tensor) = if small || (on_host && self.options.host_finish) {
				(self.reference_step(index as u32, op, n, &host)?, None)
			} else if let (OpKind::MaxPool(p), true) = (&op.kind, host_ok) {
				let r = *op.inputs.first().unwrap_or(&0) as usize;
				let x = host.get(r).and_then(|b| b.as_ref()).ok_or_else(|| {
					TchBackendError::Invalid(format!("op {index}: input {r} not computed"))
				})?;
				let in_shape =
					self.header.tensor_spec(r as u32).map(|s| s.shape.clone()).unwrap_or_default();
				(
					host_max_pool(x, n, &in_shape, &op.output.shape, p, (op.act_min, op.act_max)),
					None,
				)
			} else if let (Some(kind), true) = (linear_kind(step), host_ok) {
				// FullyConnected / Conv2d: build `x - z_x` as floats on the host (one pass)
				// instead of uploading int8 and converting on the device.
				let r = *op.inputs.first().unwrap_or(&0) as usize;
				let xb = host.get(r).and_then(|b| b.as_ref()).ok_or_else(|| {
					TchBackendError::Invalid(format!("op {index}: input {r} not computed"))
				})?;
				let zp = self.header.tensor_spec(r as u32).map(|s| s.zero_point).unwrap_or(0);
				let mut shape = vec![n as i64];
				shape.extend(self.shapes.get(r).map(|s| s.0.as_slice()).unwrap_or(&[]));
				let mut t = Tensor::f_empty(shape.as_slice(), (kind, Device::Cpu))?;
				if kind == Kind::Float {
					let z = f32::from(zp);
					for (d, &b) in cpu_slice_mut::<f32>(&mut t, xb.len())?.iter_mut().zip(xb.iter())
					{
						*d = f32::from(b as i8) - z;
					}
				} else {
					let z = f64::from(zp);
					for (d, &b) in cpu_slice_mut::<f64>(&mut t, xb.len())?.iter_mut().zip(xb.iter())
					{
						*d = f64::from(b as i8) - z;
					}
				}
				let t = t.f_to_device(self.device)?;
				let t = match step {
					Step::Fc { k, .. } => t.f_reshape([n as i64, *k])?,
					_ => t,
				};
				let none = |_: u32| -> Result<&Tensor> {
					Err(TchBackendError::Invalid("unexpected input".into()))
				};
				let pre = self.run_step(step, op, &t, &none, n, Some(t.shallow_clone()))?;
				(self.finish_host(pre, n * len)?, None)
			} else {
				for &r in &op.inputs {
					let r = r as usize;
					if dev.get(r).map(|t| t.is_none()).unwrap_or(false) {
						let t = self.upload(r, n, &host)?;
						dev[r] = Some(t);
					}
				}
				let get = |r: u32| -> Result<&Tensor> {
					dev.get(r as usize).and_then(|t| t.as_ref()).ok_or_else(|| {
						TchBackendError::Invalid(format!("op {index}: missing input {r}"))
					})
				};
				let x = get(*op.inputs.first().unwrap_or(&0))?;
				let pre = self.run_step(step, op, x, &get, n, None)?;
				if host_ok {
					(self.finish_host(pre, n * len)?, None)
				} else {
					let y = finish_device(pre)?.f_contiguous()?;
					let mut buf = vec![0u8; n * len];
					y.f_copy_data_u8(&mut buf, n * len)?;
					(buf, Some(y))
				}
			};
			if bytes.len() != n * len {
				return Err(TchBackendError::Invalid(format!("op {index}: output size")));
			}
			let bytes = Arc::new(bytes);
			emit(index as u32, &bytes)?;
			host[index] = Some(bytes);
			dev[index] = tensor;
		}
		Ok(())
	}

	/// The device tensor `[n, shape]` of a host batch buffer (bytes reinterpreted as int8).
	fn upload(&self, index: usize, n: usize, host: &[Option<Arc<Vec<u8>>>]) -> Result<Tensor> {
		let bytes = host
			.get(index)
			.and_then(|b| b.as_ref())
			.ok_or_else(|| TchBackendError::Invalid(format!("tensor {index} not computed")))?;
		let mut shape = vec![n as i64];
		shape.extend(self.shapes.get(index).map(|s| s.0.as_slice()).unwrap_or(&[]));
		Ok(Tensor::f_from_slice(bytes.as_slice())?
			.f_view_dtype(Kind::Int8)?
			.f_reshape(shape.as_slice())?
			.f_to_device(self.device)?)
	}

	/// One step with the reference op on the host, sample by sample.
	fn reference_step(
		&self,
		step: u32,
		op: &verity_primitives::Op,
		n: usize,
		host: &[Option<Arc<Vec<u8>>>],
	) -> Result<Vec<u8>> {
		let weights = self.weights.get(step as usize - 1).map(|w| w.as_slice()).unwrap_or(&[]);
		let mut bufs = Vec::with_capacity(op.inputs.len());
		for &r in &op.inputs {
			let b = host.get(r as usize).and_then(|b| b.as_ref()).ok_or_else(|| {
				TchBackendError::Invalid(format!("op {step}: input {r} not computed"))
			})?;
			let len = self.shapes.get(r as usize).map(|s| s.1).unwrap_or(0);
			bufs.push((b, len));
		}
		let mut out = Vec::new();
		let mut sample: Vec<&[u8]> = Vec::with_capacity(bufs.len());
		for s in 0..n {
			sample.clear();
			for (b, len) in &bufs {
				sample.push(b.get(s * len..(s + 1) * len).unwrap_or(&[]));
			}
			let y = execute_step(&self.header, step, &sample, weights)
				.map_err(|e| TchBackendError::Invalid(format!("{e:?}")))?;
			out.extend_from_slice(&y);
		}
		Ok(out)
	}

	/// Finish a step on the host: copy the pre-result back and run its integer stage in Rust
	/// with the reference arithmetic (requantization, rounding division, clamp).
	fn finish_host(&self, pre: Pre<'_>, numel: usize) -> Result<Vec<u8>> {
		Ok(match pre {
			Pre::Done(t) => {
				let t = t.f_contiguous()?;
				let mut buf = vec![0u8; numel];
				t.f_copy_data_u8(&mut buf, numel)?;
				buf
			},
			Pre::Requant { acc, host, .. } => {
				let acc = acc.f_contiguous()?;
				let mut out = Vec::with_capacity(numel);
				match acc.f_kind()? {
					Kind::Float => host_requant(cpu_slice::<f32>(&acc, numel)?, host, &mut out),
					Kind::Double => host_requant(cpu_slice::<f64>(&acc, numel)?, host, &mut out),
					_ => host_requant(&to_i64s(&acc, numel)?, host, &mut out),
				}
				out
			},
			Pre::DivRound { sum, counts, clamp: (lo, hi), .. } => {
				let vals = to_i64s(&sum, numel)?;
				let mut out = Vec::with_capacity(numel);
				for chunk in vals.chunks(counts.len().max(1)) {
					out.extend(chunk.iter().zip(counts.iter()).map(|(&s, &c)| {
						let v = div_round_half_away(s, c).unwrap_or(0);
						clamp_to_i8(v, lo, hi) as u8
					}));
				}
				out
			},
			Pre::Clamp { t, offset, clamp: (lo, hi) } => {
				let vals = to_i64s(&t, numel)?;
				vals.iter().map(|&v| clamp_to_i8(v + offset, lo, hi) as u8).collect()
			},
		})
	}

	fn run_step<'a>(
		&'a self,
		step: &'a Step,
		op: &verity_primitives::Op,
		x: &Tensor,
		get: &dyn Fn(u32) -> Result<&'a Tensor>,
		n: usize,
		prepared: Option<Tensor>,
	) -> Result<Pre<'a>> {
		let n = n as i64;
		Ok(match step {
			Step::Fc { k, x_zp, chunks, chunk_ranges, bias_f32, bias_i64, rq, host } => {
				let xf = match prepared {
					Some(t) => t,
					None => x.f_reshape([n, *k])?.f_to_kind(Kind::Float)?.f_sub_scalar_(*x_zp)?,
				};
				let acc = if let (Some(b), [w]) = (bias_f32, chunks.as_slice()) {
					b.f_addmm(&xf, w)?
				} else {
					let mut acc = bias_i64.shallow_clone();
					for (w, &(s, l)) in chunks.iter().zip(chunk_ranges) {
						let part = xf.f_narrow(1, s, l)?.f_mm(w)?.f_to_kind(Kind::Int64)?;
						acc = acc.f_add(&part)?;
					}
					acc
				};
				Pre::Requant { acc, rq, host }
			},
			Step::Conv {
				x_zp,
				pad,
				sym_pad,
				stride,
				dilation,
				groups,
				chunks,
				kind,
				bias_float,
				bias_i64,
				rq,
				host,
			} => {
				let mut xf = match prepared {
					Some(t) => t,
					None => x.f_to_kind(*kind)?.f_sub_scalar_(*x_zp)?,
				};
				if let Some(p) = pad {
					xf = xf.f_constant_pad_nd(p.as_slice())?;
				}
				let acc = if let (Some(b), [(None, w)]) = (bias_float, chunks.as_slice()) {
					xf.f_conv2d(
						w,
						Some(b),
						stride.as_slice(),
						sym_pad.as_slice(),
						dilation.as_slice(),
						*groups,
					)?
				} else {
					let mut acc = bias_i64.shallow_clone();
					for (index, w) in chunks {
						let xs = match index {
							Some(idx) => xf.f_index_select(1, idx)?,
							None => xf.shallow_clone(),
						};
						let part = xs
							.f_conv2d::<Tensor>(
								w,
								None,
								stride.as_slice(),
								sym_pad.as_slice(),
								dilation.as_slice(),
								*groups,
							)?
							.f_to_kind(Kind::Int64)?;
						acc = acc.f_add(&part)?;
					}
					acc
				};
				Pre::Requant { acc, rq, host }
			},
			Step::Add { lhs, rhs, rq, host } => {
				let second = *op.inputs.get(1).unwrap_or(&0);
				let y = get(second)?;
				let a = lhs.f_take(&x.f_to_kind(Kind::Int64)?.f_add_scalar_(128i64)?)?;
				let b = rhs.f_take(&y.f_to_kind(Kind::Int64)?.f_add_scalar_(128i64)?)?;
				Pre::Requant { acc: a.f_add(&b)?, rq, host }
			},
			Step::MaxPool { pad, kernel, stride, clamp } => {
				// Values shifted to 0..=255 so that zero padding never wins a window.
				let mut xf = x.f_to_kind(Kind::Float)?.f_add_scalar_(128.0)?;
				let torch_pad = match pad {
					Some(p) => {
						xf = xf.f_constant_pad_nd(p.as_slice())?;
						[0, 0]
					},
					None => {
						let (ph, pw) = match op.kind {
							OpKind::MaxPool(p) => (i64::from(p.pad_top), i64::from(p.pad_left)),
							_ => (0, 0),
						};
						[ph, pw]
					},
				};
				let y = xf.f_max_pool2d(
					kernel.as_slice(),
					stride.as_slice(),
					torch_pad.as_slice(),
					[1i64, 1].as_slice(),
					false,
				)?;
				Pre::Clamp { t: y, offset: -128, clamp: *clamp }
			},
			Step::AvgPool { pad, kernel, stride, kind, count, half, counts, clamp } => {
				let mut xf = x.f_to_kind(*kind)?;
				if let Some(p) = pad {
					xf = xf.f_constant_pad_nd(p.as_slice())?;
				}
				let sum = xf.f_avg_pool2d(
					kernel.as_slice(),
					stride.as_slice(),
					[0i64, 0].as_slice(),
					false,
					true,
					Some(1i64),
				)?;
				Pre::DivRound { sum, count, half, counts, clamp: *clamp }
			},
			Step::Gap { count, half, counts, clamp } => {
				let sum = x.f_sum_dim_intlist([2i64, 3].as_slice(), false, Kind::Int64)?;
				Pre::DivRound { sum, count, half, counts, clamp: *clamp }
			},
			Step::Reshape { shape, clamp } => {
				let mut s = vec![n];
				s.extend(shape);
				let y = x.f_reshape(s.as_slice())?;
				Pre::Done(if full_range(*clamp) {
					y
				} else {
					y.f_clamp(i64::from(clamp.0), i64::from(clamp.1))?
				})
			},
			Step::Concat { axis, clamp } => {
				let mut parts = Vec::with_capacity(op.inputs.len());
				for &r in &op.inputs {
					parts.push(get(r)?);
				}
				let y = Tensor::f_cat(&parts, *axis)?;
				Pre::Done(if full_range(*clamp) {
					y
				} else {
					y.f_clamp(i64::from(clamp.0), i64::from(clamp.1))?
				})
			},
			Step::Lookup { table } => {
				Pre::Done(table.f_take(&x.f_to_kind(Kind::Int64)?.f_add_scalar_(128i64)?)?)
			},
		})
	}
}

/// The float kind of the input of a FullyConnected or Conv2d step, `None` for other steps.
fn linear_kind(step: &Step) -> Option<Kind> {
	match step {
		Step::Fc { .. } => Some(Kind::Float),
		Step::Conv { kind, .. } => Some(*kind),
		_ => None,
	}
}

/// The result of a step before its integer output stage.
enum Pre<'a> {
	/// The int8 output.
	Done(Tensor),
	/// An integer-valued accumulator (f32, f64 or i64; bias included) to requantize, channel
	/// by channel.
	Requant { acc: Tensor, rq: &'a RequantT, host: &'a HostRequant },
	/// Integer-valued window sums to divide (rounded half away from zero) and clamp.
	DivRound {
		sum: Tensor,
		count: &'a Tensor,
		half: &'a Tensor,
		counts: &'a [i64],
		clamp: (i8, i8),
	},
	/// Integer values to offset and clamp.
	Clamp { t: Tensor, offset: i64, clamp: (i8, i8) },
}

/// Finish a step with integer tensor ops on the device.
fn finish_device(pre: Pre<'_>) -> Result<Tensor> {
	match pre {
		Pre::Done(t) => Ok(t),
		Pre::Requant { acc, rq, .. } => rq.apply(acc.f_to_kind(Kind::Int64)?),
		Pre::DivRound { sum, count, half, clamp, .. } => {
			clamp_i8(div_round_half_away_t(&sum.f_to_kind(Kind::Int64)?, count, half)?, clamp)
		},
		Pre::Clamp { t, offset, clamp } => {
			clamp_i8(t.f_to_kind(Kind::Int64)?.f_add_scalar(offset)?, clamp)
		},
	}
}

/// The elements of a contiguous CPU tensor, borrowed without a copy.
fn cpu_slice<T: tch::kind::Element>(t: &Tensor, numel: usize) -> Result<&[T]> {
	if t.device() != Device::Cpu
		|| t.f_kind()? != T::KIND
		|| !t.is_contiguous()
		|| t.numel() != numel
		|| t.data_ptr().is_null()
	{
		return Err(TchBackendError::Invalid("not a contiguous CPU tensor of that kind".into()));
	}
	// SAFETY: `t` is a contiguous CPU tensor of `numel` elements of type `T` (checked above), so
	// its data pointer is valid and aligned for `numel` reads of `T`; the slice borrows `t`,
	// which keeps the storage alive, and nothing writes to the tensor while it is borrowed.
	Ok(unsafe { std::slice::from_raw_parts(t.data_ptr() as *const T, numel) })
}

/// The elements of a freshly allocated, contiguous CPU tensor, to fill in place.
fn cpu_slice_mut<T: tch::kind::Element>(t: &mut Tensor, numel: usize) -> Result<&mut [T]> {
	if t.device() != Device::Cpu
		|| t.f_kind()? != T::KIND
		|| !t.is_contiguous()
		|| t.numel() != numel
		|| t.data_ptr().is_null()
	{
		return Err(TchBackendError::Invalid("not a contiguous CPU tensor of that kind".into()));
	}
	// SAFETY: as in `cpu_slice`; the tensor is borrowed mutably and was just created by the
	// caller, so no other handle reads or writes its storage while the slice lives.
	Ok(unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut T, numel) })
}

/// An integer-valued accumulator element (validation keeps every accumulator in `i32`).
trait AccValue: Copy {
	fn to_i32(self) -> i32;
}
impl AccValue for f32 {
	#[inline(always)]
	fn to_i32(self) -> i32 {
		self as i32
	}
}
impl AccValue for f64 {
	#[inline(always)]
	fn to_i32(self) -> i32 {
		self as i32
	}
}
impl AccValue for i64 {
	#[inline(always)]
	fn to_i32(self) -> i32 {
		self.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
	}
}

/// The output stage on the host: `clamp(MBQM(acc, rq[c]) + z, lo, hi)` for every element.
/// For the usual non-positive shifts it uses the same closed forms as the tensor path
/// (`SRDHM = (x * m + 2^30) >> 31` for `m >= 0`, `RDBPOT(y, e) = sign(y) * ((|y| + 2^(e-1)) >>
/// e)`), written so that the compiler vectorizes them; otherwise the reference function.
/// Runs an AVX2 build of the loop where the CPU has AVX2.
fn host_requant<T: AccValue>(vals: &[T], host: &HostRequant, out: &mut Vec<u8>) {
	#[cfg(target_arch = "x86_64")]
	if std::arch::is_x86_feature_detected!("avx2") {
		// SAFETY: the CPU supports AVX2 (checked just above).
		unsafe { host_requant_avx2(vals, host, out) };
		return;
	}
	host_requant_impl(vals, host, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn host_requant_avx2<T: AccValue>(vals: &[T], host: &HostRequant, out: &mut Vec<u8>) {
	host_requant_impl(vals, host, out)
}

#[inline(always)]
fn host_requant_impl<T: AccValue>(vals: &[T], host: &HostRequant, out: &mut Vec<u8>) {
	let (lo, hi) = host.clamp;
	let zp = i32::from(host.zero_point);
	let (lo_z, hi_z) = (i32::from(lo) - zp, i32::from(hi) - zp);
	let channels = host.rq.len().max(1);
	let start = out.len();
	out.resize(start + vals.len(), 0);
	let dst = &mut out[start..];
	let plane = host.plane.max(1);
	for (block, (chunk, d)) in vals.chunks(plane).zip(dst.chunks_mut(plane)).enumerate() {
		let rq =
			host.rq.get(block % channels).copied().unwrap_or(Requant { multiplier: 0, shift: 0 });
		if rq.shift > 0 || rq.multiplier < 0 {
			for (o, v) in d.iter_mut().zip(chunk) {
				*o = requantize_to_i8(v.to_i32(), rq, host.zero_point, lo, hi);
			}
			continue;
		}
		let m = i64::from(rq.multiplier);
		let e = u32::from(rq.shift.unsigned_abs()).min(31);
		let half: u32 = if e > 0 { 1 << (e - 1) } else { 0 };
		for (o, v) in d.iter_mut().zip(chunk) {
			// |x| <= 2^31 and 0 <= m < 2^31: p fits i64, floor(p / 2^31) fits i32, and its
			// two's complement is bits 31..62 of p (a logical shift gives the same low bits).
			let p = i64::from(v.to_i32()) * m + (1i64 << 30);
			let y = ((p as u64) >> 31) as u32 as i32;
			// |y| + 2^(e-1) <= 2^31 + 2^30 fits u32.
			let a = (y.unsigned_abs() + half) >> e;
			let z = if y < 0 { (a as i32).wrapping_neg() } else { a as i32 };
			*o = (z.clamp(lo_z, hi_z) + zp) as u8;
		}
	}
}

/// Max pool on the host over `[n, C, H, W]` int8 bytes (padding ignored), then the clamp.
fn host_max_pool(
	x: &[u8],
	n: usize,
	in_shape: &[u32],
	out_shape: &[u32],
	p: &verity_primitives::PoolParams,
	(lo, hi): (i8, i8),
) -> Vec<u8> {
	let (c, h, w) = (
		in_shape.first().copied().unwrap_or(0) as usize,
		in_shape.get(1).copied().unwrap_or(0) as i64,
		in_shape.get(2).copied().unwrap_or(0) as i64,
	);
	let (oh, ow) = (
		out_shape.get(1).copied().unwrap_or(0) as i64,
		out_shape.get(2).copied().unwrap_or(0) as i64,
	);
	let (kh, kw) = (i64::from(p.kernel_h), i64::from(p.kernel_w));
	let (sh, sw) = (i64::from(p.stride_h), i64::from(p.stride_w));
	let (pt, pl) = (i64::from(p.pad_top), i64::from(p.pad_left));
	let plane = (h * w) as usize;
	let mut out = Vec::with_capacity(n * c * (oh * ow) as usize);
	if (kh, kw, sh, sw, pt, pl) == (2, 2, 2, 2, 0, 0) && oh * 2 <= h && ow * 2 <= w {
		// The common 2x2/2 pool without padding: two rows at a time.
		let (w, ow) = (w as usize, ow as usize);
		for img in x.chunks_exact(plane.max(1)).take(n * c) {
			for rows in img.chunks_exact(2 * w).take(oh as usize) {
				let (r0, r1) = rows.split_at(w);
				for (a, b) in r0.chunks_exact(2).zip(r1.chunks_exact(2)).take(ow) {
					let m = (a[0] as i8).max(a[1] as i8).max(b[0] as i8).max(b[1] as i8);
					out.push(m.clamp(lo, hi) as u8);
				}
			}
		}
		return out;
	}
	for img in x.chunks_exact(plane.max(1)).take(n * c) {
		for oy in 0..oh {
			let y0 = (oy * sh - pt).max(0);
			let y1 = (oy * sh - pt + kh).min(h);
			for ox in 0..ow {
				let x0 = (ox * sw - pl).max(0);
				let x1 = (ox * sw - pl + kw).min(w);
				let mut m = i8::MIN;
				for iy in y0..y1 {
					let row = &img[(iy * w) as usize..((iy + 1) * w) as usize];
					for &b in &row[x0 as usize..x1 as usize] {
						m = m.max(b as i8);
					}
				}
				out.push(m.clamp(lo, hi) as u8);
			}
		}
	}
	out
}

/// A contiguous copy of an integer-valued tensor (f32, f64, i64 or i8) as `i64`s.
fn to_i64s(t: &Tensor, numel: usize) -> Result<Vec<i64>> {
	let t = t.f_contiguous()?;
	Ok(match t.f_kind()? {
		Kind::Float => {
			let mut v = vec![0f32; numel];
			t.f_copy_data(&mut v, numel)?;
			v.into_iter().map(|x| x as i64).collect()
		},
		Kind::Double => {
			let mut v = vec![0f64; numel];
			t.f_copy_data(&mut v, numel)?;
			v.into_iter().map(|x| x as i64).collect()
		},
		Kind::Int64 => {
			let mut v = vec![0i64; numel];
			t.f_copy_data(&mut v, numel)?;
			v
		},
		_ => {
			let t = t.f_to_kind(Kind::Int64)?;
			let mut v = vec![0i64; numel];
			t.f_copy_data(&mut v, numel)?;
			v
		},
	})
}

/// Collects the per-sample tensors and step hashes of a batch.
struct Hasher {
	/// Declared shape of every tensor (the step hash includes it).
	shapes: Arc<Vec<Vec<u32>>>,
	traces: Vec<SampleTrace>,
	busy: Duration,
	hash: bool,
}

impl Hasher {
	fn new(shapes: Arc<Vec<Vec<u32>>>, n: usize, hash: bool) -> Self {
		let cap = shapes.len();
		Hasher {
			shapes,
			traces: (0..n)
				.map(|_| SampleTrace {
					tensors: Vec::with_capacity(cap),
					step_hashes: Vec::with_capacity(cap),
				})
				.collect(),
			busy: Duration::ZERO,
			hash,
		}
	}

	fn add(&mut self, step: u32, buf: &[u8]) {
		let t0 = Instant::now();
		let shape = self.shapes.get(step as usize).map(|s| s.as_slice()).unwrap_or(&[]);
		let n = self.traces.len().max(1);
		let len = buf.len() / n;
		if self.hash {
			for (t, h) in self.traces.iter_mut().zip(step_hashes_many(step, shape, buf, len)) {
				t.step_hashes.push(h);
			}
		}
		for (t, chunk) in self.traces.iter_mut().zip(buf.chunks_exact(len.max(1))) {
			t.tensors.push(chunk.to_vec());
		}
		self.busy += t0.elapsed();
	}

	/// The step hashes of every step output of the batch (in step order), all in one
	/// `hash_many` call.
	fn hash_all(&mut self, outputs: &[(u32, Arc<Vec<u8>>)]) {
		use codec::Encode;
		let t0 = Instant::now();
		let n = self.traces.len().max(1);
		let mut messages: Vec<Vec<u8>> = Vec::with_capacity(outputs.len() * n);
		for (step, buf) in outputs {
			let shape = self.shapes.get(*step as usize).map(|s| s.as_slice()).unwrap_or(&[]);
			let mut prefix = verity_primitives::commit::STEP_TAG.to_vec();
			prefix.extend_from_slice(&step.to_le_bytes());
			shape.to_vec().encode_to(&mut prefix);
			for chunk in buf.chunks_exact((buf.len() / n).max(1)) {
				let mut m = Vec::with_capacity(prefix.len() + chunk.len());
				m.extend_from_slice(&prefix);
				m.extend_from_slice(chunk);
				messages.push(m);
			}
		}
		let mut params = blake2b_simd::Params::new();
		params.hash_length(32);
		let mut jobs: Vec<blake2b_simd::many::HashManyJob> =
			messages.iter().map(|m| blake2b_simd::many::HashManyJob::new(&params, m)).collect();
		blake2b_simd::many::hash_many(jobs.iter_mut());
		for (k, job) in jobs.iter().enumerate() {
			let mut h = [0u8; 32];
			h.copy_from_slice(job.to_hash().as_bytes());
			if let Some(t) = self.traces.get_mut(k % n) {
				t.step_hashes.push(h);
			}
		}
		self.busy += t0.elapsed();
	}
}

/// The step hashes of the samples of a batch buffer (`len` bytes each), equal to
/// `step_hash(step, shape, sample)` for each, computed several at a time with blake2b_simd's
/// `hash_many` (SIMD across inputs).
fn step_hashes_many(step: u32, shape: &[u32], buf: &[u8], len: usize) -> Vec<Hash> {
	use codec::Encode;
	if len == 0 || buf.len() < 2 * len {
		return buf.chunks_exact(len.max(1)).map(|c| step_hash(step, shape, c)).collect();
	}
	let mut prefix = verity_primitives::commit::STEP_TAG.to_vec();
	prefix.extend_from_slice(&step.to_le_bytes());
	shape.to_vec().encode_to(&mut prefix);
	let msg = prefix.len() + len;
	let n = buf.len() / len;
	let mut messages = Vec::with_capacity(n * msg);
	for chunk in buf.chunks_exact(len) {
		messages.extend_from_slice(&prefix);
		messages.extend_from_slice(chunk);
	}
	let mut params = blake2b_simd::Params::new();
	params.hash_length(32);
	let mut jobs: Vec<blake2b_simd::many::HashManyJob> = messages
		.chunks_exact(msg)
		.map(|m| blake2b_simd::many::HashManyJob::new(&params, m))
		.collect();
	blake2b_simd::many::hash_many(jobs.iter_mut());
	jobs.iter()
		.map(|j| {
			let mut h = [0u8; 32];
			h.copy_from_slice(j.to_hash().as_bytes());
			h
		})
		.collect()
}

/// A batch for the hashing thread: the step outputs arrive on `steps`, the traces go back on
/// `done`.
struct HashJob {
	n: usize,
	steps: std::sync::mpsc::Receiver<(u32, Arc<Vec<u8>>)>,
	done: std::sync::mpsc::Sender<Hasher>,
}

/// A hashing thread that lives as long as its model (spawning a thread per batch costs more
/// than hashing a small trace).
struct HashThread {
	jobs: std::sync::Mutex<std::sync::mpsc::Sender<HashJob>>,
}

impl HashThread {
	fn spawn(shapes: Arc<Vec<Vec<u32>>>) -> Option<Self> {
		let (tx, rx) = std::sync::mpsc::channel::<HashJob>();
		std::thread::Builder::new()
			.name("verity-hash".into())
			.spawn(move || {
				while let Ok(job) = rx.recv() {
					let mut hasher = Hasher::new(shapes.clone(), job.n, true);
					while let Ok((i, buf)) = job.steps.recv() {
						hasher.add(i, &buf);
					}
					let _ = job.done.send(hasher);
				}
			})
			.ok()?;
		Some(HashThread { jobs: std::sync::Mutex::new(tx) })
	}
}

/// Clamp an integer-valued tensor to `[lo, hi]` and convert it to int8.
fn clamp_i8(y: Tensor, (lo, hi): (i8, i8)) -> Result<Tensor> {
	Ok(y.f_clamp(i64::from(lo), i64::from(hi))?.f_to_kind(Kind::Int8)?)
}

#[cfg(test)]
mod tests {
	use super::*;
	use verity_primitives::arith::requantize_to_i8;

	/// The tensor requantization equals the reference `MBQM + output stage` on structured
	/// values: exact ties of both roundings, powers of two, the i32 extremes, every shift.
	#[test]
	fn requant_matches_reference_including_ties() {
		let mut xs: Vec<i64> =
			vec![0, 1, -1, 2, -2, 3, -3, i64::from(i32::MAX), i64::from(i32::MIN)];
		for k in 0..31 {
			let p = 1i64 << k;
			xs.extend([p, -p, p + 1, -p - 1, p - 1, 1 - p, 3 * p, -3 * p]);
		}
		xs.retain(|&x| x >= i64::from(i32::MIN) && x <= i64::from(i32::MAX));
		let ms: Vec<i32> = vec![
			0,
			1,
			3,
			1 << 15,
			1 << 30,
			(1 << 30) + 1,
			3 << 28,
			i32::MAX,
			1_518_500_250,
			1_073_741_823,
		];
		let mut checked = 0;
		for &m in &ms {
			let shifts: Vec<i8> = (-31..=30).collect();
			let rqs: Vec<Requant> =
				shifts.iter().map(|&s| Requant { multiplier: m, shift: s }).collect();
			for (zp, clamp) in [(0i8, (-128i8, 127i8)), (-7, (-100, 90)), (127, (-128, 127))] {
				let t = RequantT::new(&rqs, 0, zp, clamp, Device::Cpu).expect("params");
				// acc [len(xs), len(shifts)]: column j uses shift j.
				let acc: Vec<i64> =
					xs.iter().flat_map(|&x| std::iter::repeat_n(x, rqs.len())).collect();
				let acc = Tensor::from_slice(&acc).reshape([xs.len() as i64, rqs.len() as i64]);
				let y = t.apply(acc).expect("apply");
				let mut got = vec![0u8; xs.len() * rqs.len()];
				y.copy_data_u8(&mut got, xs.len() * rqs.len());
				for (i, &x) in xs.iter().enumerate() {
					for (j, r) in rqs.iter().enumerate() {
						let want = requantize_to_i8(x as i32, *r, zp, clamp.0, clamp.1);
						assert_eq!(
							got[i * rqs.len() + j],
							want,
							"x {x} m {m} shift {} zp {zp}",
							r.shift
						);
						checked += 1;
					}
				}
			}
		}
		assert!(checked > 50_000);
	}

	/// The host output stage (portable and AVX2 builds) equals the reference on the same values.
	#[test]
	fn host_requant_matches_reference_including_ties() {
		let mut xs: Vec<i64> =
			vec![0, 1, -1, 2, -2, 3, -3, i64::from(i32::MAX), i64::from(i32::MIN)];
		for k in 0..31 {
			let p = 1i64 << k;
			xs.extend([p, -p, p + 1, -p - 1, p - 1, 1 - p, 3 * p, -3 * p]);
		}
		xs.retain(|&x| x >= i64::from(i32::MIN) && x <= i64::from(i32::MAX));
		let ms = [0, 1, 3, 1 << 15, 1 << 30, (1 << 30) + 1, 3 << 28, i32::MAX, 1_518_500_250];
		let mut checked = 0;
		for &m in &ms {
			for shift in -31i8..=30 {
				let rq = Requant { multiplier: m, shift };
				for (zp, clamp) in [(0i8, (-128i8, 127i8)), (-7, (-100, 90)), (127, (-128, 127))] {
					let host = HostRequant { rq: vec![rq], plane: 1, zero_point: zp, clamp };
					let want: Vec<u8> = xs
						.iter()
						.map(|&x| requantize_to_i8(x as i32, rq, zp, clamp.0, clamp.1))
						.collect();
					let mut a = Vec::new();
					host_requant_impl(&xs, &host, &mut a);
					let f: Vec<f64> = xs.iter().map(|&x| x as f64).collect();
					let mut b = Vec::new();
					host_requant(&f, &host, &mut b);
					assert_eq!(a, want, "m {m} shift {shift} zp {zp}");
					assert_eq!(b, want, "m {m} shift {shift} zp {zp} (dispatch)");
					checked += xs.len();
				}
			}
		}
		assert!(checked > 100_000);
	}

	#[test]
	fn batched_step_hashes_equal_step_hash() {
		for (len, n) in [(1usize, 1usize), (1, 7), (10, 2), (64, 5), (127, 9), (128, 4), (5000, 33)]
		{
			let buf: Vec<u8> = (0..len * n).map(|i| (i * 31 % 251) as u8).collect();
			let shape = [len as u32];
			let want: Vec<Hash> = buf.chunks_exact(len).map(|c| step_hash(9, &shape, c)).collect();
			assert_eq!(step_hashes_many(9, &shape, &buf, len), want, "len {len} n {n}");
		}
	}

	#[test]
	fn chunks_respect_the_bound() {
		// 1000 columns of |w| = 128, |x - z| <= 255: at most 514 columns per chunk.
		let chunks = chunks_for(3, 1000, 255, |_, _| 128);
		assert_eq!(chunks.iter().map(|c| c.1).sum::<i64>(), 1000);
		assert!(chunks.iter().all(|&(_, l)| l * 255 * 128 < F32_EXACT));
		assert_eq!(chunks.len(), 2);
		// Small weights: one chunk.
		assert_eq!(chunks_for(3, 1000, 255, |_, _| 1).len(), 1);
	}
}
