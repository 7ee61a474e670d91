//! Per-op tests with hand-computed expectations (through `execute_step` on one-op models, so
//! the structural checks run too).

use verity_primitives::{
	testing::{conv_params, pool_params, Kernel, ModelBuilder, FULL},
	*,
};

fn spec(shape: &[u32], zp: i8) -> TensorSpec {
	TensorSpec::new(shape.to_vec(), zp, 1.0)
}

fn rq(multiplier: i32, shift: i8) -> Requant {
	Requant { multiplier, shift }
}

/// Identity requantization: x * 2 * 0.5.
fn id() -> Requant {
	rq(1 << 30, 1)
}

fn bytes(v: &[i8]) -> Vec<u8> {
	v.iter().map(|&x| x as u8).collect()
}

fn signed(v: &[u8]) -> Vec<i8> {
	v.iter().map(|&x| x as i8).collect()
}

/// Run a single-op model on `inputs` (tensor 0 = first input) and return the output.
fn run1(b: ModelBuilder, input: &[i8]) -> Vec<i8> {
	let case = b.finish(bytes(input));
	validate(&case.header, &Limits::default()).expect("valid");
	let trace = execute(&case.header, &case.weights, &case.input).expect("executes");
	signed(trace.output())
}

#[test]
fn fully_connected_hand_computed() {
	// x = [1, -2, 3], zp -1 -> x - z = [2, -1, 4]
	// row 0 = [1, 2, 3]:      acc = 10 + 2 - 2 + 12 = 22 -> *0.5 = 11 -> +3 = 14
	// row 1 = [-128, 127, 0]: acc = -5 - 256 - 127 = -388 -> *0.5 = -194 -> /4 = -48.5 -> -49 -> +3 = -46
	let mut b = ModelBuilder::new(spec(&[3], -1));
	b.fully_connected(
		0,
		spec(&[2], 3),
		FULL,
		Kernel {
			bias: vec![10, -5],
			requant: vec![rq(1 << 30, 0), rq(1 << 30, -2)],
			weights: bytes(&[1, 2, 3, -128, 127, 0]),
		},
	);
	assert_eq!(run1(b, &[1, -2, 3]), vec![14, -46]);
}

#[test]
fn fully_connected_flattens_and_clamps() {
	// input [2, 2] flattened to K = 4; ReLU at zero point -10 and ReLU6-like upper bound 20
	let mut b = ModelBuilder::new(spec(&[2, 2], 0));
	b.fully_connected(
		0,
		spec(&[3], -10),
		(-10, 20),
		Kernel {
			bias: vec![0, 0, 0],
			requant: vec![id(), id(), id()],
			weights: bytes(&[1, 1, 1, 1, -1, -1, -1, -1, 1, 0, 0, 0]),
		},
	);
	// sums: 10 -> 0 ; -10 -> -20 -> clamp -10 ; 1 -> -9 ... with x = [1, 2, 3, 4]
	// row0: 10 - 10 = 0; row1: -10 - 10 = -20 -> -10; row2: 1 - 10 = -9
	assert_eq!(run1(b, &[1, 2, 3, 4]), vec![0, -10, -9]);
}

#[test]
fn fully_connected_saturating_positive_shift() {
	// acc = 100 * 127 = 12700; shift 30: 12700 * 2^30 saturates to i32::MAX, * (2^30 / 2^31)
	// = 2^30 -> + 0, clamp -> 127. Negative side: -128 * 100 = -12800 -> -2^30 -> -128.
	let mut b = ModelBuilder::new(spec(&[1], 0));
	b.fully_connected(
		0,
		spec(&[2], 0),
		FULL,
		Kernel {
			bias: vec![0, 0],
			requant: vec![rq(1 << 30, 30), rq(1 << 30, 30)],
			weights: bytes(&[127, -128]),
		},
	);
	assert_eq!(run1(b, &[100]), vec![127, -128]);
}

