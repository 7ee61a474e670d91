//! The reference interpreter: the definition of what a model computes.
//!
//! [`execute`] runs a whole model and returns its [`Trace`]; [`execute_step`] runs one op on
//! given input tensors (what the chain does to judge a fraud proof). Each op kind is one plain
//! function in [`ops`]. Execution uses integers only, checked arithmetic, and `.get()` instead
//! of indexing: it returns an error on malformed input and never panics.
//!
//! Before running op `i`, [`execute_step`] re-checks op `i` with
//! [`crate::validate::step_info`] (structure only, no resource limits) and the lengths of the
//! inputs and weights; on a header accepted by [`crate::validate::validate`] and inputs/weights
//! of the declared lengths, execution cannot fail.

use alloc::vec::Vec;
use codec::{Decode, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

use crate::{
	commit::step_hash,
	model::{Hash, ModelHeader, OpKind},
	validate::{step_info, ValidationError},
};

/// An error inside one op function (should not happen on validated models).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum OpError {
	/// An accumulator left the i32 range.
	Overflow,
	/// Buffer sizes disagree with the op's parameters.
	Malformed,
}

/// Why execution failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum ExecError {
	/// The op (or, with `op == 0`, the model input spec) is structurally invalid.
	InvalidModel(ValidationError),
	/// `execute` was given a number of weight blobs different from the number of ops.
	WrongWeightCount,
	/// The step was given the wrong number of input tensors.
	WrongInputCount { step: u32 },
	/// Input tensor number `index` of `step` (for step 0: the model input) has the wrong length.
	InputLength { step: u32, index: u32 },
	/// The weights of `step` have the wrong length.
	WeightLength { step: u32 },
	/// An op function failed.
	Op { step: u32, error: OpError },
}

impl core::fmt::Display for ExecError {
	fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
		write!(f, "execution failed: {:?}", self)
	}
}

#[cfg(feature = "std")]
impl std::error::Error for ExecError {}

/// Every tensor of one execution: `tensors[0]` is the input, `tensors[i]` the output of op `i`.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct Trace {
	pub tensors: Vec<Vec<u8>>,
}

impl Trace {
	/// The model output (the last tensor).
	pub fn output(&self) -> &[u8] {
		self.tensors.last().map(|t| t.as_slice()).unwrap_or(&[])
	}

	/// Tensor `index` (0 = input).
	pub fn tensor(&self, index: u32) -> Option<&[u8]> {
		self.tensors.get(usize::try_from(index).ok()?).map(|t| t.as_slice())
	}

	/// The step hashes `[h_0, ..., h_n]` of this trace (shapes from `header`); `None` if the
	/// trace does not have `n + 1` tensors.
	pub fn step_hashes(&self, header: &ModelHeader) -> Option<Vec<Hash>> {
		if self.tensors.len() != header.ops.len().checked_add(1)? {
			return None;
		}
		let mut hashes = Vec::with_capacity(self.tensors.len());
		for (i, t) in self.tensors.iter().enumerate() {
			let i = u32::try_from(i).ok()?;
			hashes.push(step_hash(i, &header.tensor_spec(i)?.shape, t));
		}
		Some(hashes)
	}
}

/// Execute the whole model. `weights[i - 1]` are the weight bytes of op `i` (their hashes are
/// not checked here: see [`crate::file::ModelFile::verify`]). The input must have exactly the
/// input spec's element count.
pub fn execute<W: AsRef<[u8]>>(
	header: &ModelHeader,
	weights: &[W],
	input: &[u8],
) -> Result<Trace, ExecError> {
	let n_in = crate::validate::check_shape(&header.input.shape)
		.map_err(|reason| ExecError::InvalidModel(ValidationError { op: 0, reason }))?;
	if usize::try_from(n_in).ok() != Some(input.len()) {
		return Err(ExecError::InputLength { step: 0, index: 0 });
	}
	if weights.len() != header.ops.len() {
		return Err(ExecError::WrongWeightCount);
	}
	let mut tensors: Vec<Vec<u8>> = Vec::with_capacity(header.ops.len().saturating_add(1));
	tensors.push(input.to_vec());
	for (index, (op, w)) in header.ops.iter().zip(weights).enumerate() {
		let step = u32::try_from(index)
			.ok()
			.and_then(|i| i.checked_add(1))
			.ok_or(ExecError::WrongWeightCount)?;
		let output = {
			let mut ins: Vec<&[u8]> = Vec::with_capacity(op.inputs.len());
			for (j, &r) in op.inputs.iter().enumerate() {
				let t = usize::try_from(r).ok().and_then(|r| tensors.get(r));
				match t {
					Some(t) => ins.push(t.as_slice()),
					None => {
						// A forward reference: let the structural check name it.
						step_info(header, step).map_err(ExecError::InvalidModel)?;
						let index = crate::len_u32(j);
						return Err(ExecError::InputLength { step, index });
					},
				}
			}
			execute_step(header, step, &ins, w.as_ref())?
		};
		tensors.push(output);
	}
	Ok(Trace { tensors })
}

