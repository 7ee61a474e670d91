//! The trace hashing of one decode position of a real model, side by side in one run: every
//! step hash and the position root of the position, with the eight-lane AVX-512 BLAKE2b
//! (`blake2_256_many_x8`, what the worker uses where the CPU has AVX-512F) and with
//! blake2b_simd's four-lane `hash_many` (what it uses otherwise), alternated, best and median
//! of each; both checked equal to the primitives' `lm_step_hash` and `position_root` first.
//!
//! `cargo run --release -p verity-worker --example hash_speed -- MODEL.vlm [CONTEXT]`

use std::time::Instant;

use verity_primitives::{
	lm::{
		interp::LmJob,
		sample::SamplingParams,
		trace::{lm_step_hash, position_root, LM_STEP_TAG},
	},
	Hash,
};
use verity_worker::{
	exact::{blake2_256_many_x4, blake2_256_many_x8},
	generate::TextModel,
	lm_fast::{position_root_with, Kernel},
};

const ROUNDS: usize = 200;

/// A many-message BLAKE2b-256.
type Many<'a> = &'a dyn Fn(&[&[u8]]) -> Vec<Hash>;

fn median(v: &mut [f64]) -> f64 {
	v.sort_by(f64::total_cmp);
	v[v.len() / 2]
}

fn main() {
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
	let outputs = &trace.outputs[position as usize];
	let messages: Vec<Vec<u8>> = outputs
		.iter()
		.enumerate()
		.map(|(op, out)| {
			[LM_STEP_TAG, &position.to_le_bytes(), &(op as u32).to_le_bytes(), out].concat()
		})
		.collect();
	let slices: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
	let bytes: usize = messages.iter().map(Vec::len).sum();
	let want: Vec<Hash> = outputs
		.iter()
		.enumerate()
		.map(|(op, out)| lm_step_hash(position, op as u32, out))
		.collect();
	let want_root = position_root(&want);

	let x4 = |m: &[&[u8]]| blake2_256_many_x4(m);
	let x8 = |m: &[&[u8]]| blake2_256_many_x8(m).expect("this CPU has no AVX-512F");
	let impls: [(&str, Many<'_>); 2] = [
		("blake2b_simd hash_many (4 lanes, AVX2)", &x4),
		("blake2_256_many_x8 (8 lanes, AVX-512)", &x8),
	];
	for (name, many) in impls {
		assert_eq!(many(&slices), want, "{name}: step hashes");
		assert_eq!(position_root_with(&want, many), want_root, "{name}: position root");
	}
	// Per implementation: the step hashes, then the position root.
	let mut times = [Vec::new(), Vec::new()];
	let mut parts = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
	for _ in 0..ROUNDS {
		for (k, (_, many)) in impls.iter().enumerate() {
			let t0 = Instant::now();
			let hashes = many(&slices);
			let t1 = Instant::now();
			std::hint::black_box(position_root_with(&hashes, *many));
			let (a, b) = ((t1 - t0).as_secs_f64() * 1e3, t1.elapsed().as_secs_f64() * 1e3);
			parts[k][0].push(a);
			parts[k][1].push(b);
			times[k].push(a + b);
		}
	}
	println!(
		"position {position}: {} step hashes, {bytes} bytes hashed, then the position root",
		messages.len()
	);
	println!("| implementation | best ms | median ms | step hashes ms | position root ms |");
	println!("|---|---|---|---|---|");
	let mut medians = [0.0; 2];
	for (k, (name, _)) in impls.iter().enumerate() {
		let best = times[k].iter().copied().fold(f64::MAX, f64::min);
		medians[k] = median(&mut times[k]);
		let (steps, tree) = (median(&mut parts[k][0]), median(&mut parts[k][1]));
		println!("| {name} | {best:.3} | {:.3} | {steps:.3} | {tree:.3} |", medians[k]);
	}
	println!("8 lanes / 4 lanes: {:.2}x faster (medians)", medians[0] / medians[1]);
}
