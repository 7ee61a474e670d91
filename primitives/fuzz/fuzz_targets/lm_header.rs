//! Untrusted transformer headers and model files (docs/MODEL_FORMAT.md 12.5, 12.6): decoding
//! never panics and is canonical; validation never panics; a header that validates with small
//! dimensions generates on weights of the declared sizes, and sixteen steps spread over its
//! honest trace are each judged `NoFraud` by their step proofs.
//!
//! Input: first byte = mode. Even: the rest is raw header bytes (and raw model-file bytes).
//! Odd: the rest is `seed: u64 LE` + mutations `(pos: u16 LE, xor: u8)*` applied to the
//! encoding of `testing::lm::random_lm_case(seed)`'s header, to reach deep into valid-looking
//! headers.

#![no_main]

use std::{
	collections::{BTreeMap, BTreeSet},
	sync::{Mutex, OnceLock},
};

use codec::Encode;
use libfuzzer_sys::fuzz_target;
use verity_primitives::{
	lm::{
		file::LmFile,
		header::decode_lm_header,
		interp::{generate, LmJob},
		sample::SamplingParams,
		trace::{build_step_proof, check_step_proof, ProverTrees},
		validate::validate_lm,
	},
	testing::lm::random_lm_case,
	Limits, Verdict,
};

const MAX_HEADER: u32 = 1 << 16;

fn limits() -> Limits {
	Limits {
		max_header_bytes: MAX_HEADER,
		max_ops: 4096,
		max_tensor_elements: 1 << 16,
		max_op_inputs: u32::MAX,
		max_step_proof_bytes: 1 << 20,
		max_step_macs: 1 << 22,
	}
}

/// Deterministic bytes of length `n`.
fn pattern(n: usize, salt: u8) -> Vec<u8> {
	(0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt).rotate_left(3)).collect()
}

fn exercise_header(bytes: &[u8], salt: u8) {
	let Ok(header) = decode_lm_header(bytes, MAX_HEADER) else { return };
	assert_eq!(header.encode(), bytes, "decoding is canonical");
	let Ok(info) = validate_lm(&header, &limits()) else { return };
	assert_eq!(info.id, header.id());
	// Generate only small models, each header once (the fuzzer's time is better spent on
	// more inputs).
	if info.total_weight_bytes > 1 << 18 || header.max_context > 64 || header.vocab > 4096 {
		return;
	}
	static GENERATED: OnceLock<Mutex<BTreeSet<[u8; 32]>>> = OnceLock::new();
	let mut generated = GENERATED.get_or_init(Default::default).lock().expect("not poisoned");
	if !generated.insert(info.id) {
		return;
	}
	drop(generated);
	let chunks: Vec<Vec<u8>> = header
		.weight_chunks()
		.into_iter()
		.enumerate()
		.map(|(i, c)| pattern(header.chunk_bytes(c) as usize, salt ^ i as u8))
		.collect();
	// Bind the header to these weights, which keeps it valid.
	let mut header = header;
	header.weights_root = verity_primitives::lm::trace::weights_root(&chunks);
	let job = LmJob {
		// Two prompt tokens where the context allows (a one-position model takes one).
		prompt: [0, header.vocab.saturating_sub(1)][..header.max_context.min(2) as usize].to_vec(),
		params: SamplingParams {
			temperature_q16: u32::from(salt) << 10,
			top_k: u32::from(salt % 5),
			top_p_q16: 50_000,
			seed: [salt; 32],
		},
		max_new_tokens: 2,
	};
	let trace = generate(&header, &chunks, &job).expect("a valid model always generates");
	let leaves = trace.step_hashes();
	let roots = trace.position_roots();
	let trees = ProverTrees::new(&chunks, &leaves);
	// Sixteen steps spread over the generation (all of them would dominate the run time).
	let steps: Vec<(u32, u32)> = leaves
		.iter()
		.enumerate()
		.flat_map(|(t, ops)| (0..ops.len() as u32).map(move |i| (t as u32, i)))
		.collect();
	let stride = steps.len().div_ceil(16).max(1);
	for &(t, i) in steps.iter().skip(usize::from(salt) % stride).step_by(stride) {
		let proof = build_step_proof(&header, &chunks, &job, &trace, &leaves, &trees, t, i)
			.expect("every honest step has a proof");
		assert_eq!(check_step_proof(&header, &job, &roots, &proof), Ok(Verdict::NoFraud));
	}
}

fuzz_target!(|data: &[u8]| {
	let Some((&mode, rest)) = data.split_first() else { return };
	if mode % 2 == 0 {
		exercise_header(rest, mode);
		// The same bytes as a whole model file: never panics, and a file that decodes
		// re-encodes to the same bytes.
		if let Ok(file) = LmFile::decode(rest, MAX_HEADER) {
			assert_eq!(file.encode(), rest);
		}
		return;
	}
	let Some((seed, muts)) = rest.split_first_chunk::<8>() else { return };
	static HEADERS: OnceLock<Mutex<BTreeMap<u64, Vec<u8>>>> = OnceLock::new();
	let seed = u64::from_le_bytes(*seed) % 4096;
	let mut bytes = HEADERS
		.get_or_init(Default::default)
		.lock()
		.expect("not poisoned")
		.entry(seed)
		.or_insert_with(|| random_lm_case(seed).header.encode())
		.clone();
	for m in muts.chunks_exact(3) {
		let pos = u16::from_le_bytes([m[0], m[1]]) as usize;
		let len = bytes.len();
		bytes[pos % len] ^= m[2];
	}
	exercise_header(&bytes, mode);
});
