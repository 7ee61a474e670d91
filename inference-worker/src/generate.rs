//! Text generation with an imported language model (`verity-worker generate`): a `.vlm` file
//! with its tokenizer (`<stem>.tokenizer.json`) and chat template (`<stem>.chat-template`)
//! beside it, as `verity-worker import` writes them. Execution is the exact fast backend
//! ([`crate::lm_fast`], the default) or the reference interpreter of docs/MODEL_FORMAT.md
//! section 12 (`verity_primitives::lm::interp::generate`); both compute and hash every step of
//! every position, give the same step hashes, and the job root commits to all of them.

use std::path::{Path, PathBuf};

use verity_primitives::lm::{
	file::LmFile,
	interp::{generate, LmJob},
	sample::SamplingParams,
	trace::job_root,
};

use crate::{
	lm_fast::{with_threads, FastLm, FastOptions},
	tokenize::TextTokenizer,
};

/// Which implementation runs a generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
	/// The exact fast backend (KV cache, packed integer kernels).
	Fast,
	/// The reference interpreter (the definition; slow).
	Reference,
}

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
	/// A conversation, `(role, content)` in order, rendered the same way.
	Messages(Vec<(String, String)>),
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
	/// The model packed for the fast backend, made on first use.
	fast: std::sync::OnceLock<FastLm>,
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
		Ok(TextModel { file, tokenizer, chat_template, fast: std::sync::OnceLock::new() })
	}

	/// The model packed for the fast backend (packed once, on first use).
	pub fn fast(&self) -> Result<&FastLm, GenerateError> {
		if let Some(f) = self.fast.get() {
			return Ok(f);
		}
		let f = FastLm::new(&self.file.header, &self.file.chunks)
			.map_err(|e| GenerateError::Execution(format!("{e:?}")))?;
		Ok(self.fast.get_or_init(|| f))
	}

	/// The prompt's tokens.
	pub fn prompt_tokens(&self, prompt: &Prompt) -> Result<Vec<u32>, GenerateError> {
		let text = self.prompt_text(prompt)?;
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

	/// The text the prompt's tokens encode: plain text as it is, a chat message rendered with
	/// the model's chat template.
	pub fn prompt_text(&self, prompt: &Prompt) -> Result<String, GenerateError> {
		Ok(match prompt {
			Prompt::Text(t) => t.clone(),
			Prompt::Chat(message) => self.render_chat(&[("user", message)])?,
			Prompt::Messages(messages) => {
				let messages: Vec<(&str, &String)> =
					messages.iter().map(|(role, content)| (role.as_str(), content)).collect();
				self.render_chat(&messages)?
			},
		})
	}

	/// `messages` rendered with the model's chat template, generation prompt added.
	fn render_chat(&self, messages: &[(&str, &String)]) -> Result<String, GenerateError> {
		let template = self.chat_template.as_deref().ok_or(GenerateError::NoChatTemplate)?;
		if messages.is_empty() {
			return Err(GenerateError::Template(
				"a conversation needs at least one message".into(),
			));
		}
		let mut env = minijinja::Environment::new();
		env.add_template("chat", template).map_err(|e| GenerateError::Template(e.to_string()))?;
		let messages: Vec<_> = messages
			.iter()
			.map(|(role, content)| minijinja::context! { role => role, content => content })
			.collect();
		env.get_template("chat")
			.and_then(|t| t.render(minijinja::context! { messages, add_generation_prompt => true }))
			.map_err(|e| GenerateError::Template(e.to_string()))
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
	/// Prompt positions that only fill the cache, and their time; the rest is decoding.
	pub prefill_positions: u32,
	pub prefill_seconds: f64,
	pub seconds: f64,
}

/// How a generation is run: backend, threads (`0`: one per core).
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
	pub backend: Backend,
	pub threads: usize,
}

impl Default for RunOptions {
	fn default() -> Self {
		RunOptions { backend: Backend::Fast, threads: 0 }
	}
}

/// The exact job of a generation request.
pub fn job(
	model: &TextModel,
	prompt: &Prompt,
	max_tokens: u32,
	sampling: &Sampling,
) -> Result<LmJob, GenerateError> {
	if max_tokens == 0 {
		return Err(GenerateError::Parameter("max-tokens must be at least 1".into()));
	}
	Ok(LmJob {
		prompt: model.prompt_tokens(prompt)?,
		params: sampling.params()?,
		max_new_tokens: max_tokens,
	})
}

/// Run a job: its tokens, step hashes and position roots, with either backend.
pub fn run_job(
	model: &TextModel,
	job: &LmJob,
	opts: RunOptions,
) -> Result<crate::lm_fast::FastRun, GenerateError> {
	let exec =
		|e: verity_primitives::lm::interp::LmExecError| GenerateError::Execution(format!("{e:?}"));
	match opts.backend {
		Backend::Fast => {
			let fast = model.fast()?;
			with_threads(opts.threads, || fast_generate(model, fast, job)).map_err(exec)
		},
		Backend::Reference => {
			let started = std::time::Instant::now();
			let trace = generate(&model.file.header, &model.file.chunks, job).map_err(exec)?;
			let step_hashes = trace.step_hashes();
			Ok(crate::lm_fast::FastRun {
				position_roots: step_hashes
					.iter()
					.map(|h| verity_primitives::lm::trace::position_root(h))
					.collect(),
				step_hashes,
				positions: trace.outputs.len() as u32,
				tokens: trace.tokens,
				decode_time: started.elapsed(),
				..Default::default()
			})
		},
	}
}

/// `job` on the fast backend (`fast`: `model` packed), with hashing: what every generation of
/// the worker runs (the CLI's and the service's). In `verity-worker-faulty` (cargo feature
/// `fault-injection`, test builds only) the active fault may make it dishonest.
pub fn fast_generate(
	model: &TextModel,
	fast: &crate::lm_fast::FastLm,
	job: &LmJob,
) -> Result<crate::lm_fast::FastRun, verity_primitives::lm::interp::LmExecError> {
	#[cfg(feature = "fault-injection")]
	return crate::fault::generate(model, fast, job, FastOptions::default());
	#[cfg(not(feature = "fault-injection"))]
	{
		let _ = model;
		fast.generate(job, FastOptions::default())
	}
}

/// Generate up to `max_tokens` tokens.
pub fn run(
	model: &TextModel,
	prompt: &Prompt,
	max_tokens: u32,
	sampling: &Sampling,
	opts: RunOptions,
) -> Result<Generation, GenerateError> {
	let job = job(model, prompt, max_tokens, sampling)?;
	if opts.backend == Backend::Fast {
		model.fast()?; // packing is not part of the generation's time
	}
	let started = std::time::Instant::now();
	let run = run_job(model, &job, opts)?;
	let seconds = started.elapsed().as_secs_f64();
	Ok(Generation {
		text: model.tokenizer.decode(&run.tokens)?,
		prompt: job.prompt,
		tokens: run.tokens,
		job_root: job_root(&run.position_roots),
		positions: run.positions as usize,
		prefill_positions: run.prefill_positions,
		prefill_seconds: run.prefill_time.as_secs_f64(),
		seconds,
	})
}
