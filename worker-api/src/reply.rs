//! The result of each method, and the JSON-RPC error object. Field order is the order on the
//! wire.

use crate::{hex, Hash, Request};
use alloc::{string::String, vec::Vec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Time spent on a job, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
	/// Waiting in the queue.
	pub queue_ms: f64,
	/// Executing the batch that contained the job (tensor ops, copies; without hashing).
	pub exec_ms: f64,
	/// Hashing the batch's traces.
	pub hash_ms: f64,
	/// Number of jobs in that batch.
	pub batch_size: usize,
}

/// A finished execution (`execute`, `job`; also `verity-worker run --json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Executed {
	/// The job key (`blake2_256("verity/job/v1" ‖ model ‖ input)`).
	#[serde(with = "hex::hash")]
	pub job: Hash,
	#[serde(with = "hex::hash")]
	pub model: Hash,
	#[serde(with = "hex::bytes")]
	pub output: Vec<u8>,
	/// `[h_0, ..., h_n]`.
	#[serde(with = "hex::hashes")]
	pub step_hashes: Vec<Hash>,
	#[serde(with = "hex::hash")]
	pub trace_root: Hash,
	pub timings: Timings,
	/// The backend that ran it (`tch`, `reference`).
	pub backend: String,
}

/// The answer to `execute` and `job`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ExecuteReply {
	/// Not finished within the wait: repeat the call, or ask `job` with this key.
	Pending {
		#[serde(with = "hex::hash")]
		job: Hash,
	},
	Done(Executed),
}

/// The answer to `prove`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ProveReply {
	/// The honest execution is not finished within the wait: repeat the call.
	Pending {
		#[serde(with = "hex::hash")]
		job: Hash,
	},
	/// The committed step hashes are those of an honest execution.
	Consistent {
		#[serde(with = "hex::hash")]
		trace_root: Hash,
	},
	/// Step `step` (1-based op index) is the first wrong one.
	Fraud {
		step: u32,
		/// The SCALE-encoded `FraudProof { step, input_tensors, weights }`.
		#[serde(with = "hex::bytes")]
		proof: Vec<u8>,
		/// The verdict of `check_fraud_proof` on this proof (`"Fraud"`).
		verdict: String,
	},
}

/// A finished generation (`generate`, `generation`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generated {
	/// The job key (`blake2_256("verity/gen/v1" ‖ model ‖ SCALE(LmJob))`).
	#[serde(with = "hex::hash")]
	pub job: Hash,
	#[serde(with = "hex::hash")]
	pub model: Hash,
	/// The generated token ids.
	pub tokens: Vec<u32>,
	/// One root per position (the chain's 32 bytes per position).
	#[serde(with = "hex::hashes")]
	pub position_roots: Vec<Hash>,
	#[serde(with = "hex::hash")]
	pub job_root: Hash,
	/// Positions run (`prompt length - 1 + tokens`).
	pub positions: u32,
	/// Waiting in the queue, generating (hashing included), and hashing alone.
	pub queue_ms: f64,
	pub generate_ms: f64,
	pub hash_ms: f64,
}

/// The answer to `generate` and `generation`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum GenerateReply {
	/// Not finished within the wait: repeat the call, or ask `generation` with this key.
	Pending {
		#[serde(with = "hex::hash")]
		job: Hash,
	},
	Done(Generated),
}

/// The answer to `tokenize`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokenized {
	/// The prompt's token ids (what a generation job carries).
	pub tokens: Vec<u32>,
	/// The text they encode (a chat message as the template rendered it).
	pub text: String,
}

/// The answer to `detokenize`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detokenized {
	pub text: String,
}

/// The answer to `proveGeneration`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ProveGenerationReply {
	/// The honest generation is not finished within the wait: repeat the call.
	Pending {
		#[serde(with = "hex::hash")]
		job: Hash,
	},
	/// The committed position roots (and tokens) are those of the honest generation.
	Consistent {
		#[serde(with = "hex::hash")]
		job_root: Hash,
	},
	/// Position `position` is the first whose root differs (or the first past the shorter
	/// list): challenge it, and call again with the operator's revealed step hashes of it.
	Differs { position: u32 },
	/// Op `op` of position `position` is the first wrong step.
	Fraud {
		position: u32,
		op: u32,
		/// The SCALE-encoded `LmStepProof`.
		#[serde(with = "hex::bytes")]
		proof: Vec<u8>,
		/// The verdict of `check_step_proof` on this proof (`"Fraud"`).
		verdict: String,
	},
}

/// One served model, as listed by `models`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
	#[serde(with = "hex::hash")]
	pub id: Hash,
	pub num_ops: u32,
	pub input_shape: Vec<u32>,
	pub input_zero_point: i8,
	pub input_len: usize,
	pub output_shape: Vec<u32>,
	pub output_len: usize,
	pub total_macs: u64,
	pub weight_bytes: u64,
}

/// Counters of `health`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
	pub jobs_executed: u64,
	pub batches: u64,
	pub cache_hits: u64,
	pub rejected_queue_full: u64,
}

/// `health`'s status: the worker answers, so it is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
	Ok,
}

/// The answer to `health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
	pub status: HealthStatus,
	pub version: String,
	pub backend: String,
	pub device: String,
	pub models: usize,
	pub queue_len: usize,
	pub queue_capacity: usize,
	pub max_batch: usize,
	pub uptime_s: f64,
	pub stats: Stats,
	/// The injected fault (`verity-worker-faulty` only; absent from honest workers).
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub fault: Option<String>,
}

/// The JSON-RPC error object of a refused call (`code` from [`crate::codes`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorReply {
	pub code: i32,
	pub message: String,
	/// Details (`{"expected", "got"}` of a wrong size, `{"capacity"}` of a full queue).
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub data: Option<Value>,
}

/// The result of a call, typed by its [`Request`].
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
	/// `execute` or `job`.
	Execute(ExecuteReply),
	Prove(ProveReply),
	Models(Vec<ModelEntry>),
	Health(Health),
	/// `generate` or `generation`.
	Generate(GenerateReply),
	/// `generationLeaves`: the step hashes of the position.
	Leaves(Vec<String>),
	ProveGeneration(ProveGenerationReply),
	Tokenized(Tokenized),
	Detokenized(Detokenized),
}

impl Reply {
	/// The result `result` of `request`, typed.
	pub fn of(request: &Request, result: Value) -> Result<Self, serde_json::Error> {
		Ok(match request {
			Request::Execute(_) | Request::Job(_) => {
				Reply::Execute(serde_json::from_value(result)?)
			},
			Request::Prove(_) => Reply::Prove(serde_json::from_value(result)?),
			Request::Models => Reply::Models(serde_json::from_value(result)?),
			Request::Health => Reply::Health(serde_json::from_value(result)?),
			Request::Generate(_) | Request::Generation(_) => {
				Reply::Generate(serde_json::from_value(result)?)
			},
			Request::GenerationLeaves(_) => Reply::Leaves(serde_json::from_value(result)?),
			Request::ProveGeneration(_) => Reply::ProveGeneration(serde_json::from_value(result)?),
			Request::Tokenize(_) => Reply::Tokenized(serde_json::from_value(result)?),
			Request::Detokenize(_) => Reply::Detokenized(serde_json::from_value(result)?),
		})
	}
}