#[test]
fn requant_ties_in_a_layer() {
	// acc = x (weight 1, zp 0). multiplier 2^30 (0.5), shift 0: SRDHM ties: 1 -> 0.5 -> 1;
	// -1 -> -0.5 -> 0; 3 -> 1.5 -> 2; -3 -> -1.5 -> -1.
	// shift -1 with multiplier 2^30 on acc = 2: 2 * 0.5 = 1 exactly, 1 / 2 = 0.5 -> 1 (RDBPOT
	// ties away from zero); acc = -2 -> -1 -> -0.5 -> -1.
	let cases: [(i8, i8, i8); 6] =
		[(1, 0, 1), (-1, 0, 0), (3, 0, 2), (-3, 0, -1), (2, -1, 1), (-2, -1, -1)];
	for (x, shift, expected) in cases {
		let mut b = ModelBuilder::new(spec(&[1], 0));
		b.fully_connected(
			0,
			spec(&[1], 0),
			FULL,
			Kernel { bias: vec![0], requant: vec![rq(1 << 30, shift)], weights: vec![1] },
		);
		assert_eq!(run1(b, &[x]), vec![expected], "x={x} shift={shift}");
	}
}

fn conv1(input_zp: i8, p: Conv2dParams, out_shape: &[u32], w: &[i8], input: &[i8]) -> Vec<i8> {
	let cout = out_shape[0] as usize;
	let mut b = ModelBuilder::new(spec(
		&[(w.len() / cout / (p.kernel_h * p.kernel_w) as usize) as u32 * p.groups, 3, 3],
		input_zp,
	));
	b.header.input.shape = vec![
		b.header.input.shape[0],
		(input.len() / b.header.input.shape[0] as usize / 3) as u32,
		3,
	];
	b.conv2d(
		0,
		p,
		spec(out_shape, 0),
		FULL,
		Kernel { bias: vec![0; cout], requant: vec![id(); cout], weights: bytes(w) },
	);
	run1(b, input)
}

#[test]
fn conv_plain_and_padding_edges() {
	let img: Vec<i8> = (1..=9).collect(); // [[1,2,3],[4,5,6],[7,8,9]]
									   // 2x2 ones, stride 1, no padding: 12 16 / 24 28
	let out = conv1(0, conv_params((2, 2), (1, 1), (1, 1), [0; 4], 1), &[1, 2, 2], &[1; 4], &img);
	assert_eq!(out, vec![12, 16, 24, 28]);
	// padding 1 everywhere, stride 2: windows {1} {2,3} {4,7} {5,6,8,9}
	let out = conv1(0, conv_params((2, 2), (2, 2), (1, 1), [1; 4], 1), &[1, 2, 2], &[1; 4], &img);
	assert_eq!(out, vec![1, 5, 11, 28]);
	// same with input zero point 2 (x - z = -1..7): padding contributes 0, not -2
	let out = conv1(2, conv_params((2, 2), (2, 2), (1, 1), [1; 4], 1), &[1, 2, 2], &[1; 4], &img);
	assert_eq!(out, vec![-1, 1, 7, 20]);
	// negative zero point -3 (x - z = 4..12): windows {4} {5,6} {7,10} {8,9,11,12}
	let out = conv1(-3, conv_params((2, 2), (2, 2), (1, 1), [1; 4], 1), &[1, 2, 2], &[1; 4], &img);
	assert_eq!(out, vec![4, 11, 17, 40]);
	// asymmetric padding: only bottom/right 1: windows {5,6,8,9} of positions (1,1)
	let out =
		conv1(0, conv_params((2, 2), (2, 2), (1, 1), [0, 0, 1, 1], 1), &[1, 2, 2], &[1; 4], &img);
	assert_eq!(out, vec![12, 9, 15, 9]);
	// dilation 2: the 2x2 kernel reads the corners 1, 3, 7, 9 with weights 1, 2, 3, 4
	let out =
		conv1(0, conv_params((2, 2), (1, 1), (2, 2), [0; 4], 1), &[1, 1, 1], &[1, 2, 3, 4], &img);
	assert_eq!(out, vec![1 + 6 + 21 + 36]);
}

