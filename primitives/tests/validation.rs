//! Validation names the op and the reason; decoding rejects everything non-canonical.

use codec::Encode;
use verity_primitives::{
	testing::{golden, ModelBuilder},
	*,
};

fn base() -> ModelHeader {
	golden::cnn().header
}

fn expect(h: &ModelHeader, limits: &Limits, op: u32, reason: InvalidReason) {
	assert_eq!(validate(h, limits), Err(ValidationError { op, reason }));
}

fn default() -> Limits {
	Limits::default()
}

#[test]
fn golden_models_validate() {
	for (name, c) in golden::cases() {
		let info = validate(&c.header, &default()).unwrap_or_else(|e| panic!("{name}: {e}"));
		assert_eq!(info.num_ops as usize, c.header.ops.len());
		assert_eq!(info.id, c.header.id());
		assert_eq!(info.header_bytes as usize, c.header.encoded_size());
	}
}

#[test]
fn model_info_costs() {
	let h = base();
	let info = validate(&h, &default()).unwrap();
	// op 1: conv 3->8 3x3 on 8x8 "same": 8*8*8 outputs * 27 MACs; proof = 192 input + 216 weights
	assert_eq!(info.steps[0].macs, 8 * 64 * 27);
	assert_eq!(info.steps[0].proof_bytes, 192 + 216);
	assert_eq!(step_macs(&h, 1), Ok(8 * 64 * 27));
	assert_eq!(step_proof_bytes(&h, 1), Ok(192 + 216));
	// op 3: add of two [8,8,8] tensors: proof = 2 * 512, cost 512
	assert_eq!(info.steps[2].proof_bytes, 1024);
	assert_eq!(info.steps[2].macs, 512);
	// op 4: max pool 2x2 stride 2 -> [8,4,4]: 128 outputs * 4 reads
	assert_eq!(info.steps[3].macs, 512);
	// op 7: concat -> 256 outputs; op 8: lookup has 256 weight bytes
	assert_eq!(info.steps[6].macs, 256);
	assert_eq!(info.steps[7].weight_bytes, 256);
	assert_eq!(info.max_step_macs, info.steps.iter().map(|s| s.macs).max().unwrap());
	assert_eq!(info.max_step_proof_bytes, info.steps.iter().map(|s| s.proof_bytes).max().unwrap());
	assert_eq!(info.output_elements, 4);
	assert_eq!(info.input_elements, 192);
	assert_eq!(
		step_macs(&h, 0),
		Err(ValidationError { op: 0, reason: InvalidReason::StepOutOfRange })
	);
	assert_eq!(
		step_macs(&h, 12),
		Err(ValidationError { op: 12, reason: InvalidReason::StepOutOfRange })
	);
}

#[test]
fn limits_are_enforced_per_step() {
	let h = base();
	let info = validate(&h, &default()).unwrap();
	let max_macs = info.max_step_macs;
	let worst = info.steps.iter().find(|s| s.macs == max_macs).unwrap().step;
	expect(
		&h,
		&Limits { max_step_macs: max_macs - 1, ..default() },
		worst,
		InvalidReason::TooManyMacs,
	);
	validate(&h, &Limits { max_step_macs: max_macs, ..default() }).unwrap();
	let max_proof = info.max_step_proof_bytes;
	let worst = info.steps.iter().find(|s| s.proof_bytes == max_proof).unwrap().step;
	expect(
		&h,
		&Limits { max_step_proof_bytes: max_proof - 1, ..default() },
		worst,
		InvalidReason::StepProofTooLarge,
	);
	expect(&h, &Limits { max_ops: 10, ..default() }, 0, InvalidReason::TooManyOps);
	expect(
		&h,
		&Limits { max_tensor_elements: 191, ..default() },
		0,
		InvalidReason::TooManyElements,
	);
	expect(
		&h,
		&Limits { max_tensor_elements: 256, ..default() },
		1,
		InvalidReason::TooManyElements,
	);
	expect(&h, &Limits { max_op_inputs: 1, ..default() }, 3, InvalidReason::TooManyInputs);
	let size = h.encoded_size() as u32;
	expect(
		&h,
		&Limits { max_header_bytes: size - 1, ..default() },
		0,
		InvalidReason::HeaderTooLarge,
	);
	validate(&h, &Limits { max_header_bytes: size, ..default() }).unwrap();
}

