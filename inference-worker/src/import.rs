//! `verity-worker import`: language models into Verity transformer files (`.vlm`,
//! docs/MODEL_FORMAT.md section 12), deterministically (the same input file always gives the
//! same model id, on any machine).
//!
//! * **GGUF** (Llama family: `general.architecture = llama`), read with the `gguf-rs-lib` crate
//!   (safe code, every tensor range checked against the file). Matrices in Q8_0, Q4_0 or Q4_1
//!   are copied unchanged (their rows, Q/K permutation included, are what section 12 reads);
//!   norm weights (F32) become Q16 (`round(g * 2^16)`); the rotary frequencies
//!   `round(base^(-2i/hd) * 2^32)` are computed with the `libm` crate (software `pow`, the
//!   same bits everywhere). The tokenizer is written as a `tokenizer.json` (Hugging Face
//!   format: byte-level BPE from `tokenizer.ggml.tokens`/`merges`, the pre-tokenizer named by
//!   `tokenizer.ggml.pre`), the chat template is `tokenizer.chat_template`'s bytes; both hashes
//!   are in the header, so in the model id.
//! * **glassllm npz** (PyPI `glassllm`: fp16 arrays `E`, `blocks.i.{norm1,norm2}.gamma`,
//!   `blocks.i.attn.W_{Q,K,V,O}` as `[in][out]`, `blocks.i.ffn.W{1,3,2}` (gate, up, down),
//!   `norm_f.gamma`, and its `__config__`), read with `zip` (deflate) and `npyz`. Matrices are
//!   transposed to `[out][in]` and quantized to Q8_0 with llama.cpp's reference rule
//!   (`d = amax / 127` in f32, `q = round(x / d)`, `d` stored as fp16); the FFN width 341 is
//!   padded with zero rows and columns to 352 (a multiple of 32), which changes no output. Its
//!   tokenizer (`en.tokenizer.json`, glassllm's own format) is written as an equivalent
//!   Hugging Face `tokenizer.json`; it has no chat template (the hash of no bytes).
//!
//! Anything else, or a file that does not parse as one of these, is refused with an
//! [`ImportError`]; `expect_sha256` refuses a file whose bytes are not the expected ones (a
//! flipped byte inside the weights parses, so only the file's hash can catch it).

use std::{collections::BTreeMap, io::Read, path::Path};

use gguf_rs_lib::{
	format::metadata::MetadataValue, reader::file_reader::GGUFFileReader, tensor::TensorType,
};
use verity_primitives::{
	lm::{
		file::LmFile,
		header::{LayerFormats, LmHeader, LM_HEADER_VERSION},
		quant::BlockFormat,
		trace::weights_root,
	},
	Hash,
};

/// Why a file cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
	#[error("cannot read {path}: {error}")]
	Io { path: String, error: String },
	#[error("the file's sha256 is {actual}, not the expected {expected}")]
	Sha256 { expected: String, actual: String },
	#[error("not a GGUF file this importer reads: {0}")]
	Gguf(String),
	#[error("not a glassllm npz archive: {0}")]
	Npz(String),
	#[error("the model has no {0}")]
	Missing(String),
	#[error("{name}: {what}")]
	Tensor { name: String, what: String },
	#[error("not supported: {0}")]
	Unsupported(String),
	#[error("the imported model is not a valid transformer file: {0}")]
	Invalid(String),
}

/// How the imported model is cut into steps (all part of the model id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
	/// Positions of a generation at most (default: the model's own context length).
	pub max_context: Option<u32>,
	/// Positions per attention part.
	pub attn_block: u32,
	/// Rows per chunk of `wo`, `gate`, `up`, `down` (divides the model and FFN widths).
	pub chunk_rows: u32,
	/// Rows per chunk of the embedding matrix and LM head (divides the vocabulary).
	pub vocab_chunk_rows: u32,
}

impl Layout {
	/// SmolLM2-135M's layout: 64-row chunks, 256-row vocabulary chunks, attention parts of 256
	/// positions (what `testing::lm::smollm2_135m_header` measures).
	pub const GGUF_DEFAULT: Layout =
		Layout { max_context: None, attn_block: 256, chunk_rows: 64, vocab_chunk_rows: 256 };
	/// The small model's: 32-row chunks (its widths 128 and 352 share 32), 256-row vocabulary
	/// chunks, attention parts of 32 positions (4 parts at its context of 128).
	pub const NPZ_DEFAULT: Layout =
		Layout { max_context: None, attn_block: 32, chunk_rows: 32, vocab_chunk_rows: 256 };
}

