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

/// The golden generator (`examples/golden.rs`) reproduces the committed files byte for byte.
#[test]
fn generator_reproduces_committed_files() {
	let dir = common::testdata_dir();
	for (name, bytes) in common::generate() {
		let committed = std::fs::read(dir.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
		assert!(committed == bytes, "{name} differs: run `cargo run -p verity-primitives --example golden --features testing -- write`");
	}
}
