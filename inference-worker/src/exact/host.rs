//! The host path: steps or parts of steps that run in Rust on the bytes every step copies back
//! anyway. The integer output stage ([`finish_host`], with the requantization loop
//! [`requant_loop`]), max pool on the bytes, the reference op for small and memory steps, and
//! the centred float input of FullyConnected and Conv2d.

use std::ops::Sub;

use tch::{Device, Kind, Tensor};
use verity_primitives::{
	arith::{clamp_to_i8, div_round_half_away, requantize_to_i8},
	execute_step, Op, OpKind, PoolParams, Requant,
};

use super::{device::Pre, raw, Batch, Result, TchBackendError, TchModel};

/// Requantization parameters for the host output stage: the accumulator is a sequence of
/// blocks of `plane` values, block `b` belonging to channel `b % rq.len()`.
pub(super) struct HostRequant {
	pub(super) rq: Vec<Requant>,
	pub(super) plane: usize,
	pub(super) zero_point: i8,
	pub(super) clamp: (i8, i8),
}

/// An integer-valued accumulator element (validation keeps every accumulator in `i32`; values
/// outside it saturate).
pub(super) trait AccValue: Copy {
	fn to_i32(self) -> i32;
}
impl AccValue for f32 {
	#[inline(always)]
	fn to_i32(self) -> i32 {
		self as i32 // saturating (NaN: 0)
	}
}
impl AccValue for f64 {
	#[inline(always)]
	fn to_i32(self) -> i32 {
		self as i32 // saturating (NaN: 0)
	}
}
impl AccValue for i64 {
	#[inline(always)]
	fn to_i32(self) -> i32 {
		self.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
	}
}

/// The output stage on the host, appended to `out`: `clamp(MBQM(acc, rq[c]) + z, lo, hi)` for
/// every element, equal to `verity_primitives::arith::requantize_to_i8`. Run through
/// [`raw::requant`] (an AVX2 build where the CPU has it).
///
/// A specialisation of `arith::multiply_by_quantized_multiplier_closed` for the usual
/// parameters (`multiplier >= 0`, `shift <= 0`), written for 32-bit SIMD lanes; other
/// parameters call `requantize_to_i8` itself. Tested against `requantize_to_i8` below.
#[inline(always)]
pub(super) fn requant_loop<T: AccValue>(vals: &[T], host: &HostRequant, out: &mut Vec<u8>) {
	let (lo, hi) = host.clamp;
	let zp = i32::from(host.zero_point);
	let (lo_z, hi_z) = (i32::from(lo) - zp, i32::from(hi) - zp);
	let channels = host.rq.len().max(1);
	let start = out.len();
	out.resize(start + vals.len(), 0);
	let dst = out.get_mut(start..).unwrap_or_default();
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
			// srdhm_closed: |x| <= 2^31 and 0 <= m < 2^31, so p fits i64 and floor(p / 2^31)
			// fits i32 (no saturation); its two's complement is bits 31..62 of p, which a
			// logical shift gives as well (AVX2 has no 64-bit arithmetic shift).
			let p = i64::from(v.to_i32()) * m + (1i64 << 30);
			let y = ((p as u64) >> 31) as u32 as i32;
			// rdbpot_closed: |y| + 2^(e-1) <= 2^31 + 2^30 fits u32.
			let a = (y.unsigned_abs() + half) >> e;
			let z = if y < 0 { (a as i32).wrapping_neg() } else { a as i32 };
			*o = (z.clamp(lo_z, hi_z) + zp) as u8;
		}
	}
}

