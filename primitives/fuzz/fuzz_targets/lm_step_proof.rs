//! `lm::trace::check_step_proof` on random tiny transformers (`testing::lm::random_lm_case`)
//! with honest and tampered commitments and proofs: it never panics; against honest roots it
//! never says Fraud, whatever the bytes; an honest proof of an honest step is `NoFraud`; when
//! one committed step hash is wrong, the honest proof of that step is `Fraud`.
//!
//! Input: `seed: u64 LE`, `mode: u8`, then mode-specific bytes.

#![no_main]

use std::{
	collections::BTreeMap,
	sync::{Arc, Mutex, OnceLock},
};

use codec::Decode;
use libfuzzer_sys::fuzz_target;
use verity_primitives::{
	lm::{
		interp::{generate, LmTrace},
		trace::{build_step_proof, check_step_proof, position_root, LmStepProof, ProverTrees},
	},
	testing::lm::{random_lm_case, LmCase},
	Verdict,
};

/// A random model with its honest generation, step hashes, position roots and trees.
struct Model {
	case: LmCase,
	trace: LmTrace,
	leaves: Vec<Vec<[u8; 32]>>,
	roots: Vec<[u8; 32]>,
	trees: ProverTrees,
}

/// Models by seed, generated once per fuzzing process (generation dominates otherwise).
fn model(seed: u64) -> Arc<Model> {
	static MODELS: OnceLock<Mutex<BTreeMap<u64, Arc<Model>>>> = OnceLock::new();
	let mut models = MODELS.get_or_init(Default::default).lock().expect("not poisoned");
	models
		.entry(seed)
		.or_insert_with(|| {
			let case = random_lm_case(seed);
			let trace = generate(&case.header, &case.chunks, &case.job).expect("random models generate");
			let leaves = trace.step_hashes();
			let roots = trace.position_roots();
			let trees = ProverTrees::new(&case.chunks, &leaves);
			Arc::new(Model { case, trace, leaves, roots, trees })
		})
		.clone()
}

fuzz_target!(|data: &[u8]| {
	let Some((seed, rest)) = data.split_first_chunk::<8>() else { return };
	let Some((&mode, rest)) = rest.split_first() else { return };
	// A bounded set of models, so that the fuzzer can learn each one's proofs.
	let m = model(u64::from_le_bytes(*seed) % 64);
	let (h, chunks, job) = (&m.case.header, &m.case.chunks, &m.case.job);
	let (trace, leaves, roots, trees) = (&m.trace, &m.leaves, &m.roots, &m.trees);
	let pick = |i: usize| u32::from(rest.get(i).copied().unwrap_or(0));
	let step = |a: u32, b: u32| {
		let t = a % leaves.len() as u32;
		(t, b % leaves[t as usize].len() as u32)
	};
	match mode % 3 {
		// Arbitrary proof bytes against the honest roots.
		0 => {
			let mut input = rest;
			if let Ok(proof) = LmStepProof::decode(&mut input) {
				assert_ne!(check_step_proof(h, job, roots, &proof), Ok(Verdict::Fraud));
			}
		},
		// An honest proof with tampered bytes, against the honest roots.
		1 => {
			let (t, i) = step(pick(0) | pick(1) << 8, pick(2) | pick(3) << 8);
			let mut proof = build_step_proof(h, chunks, job, trace, leaves, trees, t, i)
				.expect("honest proof");
			let original = proof.clone();
			for m in rest.get(4..).unwrap_or(&[]).chunks_exact(4) {
				let which = usize::from(m[0]);
				let pos = usize::from(u16::from_le_bytes([m[1], m[2]]));
				let inputs: usize = proof.inputs.iter().map(Vec::len).sum();
				let weights = proof.weights.len();
				// Which byte string to change: an input step's data, a weight chunk, or (the
				// last choice) the committed hash.
				let mut k = which % (inputs + weights + 1);
				let target: &mut Vec<u8> = if k < inputs {
					let mut found = None;
					for g in proof.inputs.iter_mut() {
						if k < g.len() {
							found = Some(&mut g[k].data);
							break;
						}
						k -= g.len();
					}
					match found {
						Some(d) => d,
						None => continue,
					}
				} else if k - inputs < weights {
					&mut proof.weights[k - inputs].data
				} else {
					proof.committed[pos % 32] ^= m[3];
					continue;
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
			let r = check_step_proof(h, job, roots, &proof);
			assert_ne!(r, Ok(Verdict::Fraud));
			if proof == original {
				assert_eq!(r, Ok(Verdict::NoFraud));
			}
		},
		// One wrong committed step hash: its honest proof, built in the operator's trees, is
		// Fraud.
		_ => {
			let (t, i) = step(pick(0) | pick(1) << 8, pick(2) | pick(3) << 8);
			let mut committed = leaves.to_vec();
			committed[t as usize][i as usize][usize::from(pick(4) as u8 % 32)] ^=
				(pick(5) as u8).max(1);
			let mut roots = roots.to_vec();
			roots[t as usize] = position_root(&committed[t as usize]);
			let trees = ProverTrees::new(chunks, &committed);
			let proof = build_step_proof(h, chunks, job, trace, &committed, &trees, t, i)
				.expect("proof of the wrong step");
			assert_eq!(check_step_proof(h, job, &roots, &proof), Ok(Verdict::Fraud));
		},
	}
});
