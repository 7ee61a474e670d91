//! The hand-written models of `primitives/testdata/` (weights from fixed seeds).

use alloc::{vec, vec::Vec};

use super::{conv_params, pool_params, same3x3, spec, Kernel, ModelBuilder, Rng, TestCase, FULL};
use crate::model::*;

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

/// A case from `Rng::new(seed)`: `ops` appends the ops to a model with the given input
/// spec, drawing what it needs from the Rng; then the input is drawn (one byte per element).
fn seeded(seed: u64, input: TensorSpec, ops: impl FnOnce(&mut ModelBuilder, &mut Rng)) -> TestCase {
	let mut r = Rng::new(seed);
	let len = input.num_elements().and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
	let mut b = ModelBuilder::new(input);
	ops(&mut b, &mut r);
	let data = r.bytes(len);
	b.finish(data)
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
	seeded(1, spec(vec![16], -3), |b, r| {
		let w1 = r.bytes(12 * 16);
		let t1 = b.fully_connected(
			0,
			spec(vec![12], -128),
			(-128, 127),
			Kernel {
				bias: (0..12).map(|i| i * 100 - 600).collect(),
				requant: (0..12).map(|i| rq((1 << 30) + i * 12345, -9)).collect(),
				weights: w1,
			},
		);
		let w2 = r.bytes(8 * 12);
		let t2 = b.fully_connected(
			t1,
			spec(vec![8], 0),
			(-128, 127),
			Kernel {
				bias: vec![-5000, 5000, 0, 123, -123, 77, 0, 1],
				requant: (0..8).map(|i| rq(1_500_000_000 + i * 1000, -10)).collect(),
				weights: w2,
			},
		);
		let t3 = b.lookup(t2, spec(vec![8], 0), FULL, tanh_table());
		let w4 = r.bytes(4 * 8);
		b.fully_connected(
			t3,
			spec(vec![4], 10),
			FULL,
			Kernel { bias: vec![0, 10, -10, 1000], requant: vec![rq(1 << 30, -6); 4], weights: w4 },
		);
	})
}

/// A small CNN touching every op: conv, depthwise conv, residual add, max pool, 1x1 conv,
/// average pool, concat, lookup, global average pool, reshape, fully connected.
pub fn cnn() -> TestCase {
	seeded(2, spec(vec![3, 8, 8], 5), |b, r| {
		let w = r.bytes(8 * 3 * 9);
		let t1 = b.conv2d(
			0,
			same3x3(1),
			spec(vec![8, 8, 8], -20),
			(-20, 127),
			Kernel {
				bias: (0..8).map(|i| (i - 4) * 300).collect(),
				requant: (0..8).map(|i| rq(1_200_000_000 + i * 7_000_000, -10)).collect(),
				weights: w,
			},
		);
		let w = r.bytes(8 * 9);
		let t2 = b.conv2d(
			t1,
			same3x3(8),
			spec(vec![8, 8, 8], -20),
			(-20, 40),
			Kernel { bias: vec![50; 8], requant: vec![rq(1_800_000_000, -8); 8], weights: w },
		);
		let add = AddParams { left_shift: 20, lhs: rq(1 << 30, -1), rhs: rq(1_500_000_000, -1) };
		let t3 = b.add([t1, t2], add, spec(vec![8, 8, 8], 0), FULL, rq(1_700_000_000, -19));
		let pool2 = pool_params((2, 2), (2, 2), [0, 0, 0, 0]);
		let t4 = b.max_pool(t3, pool2, spec(vec![8, 4, 4], 0), FULL);
		let w = r.bytes(8 * 8);
		let t5 = b.conv2d(
			t4,
			conv_params((1, 1), (1, 1), (1, 1), [0; 4], 1),
			spec(vec![8, 4, 4], 0),
			(0, 127),
			Kernel { bias: vec![0; 8], requant: vec![rq(1 << 30, -7); 8], weights: w },
		);
		let avg = pool_params((3, 3), (1, 1), [1, 1, 1, 1]);
		let t6 = b.avg_pool(t5, avg, spec(vec![8, 4, 4], 0), FULL);
		let t7 = b.concat(vec![t4, t6], 0, spec(vec![16, 4, 4], 0), FULL);
		let t8 = b.lookup(t7, spec(vec![16, 4, 4], 3), FULL, tanh_table());
		let t9 = b.global_avg_pool(t8, spec(vec![16], 3), FULL);
		let t10 = b.reshape(t9, spec(vec![2, 8], 3), FULL);
		let w = r.bytes(4 * 16);
		b.fully_connected(
			t10,
			spec(vec![4], -7),
			FULL,
			Kernel { bias: vec![1, 2, 3, 4], requant: vec![rq(1 << 30, -5); 4], weights: w },
		);
	})
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
	b.fully_connected(
		0,
		spec(vec![4], -10),
		(-10, 50),
		Kernel {
			bias: vec![-100_000, 0, 7, i32::MAX - 6 * MAX_PRODUCT as i32],
			requant: vec![rq(1 << 30, -8), rq(i32::MAX, 3), rq(0, 0), rq(1_073_741_824, -31)],
			weights: w,
		},
	);
	b.finish(vec![0x7f, 0x80, 0, 1, 0xff, 0x40])
}