#[test]
fn header_level_errors() {
	let mut h = base();
	h.version = 2;
	expect(&h, &default(), 0, InvalidReason::UnsupportedVersion);
	let mut h = base();
	h.ops.clear();
	expect(&h, &default(), 0, InvalidReason::NoOps);
	let mut h = base();
	h.input.shape = vec![];
	expect(&h, &default(), 0, InvalidReason::BadRank);
	h.input.shape = vec![1, 1, 1, 1, 1];
	expect(&h, &default(), 0, InvalidReason::BadRank);
	h.input.shape = vec![3, 0, 8];
	expect(&h, &default(), 0, InvalidReason::ZeroDimension);
	h.input.shape = vec![u32::MAX, 2];
	expect(&h, &default(), 0, InvalidReason::TooManyElements);
}

#[test]
fn op_level_errors_name_the_op() {
	use InvalidReason::*;
	type Mutation = Box<dyn Fn(&mut ModelHeader)>;
	let cases: Vec<(u32, InvalidReason, Mutation)> = vec![
		(1, ForwardReference { input: 0 }, Box::new(|h| h.ops[0].inputs = vec![1])),
		(3, ForwardReference { input: 1 }, Box::new(|h| h.ops[2].inputs[1] = 5)),
		(3, WrongInputCount, Box::new(|h| h.ops[2].inputs.push(1))),
		(7, WrongInputCount, Box::new(|h| h.ops[6].inputs.truncate(1))),
		(1, WrongInputCount, Box::new(|h| h.ops[0].inputs.clear())),
		(2, ShapeMismatch, Box::new(|h| h.ops[1].output.shape = vec![8, 8, 7])),
		(3, ShapeMismatch, Box::new(|h| h.ops[2].inputs = vec![1, 0])),
		(11, ShapeMismatch, Box::new(|h| h.ops[10].output.shape = vec![2, 2])),
		(10, ShapeMismatch, Box::new(|h| h.ops[9].output.shape = vec![3, 5])),
		(9, ShapeMismatch, Box::new(|h| h.ops[8].output.shape = vec![16, 1, 1])),
		(8, ShapeMismatch, Box::new(|h| h.ops[7].output.shape = vec![16, 16])),
		(7, ShapeMismatch, Box::new(|h| h.ops[6].output.shape = vec![15, 4, 4])),
		(11, InputRankMismatch, Box::new(|h| h.ops[10].kind = OpKind::GlobalAvgPool)),
		(11, ShapeMismatch, Box::new(|h| h.ops[10].output.shape = vec![4, 1])),
		(4, ZeroPointMismatch, Box::new(|h| h.ops[3].output.zero_point = 1)),
		(6, ZeroPointMismatch, Box::new(|h| h.ops[5].output.zero_point = -1)),
		(7, ZeroPointMismatch, Box::new(|h| h.ops[6].output.zero_point = 1)),
		(9, ZeroPointMismatch, Box::new(|h| h.ops[8].output.zero_point = 0)),
		(10, ZeroPointMismatch, Box::new(|h| h.ops[9].output.zero_point = 0)),
		(1, BadClamp, Box::new(|h| (h.ops[0].act_min, h.ops[0].act_max) = (5, 4))),
		(1, BadBiasLength, Box::new(|h| h.ops[0].bias.push(0))),
		(4, BadBiasLength, Box::new(|h| h.ops[3].bias.push(0))),
		(1, BadRequantLength, Box::new(|h| h.ops[0].requant.pop().map(|_| ()).unwrap())),
		(3, BadRequantLength, Box::new(|h| h.ops[2].requant.clear())),
		(1, NegativeMultiplier, Box::new(|h| h.ops[0].requant[3].multiplier = -1)),
		(1, ShiftOutOfRange, Box::new(|h| h.ops[0].requant[0].shift = 31)),
		(1, ShiftOutOfRange, Box::new(|h| h.ops[0].requant[0].shift = -32)),
		(
			3,
			ShiftOutOfRange,
			Box::new(|h| {
				if let OpKind::Add(p) = &mut h.ops[2].kind {
					p.lhs.shift = 1;
				}
			}),
		),
		(
			3,
			NegativeMultiplier,
			Box::new(|h| {
				if let OpKind::Add(p) = &mut h.ops[2].kind {
					p.rhs.multiplier = i32::MIN;
				}
			}),
		),
		(
			3,
			LeftShiftTooLarge,
			Box::new(|h| {
				if let OpKind::Add(p) = &mut h.ops[2].kind {
					p.left_shift = 21;
				}
			}),
		),
		(1, BadWeightLength, Box::new(|h| h.ops[0].weight_len += 1)),
		(8, BadWeightLength, Box::new(|h| h.ops[7].weight_len = 255)),
		(4, BadWeightLength, Box::new(|h| h.ops[3].weight_len = 1)),
		(4, BadEmptyWeightHash, Box::new(|h| h.ops[3].weight_hash = [0; 32])),
		(1, AccumulatorOverflow, Box::new(|h| h.ops[0].bias[2] = i32::MAX - 27 * 32640 + 1)),
		(
			1,
			ZeroParameter,
			Box::new(|h| {
				if let OpKind::Conv2d(p) = &mut h.ops[0].kind {
					p.stride_h = 0;
				}
			}),
		),
		(
			1,
			ZeroParameter,
			Box::new(|h| {
				if let OpKind::Conv2d(p) = &mut h.ops[0].kind {
					p.groups = 0;
				}
			}),
		),
		(
			1,
			PaddingTooLarge,
			Box::new(|h| {
				if let OpKind::Conv2d(p) = &mut h.ops[0].kind {
					p.pad_left = 3;
				}
			}),
		),
		(
			4,
			PaddingTooLarge,
			Box::new(|h| {
				if let OpKind::MaxPool(p) = &mut h.ops[3].kind {
					p.pad_bottom = 2;
				}
			}),
		),
		(
			1,
			KernelTooLarge,
			Box::new(|h| {
				if let OpKind::Conv2d(p) = &mut h.ops[0].kind {
					p.dilation_h = 6; // extent 13 > 8 + 2
				}
			}),
		),
		(
			2,
			BadGroups,
			Box::new(|h| {
				if let OpKind::Conv2d(p) = &mut h.ops[1].kind {
					p.groups = 3;
				}
			}),
		),
		(7, BadAxis, Box::new(|h| h.ops[6].kind = OpKind::Concat { axis: 3 })),
		(1, InputRankMismatch, Box::new(|h: &mut ModelHeader| h.input.shape = vec![192])),
	];
	for (i, (op, reason, mutate)) in cases.iter().enumerate() {
		let mut h = base();
		mutate(&mut h);
		assert_eq!(
			validate(&h, &default()),
			Err(ValidationError { op: *op, reason: *reason }),
			"case {i}"
		);
		// the interpreter refuses the same op with the same error
		let case = golden::cnn();
		if let Err(ExecError::InvalidModel(e)) = execute(&h, &case.weights, &case.input) {
			assert_eq!(e.op, *op, "case {i}");
		}
	}
}