/// Finish a step on the host: copy the pre-result back and run its integer stage in Rust
/// with the reference arithmetic (requantization, rounding division, clamp).
pub(super) fn finish_host(pre: Pre<'_>, numel: usize) -> Result<Vec<u8>> {
	Ok(match pre {
		Pre::Done(t) => {
			let t = t.f_contiguous()?;
			let mut buf = vec![0u8; numel];
			t.f_copy_data_u8(&mut buf, numel)?;
			buf
		},
		Pre::Requant { acc, out: stage } => {
			// On a GPU the accumulator is copied back first (a no-op on the CPU).
			let acc = acc.f_to_device(Device::Cpu)?.f_contiguous()?;
			let mut out = Vec::with_capacity(numel);
			match acc.f_kind()? {
				Kind::Float => {
					raw::requant(raw::cpu_slice::<f32>(&acc, numel)?, &stage.host, &mut out)
				},
				Kind::Double => {
					raw::requant(raw::cpu_slice::<f64>(&acc, numel)?, &stage.host, &mut out)
				},
				_ => raw::requant(&to_i64s(&acc, numel)?, &stage.host, &mut out),
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

impl TchModel {
	/// Step `step` (op `op`) with the reference op of verity-primitives, sample by sample.
	pub(super) fn reference_step(&self, step: u32, op: &Op, batch: &Batch) -> Result<Vec<u8>> {
		let weights = (step as usize)
			.checked_sub(1)
			.and_then(|i| self.weights.get(i))
			.map(|w| w.as_slice())
			.unwrap_or(&[]);
		let mut bufs = Vec::with_capacity(op.inputs.len());
		for &r in &op.inputs {
			let len = self.shapes.get(r as usize).map(|s| s.1).unwrap_or(0);
			bufs.push((batch.bytes(r, step)?, len));
		}
		let mut out = Vec::new();
		let mut sample: Vec<&[u8]> = Vec::with_capacity(bufs.len());
		for s in 0..batch.n {
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

	/// `x - z_x` of the first input of step `step` (FullyConnected or Conv2d) as a `[n, shape]`
	/// tensor of `kind` (f32 or f64), built in one pass over the host bytes instead of
	/// uploading int8 and converting on the device, then moved to the model's device.
	pub(super) fn centered_input(
		&self,
		step: u32,
		op: &Op,
		kind: Kind,
		batch: &Batch,
	) -> Result<Tensor> {
		let r = *op.inputs.first().unwrap_or(&0);
		let bytes = batch.bytes(r, step)?;
		let zp = self.header.tensor_spec(r).map(|s| s.zero_point).unwrap_or(0);
		let mut shape = vec![batch.n as i64];
		shape.extend(self.shapes.get(r as usize).map(|s| s.0.as_slice()).unwrap_or(&[]));
		let mut t = Tensor::f_empty(shape.as_slice(), (kind, Device::Cpu))?;
		if kind == Kind::Float {
			center::<f32>(raw::cpu_slice_mut(&mut t, bytes.len())?, bytes, zp);
		} else {
			center::<f64>(raw::cpu_slice_mut(&mut t, bytes.len())?, bytes, zp);
		}
		Ok(t.f_to_device(self.device)?)
	}
}

/// `dst[i] = bytes[i] as i8 - zp`.
fn center<F: From<i8> + Sub<Output = F> + Copy>(dst: &mut [F], bytes: &[u8], zp: i8) {
	let z = F::from(zp);
	for (d, &b) in dst.iter_mut().zip(bytes) {
		*d = F::from(b as i8) - z;
	}
}

/// Max pool op `op` on the host over `[n, C, H, W]` int8 bytes `x` of shape `in_shape` (without
/// the batch dimension), padding ignored, then the clamp.
pub(super) fn max_pool(x: &[u8], n: usize, in_shape: &[u32], op: &Op) -> Result<Vec<u8>> {
	let OpKind::MaxPool(p) = &op.kind else {
		return Err(TchBackendError::Invalid("not a max pool".into()));
	};
	Ok(max_pool_bytes(x, n, in_shape, &op.output.shape, p, (op.act_min, op.act_max)))
}

fn max_pool_bytes(
	x: &[u8],
	n: usize,
	in_shape: &[u32],
	out_shape: &[u32],
	p: &PoolParams,
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
					let row = img.get((iy * w) as usize..((iy + 1) * w) as usize).unwrap_or(&[]);
					for &b in row.get(x0 as usize..x1 as usize).unwrap_or(&[]) {
						m = m.max(b as i8);
					}
				}
				out.push(m.clamp(lo, hi) as u8);
			}
		}
	}
	out
}

#[cfg(test)]
mod tests {
	use super::*;
	use verity_primitives::{arith::requantize_to_i8, testing::pool_params};

	use crate::exact::edge_values::check_requant;

	/// The host output stage (the portable loop and the dispatched build, AVX2 where the CPU
	/// has it) equals the primitives' plain definition on edge values: exact ties, the i32
	/// extremes, both signs of accumulator and multiplier (negative ones take the fallback),
	/// every valid shift; `rq` cycles per element (plane 1), as channels do.
	#[test]
	fn requant_matches_reference_including_ties() {
		let host = |rqs: &[Requant], zero_point, clamp| HostRequant {
			rq: rqs.to_vec(),
			plane: 1,
			zero_point,
			clamp,
		};
		let portable = check_requant(|acc, rqs, zp, clamp| {
			let mut out = Vec::new();
			requant_loop(acc, &host(rqs, zp, clamp), &mut out);
			out
		});
		let dispatched = check_requant(|acc, rqs, zp, clamp| {
			let f: Vec<f64> = acc.iter().map(|&x| x as f64).collect();
			let mut out = Vec::new();
			raw::requant(&f, &host(rqs, zp, clamp), &mut out);
			out
		});
		assert!(portable > 100_000 && dispatched == portable);
	}

	/// Accumulators outside the i32 range (i64 and f32/f64 extremes) saturate to it first.
	#[test]
	fn out_of_range_accumulators_saturate() {
		let wide: Vec<i64> = vec![
			i64::MIN,
			i64::MAX,
			i64::from(i32::MIN) - 1,
			i64::from(i32::MAX) + 1,
			i64::from(i32::MIN),
			i64::from(i32::MAX),
		];
		for rq in [
			Requant { multiplier: 1 << 30, shift: -1 },
			Requant { multiplier: i32::MAX, shift: 0 },
			Requant { multiplier: 1 << 30, shift: 3 },
			Requant { multiplier: i32::MIN, shift: -2 },
		] {
			let host = HostRequant { rq: vec![rq], plane: 1, zero_point: 3, clamp: (-128, 127) };
			let want: Vec<u8> = wide
				.iter()
				.map(|&x| {
					let x = x.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
					requantize_to_i8(x, rq, 3, -128, 127)
				})
				.collect();
			let mut got = Vec::new();
			raw::requant(&wide, &host, &mut got);
			assert_eq!(got, want, "i64 {rq:?}");
			for vals in [
				wide.iter().map(|&x| x as f64).collect::<Vec<_>>(),
				vec![f64::MIN, f64::MAX, -1e10, 1e10, -2147483648.0, 2147483647.0],
			] {
				let mut got = Vec::new();
				raw::requant(&vals, &host, &mut got);
				assert_eq!(got, want, "f64 {rq:?}");
			}
			let f: Vec<f32> = vec![f32::MIN, f32::MAX, -1e10, 1e10, -2147483648.0, 2147483647.0];
			let mut got = Vec::new();
			raw::requant(&f, &host, &mut got);
			// f32 cannot hold i32::MAX: 2147483647.0f32 is 2^31, which saturates as well.
			assert_eq!(got, want, "f32 {rq:?}");
		}
	}

	/// Blocks of `plane` values cycle through the channels' parameters.
	#[test]
	fn requant_blocks_follow_channels() {
		let rqs = vec![
			Requant { multiplier: 1 << 30, shift: 0 },
			Requant { multiplier: 1 << 30, shift: -1 },
		];
		let host = HostRequant { rq: rqs.clone(), plane: 3, zero_point: 0, clamp: (-128, 127) };
		// Two samples of two channels of three values.
		let vals: Vec<i64> = vec![10, 11, 12, 10, 11, 12, -10, -11, -12, -10, -11, -12];
		let mut got = Vec::new();
		raw::requant(&vals, &host, &mut got);
		let want: Vec<u8> = vals
			.iter()
			.enumerate()
			.map(|(i, &x)| requantize_to_i8(x as i32, rqs[(i / 3) % 2], 0, -128, 127))
			.collect();
		assert_eq!(got, want);
		assert_eq!(got[..3], [5u8, 6, 6]); // 5, 5.5 -> 6, 6
	}

	#[test]
	fn max_pool_matches_a_plain_window_max() {
		// One channel 4x4, 2x2 stride 2 (the fast path) and 3x3 stride 1 pad 1 (the general one).
		let img: Vec<u8> = (0..16).map(|i| ((i * 37) % 256) as u8).collect();
		let plain = |kh: i64, s: i64, pad: i64, oh: i64| -> Vec<u8> {
			let mut out = Vec::new();
			for oy in 0..oh {
				for ox in 0..oh {
					let mut m = i8::MIN;
					for y in oy * s - pad..oy * s - pad + kh {
						for x in ox * s - pad..ox * s - pad + kh {
							if (0..4).contains(&y) && (0..4).contains(&x) {
								m = m.max(img[(y * 4 + x) as usize] as i8);
							}
						}
					}
					out.push(m.clamp(-100, 100) as u8);
				}
			}
			out
		};
		let pool = |k: u32, s: u32, pad: u32| pool_params((k, k), (s, s), [pad; 4]);
		assert_eq!(
			max_pool_bytes(&img, 1, &[1, 4, 4], &[1, 2, 2], &pool(2, 2, 0), (-100, 100)),
			plain(2, 2, 0, 2)
		);
		assert_eq!(
			max_pool_bytes(&img, 1, &[1, 4, 4], &[1, 4, 4], &pool(3, 1, 1), (-100, 100)),
			plain(3, 1, 1, 4)
		);
	}
}
