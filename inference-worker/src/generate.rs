//! Text generation with an imported language model (`verity-worker generate`): a `.vlm` file
//! with its tokenizer (`<stem>.tokenizer.json`) and chat template (`<stem>.chat-template`)
//! beside it, as `verity-worker import` writes them. Execution is the reference interpreter of
//! docs/MODEL_FORMAT.md section 12 (`verity_primitives::lm::interp::generate`): every step of
//! every position is computed and hashed, and the job root commits to all of them.

use std::path::{Path, PathBuf};

use verity_primitives::lm::{
	file::LmFile,
	interp::{generate, LmJob},
	sample::SamplingParams,
	trace::job_root,
};

use crate::tokenize::TextTokenizer;

/// Why a generation cannot run.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
	#[error("cannot read {path}: {error}")]
	Io { path: String, error: String },
	#[error("{0} is not a transformer model file: {1}")]
	Model(String, String),
	#[error("{0}")]
	Tokenizer(#[from] crate::tokenize::TokenizerError),
	#[error("this model has no chat template (use a plain prompt)")]
	NoChatTemplate,
	#[error("the chat template does not render: {0}")]
	Template(String),
	#[error("the prompt is empty")]
	EmptyPrompt,
	#[error("the prompt has {tokens} tokens; the model's context is {context}")]
	PromptTooLong { tokens: usize, context: u32 },
	#[error("{0}")]
	Parameter(String),
	#[error("the generation failed: {0}")]
	Execution(String),
}

/// What to generate from.
pub enum Prompt {
	/// Plain text, tokenized as it is.
	Text(String),
	/// One user message, rendered with the model's chat template (generation prompt added).
	Chat(String),
}

/// Sampling as a user gives it: temperature 0 is greedy.
#[derive(Clone, Copy, Debug)]
pub struct Sampling {
	pub temperature: f64,
	pub top_k: u32,
	pub top_p: f64,
	pub seed: u64,
}

impl Sampling {
	/// The exact parameters: temperature and top-p in Q16 (rounded), the seed as the first 8
	/// bytes (little-endian) of the 32-byte job seed, the rest zero.
	pub fn params(&self) -> Result<SamplingParams, GenerateError> {
		let q16 = |v: f64, name: &str, max: f64| {
			if !(0.0..=max).contains(&v) {
				return Err(GenerateError::Parameter(format!("{name} must be in 0..={max}")));
			}
			Ok((v * 65536.0).round() as u32)
		};
		let mut seed = [0u8; 32];
		seed[..8].copy_from_slice(&self.seed.to_le_bytes());
		Ok(SamplingParams {
			temperature_q16: q16(self.temperature, "temperature", 65535.0)?,
			top_k: self.top_k,
			top_p_q16: q16(self.top_p, "top-p", 1.0)?,
			seed,
		})
	}
}

/// A loaded model with its tokenizer and chat template.
pub struct TextModel {
	pub file: LmFile,
	pub tokenizer: TextTokenizer,
	pub chat_template: Option<String>,
}

fn read(path: &Path) -> Result<Vec<u8>, GenerateError> {
	std::fs::read(path)
		.map_err(|e| GenerateError::Io { path: path.display().to_string(), error: e.to_string() })
}

fn beside(model: &Path, ext: &str) -> PathBuf {
	let stem = model.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
	model.with_file_name(format!("{stem}{ext}"))
}

impl TextModel {
	/// Load `path` (a `.vlm`) with the tokenizer and chat template beside it; both must be the
	/// ones the header commits to.
	pub fn load(path: &Path) -> Result<Self, GenerateError> {
		let name = path.display().to_string();
		let file = LmFile::decode(&read(path)?, u32::MAX)
			.map_err(|e| GenerateError::Model(name.clone(), format!("{e:?}")))?;
		file.verify_hashes(&file.id())
			.map_err(|e| GenerateError::Model(name.clone(), format!("{e:?}")))?;
		let tokenizer =
			TextTokenizer::for_model(&file.header, &read(&beside(path, ".tokenizer.json"))?)?;
		let template = read(&beside(path, ".chat-template"))?;
		if sp_crypto_hashing::blake2_256(&template) != file.header.chat_template_hash {
			return Err(GenerateError::Model(
				name,
				"the chat template beside it is not its own".into(),
			));
		}
		let chat_template = (!template.is_empty())
			.then(|| String::from_utf8(template))
			.transpose()
			.map_err(|_| GenerateError::Template("not UTF-8".into()))?;
		Ok(TextModel { file, tokenizer, chat_template })
	}

	/// The prompt's tokens.
	pub fn prompt_tokens(&self, prompt: &Prompt) -> Result<Vec<u32>, GenerateError> {
		let text = match prompt {
			Prompt::Text(t) => t.clone(),
			Prompt::Chat(message) => {
				let template =
					self.chat_template.as_deref().ok_or(GenerateError::NoChatTemplate)?;
				let mut env = minijinja::Environment::new();
				env.add_template("chat", template)
					.map_err(|e| GenerateError::Template(e.to_string()))?;
				let messages = [minijinja::context! { role => "user", content => message }];
				env.get_template("chat")
					.and_then(|t| {
						t.render(minijinja::context! { messages, add_generation_prompt => true })
					})
					.map_err(|e| GenerateError::Template(e.to_string()))?
			},
		};
		let tokens = self.tokenizer.encode(&text)?;
		if tokens.is_empty() {
			return Err(GenerateError::EmptyPrompt);
		}
		let context = self.file.header.max_context;
		if tokens.len() >= context as usize {
			return Err(GenerateError::PromptTooLong { tokens: tokens.len(), context });
		}
		Ok(tokens)
	}
}

/// A finished generation.
pub struct Generation {
	pub prompt: Vec<u32>,
	pub tokens: Vec<u32>,
	pub text: String,
	/// The Merkle root over the position roots (docs/MODEL_FORMAT.md 12.8).
	pub job_root: [u8; 32],
	pub positions: usize,
	pub seconds: f64,
}

/// Generate up to `max_tokens` tokens.
pub fn run(
	model: &TextModel,
	prompt: &Prompt,
	max_tokens: u32,
	sampling: &Sampling,
) -> Result<Generation, GenerateError> {
	if max_tokens == 0 {
		return Err(GenerateError::Parameter("max-tokens must be at least 1".into()));
	}
	let job = LmJob {
		prompt: model.prompt_tokens(prompt)?,
		params: sampling.params()?,
		max_new_tokens: max_tokens,
	};
	let started = std::time::Instant::now();
	let trace = generate(&model.file.header, &model.file.chunks, &job)
		.map_err(|e| GenerateError::Execution(format!("{e:?}")))?;
	let seconds = started.elapsed().as_secs_f64();
	let roots = trace.position_roots();
	Ok(Generation {
		text: model.tokenizer.decode(&trace.tokens)?,
		prompt: job.prompt,
		tokens: trace.tokens,
		job_root: job_root(&roots),
		positions: roots.len(),
		seconds,
	})
}
