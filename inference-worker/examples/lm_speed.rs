//! Speed of the exact language-model backends, one run side by side (docs/PERFORMANCE.md):
//! prefill and decode tokens/s at two contexts, 1 and 2 threads, with and without hashing the
//! trace, and the reference interpreter at the smaller context; peak memory of the process.
//! The exact backend's rows are medians of three runs (this machine's timings vary by tens of
//! percent from run to run).
//!
//! `cargo run --release -p verity-worker --example lm_speed -- MODEL.vlm [TEXT_FILE]`
//!
//! `... MODEL.vlm TEXT_FILE CONTEXT THREADS RUNS [reference]` runs one configuration only
//! (the exact backend with hashing, medians of RUNS runs; with `reference`, then the reference
//! interpreter's row at that context), to alternate with llama.cpp's runs of the same
//! configuration (scripts/bench-decode-ratio.py).
//!
//! The prompt is the first `C` tokens of TEXT_FILE (default: this file) repeated as needed;
//! the prompt tokens are also written to `/tmp/lm_speed_prompt_C.txt` for the llama.cpp run
//! (scripts/bench-llamacpp.py), which uses the same tokens.

use std::time::Instant;

use verity_primitives::lm::{
	interp::{generate, LmJob},
	sample::SamplingParams,
};
use verity_worker::{
	generate::TextModel,
	lm_fast::{with_threads, FastLm, FastOptions, PREFILL_BATCH},
};

const DECODE: u32 = 32;
/// Runs of each configuration of the exact backend; the table gives medians.
const RUNS: usize = 3;

fn median(v: &mut [f64]) -> f64 {
	v.sort_by(f64::total_cmp);
	v[v.len() / 2]
}