#[test]
fn header_decoding_is_canonical_and_bounded() {
	let h = base();
	let bytes = h.encode();
	assert_eq!(decode_header(&bytes, u32::MAX), Ok(h.clone()));
	// trailing bytes
	let mut b = bytes.clone();
	b.push(0);
	assert_eq!(decode_header(&b, u32::MAX), Err(DecodeError::Malformed));
	// size limit
	assert_eq!(decode_header(&bytes, bytes.len() as u32 - 1), Err(DecodeError::TooLarge));
	// non-canonical compact length: the input shape length 3 written in the 2-byte mode
	// (header = version u32, then shape: compact(3) = 0x0c)
	assert_eq!(bytes[4], 0x0c);
	let mut b = bytes[..4].to_vec();
	b.extend_from_slice(&[(3 << 2) | 1, 0]);
	b.extend_from_slice(&bytes[5..]);
	assert!(decode_header(&b, u32::MAX).is_err());
	// unknown op kind index
	let mut hh = h.clone();
	hh.ops.truncate(1);
	let mut b = hh.encode();
	let kind_pos = b.len() - hh.ops[0].encoded_size();
	assert_eq!(b[kind_pos], 1); // Conv2d
	b[kind_pos] = 9;
	assert_eq!(decode_header(&b, u32::MAX), Err(DecodeError::Malformed));
	// a huge declared vector length with few bytes does not allocate or panic
	let mut b = bytes[..4].to_vec();
	b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff]);
	assert!(decode_header(&b, u32::MAX).is_err());
	assert!(decode_header(&[], u32::MAX).is_err());
	// generic canonical decoding of other types
	let proof = FraudProof { step: 3, input_tensors: vec![vec![1, 2], vec![]], weights: vec![9] };
	let pb = proof.encode();
	assert_eq!(decode_canonical::<FraudProof>(&pb, 1000), Ok(proof));
	assert!(decode_canonical::<FraudProof>(&pb[..pb.len() - 1], 1000).is_err());
}