/// An imported model with the two files its header commits to.
pub struct Imported {
	pub file: LmFile,
	/// The tokenizer file (`blake2_256` is `tokenizer_hash`).
	pub tokenizer: Vec<u8>,
	/// The chat template (`blake2_256` is `chat_template_hash`; empty if the model has none).
	pub chat_template: Vec<u8>,
	/// The model's name from its metadata.
	pub name: String,
}

/// The paths `import` writes for the output stem `out`: `out.vlm`, `out.tokenizer.json`,
/// `out.chat-template`.
pub fn output_paths(out: &Path) -> [std::path::PathBuf; 3] {
	let with = |ext: &str| {
		let mut p = out.as_os_str().to_owned();
		p.push(ext);
		std::path::PathBuf::from(p)
	};
	[with(".vlm"), with(".tokenizer.json"), with(".chat-template")]
}

impl Imported {
	/// Write the model file, its tokenizer and chat template beside it ([`output_paths`]);
	/// returns the model file's path and its bytes' length.
	pub fn write(&self, out: &Path) -> Result<(std::path::PathBuf, usize), ImportError> {
		let paths = output_paths(out);
		let bytes = self.file.encode();
		for (path, data) in paths.iter().zip([&bytes, &self.tokenizer, &self.chat_template]) {
			std::fs::write(path, data).map_err(|e| ImportError::Io {
				path: path.display().to_string(),
				error: e.to_string(),
			})?;
		}
		let [model, ..] = paths;
		Ok((model, bytes.len()))
	}
}

/// A matrix `[rows][cols]` in a block format, row-major.
struct Matrix {
	format: BlockFormat,
	rows: u32,
	cols: u32,
	bytes: Vec<u8>,
}

impl Matrix {
	fn row_bytes(&self) -> usize {
		self.format.row_bytes(self.cols as usize).unwrap_or(0)
	}

	/// Rows `start .. start + n`.
	fn rows(&self, start: u32, n: u32) -> Result<Vec<u8>, ImportError> {
		let (a, b) = (start as usize * self.row_bytes(), (start + n) as usize * self.row_bytes());
		self.bytes.get(a..b).map(<[u8]>::to_vec).ok_or_else(|| ImportError::Invalid("rows".into()))
	}
}

struct Layer {
	attn_norm: Vec<i32>,
	wq: Matrix,
	wk: Matrix,
	wv: Matrix,
	wo: Matrix,
	ffn_norm: Vec<i32>,
	gate: Matrix,
	up: Matrix,
	down: Matrix,
}

/// Everything a transformer file is assembled from.
struct Parts {
	n_heads: u32,
	n_kv_heads: u32,
	head_dim: u32,
	context: u32,
	norm_eps: f64,
	rope_base: f64,
	embedding: Matrix,
	layers: Vec<Layer>,
	output_norm: Vec<i32>,
	eos_tokens: Vec<u32>,
	tokenizer: Vec<u8>,
	chat_template: Vec<u8>,
	name: String,
}

fn norm_q16(g: f32) -> i32 {
	(f64::from(g) * 65536.0).round().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}

