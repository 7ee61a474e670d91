//! Accuracy of the exact language model against the float model (docs/PERFORMANCE.md):
//! teacher-forced perplexity and top-1 agreement on held-out text, and greedy answers to chat
//! prompts side by side.
//!
//! `cargo run --release -p verity-worker --example lm_accuracy -- MODEL.vlm TEXT_FILE TOKENS WINDOW [chat]`
//!
//! The text is tokenized and cut into windows of WINDOW tokens (each scored from an empty
//! cache, so every window is a separate document); within a window every next token is scored
//! by both models: the exact logits (Q16, `FastLm::score`) and the fp32 libtorch forward of the
//! same weights (`lm_float`).
//!
//! `VERITY_ACCURACY_FLOAT_ONLY=1` scores only the float model; `VERITY_ACCURACY_DUMP=FILE`
//! writes each window's tokens (`W ...`), the float model's argmax after each position
//! (`F ...`) and the exact model's (`E ...`, unless float only), for comparing another
//! implementation with the float model on the same windows (scripts/bench-llamacpp-accuracy.py).
//! `VERITY_ACCURACY_SIMULATE=LEVELS:SITES` (SITES a comma-separated subset of `qkv,wo,gate_up,
//! down,head`) replaces the exact model by the float model with those matrix products' inputs
//! rounded to LEVELS steps per block of 32 (`FloatLm::with_activation_levels`): what the
//! activations' precision alone costs.

use tch::{Device, Kind};
use verity_primitives::lm::{interp::LmJob, sample::SamplingParams};
use verity_worker::{
	generate::{Prompt, TextModel},
	lm_fast::{FastOptions, Kernel},
	lm_float::{ActQuant, FloatLm},
};

fn log_softmax_at(logits: &[f64], target: usize) -> f64 {
	let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
	let lse = m + logits.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
	logits[target] - lse
}

const CHATS: [&str; 10] = [
	"What is the capital of France?",
	"Name three primary colors.",
	"How many legs does a spider have?",
	"Write a haiku about the sea.",
	"What is 12 times 12?",
	"Give me a synonym for happy.",
	"Who wrote Romeo and Juliet?",
	"What does a thermometer measure?",
	"Translate 'good morning' into Spanish.",
	"Why is the sky blue?",
];

fn main() {
	let args: Vec<String> = std::env::args().collect();
	let model = TextModel::load(std::path::Path::new(&args[1])).expect("model");
	let text = std::fs::read_to_string(&args[2]).expect("text");
	let n: usize = args[3].parse().expect("tokens");
	let window: usize = args[4].parse().expect("window");
	let tokens = model.tokenizer.encode(&text).expect("tokenize");
	let tokens = &tokens[..n.min(tokens.len())];
	let fast = model.fast().expect("pack");
	let float = FloatLm::new(&model.file, Device::Cpu).expect("float model");
	let (mut nll_f, mut nll_e, mut agree, mut scored) = (0.0f64, 0.0f64, 0usize, 0usize);
	let float_only = std::env::var("VERITY_ACCURACY_FLOAT_ONLY").is_ok_and(|v| v == "1");
	let simulated = std::env::var("VERITY_ACCURACY_SIMULATE").ok().map(|spec| {
		let (levels, sites) = spec.split_once(':').expect("LEVELS:SITES");
		let on = |name: &str| sites.split(',').any(|s| s == name);
		let act = ActQuant {
			levels: levels.parse().expect("levels"),
			qkv: on("qkv"),
			wo: on("wo"),
			gate_up: on("gate_up"),
			down: on("down"),
			head: on("head"),
		};
		eprintln!("simulating {act:?} in place of the exact model");
		FloatLm::new(&model.file, Device::Cpu).expect("float model").with_activation_levels(act)
	});
	let mut dump = std::env::var("VERITY_ACCURACY_DUMP").ok().map(|_| String::new());
	let started = std::time::Instant::now();
	for (w, chunk) in tokens.chunks(window).enumerate() {
		if chunk.len() < 2 {
			continue;
		}
		let exact: Vec<Vec<f64>> = if float_only {
			Vec::new()
		} else if let Some(sim) = &simulated {
			Vec::<Vec<f64>>::try_from(&sim.logits(chunk).to_kind(Kind::Double)).expect("floats")
		} else {
			let q16 = fast.score(chunk, Kernel::detect()).expect("score");
			q16.iter().map(|l| l.iter().map(|&v| f64::from(v) / 65536.0).collect()).collect()
		};
		let fl = float.logits(chunk).to_kind(Kind::Double);
		let fl: Vec<Vec<f64>> = Vec::<Vec<f64>>::try_from(&fl).expect("floats");
		let (mut fas, mut eas) = (Vec::new(), Vec::new());
		for i in 0..chunk.len() - 1 {
			let target = chunk[i + 1] as usize;
			nll_f -= log_softmax_at(&fl[i], target);
			let fa = fl[i]
				.iter()
				.enumerate()
				.fold((0, f64::NEG_INFINITY), |b, (j, &v)| if v > b.1 { (j, v) } else { b })
				.0;
			fas.push(fa.to_string());
			if let Some(e) = exact.get(i) {
				nll_e -= log_softmax_at(e, target);
				// The lowest index among ties, as the exact rule's greedy choice.
				let ea = e
					.iter()
					.enumerate()
					.fold((0, f64::NEG_INFINITY), |b, (j, &v)| if v > b.1 { (j, v) } else { b })
					.0;
				agree += usize::from(ea == fa);
				eas.push(ea.to_string());
			}
			scored += 1;
		}
		if let Some(d) = dump.as_mut() {
			let ids: Vec<String> = chunk.iter().map(u32::to_string).collect();
			d.push_str(&format!("W {}\nF {}\n", ids.join(" "), fas.join(" ")));
			if !float_only {
				d.push_str(&format!("E {}\n", eas.join(" ")));
			}
		}
		if w % 20 == 0 {
			eprintln!(
				"window {w}: {scored} tokens scored, {:.0} s",
				started.elapsed().as_secs_f64()
			);
		}
	}
	if let (Some(d), Ok(path)) = (dump, std::env::var("VERITY_ACCURACY_DUMP")) {
		std::fs::write(&path, d).expect("dump");
	}
	let (pf, pe) = ((nll_f / scored as f64).exp(), (nll_e / scored as f64).exp());
	println!("tokens scored: {scored} (windows of {window}, from {})", args[2]);
	if float_only {
		println!("perplexity float {pf:.4}");
		return;
	}
	println!("perplexity float {pf:.4}, exact {pe:.4}: {:+.3} %", 100.0 * (pe / pf - 1.0));
	println!(
		"top-1 agreement: {:.2} % ({agree} of {scored})",
		100.0 * agree as f64 / scored as f64
	);
	if args.get(5).map(String::as_str) == Some("chat") {
		println!("\n| prompt | float (fp32) | exact |\n|---|---|---|");
		let eos = model.file.header.eos_tokens.clone();
		for c in CHATS {
			let prompt = model.prompt_tokens(&Prompt::Chat(c.into())).expect("chat");
			let f = float.greedy(&prompt, 32, &eos);
			let job = LmJob { prompt, params: SamplingParams::GREEDY, max_new_tokens: 32 };
			let e = fast.generate(&job, FastOptions::default()).expect("generate").tokens;
			let show = |t: &[u32]| {
				model.tokenizer.decode(t).unwrap_or_default().replace('\n', " ").replace('|', "\\|")
			};
			println!("| {c} | {} | {} |", show(&f), show(&e));
		}
	}
}
