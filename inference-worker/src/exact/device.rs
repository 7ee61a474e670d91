//! The device path: a prepared [`Step`] as libtorch tensor ops ([`run_step`], up to the result
//! before its integer output stage, [`Pre`]) and that stage as integer tensor ops
//! ([`finish_device`]). Nothing here leaves the device except [`copy_back`].

use tch::{Device, Kind, Tensor};
use verity_primitives::{Op, OpKind, Requant};

use super::{
	prepare::{OutputStage, Step},
	Result, TchBackendError,
};

/// Requantization parameters as tensors, broadcast against an accumulator `[N, C, ...]`: the
/// tensor form of `verity_primitives::arith::multiply_by_quantized_multiplier_closed` followed
/// by the output stage (tested against `requantize_to_i8` below).
pub(super) struct RequantT {
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
	pub(super) fn new(
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
	/// the i32 range (guaranteed by validation) and is consumed. Stages in closed form:
	/// saturating left shift = multiply and clamp; `SRDHM(x, m) = (x * m + 2^30) >> 31` (an
	/// arithmetic shift is the floor); `RDBPOT(y, e) = sign(y) * ((|y| + 2^(e-1)) >> e)`.
	pub(super) fn apply(&self, mut x: Tensor) -> Result<Tensor> {
		if let Some(p2) = &self.left {
			x = x.f_mul(p2)?.f_clamp(i64::from(i32::MIN), i64::from(i32::MAX))?;
		}
		// SRDHM: |x| <= 2^31 and |m| <= 2^31, so x * m + 2^30 fits i64. The one value
		// above i32::MAX (x = m = i32::MIN, 2^31) is not saturated here but rounds and
		// clamps as i32::MAX would.
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

/// `sign(sum) * ((|sum| + count / 2) / count)` (round half away from zero), int64: the tensor
/// form of `verity_primitives::arith::div_round_half_away`.
fn div_round_half_away_t(sum: &Tensor, count: &Tensor, half: &Tensor) -> Result<Tensor> {
	let sign = sum.f_sign()?;
	let q = sum.f_abs()?.f_add(half)?.f_div_tensor_mode(count, "trunc")?;
	Ok(q.f_mul(&sign)?)
}

/// Clamp an integer-valued tensor to `[lo, hi]` and convert it to int8.
fn clamp_i8(y: Tensor, (lo, hi): (i8, i8)) -> Result<Tensor> {
	Ok(y.f_clamp(i64::from(lo), i64::from(hi))?.f_to_kind(Kind::Int8)?)
}

/// `y` clamped to `clamp` unless that is the whole int8 range.
fn clamp_unless_full(y: Tensor, (lo, hi): (i8, i8)) -> Result<Tensor> {
	if lo == i8::MIN && hi == i8::MAX {
		Ok(y)
	} else {
		Ok(y.f_clamp(i64::from(lo), i64::from(hi))?)
	}
}

/// The result of a step before its integer output stage.
pub(super) enum Pre<'a> {
	/// The int8 output.
	Done(Tensor),
	/// An integer-valued accumulator (f32, f64 or i64; bias included) to requantize, channel
	/// by channel.
	Requant { acc: Tensor, out: &'a OutputStage },
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

/// The first input of a step.
pub(super) enum Input<'t> {
	/// As stored: the int8 tensor on the device.
	Stored(&'t Tensor),
	/// `x - z_x` in the step's float kind ([`Step::linear_kind`]), built on the host
	/// (FullyConnected and Conv2d only).
	Centered(Tensor),
}

/// The device tensor `[n, shape]` of a host batch buffer (bytes reinterpreted as int8).
pub(super) fn upload(bytes: &[u8], n: usize, shape: &[i64], device: Device) -> Result<Tensor> {
	let mut dims = vec![n as i64];
	dims.extend(shape);
	Ok(Tensor::f_from_slice(bytes)?
		.f_view_dtype(Kind::Int8)?
		.f_reshape(dims.as_slice())?
		.f_to_device(device)?)
}

/// Run `step` (op `op`) on a batch of `n` up to its integer output stage. `x` is the first
/// input; `get(r)` gives tensor `r` on the device (the other inputs of Add and Concat).
pub(super) fn run_step<'a, 't>(
	step: &'a Step,
	op: &Op,
	x: Input<'t>,
	get: &dyn Fn(u32) -> Result<&'t Tensor>,
	n: usize,
) -> Result<Pre<'a>> {
	let n = n as i64;
	let stored = |x: Input<'t>| -> Result<&'t Tensor> {
		match x {
			Input::Stored(t) => Ok(t),
			Input::Centered(_) => {
				Err(TchBackendError::Invalid("a centered input for a step that takes int8".into()))
			},
		}
	};
	Ok(match step {
		Step::Fc { k, x_zp, chunks, chunk_ranges, bias_f32, bias_i64, out } => {
			let xf = match x {
				Input::Centered(t) => t.f_reshape([n, *k])?,
				Input::Stored(x) => {
					x.f_reshape([n, *k])?.f_to_kind(Kind::Float)?.f_sub_scalar_(*x_zp)?
				},
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
			Pre::Requant { acc, out }
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
			out,
		} => {
			let mut xf = match x {
				Input::Centered(t) => t,
				Input::Stored(x) => x.f_to_kind(*kind)?.f_sub_scalar_(*x_zp)?,
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
			Pre::Requant { acc, out }
		},
		Step::Add { lhs, rhs, out } => {
			let x = stored(x)?;
			let y = get(*op.inputs.get(1).unwrap_or(&0))?;
			let a = lhs.f_take(&x.f_to_kind(Kind::Int64)?.f_add_scalar_(128i64)?)?;
			let b = rhs.f_take(&y.f_to_kind(Kind::Int64)?.f_add_scalar_(128i64)?)?;
			Pre::Requant { acc: a.f_add(&b)?, out }
		},
		Step::MaxPool { pad, kernel, stride, clamp } => {
			// Values shifted to 0..=255 so that zero padding never wins a window.
			let mut xf = stored(x)?.f_to_kind(Kind::Float)?.f_add_scalar_(128.0)?;
			let torch_pad = match pad {
				Some(p) => {
					xf = xf.f_constant_pad_nd(p.as_slice())?;
					[0, 0]
				},
				None => match op.kind {
					OpKind::MaxPool(p) => [i64::from(p.pad_top), i64::from(p.pad_left)],
					_ => [0, 0],
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
			let mut xf = stored(x)?.f_to_kind(*kind)?;
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
			let sum = stored(x)?.f_sum_dim_intlist([2i64, 3].as_slice(), false, Kind::Int64)?;
			Pre::DivRound { sum, count, half, counts, clamp: *clamp }
		},
		Step::Reshape { shape, clamp } => {
			let mut s = vec![n];
			s.extend(shape);
			Pre::Done(clamp_unless_full(stored(x)?.f_reshape(s.as_slice())?, *clamp)?)
		},
		Step::Concat { axis, clamp } => {
			let mut parts = Vec::with_capacity(op.inputs.len());
			for &r in &op.inputs {
				parts.push(get(r)?);
			}
			Pre::Done(clamp_unless_full(Tensor::f_cat(&parts, *axis)?, *clamp)?)
		},
		Step::Lookup { table } => {
			let x = stored(x)?;
			Pre::Done(table.f_take(&x.f_to_kind(Kind::Int64)?.f_add_scalar_(128i64)?)?)
		},
	})
}

/// Finish a step with integer tensor ops on the device: the int8 result.
pub(super) fn finish_device(pre: Pre<'_>) -> Result<Tensor> {
	match pre {
		Pre::Done(t) => Ok(t),
		Pre::Requant { acc, out } => out.device.apply(acc.f_to_kind(Kind::Int64)?),
		Pre::DivRound { sum, count, half, clamp, .. } => {
			clamp_i8(div_round_half_away_t(&sum.f_to_kind(Kind::Int64)?, count, half)?, clamp)
		},
		Pre::Clamp { t, offset, clamp } => {
			clamp_i8(t.f_to_kind(Kind::Int64)?.f_add_scalar(offset)?, clamp)
		},
	}
}

/// The int8 result `y` of `numel` elements, contiguous, and its bytes on the host.
pub(super) fn copy_back(y: Tensor, numel: usize) -> Result<(Vec<u8>, Tensor)> {
	let y = y.f_contiguous()?;
	let mut buf = vec![0u8; numel];
	y.f_copy_data_u8(&mut buf, numel)?;
	Ok((buf, y))
}

#[cfg(test)]
mod tests {
	use super::*;
	use verity_primitives::arith::div_round_half_away;

	use crate::exact::edge_values::check_requant;

	/// The tensor requantization equals the reference `MBQM + output stage` (the primitives'
	/// plain definition) on edge values: exact ties of both roundings, powers of two, the i32
	/// extremes, both signs of accumulator and multiplier, every valid shift.
	#[test]
	fn requant_matches_reference_including_ties() {
		let checked = check_requant(|acc, rqs, zp, clamp| {
			let t = RequantT::new(rqs, 0, zp, clamp, Device::Cpu).expect("params");
			let rows = (acc.len() / rqs.len()) as i64;
			let y =
				t.apply(Tensor::from_slice(acc).reshape([rows, rqs.len() as i64])).expect("apply");
			let mut got = vec![0u8; acc.len()];
			y.copy_data_u8(&mut got, acc.len());
			got
		});
		assert!(checked > 50_000);
	}

	/// The tensor rounding division equals `arith::div_round_half_away` on ties, both signs
	/// and large sums.
	#[test]
	fn div_round_matches_reference() {
		let counts: Vec<i64> = vec![1, 2, 3, 4, 7, 9, 64, 1 << 20];
		let mut sums: Vec<i64> = vec![0, 1, -1, i64::from(i32::MAX), i64::from(i32::MIN)];
		for &c in &counts {
			for k in -5..=5 {
				// Exact ties (k * c + c / 2) and their neighbours.
				let tie = k * c + c / 2;
				sums.extend([tie - 1, tie, tie + 1, -tie - 1, -tie, -tie + 1]);
			}
		}
		for &c in &counts {
			let sum = Tensor::from_slice(&sums);
			let count = Tensor::from_slice(&[c]);
			let half = Tensor::from_slice(&[c / 2]);
			let q = div_round_half_away_t(&sum, &count, &half).expect("div");
			let mut got = vec![0i64; sums.len()];
			q.copy_data(&mut got, sums.len());
			for (&s, &g) in sums.iter().zip(&got) {
				assert_eq!(Some(g), div_round_half_away(s, c), "sum {s} count {c}");
			}
		}
	}
}
