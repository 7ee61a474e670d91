//! `verity-worker import` on the two language models `make models` installs (PyPI wheels,
//! hash-pinned, in `~/.cache/verity/models` or `$VERITY_MODELS`): the same file gives the same
//! model id every time, the imported small model generates what the original float model
//! generates, and damaged inputs are refused. `make test` installs the models first and requires
//! them; a plain `cargo test` skips these tests, with a message, where they are not installed.

use std::path::{Path, PathBuf};

use verity_primitives::lm::{
	file::LmFile,
	interp::{generate, LmJob},
	sample::SamplingParams,
};
use verity_worker::import::{import, sha256_hex, ImportError};

/// The pinned sha256 of SmolLM2-135M-Instruct's Q4_1 GGUF (scripts/install-models.sh).
const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// The pinned sha256 of glassllm's `en.npz`.
const GLASSLLM_SHA256: &str = "261ae219ab98caa1f3641e23deb3d9d91b7b7a276f991cbd494f67cfa5abce4d";

fn models() -> Option<PathBuf> {
	let dir = std::env::var_os("VERITY_MODELS")
		.map(PathBuf::from)
		.or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/verity/models")))?;
	if dir.join("glassllm-en.npz").exists() {
		Some(dir)
	} else {
		eprintln!("skipped: the language models are not installed (make models)");
		None
	}
}

fn tmp(name: &str) -> PathBuf {
	let dir = std::env::temp_dir().join(format!("verity-import-{}", std::process::id()));
	std::fs::create_dir_all(&dir).unwrap();
	dir.join(name)
}

#[test]
fn the_small_model_imports_deterministically_and_generates_like_the_float_model() {
	let Some(dir) = models() else { return };
	let npz = dir.join("glassllm-en.npz");
	let a = import(&npz, None, None, None).expect("glassllm imports");
	let b = import(&npz, None, None, None).expect("again");
	assert_eq!(a.file.encode(), b.file.encode(), "the same bytes every time");
	let h = &a.file.header;
	assert_eq!((h.dim, h.n_layers, h.n_heads, h.n_kv_heads, h.head_dim), (128, 4, 4, 2, 32));
	assert_eq!((h.ffn_dim, h.vocab, h.max_context), (352, 1024, 128), "FFN padded 341 -> 352");
	assert_eq!(h.eos_tokens, vec![3]);
	println!("glassllm model id {}", hex::encode(a.file.id()));
	// Greedy continuation of "The king said to the" (glassllm's own tokenizer), 20 tokens.
	// The float model (glassllm 0.1.0's `GlassLM.generate(..., greedy=True)`, fp32 numpy)
	// continues it with these tokens ("\nGardener's hand, “when I cannot be a little girls").
	let prompt = vec![185, 219, 107, 151, 111, 97];
	let float = [
		4, 33, 387, 105, 222, 395, 11, 125, 78, 693, 129, 390, 878, 145, 94, 274, 135, 197, 67, 74,
	];
	let job = LmJob {
		prompt,
		params: SamplingParams { temperature_q16: 0, top_k: 0, top_p_q16: 65536, seed: [0; 32] },
		max_new_tokens: 20,
	};
	let trace = generate(h, &a.file.chunks, &job).expect("the imported model generates");
	let same = trace.tokens.iter().zip(float).take_while(|(x, y)| **x == *y).count();
	println!("exact tokens {:?}; the first {same} equal the float model's", trace.tokens);
	assert!(same >= 16, "the exact model follows the float model (20 of 20 tokens when written)");
}

#[test]
fn smollm2_imports_with_its_pinned_hash() {
	let Some(dir) = models() else { return };
	let gguf = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
	let m = import(&gguf, None, None, Some(SMOLLM2_SHA256)).expect("SmolLM2 imports");
	let h = &m.file.header;
	assert_eq!((h.dim, h.n_layers, h.n_heads, h.n_kv_heads, h.head_dim), (576, 30, 9, 3, 64));
	assert_eq!(
		(h.ffn_dim, h.vocab, h.max_context, h.eos_tokens.clone()),
		(1536, 49152, 8192, vec![2])
	);
	assert_eq!(h.tokenizer_hash, sp_crypto_hashing::blake2_256(&m.tokenizer));
	assert!(String::from_utf8_lossy(&m.chat_template).contains("<|im_start|>"));
	println!("SmolLM2 model id {}", hex::encode(m.file.id()));
	let again = import(&gguf, None, None, None).expect("again");
	assert_eq!(again.file.id(), m.file.id(), "the same id every time");
}