#[test]
fn conv_groups_and_depthwise() {
	// input [2, 1, 1] = [3, 5]; groups 2, 1x1 kernel, weights [2, -1] -> [6, -5]
	let mut b = ModelBuilder::new(spec(&[2, 1, 1], 0));
	b.conv2d(
		0,
		conv_params((1, 1), (1, 1), (1, 1), [0; 4], 2),
		spec(&[2, 1, 1], 0),
		FULL,
		Kernel { bias: vec![0, 0], requant: vec![id(); 2], weights: bytes(&[2, -1]) },
	);
	assert_eq!(run1(b, &[3, 5]), vec![6, -5]);
	// depthwise with channel multiplier 2: out channels 0,1 read channel 0; 2,3 read channel 1
	let mut b = ModelBuilder::new(spec(&[2, 1, 1], 0));
	b.conv2d(
		0,
		conv_params((1, 1), (1, 1), (1, 1), [0; 4], 2),
		spec(&[4, 1, 1], 0),
		FULL,
		Kernel { bias: vec![0, 0, 0, 1], requant: vec![id(); 4], weights: bytes(&[1, 2, 3, 4]) },
	);
	assert_eq!(run1(b, &[3, 5]), vec![3, 6, 15, 21]);
	// 3x3 depthwise, "same" padding, on a 1x1 image: only the centre tap is real
	let mut b = ModelBuilder::new(spec(&[1, 1, 1], -1));
	b.conv2d(
		0,
		conv_params((3, 3), (1, 1), (1, 1), [1; 4], 1),
		spec(&[1, 1, 1], 0),
		FULL,
		Kernel { bias: vec![0], requant: vec![id()], weights: bytes(&[9, 9, 9, 9, 2, 9, 9, 9, 9]) },
	);
	assert_eq!(run1(b, &[4]), vec![10]); // (4 - (-1)) * 2
}

#[test]
fn add_tflite_rule_with_ties() {
	// left_shift 20. x - zx = 8 -> 8 * 2^20 -> * 0.5 -> / 2 = 2^21;
	// y - zy = -2 -> -2 * 2^20 -> * 0.5 -> / 2 = -2^19; sum = 1.5 * 2^20;
	// out: * 0.5 = 0.75 * 2^20, / 2^19 = 1.5 -> 2 (ties away from zero), + 1 = 3.
	let p = AddParams { left_shift: 20, lhs: rq(1 << 30, -1), rhs: rq(1 << 30, -1) };
	let mk = || {
		let mut b = ModelBuilder::new(spec(&[2], 2));
		let t1 = b.reshape(0, spec(&[2], 2), FULL);
		let _ = t1;
		b
	};
	// Second input: a lookup with zero point -2 holding y.
	let mut b = mk();
	let mut table = vec![0u8; 256];
	table[(10i32 + 128) as usize] = (-4i8) as u8; // y for x = 10
	table[(-6i32 + 128) as usize] = 0; // y for x = -6
	b.header.ops.clear();
	b.weights.clear();
	let t1 = b.lookup(0, spec(&[2], -2), FULL, table);
	b.add([0, t1], p, spec(&[2], 1), FULL, rq(1 << 30, -19));
	// element 0: x = 10 (x - 2 = 8), y = -4 (y + 2 = -2) -> 3
	// element 1: x = -6 (x - 2 = -8), y = 0 (y + 2 = 2) -> sum = -1.5 * 2^20 -> -1.5 -> -2, + 1 = -1
	assert_eq!(run1(b, &[10, -6]), vec![3, -1]);
}

#[test]
fn add_saturates_in_output_stage() {
	let p = AddParams { left_shift: 0, lhs: rq(i32::MAX, 0), rhs: rq(i32::MAX, 0) };
	let mut b = ModelBuilder::new(spec(&[2], -128));
	b.add([0, 0], p, spec(&[2], 0), FULL, rq(i32::MAX, 30));
	// x - z = 255 and 0: huge positive -> 127; zero -> 0
	assert_eq!(run1(b, &[127, -128]), vec![127, 0]);
}

#[test]
fn max_pool_ignores_padding() {
	// zero point 5 would win every padded window if padding were read as the zero point
	let mut b = ModelBuilder::new(spec(&[1, 3, 3], 5));
	b.max_pool(0, pool_params((2, 2), (2, 2), [1, 1, 0, 0]), spec(&[1, 2, 2], 5), FULL);
	assert_eq!(run1(b.clone(), &[-5, -3, -9, -1, -7, -2, -8, -6, -4]), vec![-5, -3, -1, -2]);
	b.header.ops[0].act_min = -4;
	assert_eq!(run1(b, &[-5, -3, -9, -1, -7, -2, -8, -6, -4]), vec![-4, -3, -1, -2]);
}