fn le_i32(v: &[i32]) -> Vec<u8> {
	v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The chunks in `weights_root` order and the header (section 12.6), checked by decoding the
/// encoded file.
fn assemble(p: Parts, layout: Layout) -> Result<Imported, ImportError> {
	let dim = p.embedding.cols;
	let vocab = p.embedding.rows;
	let ffn_dim = p.layers.first().map_or(0, |l| l.gate.rows);
	let (h, g, hd) = (p.n_heads, p.n_kv_heads, p.head_dim);
	let shape = |name: &str, m: &Matrix, rows: u32, cols: u32| {
		if m.rows != rows || m.cols != cols {
			return Err(ImportError::Tensor {
				name: name.into(),
				what: format!("[{}][{}], expected [{rows}][{cols}]", m.rows, m.cols),
			});
		}
		Ok(())
	};
	for (l, layer) in p.layers.iter().enumerate() {
		let at = |m: &str| format!("layer {l} {m}");
		shape(&at("wq"), &layer.wq, h * hd, dim)?;
		shape(&at("wk"), &layer.wk, g * hd, dim)?;
		shape(&at("wv"), &layer.wv, g * hd, dim)?;
		shape(&at("wo"), &layer.wo, dim, h * hd)?;
		shape(&at("gate"), &layer.gate, ffn_dim, dim)?;
		shape(&at("up"), &layer.up, ffn_dim, dim)?;
		shape(&at("down"), &layer.down, dim, ffn_dim)?;
		if layer.attn_norm.len() != dim as usize || layer.ffn_norm.len() != dim as usize {
			return Err(ImportError::Tensor { name: at("norm"), what: "wrong length".into() });
		}
	}
	if p.output_norm.len() != dim as usize {
		return Err(ImportError::Tensor {
			name: "output norm".into(),
			what: "wrong length".into(),
		});
	}
	let (c, vc) = (layout.chunk_rows, layout.vocab_chunk_rows);
	if c == 0
		|| vc == 0
		|| !dim.is_multiple_of(c)
		|| !ffn_dim.is_multiple_of(c)
		|| !vocab.is_multiple_of(vc)
	{
		return Err(ImportError::Unsupported(format!(
			"chunk rows {c} must divide the widths {dim} and {ffn_dim}, vocabulary chunk rows \
			 {vc} the vocabulary {vocab}"
		)));
	}
	let max_context = layout.max_context.unwrap_or(p.context);
	if max_context == 0 || max_context > p.context {
		return Err(ImportError::Unsupported(format!(
			"a context of {max_context} (the model's is {})",
			p.context
		)));
	}
	let mut chunks = Vec::new();
	for k in 0..vocab / vc {
		chunks.push(p.embedding.rows(k * vc, vc)?);
	}
	for layer in &p.layers {
		chunks.push(le_i32(&layer.attn_norm));
		for i in 0..h {
			chunks.push(layer.wq.rows(i * hd, hd)?);
		}
		for m in [&layer.wk, &layer.wv] {
			for i in 0..g {
				chunks.push(m.rows(i * hd, hd)?);
			}
		}
		for k in 0..dim / c {
			chunks.push(layer.wo.rows(k * c, c)?);
		}
		chunks.push(le_i32(&layer.ffn_norm));
		for m in [&layer.gate, &layer.up] {
			for k in 0..ffn_dim / c {
				chunks.push(m.rows(k * c, c)?);
			}
		}
		for k in 0..dim / c {
			chunks.push(layer.down.rows(k * c, c)?);
		}
	}
	chunks.push(le_i32(&p.output_norm));
	let rope_inv_freq = (0..hd / 2)
		.map(|i| {
			let f = libm::pow(p.rope_base, -2.0 * f64::from(i) / f64::from(hd));
			(f * 4_294_967_296.0).round() as u64
		})
		.collect();
	let formats = |l: &Layer| LayerFormats {
		wq: l.wq.format,
		wk: l.wk.format,
		wv: l.wv.format,
		wo: l.wo.format,
		gate: l.gate.format,
		up: l.up.format,
		down: l.down.format,
	};
	let header = LmHeader {
		version: LM_HEADER_VERSION,
		dim,
		n_layers: verity_primitives::len_u32(p.layers.len()),
		n_heads: h,
		n_kv_heads: g,
		head_dim: hd,
		ffn_dim,
		vocab,
		max_context,
		norm_eps: (p.norm_eps * 4_294_967_296.0).round().max(1.0) as u32,
		attn_scale_q16: (65536.0 / f64::from(hd).sqrt()).round() as u32,
		rope_inv_freq,
		embedding: p.embedding.format,
		layers: p.layers.iter().map(formats).collect(),
		chunk_rows: c,
		vocab_chunk_rows: vc,
		attn_block: layout.attn_block,
		eos_tokens: p.eos_tokens,
		tokenizer_hash: sp_crypto_hashing::blake2_256(&p.tokenizer),
		chat_template_hash: sp_crypto_hashing::blake2_256(&p.chat_template),
		weights_root: weights_root(&chunks),
	};
	let file = LmFile { header, chunks };
	// The file's own rules: the header is structurally valid and the chunks have its lengths.
	let decoded = LmFile::decode(&file.encode(), u32::MAX)
		.map_err(|e| ImportError::Invalid(format!("{e:?}")))?;
	decoded.verify(&file.id()).map_err(|e| ImportError::Invalid(format!("{e:?}")))?;
	Ok(Imported { file, tokenizer: p.tokenizer, chat_template: p.chat_template, name: p.name })
}

fn read_file(path: &Path) -> Result<Vec<u8>, ImportError> {
	std::fs::read(path)
		.map_err(|e| ImportError::Io { path: path.display().to_string(), error: e.to_string() })
}

/// The sha256 of `bytes`, in hex.
/// Where `make models` installed the language models: `$VERITY_MODELS`, else
/// `~/.cache/verity/models`; `None` (with a message on stderr, for tests that skip) if the small
/// model is not there.
pub fn installed_models() -> Option<std::path::PathBuf> {
	let dir = std::env::var_os("VERITY_MODELS")
		.map(std::path::PathBuf::from)
		.or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/verity/models")))?;
	if dir.join("glassllm-en.npz").exists() {
		Some(dir)
	} else {
		eprintln!("skipped: the language models are not installed (make models)");
		None
	}
}

pub fn sha256_hex(bytes: &[u8]) -> String {
	use sha2::Digest;
	hex::encode(sha2::Sha256::digest(bytes))
}

fn check_sha256(bytes: &[u8], expected: Option<&str>) -> Result<(), ImportError> {
	if let Some(expected) = expected {
		let actual = sha256_hex(bytes);
		if !actual.eq_ignore_ascii_case(expected) {
			return Err(ImportError::Sha256 { expected: expected.into(), actual });
		}
	}
	Ok(())
}

/// Import `path`: a GGUF file (by its magic) or a glassllm npz archive. For an npz archive the
/// tokenizer is `tokenizer` or, if `None`, the file beside it named `<stem>.tokenizer.json`.
pub fn import(
	path: &Path,
	tokenizer: Option<&Path>,
	layout: Option<Layout>,
	expect_sha256: Option<&str>,
) -> Result<Imported, ImportError> {
	let bytes = read_file(path)?;
	check_sha256(&bytes, expect_sha256)?;
	if bytes.starts_with(b"GGUF") {
		import_gguf(&bytes, layout.unwrap_or(Layout::GGUF_DEFAULT))
	} else if bytes.starts_with(b"PK") {
		let tokenizer = match tokenizer {
			Some(t) => t.to_path_buf(),
			None => {
				let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
				path.with_file_name(format!("{stem}.tokenizer.json"))
			},
		};
		import_npz(&bytes, &read_file(&tokenizer)?, layout.unwrap_or(Layout::NPZ_DEFAULT))
	} else {
		Err(ImportError::Unsupported("a file that is neither GGUF nor an npz archive".into()))
	}
}

// --- GGUF ---

fn gguf_err(e: impl std::fmt::Display) -> ImportError {
	ImportError::Gguf(e.to_string())
}

struct Gguf<'a> {
	reader: GGUFFileReader<std::io::Cursor<&'a [u8]>>,
}

