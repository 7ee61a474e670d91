//! The trace hashing of one decode position of a real model, side by side in one run: every
//! step hash and the position root of the position under the commitment rule (keyed BLAKE3,
//! `verity_primitives::lm::trace`, as the worker computes it: [`lm_fast::hash`], sixteen
//! messages per pass on AVX-512) and under the rule it replaced (version 1: BLAKE2b-256 of
//! `b"verity/lm/step/v1" || u32 position || u32 op || output`, then the classifier's Merkle
//! tree with a leaf hash per step, computed eight messages at a time on AVX-512 or four on
//! AVX2), alternated, best and median of each. Both are checked against their plain rule
//! first (the primitives' functions; version 1's written out here with `sp_crypto_hashing`).
//!
//! `cargo run --release -p verity-worker --example hash_speed -- MODEL.vlm [CONTEXT]`

use std::time::Instant;

use verity_primitives::{
	commit::{trace_root, MERKLE_LEAF_PREFIX, MERKLE_NODE_PREFIX},
	lm::{
		interp::LmJob,
		sample::SamplingParams,
		trace::{lm_step_hash, position_root},
	},
	Hash,
};
use verity_worker::{
	exact::blake2_256_many,
	generate::TextModel,
	lm_fast::{hash, Kernel},
};

const ROUNDS: usize = 200;

fn median(v: &mut [f64]) -> f64 {
	v.sort_by(f64::total_cmp);
	v[v.len() / 2]
}

/// Version 1's position root (`commit::trace_root`) with the messages of each level hashed
/// many at a time.
fn v1_root(hashes: &[Hash]) -> Hash {
	let mut buf = Vec::with_capacity(33 * hashes.len());
	for h in hashes {
		buf.push(MERKLE_LEAF_PREFIX);
		buf.extend_from_slice(h);
	}
	let mut level = blake2_256_many(buf.chunks_exact(33));
	while level.len() > 1 {
		buf.clear();
		for p in level.chunks_exact(2) {
			buf.push(MERKLE_NODE_PREFIX);
			buf.extend_from_slice(&p[0]);
			buf.extend_from_slice(&p[1]);
		}
		let odd = (level.len() % 2 == 1).then(|| level[level.len() - 1]);
		level = blake2_256_many(buf.chunks_exact(65));
		level.extend(odd);
	}
	level.first().copied().unwrap_or([0u8; 32])
}

fn main() {
	verity_worker::thp::reexec_with_huge_pages(); // as the worker runs
	let args: Vec<String> = std::env::args().collect();
	let model = TextModel::load(std::path::Path::new(&args[1])).expect("model");
	let context: usize = args.get(2).map_or(128, |c| c.parse().expect("CONTEXT"));
	let text = std::fs::read_to_string(file!()).expect("text");
	let mut prompt = model.tokenizer.encode(&text).expect("tokens");
	while prompt.len() < context {
		prompt.extend_from_within(..);
	}
	prompt.truncate(context);
	let position = context as u32; // the first decode position after the prompt
	let job = LmJob { prompt, params: SamplingParams::GREEDY, max_new_tokens: 2 };
	let fast = model.fast().expect("pack");
	let trace = fast.trace_for(&job, position, Kernel::detect()).expect("trace");
	let outputs: Vec<&[u8]> = trace.outputs[position as usize].iter().map(Vec::as_slice).collect();
	let bytes: usize = outputs.iter().map(|o| o.len()).sum();

	// Version 2 (the rule): the outputs themselves are the messages.
	let want: Vec<Hash> = outputs.iter().map(|o| lm_step_hash(o)).collect();
	let want_root = position_root(&want);
	let v2 = || {
		let hashes = hash::step_hashes_many(&outputs);
		let t = Instant::now();
		let root = hash::lm_tree_root_many(&hashes);
		(hashes, root, t)
	};
	// Version 1: the prefix, position and op before each output.
	let v1_messages: Vec<Vec<u8>> = outputs
		.iter()
		.enumerate()
		.map(|(op, out)| {
			[
				b"verity/lm/step/v1".as_slice(),
				&position.to_le_bytes(),
				&(op as u32).to_le_bytes(),
				out,
			]
			.concat()
		})
		.collect();
	let v1_want: Vec<Hash> = v1_messages.iter().map(|m| sp_crypto_hashing::blake2_256(m)).collect();
	let v1_want_root = trace_root(&v1_want);
	let v1 = || {
		let hashes = blake2_256_many(v1_messages.iter().map(Vec::as_slice));
		let t = Instant::now();
		let root = v1_root(&hashes);
		(hashes, root, t)
	};
	let (h, r, _) = v2();
	assert!(h == want && r == want_root, "version 2 differs from the primitives' rule");
	let (h, r, _) = v1();
	assert!(h == v1_want && r == v1_want_root, "version 1 differs from its rule");

	let names = [
		"version 2: keyed BLAKE3, no leaf hashes (the rule)",
		"version 1: BLAKE2b, prefixed steps, leaf hashes",
	];
	let runs: [&dyn Fn() -> (Vec<Hash>, Hash, Instant); 2] = [&v2, &v1];
	let mut times = [Vec::new(), Vec::new()];
	let mut parts = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
	for _ in 0..ROUNDS {
		for (k, run) in runs.iter().enumerate() {
			let t0 = Instant::now();
			let (_, root, t1) = run();
			std::hint::black_box(root);
			let (a, b) = ((t1 - t0).as_secs_f64() * 1e3, t1.elapsed().as_secs_f64() * 1e3);
			parts[k][0].push(a);
			parts[k][1].push(b);
			times[k].push(a + b);
		}
	}
	println!(
		"position {position}: {} step outputs, {bytes} bytes (version 1 adds 25 bytes to each)",
		outputs.len()
	);
	println!("| rule | best ms | median ms | step hashes ms | position root ms |");
	println!("|---|---|---|---|---|");
	let mut medians = [0.0; 2];
	for (k, name) in names.iter().enumerate() {
		let best = times[k].iter().copied().fold(f64::MAX, f64::min);
		medians[k] = median(&mut times[k]);
		let (steps, tree) = (median(&mut parts[k][0]), median(&mut parts[k][1]));
		println!("| {name} | {best:.3} | {:.3} | {steps:.3} | {tree:.3} |", medians[k]);
	}
	println!("version 2 / version 1: {:.2}x faster (medians)", medians[1] / medians[0]);
}
