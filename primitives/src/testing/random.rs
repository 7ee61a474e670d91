//! [`random_case`]: the generator of random valid models.

use alloc::{vec, vec::Vec};

use super::{conv_params, pool_params, spec, Kernel, ModelBuilder, Rng, TestCase, FULL};
use crate::{
	model::*,
	validate::{validate_step, window_output_size, Limits},
};

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

/// Largest reduction length for which a zero bias passes the accumulator bound.
const MAX_K: u64 = (i32::MAX as u64) / (MAX_PRODUCT as u64);

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
		let kernel = Kernel { bias, requant: rq, weights: w };
		self.b.fully_connected(t, spec(vec![n as u32], zp), clamp, kernel);
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
		let kernel = Kernel { bias, requant: rq, weights: wts };
		self.b.conv2d(t, p, spec(vec![cout, oh, ow], zp), clamp, kernel);
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
		let clamp = self.data_clamp(x.zero_point);
		let output = spec(vec![c, oh, ow], x.zero_point);
		if max {
			self.b.max_pool(t, p, output, clamp);
		} else {
			self.b.avg_pool(t, p, output, clamp);
		}
		true
	}

	fn global_avg_pool(&mut self, t: u32) -> bool {
		let x = self.spec_of(t);
		let [c, _, _] = x.shape.as_slice() else { return false };
		let clamp = self.data_clamp(x.zero_point);
		self.b.global_avg_pool(t, spec(vec![*c], x.zero_point), clamp);
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
		let inputs = if self.rng.chance(50) { [t, other] } else { [other, t] };
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
		self.b.add(inputs, p, spec(x.shape.clone(), zp), clamp, out_rq);
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
		self.b.concat(inputs, axis as u32, spec(shape, x.zero_point), clamp);
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
		self.b.reshape(t, spec(shape, x.zero_point), clamp);
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
		self.b.lookup(t, spec(x.shape.clone(), zp), clamp, table);
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
			g.b.reshape(step - 1, spec(flat, x.zero_point), FULL);
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