impl Gguf<'_> {
	fn meta(&self, key: &str) -> Result<&MetadataValue, ImportError> {
		self.reader.metadata().get(key).ok_or_else(|| ImportError::Missing(key.into()))
	}

	fn uint(&self, key: &str) -> Result<u32, ImportError> {
		self.meta(key)?
			.as_u64()
			.and_then(|v| u32::try_from(v).ok())
			.ok_or_else(|| ImportError::Gguf(format!("{key} is not a 32-bit count")))
	}

	fn float(&self, key: &str) -> Result<f64, ImportError> {
		self.meta(key)?
			.as_f64()
			.filter(|v| v.is_finite() && *v > 0.0)
			.ok_or_else(|| ImportError::Gguf(format!("{key} is not a positive number")))
	}

	fn str(&self, key: &str) -> Result<&str, ImportError> {
		self.meta(key)?.as_str().ok_or_else(|| ImportError::Gguf(format!("{key} is not text")))
	}

	fn array(&self, key: &str) -> Result<&[MetadataValue], ImportError> {
		match self.meta(key)? {
			MetadataValue::Array(a) => Ok(&a.values),
			_ => Err(ImportError::Gguf(format!("{key} is not an array"))),
		}
	}

	/// A tensor's type, shape (GGML order: the row length first) and bytes.
	fn tensor(&mut self, name: &str) -> Result<(TensorType, Vec<u64>, Vec<u8>), ImportError> {
		let info =
			self.reader.get_tensor_info(name).ok_or_else(|| ImportError::Missing(name.into()))?;
		let (ty, dims) = (info.tensor_type(), info.shape().dims().to_vec());
		let data = self
			.reader
			.load_tensor_data(name)
			.map_err(|e| ImportError::Tensor { name: name.into(), what: e.to_string() })?
			.ok_or_else(|| ImportError::Missing(name.into()))?;
		Ok((ty, dims, data.as_slice().to_vec()))
	}

	fn matrix(&mut self, name: &str) -> Result<Matrix, ImportError> {
		let (ty, dims, bytes) = self.tensor(name)?;
		let format = match ty {
			TensorType::Q8_0 => BlockFormat::Q8_0,
			TensorType::Q4_0 => BlockFormat::Q4_0,
			TensorType::Q4_1 => BlockFormat::Q4_1,
			other => {
				return Err(ImportError::Tensor {
					name: name.into(),
					what: format!("type {other:?} (Q8_0, Q4_0 or Q4_1 are read)"),
				})
			},
		};
		let [cols, rows] = dims[..] else {
			return Err(ImportError::Tensor { name: name.into(), what: format!("shape {dims:?}") });
		};
		let (rows, cols) = (u32::try_from(rows), u32::try_from(cols));
		let (Ok(rows), Ok(cols)) = (rows, cols) else {
			return Err(ImportError::Tensor { name: name.into(), what: "too large".into() });
		};
		let m = Matrix { format, rows, cols, bytes };
		if cols % 32 != 0 || m.bytes.len() != rows as usize * m.row_bytes() {
			return Err(ImportError::Tensor { name: name.into(), what: "wrong size".into() });
		}
		Ok(m)
	}

	fn norm(&mut self, name: &str, dim: u32) -> Result<Vec<i32>, ImportError> {
		let (ty, dims, bytes) = self.tensor(name)?;
		if ty != TensorType::F32 || dims != [u64::from(dim)] || bytes.len() != dim as usize * 4 {
			return Err(ImportError::Tensor {
				name: name.into(),
				what: format!("{ty:?} {dims:?}, expected F32 [{dim}]"),
			});
		}
		Ok(bytes
			.chunks_exact(4)
			.map(|b| norm_q16(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
			.collect())
	}
}

/// The `tokenizer.json` (Hugging Face format) of a GGUF's byte-level BPE tokenizer.
fn gguf_tokenizer(g: &Gguf) -> Result<Vec<u8>, ImportError> {
	let model = g.str("tokenizer.ggml.model")?;
	if model != "gpt2" {
		return Err(ImportError::Unsupported(format!(
			"tokenizer model {model} (gpt2 BPE is read)"
		)));
	}
	let pre = g.str("tokenizer.ggml.pre").unwrap_or("default");
	let byte_level = serde_json::json!({
		"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true
	});
	let pre_tokenizer = match pre {
		// SmolLM2's: every digit its own piece, then GPT-2's byte-level split.
		"smollm" => serde_json::json!({"type": "Sequence", "pretokenizers": [
			{"type": "Digits", "individual_digits": true}, byte_level]}),
		"gpt2" | "default" => byte_level,
		other => return Err(ImportError::Unsupported(format!("pre-tokenizer {other}"))),
	};
	let text = |v: &MetadataValue| {
		v.as_str().map(str::to_owned).ok_or_else(|| ImportError::Gguf("a token is not text".into()))
	};
	let tokens =
		g.array("tokenizer.ggml.tokens")?.iter().map(text).collect::<Result<Vec<_>, _>>()?;
	let merges =
		g.array("tokenizer.ggml.merges")?.iter().map(text).collect::<Result<Vec<_>, _>>()?;
	let types: Vec<i64> = match g.array("tokenizer.ggml.token_type") {
		Ok(t) => t.iter().map(|v| v.as_i64().unwrap_or(1)).collect(),
		Err(_) => vec![1; tokens.len()],
	};
	let mut vocab = serde_json::Map::new();
	let mut added = Vec::new();
	for (id, token) in tokens.iter().enumerate() {
		if vocab.insert(token.clone(), id.into()).is_some() {
			return Err(ImportError::Gguf(format!("token {token:?} appears twice")));
		}
		// Type 3: control tokens (<|im_start|>, <|endoftext|>, ...), matched whole.
		if types.get(id) == Some(&3) {
			added.push(serde_json::json!({"id": id, "content": token, "single_word": false,
				"lstrip": false, "rstrip": false, "normalized": false, "special": true}));
		}
	}
	let json = serde_json::json!({
		"version": "1.0",
		"truncation": null,
		"padding": null,
		"added_tokens": added,
		"normalizer": null,
		"pre_tokenizer": pre_tokenizer,
		"post_processor": null,
		"decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
			"use_regex": true},
		"model": {"type": "BPE", "dropout": null, "unk_token": null,
			"continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
			"byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": merges},
	});
	serde_json::to_vec(&json).map_err(|e| ImportError::Invalid(e.to_string()))
}

