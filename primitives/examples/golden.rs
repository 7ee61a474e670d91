//! Writes or checks the golden vectors in `primitives/testdata/`.
//!
//! `cargo run -p verity-primitives --example golden --features testing -- write` regenerates
//! them; `... -- check` (the default) exits with status 1 if a file differs.

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
		other => {
			eprintln!("usage: golden [write|check] (got {other})");
			std::process::exit(2);
		},
	}
}