#[test]
fn avg_pool_rounding_and_count_excludes_padding() {
	let mk = || {
		let mut b = ModelBuilder::new(spec(&[1, 2, 2], -7));
		b.avg_pool(0, pool_params((2, 2), (1, 1), [1, 1, 0, 0]), spec(&[1, 2, 2], -7), FULL);
		b
	};
	// windows {1} {1,2} {1,3} {1,2,3,5}: 1, 1.5 -> 2, 2, 2.75 -> 3
	assert_eq!(run1(mk(), &[1, 2, 3, 5]), vec![1, 2, 2, 3]);
	// negatives: -1, -1.5 -> -2, -2, -2.75 -> -3
	assert_eq!(run1(mk(), &[-1, -2, -3, -5]), vec![-1, -2, -2, -3]);
	// stored values are averaged (not x - zero point): {-128, 127} -> -0.5 -> -1
	assert_eq!(run1(mk(), &[-128, 127, 0, 0]), vec![-128, -1, -64, 0]);
}

#[test]
fn global_avg_pool_rounding() {
	let mut b = ModelBuilder::new(spec(&[3, 1, 2], 0));
	b.global_avg_pool(0, spec(&[3], 0), FULL);
	// [1, 2] -> 1.5 -> 2; [-1, -2] -> -1.5 -> -2; [127, -128] -> -0.5 -> -1
	assert_eq!(run1(b, &[1, 2, -1, -2, 127, -128]), vec![2, -2, -1]);
	let mut b = ModelBuilder::new(spec(&[1, 1, 3], 0));
	b.global_avg_pool(0, spec(&[1], 0), (-128, -3));
	assert_eq!(run1(b, &[-1, -1, 1]), vec![-3]); // -1/3 -> 0, clamped to -3
}

#[test]
fn concat_axes() {
	// [2,1] ++ [2,2] along axis 1 = [[1,3,4],[2,5,6]]
	let mut b = ModelBuilder::new(spec(&[6], 0));
	let a = b.reshape(0, spec(&[3, 2], 0), FULL);
	let c = b.concat(vec![a, a], 1, spec(&[3, 4], 0), FULL);
	b.concat(vec![c, a, c], 0, spec(&[9, 4], 0), FULL);
	let case = b.finish(bytes(&[1, 2, 3, 4, 5, 6]));
	// steps 1 and 2 are valid: [3,2] ++ [3,2] along axis 1 = rows [1,2,1,2] [3,4,3,4] [5,6,5,6]
	let t1 = execute_step(&case.header, 1, &[&case.input], &[]).unwrap();
	let t2 = execute_step(&case.header, 2, &[&t1, &t1], &[]).unwrap();
	assert_eq!(signed(&t2), vec![1, 2, 1, 2, 3, 4, 3, 4, 5, 6, 5, 6]);
	// step 3 joins [3,4], [3,2], [3,4] along axis 0: shapes must agree except along the axis
	assert_eq!(
		validate(&case.header, &Limits::default()).unwrap_err(),
		ValidationError { op: 3, reason: InvalidReason::ShapeMismatch }
	);
	assert!(matches!(
		execute(&case.header, &case.weights, &case.input),
		Err(ExecError::InvalidModel(ValidationError { op: 3, .. }))
	));
	let mut b = ModelBuilder::new(spec(&[2, 2], -1));
	let a = b.reshape(0, spec(&[2, 1, 2], -1), FULL);
	b.concat(vec![a, 0], 1, spec(&[2, 3, 2], -1), FULL);
	// invalid: input 0 has rank 2
	assert!(validate(&b.header, &Limits::default()).is_err());
	let mut b = ModelBuilder::new(spec(&[2, 1, 2], -1));
	b.concat(vec![0, 0, 0], 1, spec(&[2, 3, 2], -1), (-1, 127));
	// [[a b],[c d]] per outer index repeated 3 times; clamp at -1
	assert_eq!(run1(b, &[1, -2, 3, -4]), vec![1, -1, 1, -1, 1, -1, 3, -1, 3, -1, 3, -1]);
}