fn import_gguf(bytes: &[u8], layout: Layout) -> Result<Imported, ImportError> {
	let reader = GGUFFileReader::new(std::io::Cursor::new(bytes)).map_err(gguf_err)?;
	let mut g = Gguf { reader };
	let arch = g.str("general.architecture")?;
	if arch != "llama" {
		return Err(ImportError::Unsupported(format!("architecture {arch} (llama is read)")));
	}
	let dim = g.uint("llama.embedding_length")?;
	let n_layers = g.uint("llama.block_count")?;
	let n_heads = g.uint("llama.attention.head_count")?;
	let n_kv_heads = g.uint("llama.attention.head_count_kv").unwrap_or(n_heads);
	if n_heads == 0 || dim % n_heads != 0 {
		return Err(ImportError::Gguf(format!("{n_heads} heads for a width of {dim}")));
	}
	let head_dim = match g.uint("llama.rope.dimension_count") {
		Ok(d) if d != dim / n_heads => {
			return Err(ImportError::Unsupported(format!("partial rotary dimensions ({d})")))
		},
		_ => dim / n_heads,
	};
	let context = g.uint("llama.context_length")?;
	let norm_eps = g.float("llama.attention.layer_norm_rms_epsilon")?;
	let rope_base = g.float("llama.rope.freq_base").unwrap_or(10_000.0);
	if g.meta("llama.rope.scaling.type").is_ok() {
		return Err(ImportError::Unsupported("rope scaling".into()));
	}
	let eos = g.uint("tokenizer.ggml.eos_token_id")?;
	let name = g.str("general.name").unwrap_or("").to_owned();
	let tokenizer = gguf_tokenizer(&g)?;
	let chat_template = g.str("tokenizer.chat_template").unwrap_or("").as_bytes().to_vec();
	if g.reader.get_tensor_info("output.weight").is_some() {
		return Err(ImportError::Unsupported("an output matrix apart from the embedding".into()));
	}
	let embedding = g.matrix("token_embd.weight")?;
	let mut layers = Vec::new();
	for l in 0..n_layers {
		let t = |s: &str| format!("blk.{l}.{s}.weight");
		layers.push(Layer {
			attn_norm: g.norm(&t("attn_norm"), dim)?,
			wq: g.matrix(&t("attn_q"))?,
			wk: g.matrix(&t("attn_k"))?,
			wv: g.matrix(&t("attn_v"))?,
			wo: g.matrix(&t("attn_output"))?,
			ffn_norm: g.norm(&t("ffn_norm"), dim)?,
			gate: g.matrix(&t("ffn_gate"))?,
			up: g.matrix(&t("ffn_up"))?,
			down: g.matrix(&t("ffn_down"))?,
		});
	}
	let output_norm = g.norm("output_norm.weight", dim)?;
	let parts = Parts {
		n_heads,
		n_kv_heads,
		head_dim,
		context,
		norm_eps,
		rope_base,
		embedding,
		layers,
		output_norm,
		eos_tokens: vec![eos],
		tokenizer,
		chat_template,
		name,
	};
	assemble(parts, layout)
}