fn peak_rss_mib() -> f64 {
	let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
	status
		.lines()
		.find(|l| l.starts_with("VmHWM:"))
		.and_then(|l| l.split_whitespace().nth(1))
		.and_then(|kb| kb.parse::<f64>().ok())
		.map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
	verity_worker::thp::reexec_with_huge_pages(); // as the worker runs
	let args: Vec<String> = std::env::args().collect();
	let model = TextModel::load(std::path::Path::new(&args[1])).expect("model");
	let text = std::fs::read_to_string(args.get(2).map_or(file!(), |s| s.as_str())).expect("text");
	let mut tokens = model.tokenizer.encode(&text).expect("tokens");
	while tokens.len() < 1024 {
		tokens.extend_from_within(..);
	}
	let reference = args.len() == 7 && args[6] == "reference";
	let one: Option<(usize, usize, usize)> = match &args[..] {
		[_, _, _, c, t, r] | [_, _, _, c, t, r, _] => Some((
			c.parse().expect("CONTEXT"),
			t.parse().expect("THREADS"),
			r.parse().expect("RUNS"),
		)),
		_ => None,
	};
	let t0 = Instant::now();
	let fast = model.fast().expect("pack");
	eprintln!("packed in {:.2} s, rss {:.0} MiB", t0.elapsed().as_secs_f64(), peak_rss_mib());
	let h = &model.file.header;
	println!(
		"| context | backend | threads | hashing | prefill tok/s | decode tok/s | hash share |"
	);
	println!("|---|---|---|---|---|---|---|");
	if let Some((context, threads, runs)) = one {
		let prompt = tokens.get(..context).expect("CONTEXT at most 1,024").to_vec();
		let list: Vec<String> = prompt.iter().map(u32::to_string).collect();
		let _ = std::fs::write(format!("/tmp/lm_speed_prompt_{context}.txt"), list.join(" "));
		let job = LmJob { prompt, params: SamplingParams::GREEDY, max_new_tokens: DECODE };
		let warm = LmJob { prompt: job.prompt[..8].to_vec(), max_new_tokens: 2, ..job.clone() };
		let _ = fast.generate(&warm, FastOptions::default());
		let (prefill, decode, share) =
			medians(fast, &job, threads, FastOptions::default(), runs.max(1));
		println!(
			"| {context} | fast | {threads} | yes | {prefill:.1} | {decode:.1} | {share:.1} % |"
		);
		if reference {
			reference_row(h, &model.file.chunks, &job);
		}
		return;
	}
	for context in [128usize, 1024] {
		if context as u32 + DECODE > h.max_context {
			continue;
		}
		let prompt = tokens[..context].to_vec();
		let list: Vec<String> = prompt.iter().map(u32::to_string).collect();
		let _ = std::fs::write(format!("/tmp/lm_speed_prompt_{context}.txt"), list.join(" "));
		let job = LmJob { prompt, params: SamplingParams::GREEDY, max_new_tokens: DECODE };
		// Warm up (page in the packed weights, start the pools).
		let warm = LmJob { prompt: job.prompt[..8].to_vec(), max_new_tokens: 2, ..job.clone() };
		let _ = fast.generate(&warm, FastOptions::default());
		for threads in [1usize, 2] {
			for hash in [true, false] {
				// The default batches of prompt positions, then (without hashing) one position
				// at a time, whose decode is the same. Medians of three runs.
				for prefill_batch in [PREFILL_BATCH, 1] {
					if prefill_batch == 1 && hash {
						continue;
					}
					let job = if prefill_batch == 1 {
						LmJob { max_new_tokens: 1, ..job.clone() }
					} else {
						job.clone()
					};
					let opts = FastOptions { hash, prefill_batch, ..FastOptions::default() };
					let (prefill, decode, share) = medians(fast, &job, threads, opts, RUNS);
					let share = if hash { format!("{share:.1} %") } else { "–".into() };
					let (name, decode) = if prefill_batch == 1 {
						("fast, prefill one position at a time", "–".to_string())
					} else {
						("fast", format!("{decode:.1}"))
					};
					println!(
						"| {context} | {name} | {threads} | {} | {prefill:.1} | {decode} | {share} |",
						if hash { "yes" } else { "no" },
					);
				}
			}
		}
	}
	// libtorch and the reference after every exact row: with them between the two contexts,
	// decode with hashing at 1,024 came out at 40-45 tok/s where a process running only the
	// exact backend measures 51-57 (cause not found: docs/PERFORMANCE.md, session 26).
	for context in [128usize, 1024] {
		if context as u32 + DECODE > h.max_context {
			continue;
		}
		let job = LmJob {
			prompt: tokens[..context].to_vec(),
			params: SamplingParams::GREEDY,
			max_new_tokens: DECODE,
		};
		// The plain fp32 libtorch forward of the same weights (no KV cache: a whole window per
		// call, so only its prefill is comparable), on the CPU or on the device named by
		// VERITY_FLOAT_DEVICE (`cuda`): there timed to the end of the device's work, median of
		// ten calls after a warm-up.
		let device = std::env::var("VERITY_FLOAT_DEVICE").map_or(tch::Device::Cpu, |d| {
			verity_worker::backend::parse_device(&d).expect("VERITY_FLOAT_DEVICE")
		});
		let float = verity_worker::lm_float::FloatLm::new(&model.file, device).expect("float");
		if let tch::Device::Cuda(index) = device {
			let index = index as i64;
			let _ = float.logits(&job.prompt);
			tch::Cuda::synchronize(index);
			let mut times: Vec<f64> = (0..10)
				.map(|_| {
					let t = Instant::now();
					let _ = float.logits(&job.prompt);
					tch::Cuda::synchronize(index);
					t.elapsed().as_secs_f64()
				})
				.collect();
			let per_s = job.prompt.len() as f64 / median(&mut times);
			println!("| {context} | fp32 libtorch, {device:?} | – | no | {per_s:.1} | – | – |");
		}
		for threads in [1i32, 2] {
			if device != tch::Device::Cpu {
				break;
			}
			tch::set_num_threads(threads);
			let _ = float.logits(&job.prompt[..8]);
			let t = Instant::now();
			let _ = float.logits(&job.prompt);
			let per_s = job.prompt.len() as f64 / t.elapsed().as_secs_f64();
			println!("| {context} | fp32 libtorch | {threads} | no | {per_s:.1} | – | – |");
		}
		if context == 128 {
			reference_row(h, &model.file.chunks, &job);
		}
	}
	println!("\npeak memory (the whole process, this run): {:.0} MiB", peak_rss_mib());
}

/// Medians over `runs` runs of `job` on `threads` threads: prefill positions/s, decode
/// tokens/s, and the hashing's share of the time in percent.
fn medians(
	fast: &FastLm,
	job: &LmJob,
	threads: usize,
	opts: FastOptions,
	runs: usize,
) -> (f64, f64, f64) {
	let (mut prefill, mut decode, mut share) = (Vec::new(), Vec::new(), Vec::new());
	for _ in 0..runs {
		let run = with_threads(threads, || fast.generate(job, opts)).expect("run");
		let total = (run.prefill_time + run.decode_time).as_secs_f64();
		prefill.push(run.prefill_positions as f64 / run.prefill_time.as_secs_f64());
		decode.push(run.tokens.len() as f64 / run.decode_time.as_secs_f64());
		share.push(100.0 * run.hash_time.as_secs_f64() / total);
	}
	(median(&mut prefill), median(&mut decode), median(&mut share))
}

/// The reference interpreter's row: every step of the prompt's positions and four more, with
/// the step hashes, as positions per second.
fn reference_row(h: &verity_primitives::lm::header::LmHeader, chunks: &[Vec<u8>], job: &LmJob) {
	let short = LmJob { max_new_tokens: 4, ..job.clone() };
	let t = Instant::now();
	let trace = generate(h, chunks, &short).expect("reference");
	let _ = trace.step_hashes();
	let per_s = trace.outputs.len() as f64 / t.elapsed().as_secs_f64();
	let context = job.prompt.len();
	println!("| {context} | reference | 1 | yes | {per_s:.2} (positions/s, all) | – | – |");
}
