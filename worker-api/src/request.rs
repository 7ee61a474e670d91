//! The parameters of each method. A client sends them by position ([`Request::params`]); they
//! deserialize from a JSON array (by position) or object (by name, snake or lower camel case),
//! as the server takes them. `deadline_ms` may be left out: the worker's default wait.

use crate::{hex, method, Hash};
use alloc::{string::String, vec, vec::Vec};
use serde::Deserialize;
use serde_json::Value;

/// A generation job as the worker's generation methods take it: prompt token ids,
/// `max_new_tokens`, and sampling (greedy by default; temperature and top-p in Q16, seed 32
/// bytes hex).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct GenerationJob {
	pub prompt: Vec<u32>,
	#[serde(alias = "maxNewTokens")]
	pub max_new_tokens: u32,
	#[serde(default, alias = "temperatureQ16")]
	pub temperature_q16: u32,
	#[serde(default, alias = "topK")]
	pub top_k: u32,
	#[serde(default = "top_p_off", alias = "topPQ16")]
	pub top_p_q16: u32,
	#[serde(default, with = "hex::hash")]
	pub seed: Hash,
}

fn top_p_off() -> u32 {
	1 << 16
}

/// The revealed step hashes of one position (`proveGeneration`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Reveal {
	pub position: u32,
	#[serde(with = "hex::hashes", alias = "stepHashes")]
	pub step_hashes: Vec<Hash>,
}

/// `execute`: run `input` on `model`; wait at most `deadline_ms` for the result.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Execute {
	#[serde(with = "hex::hash")]
	pub model: Hash,
	#[serde(with = "hex::bytes")]
	pub input: Vec<u8>,
	#[serde(default, alias = "deadlineMs")]
	pub deadline_ms: Option<u64>,
}

/// `job`: the result of job `job` (its key); wait at most `deadline_ms` while it is pending.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Job {
	#[serde(with = "hex::hash")]
	pub job: Hash,
	#[serde(default, alias = "deadlineMs")]
	pub deadline_ms: Option<u64>,
}

/// `prove`: compare the committed `step_hashes` with an honest execution of `input` on `model`;
/// wait at most `deadline_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Prove {
	#[serde(with = "hex::hash")]
	pub model: Hash,
	#[serde(with = "hex::bytes")]
	pub input: Vec<u8>,
	#[serde(with = "hex::hashes", alias = "stepHashes")]
	pub step_hashes: Vec<Hash>,
	#[serde(default, alias = "deadlineMs")]
	pub deadline_ms: Option<u64>,
}

/// `generate`: generate `job` with language model `model`; wait at most `deadline_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Generate {
	#[serde(with = "hex::hash")]
	pub model: Hash,
	pub job: GenerationJob,
	#[serde(default, alias = "deadlineMs")]
	pub deadline_ms: Option<u64>,
}

/// `generation`: the result of generation `job` (its key).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Generation {
	#[serde(with = "hex::hash")]
	pub job: Hash,
	#[serde(default, alias = "deadlineMs")]
	pub deadline_ms: Option<u64>,
}

/// `generationLeaves`: the step hashes of `position` of the finished generation `job`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct GenerationLeaves {
	#[serde(with = "hex::hash")]
	pub job: Hash,
	pub position: u32,
}

/// `proveGeneration`: judge `position_roots` of `job` on `model` (and the revealed step
/// hashes of the first differing position).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ProveGeneration {
	#[serde(with = "hex::hash")]
	pub model: Hash,
	pub job: GenerationJob,
	#[serde(with = "hex::hashes", alias = "positionRoots")]
	pub position_roots: Vec<Hash>,
	#[serde(default)]
	pub reveal: Option<Reveal>,
	#[serde(default, alias = "deadlineMs")]
	pub deadline_ms: Option<u64>,
}

/// The text a `tokenize` call turns into tokens: plain text (`{"text": "..."}`), one user
/// message rendered with the model's own chat template, generation prompt added
/// (`{"chat": "..."}`), or a whole conversation rendered the same way
/// (`{"messages": [{"role": "system", "content": "..."}, {"role": "user", ...}]}`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextPrompt {
	Text(String),
	Chat(String),
	Messages(Vec<ChatMessage>),
}

/// One message of a conversation: `role` is what the model's chat template knows (`system`,
/// `user`, `assistant`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct ChatMessage {
	pub role: String,
	pub content: String,
}

/// `tokenize`: the prompt tokens of `prompt` for the language model `model`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Tokenize {
	#[serde(with = "hex::hash")]
	pub model: Hash,
	pub prompt: TextPrompt,
}

/// `detokenize`: the text of `tokens` (token ids of the language model `model`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Detokenize {
	#[serde(with = "hex::hash")]
	pub model: Hash,
	pub tokens: Vec<u32>,
}

