//! Preparing a model for the tch backend: one [`Step`] per op, built once per model and device
//! (weights as tensors, chunking of the reductions, tables, requantization parameters). One
//! `prepare_*` function per op kind; [`prepare_steps`] dispatches on the kind.

use tch::{Device, Kind, Tensor};
use verity_primitives::{
	arith::multiply_by_quantized_multiplier, AddParams, Conv2dParams, ModelHeader, Op, OpKind,
	PoolParams, Requant, TensorSpec,
};

use super::{device::RequantT, host::HostRequant, Result, TchBackendError, F32_EXACT};
use crate::model::LoadedModel;

/// A prepared op.
pub(super) enum Step {
	Fc {
		k: i64,
		x_zp: f64,
		/// `(W^T chunk [len, N] f32)` per chunk.
		chunks: Vec<Tensor>,
		chunk_ranges: Vec<Chunk>,
		/// Bias added in fp32 by `addmm` (single chunk, small enough), else in int64.
		bias_f32: Option<Tensor>,
		bias_i64: Tensor,
		out: OutputStage,
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
		out: OutputStage,
	},
	Add {
		/// Per side: the scaled value of every int8 input (256 entries, index `q + 128`).
		lhs: Tensor,
		rhs: Tensor,
		out: OutputStage,
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

impl Step {
	/// The float kind of the input of a FullyConnected or Conv2d step, `None` for other steps.
	pub(super) fn linear_kind(&self) -> Option<Kind> {
		match self {
			Step::Fc { .. } => Some(Kind::Float),
			Step::Conv { kind, .. } => Some(*kind),
			_ => None,
		}
	}
}

/// The requantizing output stage of a step, in both forms: integer tensor ops (device) and
/// the host loop.
pub(super) struct OutputStage {
	pub(super) device: RequantT,
	pub(super) host: HostRequant,
}

impl OutputStage {
	/// Per-channel `rq` over an accumulator `[N, C, ...]` with `trailing` dimensions after the
	/// channel, `plane` elements per channel and sample.
	fn new(op: &Op, rq: &[Requant], trailing: usize, plane: usize, device: Device) -> Result<Self> {
		let clamp = (op.act_min, op.act_max);
		let zero_point = op.output.zero_point;
		Ok(OutputStage {
			device: RequantT::new(rq, trailing, zero_point, clamp, device)?,
			host: HostRequant { rq: rq.to_vec(), plane, zero_point, clamp },
		})
	}
}

/// One chunk of a reduction: `(start, length)` along the reduced (input) dimension.
pub(super) type Chunk = (i64, i64);

/// Cut `0..k` into chunks such that for every output row `n`,
/// `xmax * sum_{k in chunk} |w(n, k)| < 2^24`. `row_abs(n, k)` is `|w|` summed over everything
/// that column `k` stands for (for a convolution: one input channel's whole kernel).
pub(super) fn chunks_for(
	n: usize,
	k: usize,
	xmax: i64,
	row_abs: impl Fn(usize, usize) -> i64,
) -> Vec<Chunk> {
	let mut chunks = Vec::new();
	let mut start = 0usize;
	let mut sums = vec![0i64; n];
	for kk in 0..k {
		let fits = sums.iter().enumerate().all(|(r, s)| xmax * (s + row_abs(r, kk)) < F32_EXACT);
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

pub(super) fn i64s(v: &[u32]) -> Vec<i64> {
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
		(Some(explicit_padding(top, left, bottom, right)), [0, 0])
	}
}

/// `[left, right, top, bottom]`, the order of `constant_pad_nd`.
fn explicit_padding(top: u32, left: u32, bottom: u32, right: u32) -> [i64; 4] {
	[i64::from(left), i64::from(right), i64::from(top), i64::from(bottom)]
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

/// What the `prepare_*` functions need to know about an op.
struct OpContext<'a> {
	header: &'a ModelHeader,
	op: &'a Op,
	/// The op's first input (tensor index) and its spec.
	first: u32,
	x: &'a TensorSpec,
	/// The op's weights as signed values.
	weights: Vec<i8>,
	device: Device,
}

impl OpContext<'_> {
	fn clamp(&self) -> (i8, i8) {
		(self.op.act_min, self.op.act_max)
	}

	/// Largest `|x - z_x|` of the first input, from the clamp range of the op that produced it.
	fn xmax(&self) -> i64 {
		let (lo, hi) = match self.header.op(self.first) {
			Some(op) if self.first > 0 => (op.act_min, op.act_max),
			_ => (i8::MIN, i8::MAX),
		};
		let zp = self.x.zero_point;
		(i64::from(hi) - i64::from(zp)).abs().max((i64::from(lo) - i64::from(zp)).abs())
	}

	/// The bias as an int64 tensor of `int_shape` (added to chunk sums), and as a tensor of
	/// `float_shape` and `kind` when `fused` (the accumulation is one chunk and stays exact
	/// with the bias folded into the op).
	fn bias(
		&self,
		int_shape: &[i64],
		fused: Option<(&[i64], Kind)>,
	) -> Result<(Tensor, Option<Tensor>)> {
		let bias64: Vec<i64> = self.op.bias.iter().map(|&b| i64::from(b)).collect();
		let int = Tensor::f_from_slice(&bias64)?.f_reshape(int_shape)?.f_to_device(self.device)?;
		let float = match fused {
			Some((shape, kind)) => Some(
				Tensor::f_from_slice(&bias64)?
					.f_reshape(shape)?
					.f_to_kind(kind)?
					.f_to_device(self.device)?,
			),
			None => None,
		};
		Ok((int, float))
	}

	/// Whether an fp32 accumulation whose partial sums are bounded by `bound` stays exact with
	/// the bias added.
	fn bias_fits_f32(&self, bound: i64) -> bool {
		let max_bias = self.op.bias.iter().map(|b| i64::from(*b).abs()).max().unwrap_or(0);
		bound + max_bias < F32_EXACT
	}
}

/// Prepare every op of a validated model for `device`, in order.
pub(super) fn prepare_steps(model: &LoadedModel, device: Device) -> Result<Vec<Step>> {
	let header = &model.header;
	let mut steps = Vec::with_capacity(header.ops.len());
	for (i, (op, weights)) in header.ops.iter().zip(&model.weights).enumerate() {
		let first =
			*op.inputs.first().ok_or_else(|| TchBackendError::Invalid("no input".into()))?;
		let x = header
			.tensor_spec(first)
			.ok_or_else(|| TchBackendError::Invalid(format!("op {}: bad input", i + 1)))?;
		let weights = weights.iter().map(|&b| b as i8).collect();
		let cx = OpContext { header, op, first, x, weights, device };
		steps.push(match &op.kind {
			OpKind::FullyConnected => prepare_fully_connected(&cx)?,
			OpKind::Conv2d(p) => prepare_conv2d(&cx, p)?,
			OpKind::Add(p) => prepare_add(&cx, p)?,
			OpKind::MaxPool(p) => prepare_max_pool(&cx, p),
			OpKind::AvgPool(p) => prepare_avg_pool(&cx, p)?,
			OpKind::GlobalAvgPool => prepare_global_avg_pool(&cx)?,
			OpKind::Reshape => prepare_reshape(&cx),
			OpKind::Concat { axis } => prepare_concat(&cx, *axis),
			OpKind::Lookup => prepare_lookup(&cx)?,
		});
	}
	Ok(steps)
}

/// `W^T` as fp32 `[K, N]`, cut into chunks of the reduction that stay exact in fp32.
fn prepare_fully_connected(cx: &OpContext<'_>) -> Result<Step> {
	let n = cx.op.bias.len();
	let k = cx.x.num_elements().unwrap_or(0) as usize;
	let xm = cx.xmax();
	let w_at =
		|r: usize, c: usize| i64::from(cx.weights.get(r * k + c).copied().unwrap_or(0)).abs();
	let ranges = chunks_for(n, k, xm, w_at);
	let w = Tensor::f_from_slice(&cx.weights)?
		.f_reshape([n as i64, k as i64])?
		.f_to_kind(Kind::Float)?
		.f_t_()?
		.f_contiguous()?
		.f_to_device(cx.device)?; // [K, N]
	let chunks = ranges
		.iter()
		.map(|&(s, l)| Ok(w.f_narrow(0, s, l)?.f_contiguous()?))
		.collect::<Result<Vec<_>>>()?;
	let bound: i64 =
		(0..n).map(|r| (0..k).map(|c| w_at(r, c)).sum::<i64>() * xm).max().unwrap_or(0);
	let fused = chunks.len() == 1 && cx.bias_fits_f32(bound);
	let shape = [1, n as i64];
	let (bias_i64, bias_f32) = cx.bias(&shape, fused.then_some((&shape[..], Kind::Float)))?;
	Ok(Step::Fc {
		k: k as i64,
		x_zp: f64::from(cx.x.zero_point),
		chunks,
		chunk_ranges: ranges,
		bias_f32,
		bias_i64,
		out: OutputStage::new(cx.op, &cx.op.requant, 0, 1, cx.device)?,
	})
}

/// The kernel in fp32, cut into chunks of input channels that stay exact in fp32, or in fp64
/// (one chunk) when a single input channel would already exceed the fp32 bound.
fn prepare_conv2d(cx: &OpContext<'_>, p: &Conv2dParams) -> Result<Step> {
	let out = &cx.op.output;
	let cin = dim(&cx.x.shape, 0)? as usize;
	let cout = cx.op.bias.len();
	let groups = p.groups as usize;
	let cin_g = cin / groups.max(1);
	let taps = (p.kernel_h * p.kernel_w) as usize;
	let per_out = cin_g * taps;
	let xm = cx.xmax();
	// |w| summed over one input channel's kernel, per output channel.
	let ch_abs = |co: usize, c: usize| -> i64 {
		let start = co * per_out + c * taps;
		cx.weights.get(start..start + taps).unwrap_or(&[]).iter().map(|&v| i64::from(v).abs()).sum()
	};
	let single_too_big = (0..cout).any(|co| (0..cin_g).any(|c| xm * ch_abs(co, c) >= F32_EXACT));
	let (kind, ranges) = if single_too_big {
		(Kind::Double, vec![(0i64, cin_g as i64)])
	} else {
		(Kind::Float, chunks_for(cout, cin_g, xm, ch_abs))
	};
	let w = Tensor::f_from_slice(&cx.weights)?
		.f_reshape([cout as i64, cin_g as i64, i64::from(p.kernel_h), i64::from(p.kernel_w)])?
		.f_to_kind(kind)?
		.f_to_device(cx.device)?;
	let mut chunks = Vec::with_capacity(ranges.len());
	for &(s, l) in &ranges {
		let wc = w.f_narrow(1, s, l)?.f_contiguous()?;
		let index = if ranges.len() == 1 {
			None
		} else {
			let idx: Vec<i64> = (0..groups as i64)
				.flat_map(|g| (s..s + l).map(move |c| g * cin_g as i64 + c))
				.collect();
			Some(Tensor::f_from_slice(&idx)?.f_to_device(cx.device)?)
		};
		chunks.push((index, wc));
	}
	let bound: i64 =
		(0..cout).map(|co| (0..cin_g).map(|c| ch_abs(co, c)).sum::<i64>() * xm).max().unwrap_or(0);
	let fused = chunks.len() == 1 && (kind == Kind::Double || cx.bias_fits_f32(bound));
	let (bias_i64, bias_float) =
		cx.bias(&[1, cout as i64, 1, 1], fused.then_some((&[cout as i64][..], kind)))?;
	let (pad, sym_pad) = padding(p.pad_top, p.pad_left, p.pad_bottom, p.pad_right);
	let plane = (dim(&out.shape, 1)? * dim(&out.shape, 2)?) as usize;
	Ok(Step::Conv {
		x_zp: f64::from(cx.x.zero_point),
		pad,
		sym_pad,
		stride: [i64::from(p.stride_h), i64::from(p.stride_w)],
		dilation: [i64::from(p.dilation_h), i64::from(p.dilation_w)],
		groups: groups as i64,
		chunks,
		kind,
		bias_float,
		bias_i64,
		out: OutputStage::new(cx.op, &cx.op.requant, 2, plane, cx.device)?,
	})
}

/// Each side's input scaling as a 256-entry table (computed with the reference arithmetic);
/// the sum is requantized by the op's single output requantization.
fn prepare_add(cx: &OpContext<'_>, p: &AddParams) -> Result<Step> {
	let second = *cx
		.op
		.inputs
		.get(1)
		.ok_or_else(|| TchBackendError::Invalid("add needs 2 inputs".into()))?;
	let y = cx
		.header
		.tensor_spec(second)
		.ok_or_else(|| TchBackendError::Invalid("bad add input".into()))?;
	let table = |zp: i8, rq: Requant| -> Result<Tensor> {
		let v: Vec<i64> = (-128i32..=127)
			.map(|q| {
				let a = (q - i32::from(zp)) * (1i32 << p.left_shift);
				i64::from(multiply_by_quantized_multiplier(a, rq.multiplier, rq.shift))
			})
			.collect();
		Ok(Tensor::f_from_slice(&v)?.f_to_device(cx.device)?)
	};
	let out_rq = cx
		.op
		.requant
		.first()
		.copied()
		.ok_or_else(|| TchBackendError::Invalid("add without requant".into()))?;
	Ok(Step::Add {
		lhs: table(cx.x.zero_point, p.lhs)?,
		rhs: table(y.zero_point, p.rhs)?,
		out: OutputStage::new(cx.op, &[out_rq], 0, 1, cx.device)?,
	})
}

/// torch's own max pool padding (`-inf`) where it allows it (`pad <= kernel / 2`), else
/// explicit padding.
fn prepare_max_pool(cx: &OpContext<'_>, p: &PoolParams) -> Step {
	let (pad, sym) = padding(p.pad_top, p.pad_left, p.pad_bottom, p.pad_right);
	let pad = match pad {
		None if 2 * sym[0] <= i64::from(p.kernel_h) && 2 * sym[1] <= i64::from(p.kernel_w) => None,
		_ => Some(explicit_padding(p.pad_top, p.pad_left, p.pad_bottom, p.pad_right)),
	};
	Step::MaxPool {
		pad,
		kernel: [i64::from(p.kernel_h), i64::from(p.kernel_w)],
		stride: [i64::from(p.stride_h), i64::from(p.stride_w)],
		clamp: cx.clamp(),
	}
}

/// Window sums in floating point (exact for these sizes), divided by the number of real
/// positions of each window.
fn prepare_avg_pool(cx: &OpContext<'_>, p: &PoolParams) -> Result<Step> {
	let out = &cx.op.output;
	let h = dim(&cx.x.shape, 1)? as u32;
	let w = dim(&cx.x.shape, 2)? as u32;
	let oh = dim(&out.shape, 1)? as u32;
	let ow = dim(&out.shape, 2)? as u32;
	let ry = real_counts(h, oh, p.kernel_h, p.stride_h, p.pad_top);
	let rx = real_counts(w, ow, p.kernel_w, p.stride_w, p.pad_left);
	let count: Vec<i64> = ry.iter().flat_map(|&a| rx.iter().map(move |&b| a * b)).collect();
	let half: Vec<i64> = count.iter().map(|c| c / 2).collect();
	let to_t = |v: &[i64]| -> Result<Tensor> {
		Ok(Tensor::f_from_slice(v)?
			.f_reshape([1, 1, i64::from(oh), i64::from(ow)])?
			.f_to_device(cx.device)?)
	};
	let window = i64::from(p.kernel_h) * i64::from(p.kernel_w) * 128;
	Ok(Step::AvgPool {
		pad: Some(explicit_padding(p.pad_top, p.pad_left, p.pad_bottom, p.pad_right)),
		kernel: [i64::from(p.kernel_h), i64::from(p.kernel_w)],
		stride: [i64::from(p.stride_h), i64::from(p.stride_w)],
		kind: if window < F32_EXACT { Kind::Float } else { Kind::Double },
		count: to_t(&count)?,
		half: to_t(&half)?,
		counts: count,
		clamp: cx.clamp(),
	})
}

/// An int64 sum over each channel's plane, divided by the plane's size.
fn prepare_global_avg_pool(cx: &OpContext<'_>) -> Result<Step> {
	let plane = dim(&cx.x.shape, 1)? * dim(&cx.x.shape, 2)?;
	Ok(Step::Gap {
		count: Tensor::f_from_slice(&[plane])?.f_to_device(cx.device)?,
		counts: vec![plane],
		half: Tensor::f_from_slice(&[plane / 2])?.f_to_device(cx.device)?,
		clamp: cx.clamp(),
	})
}

fn prepare_reshape(cx: &OpContext<'_>) -> Step {
	Step::Reshape { shape: i64s(&cx.op.output.shape), clamp: cx.clamp() }
}

/// `axis` of the per-sample shape, one more with the batch dimension in front.
fn prepare_concat(cx: &OpContext<'_>, axis: u32) -> Step {
	Step::Concat { axis: i64::from(axis) + 1, clamp: cx.clamp() }
}

/// The table with the op's clamp folded in.
fn prepare_lookup(cx: &OpContext<'_>) -> Result<Step> {
	let (lo, hi) = cx.clamp();
	let table: Vec<i8> = cx.weights.iter().map(|&v| v.clamp(lo, hi)).collect();
	Ok(Step::Lookup { table: Tensor::f_from_slice(&table)?.f_to_device(cx.device)? })
}

#[cfg(test)]
mod tests {
	use super::*;

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

	#[test]
	fn real_counts_exclude_padding() {
		// size 4, kernel 3, stride 1, pad 1 before (and 1 after): 4 outputs.
		assert_eq!(real_counts(4, 4, 3, 1, 1), vec![2, 3, 3, 2]);
		// No padding, stride 2.
		assert_eq!(real_counts(4, 2, 2, 2, 0), vec![2, 2]);
	}
}