#[test]
fn damaged_inputs_and_wrong_tokenizers_are_refused() {
	let Some(dir) = models() else { return };
	let npz = std::fs::read(dir.join("glassllm-en.npz")).unwrap();
	let tokenizer = dir.join("glassllm-en.tokenizer.json");
	let glass = import(&dir.join("glassllm-en.npz"), None, None, None).unwrap().file.id();
	// One flipped byte: with the file's pinned hash, refused wherever it is. Without it, inside
	// an array's compressed bytes the zip's checksum refuses it; in the archive's own fields
	// (names, times) it is refused or changes nothing, never gives another model silently.
	for (at, in_data) in [(40, false), (npz.len() / 3, true), (npz.len() / 2, true)] {
		let mut bad = npz.clone();
		bad[at] ^= 0x20;
		let path = tmp("flipped.npz");
		std::fs::write(&path, &bad).unwrap();
		let pinned = import(&path, Some(&tokenizer), None, Some(GLASSLLM_SHA256)).err();
		assert!(matches!(pinned, Some(ImportError::Sha256 { .. })), "byte {at}: {pinned:?}");
		match import(&path, Some(&tokenizer), None, None) {
			Err(e) => println!("flipped npz byte {at}: {e}"),
			Ok(m) => {
				assert!(!in_data, "a flipped byte at {at} inside the data is refused");
				assert_eq!(m.file.id(), glass, "byte {at} outside the arrays changes nothing");
			},
		}
	}
	// Another model's tokenizer (SmolLM2's) for the small model.
	let smol_tok = tmp("smol.tokenizer.json");
	let gguf_path = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
	let gguf = std::fs::read(&gguf_path).unwrap();
	let m = import(&gguf_path, None, None, None).unwrap();
	std::fs::write(&smol_tok, &m.tokenizer).unwrap();
	let err = import(&dir.join("glassllm-en.npz"), Some(&smol_tok), None, None).err();
	assert!(matches!(err, Some(ImportError::Npz(_))), "{err:?}");
	// A GGUF with one flipped byte: in its metadata or tensor table the reader refuses it; in
	// its weights only the pinned hash can tell.
	for at in [6, 200, 1_000_000, gguf.len() / 2] {
		let mut bad = gguf.clone();
		bad[at] ^= 0x01;
		let path = tmp("flipped.gguf");
		std::fs::write(&path, &bad).unwrap();
		let err = import(&path, None, None, Some(SMOLLM2_SHA256)).err();
		assert!(
			matches!(err, Some(ImportError::Sha256 { .. })),
			"byte {at}: {err:?} (sha256 {})",
			sha256_hex(&bad)
		);
		// Without the hash: refused or a different model, never a panic nor the same id.
		match import(&path, None, None, None) {
			Ok(other) => assert_ne!(other.file.id(), m.file.id(), "byte {at}"),
			Err(e) => println!("flipped GGUF byte {at}: {e}"),
		}
	}
	// Decoding what was written gives the model back.
	let vlm = LmFile::decode(&m.file.encode(), u32::MAX).unwrap();
	assert_eq!(vlm.id(), m.file.id());
}

/// The command: writes the model, tokenizer and chat template and prints the id; a wrong
/// `--sha256` exits non-zero with one readable line and writes nothing.
#[test]
fn the_import_command() {
	let Some(dir) = models() else { return };
	let out = tmp("cli-glass");
	let run = std::process::Command::new(env!("CARGO_BIN_EXE_verity-worker"))
		.arg("import")
		.arg(dir.join("glassllm-en.npz"))
		.arg("--out")
		.arg(&out)
		.args(["--sha256", GLASSLLM_SHA256, "--json"])
		.output()
		.unwrap();
	assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
	let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
	let bytes = std::fs::read(out.with_extension("vlm")).unwrap();
	let file = LmFile::decode(&bytes, u32::MAX).unwrap();
	assert_eq!(v["model"], hex::encode(file.id()));
	let tok = std::fs::read(tmp("cli-glass.tokenizer.json")).unwrap();
	assert_eq!(file.header.tokenizer_hash, sp_crypto_hashing::blake2_256(&tok));
	let bad_out = tmp("cli-bad");
	let bad = std::process::Command::new(env!("CARGO_BIN_EXE_verity-worker"))
		.arg("import")
		.arg(dir.join("glassllm-en.npz"))
		.arg("--out")
		.arg(&bad_out)
		.args(["--sha256", SMOLLM2_SHA256])
		.output()
		.unwrap();
	assert_eq!(bad.status.code(), Some(2));
	let err = String::from_utf8_lossy(&bad.stderr);
	assert_eq!(err.lines().count(), 1, "{err}");
	assert!(err.contains("sha256"), "{err}");
	assert!(!bad_out.with_extension("vlm").exists(), "nothing written");
}
