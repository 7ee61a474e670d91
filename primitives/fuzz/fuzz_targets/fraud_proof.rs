//! `check_fraud_proof` on random valid models with honest and tampered commitments and proofs:
//! it never panics; against an honest commitment it never says Fraud; an honest proof is judged
//! Fraud exactly when the committed hash of its step is wrong (and its inputs' hashes are
//! right), and rejected when an input's committed hash is wrong; a tampered proof is never
//! judged Fraud against an honest commitment.
//!
//! Input: `seed: u64 LE`, `mode: u8`, then mode-specific bytes.

#![no_main]

use codec::Decode;
use libfuzzer_sys::fuzz_target;
use verity_primitives::{testing::random_case, *};

fn limits() -> Limits {
	Limits {
		max_header_bytes: 1 << 16,
		max_ops: 8,
		max_tensor_elements: 2048,
		max_op_inputs: 4,
		max_step_proof_bytes: 1 << 15,
		max_step_macs: 1 << 16,
	}
}

fuzz_target!(|data: &[u8]| {
	let Some((seed, rest)) = data.split_first_chunk::<8>() else { return };
	let Some((&mode, rest)) = rest.split_first() else { return };
	let case = random_case(u64::from_le_bytes(*seed), &limits());
	let h = &case.header;
	let trace = case.trace().expect("valid models execute");
	let honest = trace.step_hashes(h).expect("n + 1 tensors");
	let n = h.num_ops();
	let pick = |i: usize| rest.get(i).copied().unwrap_or(0) as u32;
	match mode % 4 {
		// Arbitrary proof bytes against the honest commitment.
		0 => {
			let mut input = rest;
			if let Ok(proof) = FraudProof::decode(&mut input) {
				assert_ne!(check_fraud_proof(h, &honest, &proof), Ok(Verdict::Fraud));
			}
		},
		// An honest proof with tampered bytes, against the honest commitment.
		1 => {
			let step = 1 + pick(0) % n;
			let mut proof = build_fraud_proof(h, &trace, &case.weights, step).expect("proof");
			let original = proof.clone();
			for m in rest.get(1..).unwrap_or(&[]).chunks_exact(4) {
				let which = m[0] as usize % (proof.input_tensors.len() + 1);
				let pos = u16::from_le_bytes([m[1], m[2]]) as usize;
				let target = match proof.input_tensors.get_mut(which) {
					Some(t) => t,
					None => &mut proof.weights,
				};
				match m[3] {
					0 => target.push(m[1]),
					1 => {
						target.pop();
					},
					x if !target.is_empty() => {
						let len = target.len();
						target[pos % len] ^= x;
					},
					_ => {},
				}
			}
			if m_step_change(rest) {
				proof.step = pick(1);
			}
			let r = check_fraud_proof(h, &honest, &proof);
			assert_ne!(r, Ok(Verdict::Fraud));
			if proof == original {
				assert_eq!(r, Ok(Verdict::NoFraud));
			}
		},
		// Tampered commitment, honest proofs at every step.
		2 => {
			let mut committed = honest.clone();
			for m in rest.chunks_exact(3) {
				let i = m[0] as usize % committed.len();
				committed[i][m[1] as usize % 32] ^= m[2];
			}
			for step in 1..=n {
				let proof = build_fraud_proof(h, &trace, &case.weights, step).expect("proof");
				let op = h.op(step).expect("op");
				let bad_input =
					op.inputs.iter().position(|&r| committed[r as usize] != honest[r as usize]);
				let expected = match bad_input {
					Some(j) => Err(ProofError::InputMismatch { index: j as u32 }),
					None if committed[step as usize] != honest[step as usize] => Ok(Verdict::Fraud),
					None => Ok(Verdict::NoFraud),
				};
				assert_eq!(check_fraud_proof(h, &committed, &proof), expected);
			}
			match find_fraud(h, &case.weights, &case.input, &committed) {
				Ok(Some(proof)) =>
					assert_eq!(check_fraud_proof(h, &committed, &proof), Ok(Verdict::Fraud)),
				Ok(None) => assert_eq!(committed, honest),
				Err(e) => assert_eq!(e, FindFraudError::InputMismatch),
			}
		},
		// Arbitrary commitment list and proof: no panic.
		_ => {
			let mut input = rest;
			if let Ok((committed, proof)) = <(Vec<Hash>, FraudProof)>::decode(&mut input) {
				let _ = check_fraud_proof(h, &committed, &proof);
			}
		},
	}
});

fn m_step_change(rest: &[u8]) -> bool {
	rest.len() % 7 == 3
}