/// Grouped convolution with stride 2, dilation 2 and asymmetric padding.
pub fn op_conv() -> TestCase {
	seeded(4, spec(vec![4, 7, 6], 9), |b, r| {
		let p = conv_params((3, 2), (2, 1), (2, 1), [4, 0, 1, 1], 2);
		// H: (7 + 5 - 5) / 2 + 1 = 4; W: (6 + 1 - 2) / 1 + 1 = 6
		let w = r.bytes(6 * 2 * 3 * 2);
		b.conv2d(
			0,
			p,
			spec(vec![6, 4, 6], -1),
			FULL,
			Kernel {
				bias: vec![10, -10, 300, -300, 0, 5],
				requant: (0..6).map(|i| rq(1_100_000_000 + i * 50_000_000, -7)).collect(),
				weights: w,
			},
		);
	})
}

/// Depthwise convolution with channel multiplier 2 and "same" padding, ReLU.
pub fn op_dwconv() -> TestCase {
	seeded(5, spec(vec![3, 5, 5], -50), |b, r| {
		let p = same3x3(3);
		let w = r.bytes(6 * 9);
		b.conv2d(
			0,
			p,
			spec(vec![6, 5, 5], 20),
			(20, 127),
			Kernel {
				bias: vec![0, 100, -100, 1000, -1000, 0],
				requant: vec![rq(1 << 30, -6); 6],
				weights: w,
			},
		);
	})
}

/// Add of a tensor and its lookup (different zero points), plus an add of a tensor with
/// itself with extreme output scaling.
pub fn op_add() -> TestCase {
	seeded(6, spec(vec![2, 4, 4], -7), |b, r| {
		let t1 = b.lookup(0, spec(vec![2, 4, 4], 12), FULL, r.bytes(256));
		let p = AddParams { left_shift: 20, lhs: rq(1 << 30, -1), rhs: rq(1_610_612_736, -2) };
		let t2 = b.add([0, t1], p, spec(vec![2, 4, 4], -3), (-3, 127), rq(1_431_655_765, -19));
		let p = AddParams { left_shift: 7, lhs: rq(i32::MAX, 0), rhs: rq(i32::MAX, 0) };
		b.add([t2, t2], p, spec(vec![2, 4, 4], 0), FULL, rq(1 << 30, 2));
	})
}

/// Max pool with asymmetric padding and a clamp.
pub fn op_maxpool() -> TestCase {
	seeded(7, spec(vec![2, 5, 5], 3), |b, _| {
		let p = pool_params((3, 2), (2, 2), [2, 1, 0, 1]);
		// H: (5 + 2 - 3) / 2 + 1 = 3; W: (5 + 2 - 2) / 2 + 1 = 3
		b.max_pool(0, p, spec(vec![2, 3, 3], 3), (-100, 100));
	})
}

/// Average pool with padding (count excludes padding) on values that produce ties.
pub fn op_avgpool() -> TestCase {
	let mut b = ModelBuilder::new(spec(vec![1, 4, 4], -2));
	let p = pool_params((2, 2), (1, 1), [1, 1, 0, 0]);
	b.avg_pool(0, p, spec(vec![1, 4, 4], -2), FULL);
	let input: Vec<u8> = [1i8, 2, -1, -2, 3, 0, -3, -6, 127, -128, 5, 5, -128, -127, 0, 1]
		.iter()
		.map(|&v| v as u8)
		.collect();
	b.finish(input)
}

/// Global average pool.
pub fn op_gap() -> TestCase {
	seeded(9, spec(vec![3, 3, 2], 100), |b, _| {
		b.global_avg_pool(0, spec(vec![3], 100), FULL);
	})
}

/// Reshape with a clamp (a standalone ReLU).
pub fn op_reshape() -> TestCase {
	seeded(10, spec(vec![2, 3, 4], -5), |b, _| {
		b.reshape(0, spec(vec![6, 4], -5), (-5, 127));
	})
}

/// Concat of three inputs along the last axis.
pub fn op_concat() -> TestCase {
	seeded(11, spec(vec![2, 2, 3], 4), |b, _| {
		let p = pool_params((1, 2), (1, 1), [0, 0, 0, 0]);
		let t1 = b.max_pool(0, p, spec(vec![2, 2, 2], 4), FULL);
		b.concat(vec![0, t1, 0], 2, spec(vec![2, 2, 8], 4), FULL);
	})
}

/// Lookup with every byte value as input.
pub fn op_lookup() -> TestCase {
	let mut b = ModelBuilder::new(spec(vec![256], 0));
	b.lookup(0, spec(vec![256], -1), (-100, 120), tanh_table());
	b.finish((0..=255u8).collect())
}