/// Execute op `step` (1-based) on its input tensors (in the order of `Op::inputs`) and its
/// weight bytes; returns the output tensor bytes.
pub fn execute_step<T: AsRef<[u8]>>(
	header: &ModelHeader,
	step: u32,
	inputs: &[T],
	weights: &[u8],
) -> Result<Vec<u8>, ExecError> {
	step_info(header, step).map_err(ExecError::InvalidModel)?;
	let op = header.op(step).ok_or(ExecError::WrongInputCount { step })?;
	if inputs.len() != op.inputs.len() {
		return Err(ExecError::WrongInputCount { step });
	}
	let mut specs = Vec::with_capacity(op.inputs.len());
	for (j, (&r, t)) in op.inputs.iter().zip(inputs).enumerate() {
		let index = crate::len_u32(j);
		let spec = header.tensor_spec(r).ok_or(ExecError::InputLength { step, index })?;
		let expected = spec.num_elements().and_then(|n| usize::try_from(n).ok());
		if expected != Some(t.as_ref().len()) {
			return Err(ExecError::InputLength { step, index });
		}
		specs.push(spec);
	}
	if usize::try_from(op.weight_len).ok() != Some(weights.len()) {
		return Err(ExecError::WeightLength { step });
	}
	let x = inputs.first().map(|t| t.as_ref()).ok_or(ExecError::WrongInputCount { step })?;
	let x_spec = *specs.first().ok_or(ExecError::WrongInputCount { step })?;
	let out = &op.output;
	let clamp = (op.act_min, op.act_max);
	let stage = ops::OutputStage {
		requant: &op.requant,
		zero_point: out.zero_point,
		act_min: op.act_min,
		act_max: op.act_max,
	};
	let result = match &op.kind {
		OpKind::FullyConnected => {
			ops::fully_connected(x, x_spec.zero_point, weights, &op.bias, &stage)
		},
		OpKind::Conv2d(p) => ops::conv2d(x, x_spec, weights, &op.bias, p, &out.shape, &stage),
		OpKind::Add(p) => {
			let y = inputs.get(1).map(|t| t.as_ref()).ok_or(ExecError::WrongInputCount { step })?;
			let y_spec = specs.get(1).ok_or(ExecError::WrongInputCount { step })?;
			ops::add(x, x_spec.zero_point, y, y_spec.zero_point, p, &stage)
		},
		OpKind::MaxPool(p) => ops::max_pool(x, &x_spec.shape, p, &out.shape, clamp),
		OpKind::AvgPool(p) => ops::avg_pool(x, &x_spec.shape, p, &out.shape, clamp),
		OpKind::GlobalAvgPool => ops::global_avg_pool(x, &x_spec.shape, clamp),
		OpKind::Reshape => Ok(ops::reshape(x, clamp)),
		OpKind::Concat { axis } => {
			let parts: Vec<(&[u8], &[u32])> =
				inputs.iter().zip(&specs).map(|(t, s)| (t.as_ref(), s.shape.as_slice())).collect();
			ops::concat(&parts, *axis, &out.shape, clamp)
		},
		OpKind::Lookup => ops::lookup(x, weights, clamp),
	};
	result.map_err(|error| ExecError::Op { step, error })
}

/// One function per op kind. Each takes the raw int8 tensor bytes and the op's parameters and
/// returns the output bytes; the last stage of every op is the clamp `(act_min, act_max)`,
/// which the requantizing ops (FullyConnected, Conv2d, Add) take in their [`OutputStage`].
pub mod ops {
	use alloc::vec::Vec;

	use super::OpError;
	use crate::{
		arith::{
			as_i8, clamp_to_i8, div_round_half_away, multiply_by_quantized_multiplier,
			requantize_to_i8,
		},
		model::{AddParams, Conv2dParams, PoolParams, Requant, TensorSpec},
	};

