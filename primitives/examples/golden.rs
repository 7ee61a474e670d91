//! Writes or checks the golden vectors in `primitives/testdata/`.
//!
//! `cargo run -p verity-primitives --example golden --features testing -- write` regenerates
//! them; `... -- check` (the default) exits with status 1 if a file differs;
//! `... -- random DIR COUNT [FIRST_SEED]` writes `COUNT` random valid models (from
//! `testing::random_case` with `testing::test_limits()`) in the same format into `DIR`, for
//! cross-checking other implementations; `... -- random-lm DIR COUNT [FIRST_SEED]` writes
//! `COUNT` random tiny transformers (`testing::lm::random_lm_case`) as `NAME.vlm` files and one
//! `lm_golden.json`, in the format of the transformer golden vectors.

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
	let mode = std::env::args().nth(1).unwrap_or_else(|| "check".to_string());
	let dir = common::testdata_dir();
	let files = common::generate();
	match mode.as_str() {
		"write" => {
			std::fs::create_dir_all(&dir).expect("create testdata");
			for (name, bytes) in &files {
				std::fs::write(dir.join(name), bytes).expect("write");
				println!("wrote {} ({} bytes)", dir.join(name).display(), bytes.len());
			}
		},
		"check" => {
			let mut ok = true;
			for (name, bytes) in &files {
				if std::fs::read(dir.join(name)).ok().as_deref() != Some(bytes.as_slice()) {
					eprintln!("differs: {name}");
					ok = false;
				}
			}
			if !ok {
				std::process::exit(1);
			}
			println!("all {} golden files reproduce", files.len());
		},
		"random" => {
			let out = std::path::PathBuf::from(std::env::args().nth(2).expect("DIR"));
			let count: u64 = std::env::args().nth(3).and_then(|c| c.parse().ok()).expect("COUNT");
			let first: u64 = std::env::args().nth(4).and_then(|c| c.parse().ok()).unwrap_or(0);
			let limits = verity_primitives::testing::test_limits();
			let cases = (first..first + count)
				.map(|seed| {
					(format!("seed_{seed}"), verity_primitives::testing::random_case(seed, &limits))
				})
				.collect();
			std::fs::create_dir_all(&out).expect("create DIR");
			for (name, bytes) in common::generate_from(cases) {
				std::fs::write(out.join(name), bytes).expect("write");
			}
			println!("wrote {count} random cases to {}", out.display());
		},
		"random-lm" => {
			let out = std::path::PathBuf::from(std::env::args().nth(2).expect("DIR"));
			let count: u64 = std::env::args().nth(3).and_then(|c| c.parse().ok()).expect("COUNT");
			let first: u64 = std::env::args().nth(4).and_then(|c| c.parse().ok()).unwrap_or(0);
			let cases = (first..first + count)
				.map(|seed| {
					(
						format!("lm_seed_{seed}"),
						verity_primitives::testing::lm::random_lm_case(seed),
					)
				})
				.collect();
			std::fs::create_dir_all(&out).expect("create DIR");
			for (name, bytes) in common::generate_lm_from(cases) {
				std::fs::write(out.join(name), bytes).expect("write");
			}
			println!("wrote {count} random transformers (seeds {first}..) to {}", out.display());
		},
		other => {
			eprintln!("usage: golden [write|check|random DIR COUNT [FIRST_SEED]|random-lm DIR COUNT [FIRST_SEED]] (got {other})");
			std::process::exit(2);
		},
	}
}