#[test]
fn concat_requires_equal_zero_points() {
	let mut b = ModelBuilder::new(spec(&[2], 0));
	let t1 = b.lookup(0, spec(&[2], 1), FULL, vec![0; 256]);
	b.concat(vec![0, t1], 0, spec(&[4], 0), FULL);
	assert_eq!(
		validate(&b.header, &Limits::default()).unwrap_err(),
		ValidationError { op: 2, reason: InvalidReason::ZeroPointMismatch }
	);
}

#[test]
fn reshape_keeps_bytes() {
	let mut b = ModelBuilder::new(spec(&[2, 3], 4));
	b.reshape(0, spec(&[3, 1, 2], 4), FULL);
	assert_eq!(run1(b, &[-128, 127, 0, 1, -1, 5]), vec![-128, 127, 0, 1, -1, 5]);
	let mut b = ModelBuilder::new(spec(&[2, 3], 4));
	b.reshape(0, spec(&[6], 4), (4, 100));
	assert_eq!(run1(b, &[-128, 127, 0, 1, -1, 5]), vec![4, 100, 4, 4, 4, 5]);
}

#[test]
fn lookup_indexing() {
	// table[i] = byte i: x = -128 reads entry 0, 127 reads 255, 0 reads 128, -1 reads 127
	let mut b = ModelBuilder::new(spec(&[4], 0));
	b.lookup(0, spec(&[4], 0), FULL, (0..=255u8).collect());
	assert_eq!(run1(b, &[-128, 127, 0, -1]), vec![0, -1, -128, 127]);
}

#[test]
fn accumulator_bound_is_exact() {
	// K = 2: 2 * 255 * 128 = 65280; bias i32::MAX - 65280 is the largest valid bias.
	let mk = |bias: i32| {
		let mut b = ModelBuilder::new(spec(&[2], 127));
		b.fully_connected(
			0,
			spec(&[1], 0),
			FULL,
			Kernel {
				bias: vec![bias],
				requant: vec![rq(1 << 30, -31)],
				weights: bytes(&[-128, -128]),
			},
		);
		b
	};
	let ok = mk(-(i32::MAX - 65280));
	validate(&ok.header, &Limits::default()).unwrap();
	// worst case: x - z = -255, w = -128 -> +65280 per term; with bias -(MAX - 65280) no overflow
	let case = ok.finish(bytes(&[-128, -128]));
	execute(&case.header, &case.weights, &case.input).unwrap();
	for bad in [i32::MAX - 65279, -(i32::MAX - 65279), i32::MIN] {
		assert_eq!(
			validate(&mk(bad).header, &Limits::default()).unwrap_err(),
			ValidationError { op: 1, reason: InvalidReason::AccumulatorOverflow }
		);
	}
}

#[test]
fn output_stage_requant_count_is_checked() {
	use verity_primitives::interp::ops::{self, OutputStage};
	fn stage(requant: &[Requant]) -> OutputStage<'_> {
		OutputStage { requant, zero_point: 0, act_min: -128, act_max: 127 }
	}
	// Add takes exactly one requantization: each side 1 * 0.5 rounds up to 1, and their sum 2
	// passes id() unchanged.
	let p = AddParams { left_shift: 0, lhs: rq(1 << 30, 0), rhs: rq(1 << 30, 0) };
	assert_eq!(ops::add(&[1], 0, &[1], 0, &p, &stage(&[id()])), Ok(vec![2]));
	assert_eq!(ops::add(&[1], 0, &[1], 0, &p, &stage(&[])), Err(OpError::Malformed));
	assert_eq!(ops::add(&[1], 0, &[1], 0, &p, &stage(&[id(), id()])), Err(OpError::Malformed));
	// FullyConnected and Conv2d take one per output channel.
	assert_eq!(ops::fully_connected(&[3], 0, &[2], &[0], &stage(&[id()])), Ok(vec![6]));
	assert_eq!(
		ops::fully_connected(&[3], 0, &[2], &[0], &stage(&[id(), id()])),
		Err(OpError::Malformed)
	);
}