// --- glassllm npz ---

/// The FFN width is padded to this multiple (the block size).
const PAD: usize = 32;

/// An array of the archive: shape and values (fp16 widened to f32, exactly).
struct Array {
	shape: Vec<usize>,
	values: Vec<f32>,
}

fn read_npz(bytes: &[u8]) -> Result<(BTreeMap<String, Array>, String), ImportError> {
	let npz = |e: &dyn std::fmt::Display| ImportError::Npz(e.to_string());
	let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| npz(&e))?;
	let mut arrays = BTreeMap::new();
	let mut config = None;
	for i in 0..zip.len() {
		let mut entry = zip.by_index(i).map_err(|e| npz(&e))?;
		let name = entry.name().strip_suffix(".npy").unwrap_or(entry.name()).to_owned();
		// Bounded: at most the declared size, which the zip checks against its CRC.
		let mut data = Vec::new();
		entry.read_to_end(&mut data).map_err(|e| npz(&e))?;
		let npy = npyz::NpyFile::new(&data[..]).map_err(|e| npz(&e))?;
		if name == "__config__" {
			let text = npy.into_vec::<String>().map_err(|e| npz(&e))?;
			config = text.into_iter().next();
			continue;
		}
		if npy.order() != npyz::Order::C {
			return Err(ImportError::Tensor { name, what: "Fortran order".into() });
		}
		let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
		let values = npy.into_vec::<half::f16>().map_err(|e| ImportError::Tensor {
			name: name.clone(),
			what: format!("not fp16: {e}"),
		})?;
		arrays.insert(name, Array { shape, values: values.iter().map(|v| v.to_f32()).collect() });
	}
	Ok((arrays, config.ok_or_else(|| ImportError::Missing("__config__".into()))?))
}

/// llama.cpp's reference Q8_0 (`quantize_row_q8_0_ref`): per 32 values, `d = amax / 127`,
/// `q = round(x / d)` (computed as `x * (1 / d)` in f32), `d` stored as fp16.
fn q8_0_row(row: &[f32]) -> Vec<u8> {
	let mut out = Vec::with_capacity(row.len() / 32 * 34);
	for block in row.chunks(32) {
		let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
		let d = amax / 127.0;
		let id = if d != 0.0 { 1.0 / d } else { 0.0 };
		out.extend_from_slice(&half::f16::from_f32(d).to_bits().to_le_bytes());
		out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
	}
	out
}

