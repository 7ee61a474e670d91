//! Shared by `tests/golden.rs` and `examples/golden.rs`: the golden vectors as files.

use std::path::PathBuf;

use serde_json::{json, Value};
use verity_primitives::{
	lm::{file::LmFile, interp, trace::job_root},
	testing::{
		golden,
		lm::{random_lm_case, LmCase},
		TestCase,
	},
	trace_root,
};

pub fn testdata_dir() -> PathBuf {
	PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// Every golden file, `(file name, bytes)`, as the current code generates them.
pub fn generate() -> Vec<(String, Vec<u8>)> {
	let cases = golden::cases().into_iter().map(|(n, c)| (n.to_string(), c)).collect();
	let mut files = generate_from(cases);
	files.extend(generate_lm());
	files
}

/// The transformer golden vectors: two random tiny transformers (`testing::lm`) as model files
/// (`docs/MODEL_FORMAT.md` section 12) and `lm_golden.json`: `lm_sampled` (seed 1, sampled,
/// header version 2: 15-bit activations) and `lm_greedy` (seed 3, made greedy,
/// `temperature_q16 = 0`, with attention in blocks of 2 positions, so that several parts and
/// their merge are in the vectors; header version 1: 8-bit activations).
pub fn generate_lm() -> Vec<(String, Vec<u8>)> {
	let mut greedy = random_lm_case(3);
	greedy.job.params.temperature_q16 = 0;
	greedy.header.attn_block = 2;
	greedy.header.version = 1;
	let mut sampled = random_lm_case(1);
	sampled.header.version = 2;
	generate_lm_from(vec![("lm_sampled".to_string(), sampled), ("lm_greedy".to_string(), greedy)])
}

/// Transformer files in the golden format (`NAME.vlm` and one `lm_golden.json`) for any list of
/// named cases.
pub fn generate_lm_from(cases: Vec<(String, LmCase)>) -> Vec<(String, Vec<u8>)> {
	let mut files = Vec::new();
	let mut entries = Vec::new();
	for (name, case) in cases {
		let trace =
			interp::generate(&case.header, &case.chunks, &case.job).expect("golden generation");
		let step_hashes = trace.step_hashes();
		let roots = trace.position_roots();
		let model_file = format!("{name}.vlm");
		let file = LmFile { header: case.header.clone(), chunks: case.chunks.clone() };
		files.push((model_file.clone(), file.encode()));
		let p = case.job.params;
		entries.push(json!({
			"name": name,
			"model_file": model_file,
			"model_id": hex::encode(case.header.id()),
			"prompt": case.job.prompt,
			"temperature_q16": p.temperature_q16,
			"top_k": p.top_k,
			"top_p_q16": p.top_p_q16,
			"seed": hex::encode(p.seed),
			"max_new_tokens": case.job.max_new_tokens,
			"tokens": trace.tokens,
			"step_hashes": step_hashes
				.iter()
				.map(|hs| hs.iter().map(hex::encode).collect::<Vec<_>>())
				.collect::<Vec<_>>(),
			"position_roots": roots.iter().map(hex::encode).collect::<Vec<_>>(),
			"job_root": hex::encode(job_root(&roots)),
		}));
	}
	let doc = json!({
		"about": "Verity transformer golden vectors: model files (docs/MODEL_FORMAT.md section 12), and for each a job (prompt, sampling parameters, max_new_tokens) with the generated tokens, every step hash [position][op], the position roots and the job root. Regenerate with `cargo run -p verity-primitives --example golden --features testing -- write`.",
		"cases": entries,
	});
	let mut json = serde_json::to_string_pretty(&doc).expect("json");
	json.push('\n');
	files.push(("lm_golden.json".to_string(), json.into_bytes()));
	files
}

/// Files in the golden format for any list of named cases.
pub fn generate_from(cases: Vec<(String, TestCase)>) -> Vec<(String, Vec<u8>)> {
	let mut files = Vec::new();
	let mut entries = Vec::new();
	for (name, case) in cases {
		let trace = case.trace().expect("golden models execute");
		let hashes = trace.step_hashes(&case.header).expect("n + 1 tensors");
		let model_file = format!("{name}.vmodel");
		let input_file = format!("{name}.input");
		files.push((model_file.clone(), case.file().encode()));
		files.push((input_file.clone(), case.input.clone()));
		entries.push(json!({
			"name": name,
			"model_file": model_file,
			"input_file": input_file,
			"model_id": hex::encode(case.header.id()),
			"input_shape": case.header.input.shape,
			"num_ops": case.header.ops.len(),
			"step_hashes": hashes.iter().map(hex::encode).collect::<Vec<_>>(),
			"trace_root": hex::encode(trace_root(&hashes)),
			"output": hex::encode(trace.output()),
			"tensors": trace.tensors.iter().map(hex::encode).collect::<Vec<_>>(),
		}));
	}
	let doc = json!({
		"about": "Verity golden vectors: model files (docs/MODEL_FORMAT.md), raw int8 inputs, and for each the model id, every step hash h_0..h_n, the trace root, the output and every tensor (hex). Regenerate with `cargo run -p verity-primitives --example golden --features testing -- write`.",
		"cases": entries,
	});
	let mut json = serde_json::to_string_pretty(&doc).expect("json");
	json.push('\n');
	files.push(("golden.json".to_string(), json.into_bytes()));
	files
}

#[allow(dead_code)]
pub fn read_json() -> Value {
	read_named_json("golden.json")
}

#[allow(dead_code)]
pub fn read_named_json(name: &str) -> Value {
	let text = std::fs::read_to_string(testdata_dir().join(name)).expect("testdata json");
	serde_json::from_str(&text).expect("valid json")
}
