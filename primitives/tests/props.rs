//! Property tests over random valid models (seeds drawn by proptest).

use codec::Encode;
use proptest::prelude::*;
use verity_primitives::{
	testing::{random_case, test_limits, TestCase},
	*,
};

fn case(seed: u64) -> TestCase {
	random_case(seed, &test_limits())
}

fn honest(c: &TestCase) -> (Trace, Vec<Hash>) {
	let trace = c.trace().expect("valid model executes");
	let hashes = trace.step_hashes(&c.header).expect("n + 1 tensors");
	(trace, hashes)
}

proptest! {
	#![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

	#[test]
	fn random_models_validate_and_execute(seed in any::<u64>()) {
		let c = case(seed);
		let info = validate(&c.header, &test_limits());
		prop_assert!(info.is_ok(), "{:?}: {}", info, testing::describe(&c.header));
		let info = info.unwrap();
		let (trace, hashes) = honest(&c);
		prop_assert_eq!(trace.tensors.len(), c.header.ops.len() + 1);
		prop_assert_eq!(hashes.len(), c.header.ops.len() + 1);
		for (i, t) in trace.tensors.iter().enumerate() {
			let spec = c.header.tensor_spec(i as u32).unwrap();
			prop_assert_eq!(t.len() as u32, spec.num_elements().unwrap());
		}
		for (s, op) in info.steps.iter().zip(&c.header.ops) {
			prop_assert_eq!(&s.output_shape, &op.output.shape);
			prop_assert!(s.macs >= u64::from(s.output_elements));
			prop_assert_eq!(s.proof_bytes, s.input_bytes + u64::from(op.weight_len));
		}
		// execute_step reproduces every tensor from its inputs
		for (i, op) in c.header.ops.iter().enumerate() {
			let ins: Vec<&[u8]> = op.inputs.iter().map(|&r| trace.tensors[r as usize].as_slice()).collect();
			let out = execute_step(&c.header, i as u32 + 1, &ins, &c.weights[i]).unwrap();
			prop_assert_eq!(&out, &trace.tensors[i + 1]);
		}
	}

	#[test]
	fn encodings_round_trip_and_are_canonical(seed in any::<u64>(), extra in any::<u8>(), pos in any::<usize>(), flip in 1u8..=255) {
		let c = case(seed);
		let bytes = c.header.encode();
		let decoded = decode_header(&bytes, u32::MAX).unwrap();
		prop_assert_eq!(&decoded, &c.header);
		prop_assert_eq!(decoded.id(), model_id(&c.header));
		// trailing bytes and truncation are rejected
		let mut longer = bytes.clone();
		longer.push(extra);
		prop_assert!(decode_header(&longer, u32::MAX).is_err());
		prop_assert!(decode_header(&bytes[..bytes.len() - 1], u32::MAX).is_err());
		prop_assert_eq!(decode_header(&bytes, bytes.len() as u32 - 1), Err(DecodeError::TooLarge));
		// any mutation either fails to decode or decodes to a header encoding to exactly those bytes
		let mut mutated = bytes.clone();
		let i = pos % mutated.len();
		mutated[i] ^= flip;
		if let Ok(h) = decode_header(&mutated, u32::MAX) {
			prop_assert_eq!(h.encode(), mutated);
		}
		// model file round trip and verification
		let file = c.file();
		let fbytes = file.encode();
		let back = ModelFile::decode(&fbytes).unwrap();
		prop_assert_eq!(&back, &file);
		prop_assert_eq!(back.verify(&c.header.id()), Ok(()));
		prop_assert_eq!(back.verify(&[0u8; 32]), Err(FileError::IdMismatch));
		let mut longer = fbytes.clone();
		longer.push(extra);
		prop_assert!(ModelFile::decode(&longer).is_err());
		prop_assert!(ModelFile::decode(&fbytes[..fbytes.len() - 1]).is_err());
		// a changed weight byte is caught by verify
		if let Some(k) = file.weights.iter().position(|w| !w.is_empty()) {
			let mut bad = file.clone();
			let w = &mut bad.weights[k];
			let j = pos % w.len();
			w[j] ^= flip;
			let reparsed = ModelFile::decode(&bad.encode()).unwrap();
			prop_assert_eq!(reparsed.verify(&c.header.id()), Err(FileError::WeightMismatch { op: k as u32 + 1 }));
		}
	}

	#[test]
	fn honest_trace_never_yields_fraud(seed in any::<u64>()) {
		let c = case(seed);
		let (trace, hashes) = honest(&c);
		for step in 1..=c.header.num_ops() {
			let proof = build_fraud_proof(&c.header, &trace, &c.weights, step).unwrap();
			prop_assert_eq!(check_fraud_proof(&c.header, &hashes, &proof), Ok(Verdict::NoFraud));
		}
		prop_assert_eq!(find_fraud(&c.header, &c.weights, &c.input, &hashes), Ok(None));
		// receipts: every step hash is provably in the trace root
		let root = trace_root(&hashes);
		for (i, h) in hashes.iter().enumerate() {
			let p = merkle_proof(&hashes, i as u32).unwrap();
			prop_assert!(verify_inclusion(&root, h, &p));
		}
	}

	#[test]
	fn corrupted_step_hash_is_proven(seed in any::<u64>(), pick in any::<u32>(), flip in 1u8..=255) {
		let c = case(seed);
		let (trace, mut hashes) = honest(&c);
		let n = c.header.num_ops();
		let step = 1 + pick % n;
		hashes[step as usize][(pick % 32) as usize] ^= flip;
		let proof = build_fraud_proof(&c.header, &trace, &c.weights, step).unwrap();
		prop_assert_eq!(check_fraud_proof(&c.header, &hashes, &proof), Ok(Verdict::Fraud));
		// the search finds exactly this step
		prop_assert_eq!(find_fraud(&c.header, &c.weights, &c.input, &hashes), Ok(Some(proof)));
		// later steps reading the corrupted tensor cannot be judged with the honest tensor
		for later in step + 1..=n {
			let op = c.header.op(later).unwrap();
			let p = build_fraud_proof(&c.header, &trace, &c.weights, later).unwrap();
			let r = check_fraud_proof(&c.header, &hashes, &p);
			if let Some(j) = op.inputs.iter().position(|&r| r == step) {
				prop_assert_eq!(r, Err(ProofError::InputMismatch { index: j as u32 }));
			} else {
				prop_assert_eq!(r, Ok(Verdict::NoFraud));
			}
		}
	}

	#[test]
	fn other_weights_are_proven_fraudulent(seed in any::<u64>(), pick in any::<usize>(), flip in 1u8..=255) {
		let c = case(seed);
		let (_, honest_hashes) = honest(&c);
		let with_weights: Vec<usize> = (0..c.weights.len()).filter(|&k| !c.weights[k].is_empty()).collect();
		prop_assume!(!with_weights.is_empty());
		let k = with_weights[pick % with_weights.len()];
		let mut other = c.weights.clone();
		let j = (pick / 7) % other[k].len();
		other[k][j] ^= flip;
		// the operator runs with other weights and commits that trace
		let cheat = execute(&c.header, &other, &c.input).unwrap();
		let committed = cheat.step_hashes(&c.header).unwrap();
		match find_fraud(&c.header, &c.weights, &c.input, &committed).unwrap() {
			None => prop_assert_eq!(&committed, &honest_hashes), // the byte did not matter
			Some(proof) => {
				let first = first_mismatch(&honest_hashes, &committed).unwrap();
				prop_assert_eq!(proof.step, first);
				prop_assert!(proof.step as usize > k, "step {} before changed op {}", proof.step, k + 1);
				prop_assert_eq!(check_fraud_proof(&c.header, &committed, &proof), Ok(Verdict::Fraud));
				// the cheater's own weights are not accepted in a proof
				if proof.step as usize == k + 1 {
					let mut with_other = proof.clone();
					with_other.weights = other[k].clone();
					prop_assert_eq!(check_fraud_proof(&c.header, &committed, &with_other), Err(ProofError::WeightsMismatch));
				}
			},
		}
	}

	#[test]
	fn mismatching_proofs_are_rejected(seed in any::<u64>(), pick in any::<usize>(), flip in 1u8..=255, corrupt in any::<bool>()) {
		let c = case(seed);
		let (trace, mut hashes) = honest(&c);
		let n = c.header.num_ops();
		let step = 1 + (pick as u32) % n;
		if corrupt {
			// judged against a commitment that is wrong at `step`: a malformed proof must still
			// be rejected, not judged
			hashes[step as usize][0] ^= 1;
		}
		let good = build_fraud_proof(&c.header, &trace, &c.weights, step).unwrap();
		let check = |p: &FraudProof| check_fraud_proof(&c.header, &hashes, p);
		let ni = good.input_tensors.len();
		let j = pick % ni;
		// a changed input byte
		let mut p = good.clone();
		let len = p.input_tensors[j].len();
		p.input_tensors[j][(pick / 3) % len] ^= flip;
		prop_assert_eq!(check(&p), Err(ProofError::InputMismatch { index: j as u32 }));
		// a longer or shorter input
		let mut p = good.clone();
		p.input_tensors[j].push(flip);
		prop_assert_eq!(check(&p), Err(ProofError::InputMismatch { index: j as u32 }));
		let mut p = good.clone();
		p.input_tensors[j].pop();
		prop_assert_eq!(check(&p), Err(ProofError::InputMismatch { index: j as u32 }));
		// a missing or extra input
		let mut p = good.clone();
		p.input_tensors.pop();
		prop_assert_eq!(check(&p), Err(ProofError::WrongInputCount));
		let mut p = good.clone();
		p.input_tensors.push(good.input_tensors[0].clone());
		prop_assert_eq!(check(&p), Err(ProofError::WrongInputCount));
		// other weights
		let mut p = good.clone();
		if p.weights.is_empty() {
			p.weights.push(flip);
		} else {
			let len = p.weights.len();
			p.weights[(pick / 5) % len] ^= flip;
		}
		prop_assert_eq!(check(&p), Err(ProofError::WeightsMismatch));
		let mut p = good.clone();
		p.weights.push(0);
		prop_assert_eq!(check(&p), Err(ProofError::WeightsMismatch));
		// steps out of range
		for s in [0, n + 1, u32::MAX] {
			let mut p = good.clone();
			p.step = s;
			prop_assert_eq!(check(&p), Err(ProofError::StepOutOfRange));
		}
		// a hash list of the wrong length
		let short = &hashes[..hashes.len() - 1];
		prop_assert!(matches!(check_fraud_proof(&c.header, short, &good), Err(ProofError::WrongHashCount { .. })), "wrong hash count accepted");
		// and the untouched proof is judged
		let expected = if corrupt { Verdict::Fraud } else { Verdict::NoFraud };
		prop_assert_eq!(check(&good), Ok(expected));
	}
}