	/// The output stage of the requantizing ops, as TFLite's `*Params` carry it
	/// (`output_multiplier`, `output_shift`, `output_offset`,
	/// `quantized_activation_min/max`): the accumulator `acc` of output channel `c` becomes
	/// `clamp(MBQM(acc, requant[c]) + zero_point, act_min, act_max)`
	/// ([`requantize_to_i8`]).
	#[derive(Clone, Copy, PartialEq, Eq, Debug)]
	pub struct OutputStage<'a> {
		/// One requantization per output channel (FullyConnected, Conv2d); Add has exactly
		/// one, for every element.
		pub requant: &'a [Requant],
		/// The output zero point.
		pub zero_point: i8,
		/// Lower clamp.
		pub act_min: i8,
		/// Upper clamp.
		pub act_max: i8,
	}

	impl OutputStage<'_> {
		/// The output byte of accumulator `acc` requantized by `rq`.
		fn apply(&self, acc: i32, rq: Requant) -> u8 {
			requantize_to_i8(acc, rq, self.zero_point, self.act_min, self.act_max)
		}
	}

	/// Number of products summed exactly in i32 before being added to the i64 total: each
	/// product is at most 255 * 128 = 32640 in magnitude, and 65536 * 32640 < 2^31.
	const CHUNK: usize = 1 << 16;

	fn to_usize(v: u32) -> Result<usize, OpError> {
		usize::try_from(v).map_err(|_| OpError::Malformed)
	}

	fn get(t: &[u8], i: usize) -> Result<i32, OpError> {
		t.get(i).map(|&b| i32::from(as_i8(b))).ok_or(OpError::Malformed)
	}

	/// Exact sum of `(x[k] - x_zero_point) * w[k]` (the two slices have equal length).
	fn dot(x: &[u8], x_zero_point: i8, w: &[u8]) -> i64 {
		let z = i32::from(x_zero_point);
		let mut total: i64 = 0;
		for (xc, wc) in x.chunks(CHUNK).zip(w.chunks(CHUNK)) {
			// At most CHUNK terms of magnitude <= 32640: the i32 sum cannot overflow.
			let part: i32 = xc
				.iter()
				.zip(wc)
				.map(|(&xv, &wv)| (i32::from(as_i8(xv)) - z) * i32::from(as_i8(wv)))
				.sum();
			total += i64::from(part); // at most 2^32 / CHUNK parts of < 2^31: no overflow
		}
		total
	}

	/// Fully connected: input flattened to `K = x.len()` elements, weights `[N][K]` row-major,
	/// `N = bias.len() = stage.requant.len()`:
	///
	/// `acc[n] = bias[n] + sum_k (x[k] - x_zero_point) * w[n][k]` (exact, must fit i32),
	/// `y[n] = clamp(MBQM(acc[n], requant[n]) + zero_point, act_min, act_max)` (the
	/// [`OutputStage`] `stage`).
	pub fn fully_connected(
		x: &[u8],
		x_zero_point: i8,
		weights: &[u8],
		bias: &[i32],
		stage: &OutputStage,
	) -> Result<Vec<u8>, OpError> {
		let k = x.len();
		let n = bias.len();
		if k == 0 || stage.requant.len() != n || k.checked_mul(n) != Some(weights.len()) {
			return Err(OpError::Malformed);
		}
		let mut out = Vec::with_capacity(n);
		for ((row, &b), &rq) in weights.chunks_exact(k).zip(bias).zip(stage.requant) {
			let acc = i64::from(b) + dot(x, x_zero_point, row);
			let acc = i32::try_from(acc).map_err(|_| OpError::Overflow)?;
			out.push(stage.apply(acc, rq));
		}
		Ok(out)
	}

	/// 2-D convolution, input `[C_in, H, W]` (`x_spec`), output `[C_out, OH, OW]`, weights
	/// `[C_out][C_in / groups][kernel_h][kernel_w]`. Output channel `co` belongs to group
	/// `g = co / (C_out / groups)` and reads input channels `g * (C_in / groups) ..`.
	///
	/// `acc[co][oy][ox] = bias[co] + sum_{ci, ky, kx} (x[ci][iy][ix] - x_spec.zero_point) *
	/// w[co][ci][ky][kx]` with `iy = oy * stride_h + ky * dilation_h - pad_top`,
	/// `ix = ox * stride_w + kx * dilation_w - pad_left`; positions outside the input
	/// (padding) are skipped, i.e. contribute as if they held the input zero point. Then the
	/// [`OutputStage`] `stage` with `stage.requant[co]`.
	pub fn conv2d(
		x: &[u8],
		x_spec: &TensorSpec,
		weights: &[u8],
		bias: &[i32],
		p: &Conv2dParams,
		out_shape: &[u32],
		stage: &OutputStage,
	) -> Result<Vec<u8>, OpError> {
		let g = crate::validate::conv_geometry(p, &x_spec.shape, out_shape)
			.map_err(|_| OpError::Malformed)?;
		let (h, w) = (i64::from(g.in_h), i64::from(g.in_w));
		let (kh, kw) = (to_usize(p.kernel_h)?, to_usize(p.kernel_w)?);
		let (cin_g, cout_g) = (to_usize(g.in_per_group)?, to_usize(g.out_per_group)?);
		let (oh, ow) = (to_usize(g.out_h)?, to_usize(g.out_w)?);
		let cout = to_usize(g.out_channels)?;
		let per_out =
			cin_g.checked_mul(kh).and_then(|v| v.checked_mul(kw)).ok_or(OpError::Malformed)?;
		let n_out =
			cout.checked_mul(oh).and_then(|v| v.checked_mul(ow)).ok_or(OpError::Malformed)?;
		if per_out == 0
			|| cout_g == 0
			|| bias.len() != cout
			|| stage.requant.len() != cout
			|| per_out.checked_mul(cout) != Some(weights.len())
		{
			return Err(OpError::Malformed);
		}
		let in_len = u64::from(g.in_channels)
			.checked_mul(u64::from(g.in_h))
			.and_then(|v| v.checked_mul(u64::from(g.in_w)));
		if in_len != Some(x.len() as u64) {
			return Err(OpError::Malformed);
		}
		// All positions below are bounded by the padded input size (< 2^34): i64 is exact.
		let (sh, sw) = (i64::from(p.stride_h), i64::from(p.stride_w));
		let (dh, dw) = (i64::from(p.dilation_h), i64::from(p.dilation_w));
		let (pt, pl) = (i64::from(p.pad_top), i64::from(p.pad_left));
		let z = i64::from(x_spec.zero_point);
		let w_us = to_usize(g.in_w)?;
		let plane = to_usize(g.in_h)?.checked_mul(w_us).ok_or(OpError::Malformed)?;

		let mut out = Vec::with_capacity(n_out);
		for ((co, w_co), (&b, &rq)) in
			weights.chunks_exact(per_out).enumerate().zip(bias.iter().zip(stage.requant))
		{
			let first_ci = (co / cout_g) * cin_g;
			for oy in 0..oh as i64 {
				for ox in 0..ow as i64 {
					let mut acc = i64::from(b);
					for (cig, w_ci) in w_co.chunks_exact(kh * kw).enumerate() {
						let base = (first_ci + cig) * plane;
						for (ky, w_row) in w_ci.chunks_exact(kw).enumerate() {
							let iy = oy * sh + ky as i64 * dh - pt;
							if iy < 0 || iy >= h {
								continue;
							}
							let row = base + iy as usize * w_us;
							for (kx, &wv) in w_row.iter().enumerate() {
								let ix = ox * sw + kx as i64 * dw - pl;
								if ix < 0 || ix >= w {
									continue;
								}
								let xv = i64::from(get(x, row + ix as usize)?);
								acc += (xv - z) * i64::from(as_i8(wv));
							}
						}
					}
					let acc = i32::try_from(acc).map_err(|_| OpError::Overflow)?;
					out.push(stage.apply(acc, rq));
				}
			}
		}
		Ok(out)
	}

	/// Elementwise add of two tensors of equal length (TFLite int8 add):
	///
	/// `a = (x - zx) * 2^left_shift`, `b = (y - zy) * 2^left_shift` (exact),
	/// `s = MBQM(a, lhs) + MBQM(b, rhs)` (validation keeps `|s| < 2^29`),
	/// `out = clamp(MBQM(s, rq) + zero_point, act_min, act_max)`: the [`OutputStage`] `stage`,
	/// whose `requant` must be the single `[rq]`.
	pub fn add(
		x: &[u8],
		x_zero_point: i8,
		y: &[u8],
		y_zero_point: i8,
		p: &AddParams,
		stage: &OutputStage,
	) -> Result<Vec<u8>, OpError> {
		let &[out_requant] = stage.requant else {
			return Err(OpError::Malformed);
		};
		if x.len() != y.len() || p.left_shift > crate::model::MAX_ADD_LEFT_SHIFT {
			return Err(OpError::Malformed);
		}
		let scale = 1i32 << p.left_shift; // <= 2^20
		let (zx, zy) = (i32::from(x_zero_point), i32::from(y_zero_point));
		let mut out = Vec::with_capacity(x.len());
		for (&xv, &yv) in x.iter().zip(y) {
			// |x - zx| <= 255, 255 * 2^20 < 2^28.
			let a = (i32::from(as_i8(xv)) - zx) * scale;
			let b = (i32::from(as_i8(yv)) - zy) * scale;
			let sa = multiply_by_quantized_multiplier(a, p.lhs.multiplier, p.lhs.shift);
			let sb = multiply_by_quantized_multiplier(b, p.rhs.multiplier, p.rhs.shift);
			let sum = sa.checked_add(sb).ok_or(OpError::Overflow)?;
			out.push(stage.apply(sum, out_requant));
		}
		Ok(out)
	}

	/// A pool over `[C, H, W]`: for every output position, `f(values)` clamped to
	/// `(act_min, act_max)`, `values` being the real (non-padded) input values of the window.
	fn pool_windows<F: FnMut(&[i32]) -> Result<i32, OpError>>(
		x: &[u8],
		x_shape: &[u32],
		p: &PoolParams,
		out_shape: &[u32],
		(act_min, act_max): (i8, i8),
		mut f: F,
	) -> Result<Vec<u8>, OpError> {
		let (oh, ow) = crate::validate::pool_geometry(p, x_shape, out_shape)
			.map_err(|_| OpError::Malformed)?;
		let c = to_usize(*x_shape.first().ok_or(OpError::Malformed)?)?;
		let h = i64::from(*x_shape.get(1).ok_or(OpError::Malformed)?);
		let w = i64::from(*x_shape.get(2).ok_or(OpError::Malformed)?);
		let (sh, sw) = (i64::from(p.stride_h), i64::from(p.stride_w));
		let (pt, pl) = (i64::from(p.pad_top), i64::from(p.pad_left));
		let (kh, kw) = (i64::from(p.kernel_h), i64::from(p.kernel_w));
		let plane = usize::try_from(h * w).map_err(|_| OpError::Malformed)?;
		if c.checked_mul(plane) != Some(x.len()) {
			return Err(OpError::Malformed);
		}
		let mut window: Vec<i32> = Vec::new();
		let mut out = Vec::new();
		for ch in 0..c {
			for oy in 0..i64::from(oh) {
				for ox in 0..i64::from(ow) {
					window.clear();
					for ky in 0..kh {
						let iy = oy * sh + ky - pt;
						if iy < 0 || iy >= h {
							continue;
						}
						for kx in 0..kw {
							let ix = ox * sw + kx - pl;
							if ix < 0 || ix >= w {
								continue;
							}
							window.push(get(x, ch * plane + (iy * w + ix) as usize)?);
						}
					}
					out.push(clamp_to_i8(i64::from(f(&window)?), act_min, act_max) as u8);
				}
			}
		}
		Ok(out)
	}

	/// Max pool over `[C, H, W]`: the maximum of the real values of each window (padded
	/// positions are ignored; validation guarantees each window has one), then the clamp.
	pub fn max_pool(
		x: &[u8],
		x_shape: &[u32],
		p: &PoolParams,
		out_shape: &[u32],
		clamp: (i8, i8),
	) -> Result<Vec<u8>, OpError> {
		pool_windows(x, x_shape, p, out_shape, clamp, |win| {
			win.iter().copied().max().ok_or(OpError::Malformed)
		})
	}

	/// Average pool over `[C, H, W]`: the sum of the real stored values `x` of each window (not
	/// `x - zero_point`; the output keeps the input zero point) divided by their count (padded
	/// positions not counted), rounded half away from zero ([`div_round_half_away`]), then the
	/// clamp.
	pub fn avg_pool(
		x: &[u8],
		x_shape: &[u32],
		p: &PoolParams,
		out_shape: &[u32],
		clamp: (i8, i8),
	) -> Result<Vec<u8>, OpError> {
		pool_windows(x, x_shape, p, out_shape, clamp, |win| {
			let sum: i64 = win.iter().map(|&v| i64::from(v)).sum();
			let avg = div_round_half_away(sum, win.len() as i64).ok_or(OpError::Malformed)?;
			i32::try_from(avg).map_err(|_| OpError::Overflow)
		})
	}

	/// Global average pool `[C, H, W] -> [C]`: per channel, the sum of the `H * W` stored values
	/// divided by `H * W`, rounded half away from zero, then the clamp.
	pub fn global_avg_pool(
		x: &[u8],
		x_shape: &[u32],
		(act_min, act_max): (i8, i8),
	) -> Result<Vec<u8>, OpError> {
		if x_shape.len() != 3 {
			return Err(OpError::Malformed);
		}
		let c = to_usize(*x_shape.first().ok_or(OpError::Malformed)?)?;
		let plane = to_usize(*x_shape.get(1).ok_or(OpError::Malformed)?)?
			.checked_mul(to_usize(*x_shape.get(2).ok_or(OpError::Malformed)?)?)
			.ok_or(OpError::Malformed)?;
		if plane == 0 || c.checked_mul(plane) != Some(x.len()) {
			return Err(OpError::Malformed);
		}
		let mut out = Vec::with_capacity(c);
		for channel in x.chunks_exact(plane) {
			let sum: i64 = channel.iter().map(|&v| i64::from(as_i8(v))).sum();
			let avg = div_round_half_away(sum, plane as i64).ok_or(OpError::Malformed)?;
			out.push(clamp_to_i8(avg, act_min, act_max) as u8);
		}
		Ok(out)
	}

	/// Reshape: the same bytes (row-major order is unchanged), then the clamp.
	pub fn reshape(x: &[u8], (act_min, act_max): (i8, i8)) -> Vec<u8> {
		x.iter().map(|&v| clamp_to_i8(i64::from(as_i8(v)), act_min, act_max) as u8).collect()
	}

	/// Concatenation along `axis` of row-major tensors `(bytes, shape)` whose shapes agree
	/// except along `axis`: for each index over the dimensions before `axis`, the inputs'
	/// contiguous blocks are copied in order. Then the clamp.
	pub fn concat(
		parts: &[(&[u8], &[u32])],
		axis: u32,
		out_shape: &[u32],
		(act_min, act_max): (i8, i8),
	) -> Result<Vec<u8>, OpError> {
		let axis = usize::try_from(axis).map_err(|_| OpError::Malformed)?;
		let outer_dims = out_shape.get(..axis).ok_or(OpError::Malformed)?;
		let outer = outer_dims
			.iter()
			.try_fold(1usize, |a, &d| a.checked_mul(to_usize(d).ok()?))
			.ok_or(OpError::Malformed)?;
		let mut blocks = Vec::with_capacity(parts.len());
		let mut total = 0usize;
		for (bytes, shape) in parts {
			let inner = shape
				.get(axis..)
				.ok_or(OpError::Malformed)?
				.iter()
				.try_fold(1usize, |a, &d| a.checked_mul(to_usize(d).ok()?))
				.ok_or(OpError::Malformed)?;
			if inner == 0 || outer.checked_mul(inner) != Some(bytes.len()) {
				return Err(OpError::Malformed);
			}
			total = total.checked_add(bytes.len()).ok_or(OpError::Malformed)?;
			blocks.push(bytes.chunks_exact(inner));
		}
		let mut out = Vec::with_capacity(total);
		for _ in 0..outer {
			for block in blocks.iter_mut() {
				out.extend_from_slice(block.next().ok_or(OpError::Malformed)?);
			}
		}
		for b in out.iter_mut() {
			*b = clamp_to_i8(i64::from(as_i8(*b)), act_min, act_max) as u8;
		}
		Ok(out)
	}

	/// Lookup table: `y = table[x + 128]` (`x` as a signed value, so byte `0x80` (-128) reads
	/// entry 0 and byte `0x7f` (127) entry 255), then the clamp.
	pub fn lookup(
		x: &[u8],
		table: &[u8],
		(act_min, act_max): (i8, i8),
	) -> Result<Vec<u8>, OpError> {
		if table.len() != 256 {
			return Err(OpError::Malformed);
		}
		x.iter()
			.map(|&v| {
				let index = (i32::from(as_i8(v)) + 128) as usize;
				let y = table.get(index).copied().ok_or(OpError::Malformed)?;
				Ok(clamp_to_i8(i64::from(as_i8(y)), act_min, act_max) as u8)
			})
			.collect()
	}
}