/// A `[in][out]` array as a Q8_0 matrix `[out][in]`, both padded with zeros to `rows`×`cols`.
fn transposed(a: &Array, name: &str, rows: usize, cols: usize) -> Result<Matrix, ImportError> {
	let [inputs, outputs] = a.shape[..] else {
		return Err(ImportError::Tensor {
			name: name.into(),
			what: format!("shape {:?}", a.shape),
		});
	};
	if inputs > cols || outputs > rows {
		return Err(ImportError::Tensor {
			name: name.into(),
			what: format!("[{inputs}][{outputs}] larger than [{cols}][{rows}]"),
		});
	}
	let mut bytes = Vec::new();
	for r in 0..rows {
		let row: Vec<f32> = (0..cols)
			.map(|c| if r < outputs && c < inputs { a.values[c * outputs + r] } else { 0.0 })
			.collect();
		bytes.extend(q8_0_row(&row));
	}
	Ok(Matrix { format: BlockFormat::Q8_0, rows: rows as u32, cols: cols as u32, bytes })
}

/// glassllm's tokenizer (`{"alphabet": [...], "merges": [[a, b], ...]}`: ids `<pad> <unk> <bos>
/// <eos>`, then the alphabet, then each merge's result) as a Hugging Face `tokenizer.json`
/// that tokenizes the same way: NFC, spaces as `▁`, chunks `\n|▁*[^▁\n]+|▁+` that merges do
/// not cross, merges by rank, `<unk>` for a character outside the alphabet; decoding drops the
/// other special tokens, writes `<unk>` as `⁇` and `▁` as a space.
fn glassllm_tokenizer(original: &[u8], vocab_size: usize) -> Result<Vec<u8>, ImportError> {
	let bad = |what: &str| ImportError::Npz(format!("tokenizer: {what}"));
	let tok: serde_json::Value =
		serde_json::from_slice(original).map_err(|e| bad(&e.to_string()))?;
	let strings = |v: &serde_json::Value| -> Option<Vec<String>> {
		v.as_array()?.iter().map(|s| s.as_str().map(str::to_owned)).collect()
	};
	let alphabet = tok.get("alphabet").and_then(strings).ok_or_else(|| bad("no alphabet"))?;
	let merges: Vec<Vec<String>> = tok
		.get("merges")
		.and_then(serde_json::Value::as_array)
		.and_then(|m| m.iter().map(strings).collect())
		.ok_or_else(|| bad("no merges"))?;
	let specials = ["<pad>", "<unk>", "<bos>", "<eos>"];
	let mut tokens: Vec<String> = specials.iter().map(|s| s.to_string()).collect();
	tokens.extend(alphabet);
	let mut pairs = Vec::new();
	for m in &merges {
		let [a, b] = &m[..] else { return Err(bad("a merge is not a pair")) };
		tokens.push(format!("{a}{b}"));
		pairs.push(serde_json::json!([a, b]));
	}
	if tokens.len() != vocab_size {
		return Err(ImportError::Npz(format!(
			"the tokenizer has {} tokens, the model {vocab_size}: not this model's tokenizer",
			tokens.len()
		)));
	}
	let mut map = serde_json::Map::new();
	for (id, t) in tokens.iter().enumerate() {
		if map.insert(t.clone(), id.into()).is_some() {
			return Err(bad(&format!("token {t:?} appears twice")));
		}
	}
	let added: Vec<_> = specials
		.iter()
		.enumerate()
		.filter(|(_, s)| **s != "<unk>")
		.map(|(id, s)| {
			serde_json::json!({"id": id, "content": s, "single_word": false, "lstrip": false,
				"rstrip": false, "normalized": false, "special": true})
		})
		.collect();
	let json = serde_json::json!({
		"version": "1.0",
		"truncation": null,
		"padding": null,
		"added_tokens": added,
		"normalizer": {"type": "Sequence", "normalizers": [
			{"type": "NFC"},
			{"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}]},
		"pre_tokenizer": {"type": "Split",
			"pattern": {"Regex": "\n|\u{2581}*[^\u{2581}\n]+|\u{2581}+"},
			"behavior": "Isolated", "invert": false},
		"post_processor": null,
		"decoder": {"type": "Sequence", "decoders": [
			{"type": "Replace", "pattern": {"String": "<unk>"}, "content": "\u{2047}"},
			{"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
			{"type": "Fuse"}]},
		"model": {"type": "BPE", "dropout": null, "unk_token": "<unk>",
			"continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
			"byte_fallback": false, "ignore_merges": false, "vocab": map, "merges": pairs},
	});
	serde_json::to_vec(&json).map_err(|e| ImportError::Invalid(e.to_string()))
}

fn import_npz(bytes: &[u8], tokenizer: &[u8], layout: Layout) -> Result<Imported, ImportError> {
	let (arrays, config) = read_npz(bytes)?;
	let config: serde_json::Value =
		serde_json::from_str(&config).map_err(|e| ImportError::Npz(format!("config: {e}")))?;
	let int = |k: &str| {
		config
			.get(k)
			.and_then(serde_json::Value::as_u64)
			.and_then(|v| u32::try_from(v).ok())
			.ok_or_else(|| ImportError::Npz(format!("config has no count {k}")))
	};
	let float = |k: &str| {
		config
			.get(k)
			.and_then(serde_json::Value::as_f64)
			.filter(|v| v.is_finite() && *v > 0.0)
			.ok_or_else(|| ImportError::Npz(format!("config has no positive {k}")))
	};
	let (dim, n_layers, n_heads) = (int("d_model")?, int("n_layers")?, int("n_heads")?);
	let n_kv_heads = int("n_kv_heads")?;
	if n_heads == 0 || dim % n_heads != 0 {
		return Err(ImportError::Npz(format!("{n_heads} heads for a width of {dim}")));
	}
	let head_dim = dim / n_heads;
	let get = |name: &str| arrays.get(name).ok_or_else(|| ImportError::Missing(name.into()));
	let e = get("E")?;
	let [vocab, width] = e.shape[..] else {
		return Err(ImportError::Tensor { name: "E".into(), what: format!("shape {:?}", e.shape) });
	};
	if width != dim as usize || e.values.len() != vocab * width {
		return Err(ImportError::Tensor { name: "E".into(), what: "wrong size".into() });
	}
	// The embedding is `[vocab][dim]` already (rows are tokens).
	let embedding = Matrix {
		format: BlockFormat::Q8_0,
		rows: vocab as u32,
		cols: dim,
		bytes: e.values.chunks(width).flat_map(q8_0_row).collect(),
	};
	let ffn = get("blocks.0.ffn.W1")?.shape.get(1).copied().unwrap_or(0);
	let ffn_padded = ffn.div_ceil(PAD) * PAD;
	let norm = |name: &str| -> Result<Vec<i32>, ImportError> {
		let a = get(name)?;
		if a.shape != [dim as usize] {
			return Err(ImportError::Tensor { name: name.into(), what: format!("{:?}", a.shape) });
		}
		Ok(a.values.iter().copied().map(norm_q16).collect())
	};
	let (d, hd) = (dim as usize, head_dim as usize);
	let mut layers = Vec::new();
	for l in 0..n_layers {
		let t = |s: &str| format!("blocks.{l}.{s}");
		let m = |s: &str, rows: usize, cols: usize| transposed(get(&t(s))?, &t(s), rows, cols);
		layers.push(Layer {
			attn_norm: norm(&t("norm1.gamma"))?,
			wq: m("attn.W_Q", n_heads as usize * hd, d)?,
			wk: m("attn.W_K", n_kv_heads as usize * hd, d)?,
			wv: m("attn.W_V", n_kv_heads as usize * hd, d)?,
			wo: m("attn.W_O", d, n_heads as usize * hd)?,
			ffn_norm: norm(&t("norm2.gamma"))?,
			gate: m("ffn.W1", ffn_padded, d)?,
			up: m("ffn.W3", ffn_padded, d)?,
			down: m("ffn.W2", d, ffn_padded)?,
		});
	}
	let tokenizer = glassllm_tokenizer(tokenizer, vocab)?;
	let parts = Parts {
		n_heads,
		n_kv_heads,
		head_dim,
		context: int("max_len")?,
		norm_eps: float("eps")?,
		rope_base: float("rope_base")?,
		embedding,
		layers,
		output_norm: norm("norm_f.gamma")?,
		eos_tokens: vec![3],
		tokenizer,
		chat_template: Vec::new(),
		name: "glassllm".into(),
	};
	assemble(parts, layout)
}

/// The model id of an import, in hex.
pub fn id_hex(id: &Hash) -> String {
	hex::encode(id)
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn q8_0_follows_the_reference_rule() {
		let row: Vec<f32> = (0..32).map(|i| i as f32 - 10.0).collect();
		let q = q8_0_row(&row);
		assert_eq!(q.len(), 34);
		let d = half::f16::from_bits(u16::from_le_bytes([q[0], q[1]])).to_f32();
		assert!((d - 21.0 / 127.0).abs() < 1e-4);
		assert_eq!(q[2 + 31] as i8, 127, "the largest magnitude maps to 127");
		assert_eq!(q[2] as i8, (-10.0f32 * (127.0 / 21.0)).round() as i8);
		assert_eq!(q8_0_row(&[0.0; 32])[2..], [0u8; 32], "an all-zero block");
	}

	#[test]
	fn norms_round_to_q16() {
		assert_eq!(norm_q16(1.0), 65536);
		assert_eq!(norm_q16(-0.5), -32768);
		assert_eq!(norm_q16(1e9), i32::MAX);
	}
}