/// One call of the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
	Execute(Execute),
	Job(Job),
	Prove(Prove),
	Models,
	Health,
	Generate(Generate),
	Generation(Generation),
	GenerationLeaves(GenerationLeaves),
	ProveGeneration(ProveGeneration),
	Tokenize(Tokenize),
	Detokenize(Detokenize),
}

fn hex_value(bytes: &[u8]) -> Value {
	Value::String(hex::encode(bytes))
}

/// `params` followed by `deadline_ms` when there is one.
fn with_deadline(mut params: Vec<Value>, deadline_ms: Option<u64>) -> Value {
	params.extend(deadline_ms.map(Value::from));
	Value::Array(params)
}

impl Request {
	/// The method name.
	pub fn method(&self) -> &'static str {
		match self {
			Request::Execute(_) => method::EXECUTE,
			Request::Job(_) => method::JOB,
			Request::Prove(_) => method::PROVE,
			Request::Models => method::MODELS,
			Request::Health => method::HEALTH,
			Request::Generate(_) => method::GENERATE,
			Request::Generation(_) => method::GENERATION,
			Request::GenerationLeaves(_) => method::GENERATION_LEAVES,
			Request::ProveGeneration(_) => method::PROVE_GENERATION,
			Request::Tokenize(_) => method::TOKENIZE,
			Request::Detokenize(_) => method::DETOKENIZE,
		}
	}

	/// The parameters by position (a JSON array).
	pub fn params(&self) -> Value {
		match self {
			Request::Execute(Execute { model, input, deadline_ms }) => {
				with_deadline(vec![hex_value(model), hex_value(input)], *deadline_ms)
			},
			Request::Job(Job { job, deadline_ms }) => {
				with_deadline(vec![hex_value(job)], *deadline_ms)
			},
			Request::Prove(Prove { model, input, step_hashes, deadline_ms }) => {
				let hashes = step_hashes.iter().map(|h| hex_value(h)).collect();
				with_deadline(
					vec![hex_value(model), hex_value(input), Value::Array(hashes)],
					*deadline_ms,
				)
			},
			Request::Models | Request::Health => Value::Array(Vec::new()),
			Request::Generate(Generate { model, job, deadline_ms }) => {
				let job = serde_json::to_value(job).unwrap_or(Value::Null);
				with_deadline(vec![hex_value(model), job], *deadline_ms)
			},
			Request::Generation(Generation { job, deadline_ms }) => {
				with_deadline(vec![hex_value(job)], *deadline_ms)
			},
			Request::GenerationLeaves(GenerationLeaves { job, position }) => {
				Value::Array(vec![hex_value(job), Value::from(*position)])
			},
			Request::ProveGeneration(ProveGeneration {
				model,
				job,
				position_roots,
				reveal,
				deadline_ms,
			}) => {
				let roots = position_roots.iter().map(|h| hex_value(h)).collect();
				let job = serde_json::to_value(job).unwrap_or(Value::Null);
				let reveal = serde_json::to_value(reveal).unwrap_or(Value::Null);
				with_deadline(
					vec![hex_value(model), job, Value::Array(roots), reveal],
					*deadline_ms,
				)
			},
			Request::Tokenize(Tokenize { model, prompt }) => Value::Array(vec![
				hex_value(model),
				serde_json::to_value(prompt).unwrap_or(Value::Null),
			]),
			Request::Detokenize(Detokenize { model, tokens }) => Value::Array(vec![
				hex_value(model),
				Value::Array(tokens.iter().map(|&t| Value::from(t)).collect()),
			]),
		}
	}

	/// The call of `method` with `params` (by position or by name); `None` for an unknown
	/// method.
	pub fn from_params(method: &str, params: Value) -> Option<Result<Self, serde_json::Error>> {
		let parsed = match method {
			method::EXECUTE => serde_json::from_value(params).map(Request::Execute),
			method::JOB => serde_json::from_value(params).map(Request::Job),
			method::PROVE => serde_json::from_value(params).map(Request::Prove),
			method::MODELS => Ok(Request::Models),
			method::HEALTH => Ok(Request::Health),
			method::GENERATE => serde_json::from_value(params).map(Request::Generate),
			method::GENERATION => serde_json::from_value(params).map(Request::Generation),
			method::GENERATION_LEAVES => {
				serde_json::from_value(params).map(Request::GenerationLeaves)
			},
			method::PROVE_GENERATION => {
				serde_json::from_value(params).map(Request::ProveGeneration)
			},
			method::TOKENIZE => serde_json::from_value(params).map(Request::Tokenize),
			method::DETOKENIZE => serde_json::from_value(params).map(Request::Detokenize),
			_ => return None,
		};
		Some(parsed)
	}
}
