//! The committed golden vectors (`testdata/`) are reproduced exactly by this implementation.

mod common;

use verity_primitives::*;

fn hex32(v: &serde_json::Value) -> [u8; 32] {
	hex::decode(v.as_str().expect("hex string")).expect("hex").try_into().expect("32 bytes")
}

/// Independent of the test-support code: decode, verify, validate and execute every committed
/// model file and compare with the committed hashes.
#[test]
fn committed_vectors_reproduce() {
	let doc = common::read_json();
	let dir = common::testdata_dir();
	let cases = doc["cases"].as_array().expect("cases");
	assert!(cases.len() >= 12);
	for c in cases {
		let name = c["name"].as_str().unwrap();
		let bytes = std::fs::read(dir.join(c["model_file"].as_str().unwrap())).unwrap();
		let file = ModelFile::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
		let id = hex32(&c["model_id"]);
		file.verify(&id).unwrap_or_else(|e| panic!("{name}: {e}"));
		assert_eq!(file.encode(), bytes, "{name}: file re-encodes identically");
		validate(&file.header, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
		let input = std::fs::read(dir.join(c["input_file"].as_str().unwrap())).unwrap();
		let trace = execute(&file.header, &file.weights, &input).unwrap();
		let hashes = trace.step_hashes(&file.header).unwrap();
		let expected: Vec<[u8; 32]> =
			c["step_hashes"].as_array().unwrap().iter().map(hex32).collect();
		assert_eq!(hashes, expected, "{name}: step hashes");
		assert_eq!(trace_root(&hashes), hex32(&c["trace_root"]), "{name}: trace root");
		assert_eq!(hex::encode(trace.output()), c["output"].as_str().unwrap(), "{name}: output");
		let tensors: Vec<String> = trace.tensors.iter().map(hex::encode).collect();
		let expected: Vec<String> = c["tensors"]
			.as_array()
			.unwrap()
			.iter()
			.map(|v| v.as_str().unwrap().to_string())
			.collect();
		assert_eq!(tensors, expected, "{name}: tensors");
		// every step of the golden trace survives a fraud proof
		for step in 1..=file.header.num_ops() {
			let proof = build_fraud_proof(&file.header, &trace, &file.weights, step).unwrap();
			assert_eq!(check_fraud_proof(&file.header, &hashes, &proof), Ok(Verdict::NoFraud));
		}
	}
}

/// Independent of the test-support code: decode and verify every committed transformer file,
/// run its job and compare tokens, every step hash, the position roots and the job root; every
/// step of the golden generations survives a step proof.
#[test]
fn committed_transformer_vectors_reproduce() {
	use verity_primitives::lm::{
		file::LmFile,
		interp::{generate, LmJob},
		sample::SamplingParams,
		trace::{build_step_proof, check_step_proof, job_root, ProverTrees},
		validate::validate_lm,
	};
	let doc = common::read_named_json("lm_golden.json");
	let dir = common::testdata_dir();
	let cases = doc["cases"].as_array().expect("cases");
	assert_eq!(cases.len(), 2);
	for c in cases {
		let name = c["name"].as_str().unwrap();
		let bytes = std::fs::read(dir.join(c["model_file"].as_str().unwrap())).unwrap();
		let file = LmFile::decode(&bytes, 1 << 20).unwrap_or_else(|e| panic!("{name}: {e}"));
		// Hashes only: the random models include the edge scales (inf/NaN read as 0) that
		// publishing tools refuse (`LmFile::verify`) but execution defines.
		file.verify_hashes(&hex32(&c["model_id"])).unwrap_or_else(|e| panic!("{name}: {e}"));
		assert_eq!(file.encode(), bytes, "{name}: file re-encodes identically");
		validate_lm(&file.header, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
		let u32s = |v: &serde_json::Value| -> Vec<u32> {
			v.as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect()
		};
		let job = LmJob {
			prompt: u32s(&c["prompt"]),
			params: SamplingParams {
				temperature_q16: c["temperature_q16"].as_u64().unwrap() as u32,
				top_k: c["top_k"].as_u64().unwrap() as u32,
				top_p_q16: c["top_p_q16"].as_u64().unwrap() as u32,
				seed: hex32(&c["seed"]),
			},
			max_new_tokens: c["max_new_tokens"].as_u64().unwrap() as u32,
		};
		let trace = generate(&file.header, &file.chunks, &job).unwrap();
		assert_eq!(trace.tokens, u32s(&c["tokens"]), "{name}: tokens");
		let hashes = trace.step_hashes();
		let expected: Vec<Vec<[u8; 32]>> = c["step_hashes"]
			.as_array()
			.unwrap()
			.iter()
			.map(|p| p.as_array().unwrap().iter().map(hex32).collect())
			.collect();
		assert_eq!(hashes, expected, "{name}: step hashes");
		let roots = trace.position_roots();
		let expected: Vec<[u8; 32]> =
			c["position_roots"].as_array().unwrap().iter().map(hex32).collect();
		assert_eq!(roots, expected, "{name}: position roots");
		assert_eq!(job_root(&roots), hex32(&c["job_root"]), "{name}: job root");
		let trees = ProverTrees::new(&file.chunks, &hashes);
		for (t, leaves) in hashes.iter().enumerate() {
			for i in 0..leaves.len() as u32 {
				let proof = build_step_proof(
					&file.header,
					&file.chunks,
					&job,
					&trace,
					&hashes,
					&trees,
					t as u32,
					i,
				)
				.unwrap();
				assert_eq!(
					check_step_proof(&file.header, &job, &roots, &proof),
					Ok(Verdict::NoFraud)
				);
			}
		}
	}
}

/// The golden generator (`examples/golden.rs`) reproduces the committed files byte for byte.
#[test]
fn generator_reproduces_committed_files() {
	let dir = common::testdata_dir();
	for (name, bytes) in common::generate() {
		let committed = std::fs::read(dir.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
		assert!(committed == bytes, "{name} differs: run `cargo run -p verity-primitives --example golden --features testing -- write`");
	}
}