#[test]
fn model_file_errors() {
	let c = golden::mlp();
	let file = c.file();
	let bytes = file.encode();
	assert_eq!(&bytes[..8], b"VRTYMODL");
	assert_eq!(&bytes[8..12], &1u32.to_le_bytes());
	let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
	assert_eq!(&bytes[16..16 + header_len], &c.header.encode()[..]);
	assert_eq!(bytes.len(), 16 + header_len + c.weights.iter().map(|w| w.len()).sum::<usize>());
	assert_eq!(ModelFile::decode(&bytes), Ok(file.clone()));

	let mut b = bytes.clone();
	b[0] = b'X';
	assert_eq!(ModelFile::decode(&b), Err(FileError::BadMagic));
	let mut b = bytes.clone();
	b[8] = 2;
	assert_eq!(ModelFile::decode(&b), Err(FileError::UnsupportedVersion));
	assert_eq!(ModelFile::decode(&bytes[..10]), Err(FileError::Truncated));
	assert_eq!(ModelFile::decode(&bytes[..16 + header_len - 1]), Err(FileError::Truncated));
	assert_eq!(ModelFile::decode(&bytes[..bytes.len() - 1]), Err(FileError::WeightsLength));
	let mut b = bytes.clone();
	b.push(0);
	assert_eq!(ModelFile::decode(&b), Err(FileError::WeightsLength));
	assert_eq!(
		ModelFile::decode_with_limit(&bytes, header_len as u32 - 1),
		Err(FileError::Header(DecodeError::TooLarge))
	);
	let mut b = bytes.clone();
	b[12..16].copy_from_slice(&(header_len as u32 + 1).to_le_bytes());
	assert!(ModelFile::decode(&b).is_err());

	assert_eq!(file.verify(&c.header.id()), Ok(()));
	let mut bad = file.clone();
	bad.weights[1][0] ^= 1;
	assert_eq!(bad.verify(&c.header.id()), Err(FileError::WeightMismatch { op: 2 }));
	let mut bad = file.clone();
	bad.weights.pop();
	assert_eq!(bad.verify(&c.header.id()), Err(FileError::WeightCount));
}

#[test]
fn execution_checks_lengths() {
	let c = golden::cnn();
	let h = &c.header;
	assert_eq!(
		execute(h, &c.weights, &c.input[1..]),
		Err(ExecError::InputLength { step: 0, index: 0 })
	);
	assert_eq!(execute(h, &c.weights[1..], &c.input), Err(ExecError::WrongWeightCount));
	let mut w = c.weights.clone();
	w[4].push(0);
	assert_eq!(execute(h, &w, &c.input), Err(ExecError::WeightLength { step: 5 }));
	let t = c.trace().unwrap();
	let x1 = &t.tensors[1];
	let x2 = &t.tensors[2];
	assert_eq!(execute_step(h, 3, &[x1], &[]), Err(ExecError::WrongInputCount { step: 3 }));
	assert_eq!(
		execute_step(h, 3, &[x1, &x2[1..]], &[]),
		Err(ExecError::InputLength { step: 3, index: 1 })
	);
	assert_eq!(execute_step(h, 3, &[x1, x2], &[]), Ok(t.tensors[3].clone()));
	assert!(matches!(execute_step(h, 12, &[x1], &[]), Err(ExecError::InvalidModel(_))));
}

#[test]
fn builder_and_empty_weight_hash() {
	assert_eq!(weight_hash(&[]), EMPTY_WEIGHT_HASH);
	let mut b = ModelBuilder::new(TensorSpec::new(vec![4], 0, 0.5));
	b.reshape(0, TensorSpec::new(vec![2, 2], 0, 0.5), (-128, 127));
	assert_eq!(b.header.ops[0].weight_hash, EMPTY_WEIGHT_HASH);
	assert_eq!(b.header.input.scale(), 0.5);
	validate(&b.header, &default()).unwrap();
}

/// `InvalidReasonCode` (the one byte a pallet error carries) has exactly the variants of
/// `InvalidReason`, with the same SCALE index, and `code()` maps each reason to its own.
#[test]
fn reason_codes_match_reasons() {
	use codec::{Decode, MaxEncodedLen};
	assert_eq!(InvalidReasonCode::max_encoded_len(), 1);
	let mut variants = 0;
	for index in 0..=u8::MAX {
		// The longest reason is one index byte and a u32.
		let reason = InvalidReason::decode(&mut &[index, 7, 0, 0, 0][..]);
		let code = InvalidReasonCode::decode(&mut &[index][..]);
		assert_eq!(reason.is_ok(), code.is_ok(), "variant {index}");
		if let (Ok(reason), Ok(code)) = (reason, code) {
			assert_eq!(reason.code(), code, "variant {index}");
			assert_eq!(reason.encode()[0], index);
			variants += 1;
		}
	}
	assert_eq!(variants, 31);
}
