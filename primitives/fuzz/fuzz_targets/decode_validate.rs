//! Untrusted header / model-file bytes: decoding never panics and is canonical; validation never
//! panics; a header that validates executes on every input and weight blob of the declared
//! sizes, and every step of its honest trace survives a fraud proof; an op that fails the
//! structural check is refused by the interpreter (never executed, never a panic).
//!
//! Input: first byte = mode. Even: the rest is raw header bytes (and raw model-file bytes).
//! Odd: the rest is `seed: u64 LE` + mutations `(pos: u16 LE, xor: u8)*` applied to the
//! encoding of `testing::random_case(seed)`, to reach deep into valid-looking headers.

#![no_main]

use codec::Encode;
use libfuzzer_sys::fuzz_target;
use verity_primitives::{testing::random_case, *};

const MAX_HEADER: u32 = 1 << 16;

fn limits() -> Limits {
	Limits {
		max_header_bytes: MAX_HEADER,
		max_ops: 32,
		max_tensor_elements: 1 << 14,
		max_op_inputs: 8,
		max_step_proof_bytes: 1 << 17,
		max_step_macs: 1 << 19,
	}
}

fn gen_limits() -> Limits {
	Limits { max_ops: 8, max_tensor_elements: 2048, max_step_macs: 1 << 16, ..limits() }
}

/// Deterministic bytes of length `n`.
fn pattern(n: usize, salt: u8) -> Vec<u8> {
	(0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt).rotate_left(3)).collect()
}

fn small(n: u64) -> bool {
	n <= 1 << 16
}

fn exercise_header(bytes: &[u8], salt: u8) {
	let Ok(header) = decode_header(bytes, MAX_HEADER) else { return };
	assert_eq!(header.encode(), bytes, "decoding is canonical");
	assert_eq!(header.id(), model_id(&header));
	let limits = limits();
	match validate(&header, &limits) {
		Ok(info) => {
			assert_eq!(info.num_ops as usize, header.ops.len());
			let weights: Vec<Vec<u8>> =
				header.ops.iter().map(|op| pattern(op.weight_len as usize, salt)).collect();
			let input = pattern(info.input_elements as usize, salt ^ 0x55);
			if info.total_macs > 1 << 21 {
				return;
			}
			let trace = execute(&header, &weights, &input).expect("a valid model always executes");
			// Bind the header to these weights (their hashes), which keeps it valid.
			let mut header = header;
			for (op, w) in header.ops.iter_mut().zip(&weights) {
				op.weight_hash = weight_hash(w);
			}
			assert!(validate(&header, &limits).is_ok());
			let hashes = trace.step_hashes(&header).expect("n + 1 tensors");
			for step in 1..=info.num_ops {
				let proof = build_fraud_proof(&header, &trace, &weights, step).expect("proof");
				assert_eq!(check_fraud_proof(&header, &hashes, &proof), Ok(Verdict::NoFraud));
			}
			let root = trace_root(&hashes);
			let p = merkle_proof(&hashes, info.num_ops).expect("in range");
			assert!(verify_inclusion(&root, &hashes[info.num_ops as usize], &p));
		},
		Err(_) => {
			// Each op on its own: structurally valid => executes; invalid => refused.
			for step in 1..=header.num_ops().min(64) {
				let op = &header.ops[step as usize - 1];
				let sizes: Option<Vec<u64>> = op
					.inputs
					.iter()
					.map(|&r| header.tensor_spec(r).and_then(|s| s.num_elements()).map(u64::from))
					.collect();
				let inputs: Vec<Vec<u8>> = match &sizes {
					Some(s) if s.iter().all(|&n| small(n)) =>
						s.iter().map(|&n| pattern(n as usize, salt)).collect(),
					_ => op.inputs.iter().map(|_| Vec::new()).collect(),
				};
				let weights =
					if small(op.weight_len.into()) { pattern(op.weight_len as usize, salt) } else { vec![] };
				match step_info(&header, step) {
					Ok(info) => {
						if info.macs > 1 << 20 || !small(info.output_elements.into()) {
							continue;
						}
						let lengths_ok = sizes.as_ref().is_some_and(|s| s.iter().all(|&n| small(n)))
							&& weights.len() == op.weight_len as usize;
						let r = execute_step(&header, step, &inputs, &weights);
						if lengths_ok {
							let out = r.expect("a structurally valid op always executes");
							assert_eq!(out.len() as u32, info.output_elements);
						}
					},
					Err(e) => {
						let r = execute_step(&header, step, &inputs, &weights);
						assert_eq!(r, Err(ExecError::InvalidModel(e)));
					},
				}
			}
		},
	}
}

fn exercise_file(bytes: &[u8]) {
	let Ok(file) = ModelFile::decode_with_limit(bytes, MAX_HEADER) else { return };
	assert_eq!(file.encode(), bytes, "model files are canonical");
	let _ = file.verify(&file.id());
}

fuzz_target!(|data: &[u8]| {
	let Some((&mode, rest)) = data.split_first() else { return };
	if mode & 1 == 0 {
		exercise_header(rest, mode);
		exercise_file(rest);
		return;
	}
	let Some((seed, muts)) = rest.split_first_chunk::<8>() else { return };
	let case = random_case(u64::from_le_bytes(*seed), &gen_limits());
	let mut header = case.header.encode();
	let mut file = case.file().encode();
	for m in muts.chunks_exact(3) {
		let pos = u16::from_le_bytes([m[0], m[1]]) as usize;
		let len = header.len();
		header[pos % len] ^= m[2];
		let flen = file.len();
		file[(pos + 16) % flen] ^= m[2];
	}
	exercise_header(&header, mode);
	exercise_file(&file);
});
