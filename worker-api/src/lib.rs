//! # verity-worker-api
//!
//! The inference worker's JSON-RPC 2.0 protocol, defined once for both ends: the worker's server
//! (`verity-worker`'s `rpc.rs`) and CLI, and the agent's client (`pallet-verity-agent`, in the
//! runtime's wasm, hence `no_std` + `alloc`). `inference-worker/README.md` is the reference of
//! every method.
//!
//! * [`method`]: the method names; [`codes`]: the error codes.
//! * [`Request`]: a call's parameters, sent by position (`params` is a JSON array); the server
//!   also takes them by name.
//! * [`ExecuteReply`], [`ProveReply`] (tagged by their `status` field), [`ModelEntry`],
//!   [`Health`]: the results; [`ErrorReply`]: the JSON-RPC error object.
//! * [`batch`]: a JSON-RPC batch of calls (ids = positions) and its answer, as the agent uses it.
//! * [`hex`]: byte strings and hashes are `0x`-prefixed lowercase hex everywhere.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod batch;
pub mod hex;
mod reply;
mod request;

pub use reply::{
	Detokenized, ErrorReply, ExecuteReply, Executed, GenerateReply, Generated, Health,
	HealthStatus, ModelEntry, ProveGenerationReply, ProveReply, Reply, Stats, Timings, Tokenized,
};
pub use request::{
	ChatMessage, Detokenize, Execute, Generate, Generation, GenerationJob, GenerationLeaves, Job,
	Prove, ProveGeneration, Request, Reveal, TextPrompt, Tokenize,
};

/// A 32-byte hash: model id, step hash, trace root, job key.
pub type Hash = [u8; 32];

/// The method names.
pub mod method {
	/// Execute an input on a model: [`crate::Execute`] → [`crate::ExecuteReply`].
	pub const EXECUTE: &str = "execute";
	/// A job's result by key: [`crate::Job`] → [`crate::ExecuteReply`].
	pub const JOB: &str = "job";
	/// Compare committed step hashes with an honest run: [`crate::Prove`] →
	/// [`crate::ProveReply`].
	pub const PROVE: &str = "prove";
	/// The served models: no parameters → a list of [`crate::ModelEntry`].
	pub const MODELS: &str = "models";
	/// Liveness and queue state: no parameters → [`crate::Health`].
	pub const HEALTH: &str = "health";
	/// Generate text with a served language model: model, prompt tokens, `max_new_tokens`,
	/// sampling → [`crate::GenerateReply`].
	pub const GENERATE: &str = "generate";
	/// A generation's result by key → [`crate::GenerateReply`].
	pub const GENERATION: &str = "generation";
	/// The step hashes of one position of a finished generation (what an operator reveals
	/// when that position is challenged) → a list of hashes.
	pub const GENERATION_LEAVES: &str = "generationLeaves";
	/// Compare someone's position roots (and, for the first differing position, their revealed
	/// step hashes) with the honest generation → [`crate::ProveGenerationReply`].
	pub const PROVE_GENERATION: &str = "proveGeneration";
	/// The prompt tokens of a text (or of a user message in the model's chat template) for a
	/// served language model: [`crate::Tokenize`] → [`crate::Tokenized`].
	pub const TOKENIZE: &str = "tokenize";
	/// The text of token ids of a served language model: [`crate::Detokenize`] →
	/// [`crate::Detokenized`].
	pub const DETOKENIZE: &str = "detokenize";
	/// Every method.
	pub const ALL: [&str; 11] = [
		EXECUTE,
		JOB,
		PROVE,
		MODELS,
		HEALTH,
		GENERATE,
		GENERATION,
		GENERATION_LEAVES,
		PROVE_GENERATION,
		TOKENIZE,
		DETOKENIZE,
	];
}

/// The JSON-RPC error codes of the worker (server-defined range `-32000..-32099`, and the
/// standard invalid-params code).
pub mod codes {
	/// No model with this id is served.
	pub const UNKNOWN_MODEL: i32 = -32001;
	/// The input does not have the model's input size.
	pub const WRONG_INPUT_SIZE: i32 = -32002;
	/// The job queue is full: retry later.
	pub const QUEUE_FULL: i32 = -32003;
	/// `prove`: the committed list does not have `n + 1` hashes.
	pub const WRONG_HASH_COUNT: i32 = -32004;
	/// `prove`: the committed `h_0` is not the hash of the input.
	pub const INPUT_MISMATCH: i32 = -32005;
	/// `job`: no such job (never submitted, failed, or evicted from the cache).
	pub const UNKNOWN_JOB: i32 = -32006;
	/// Execution failed (internal error).
	pub const EXECUTION_FAILED: i32 = -32010;
	/// The worker is shutting down.
	pub const SHUTTING_DOWN: i32 = -32011;
	/// A generation job that does not fit its model (empty or too long prompt, a token outside
	/// the vocabulary, `max_new_tokens` 0, a sampling parameter out of range).
	pub const BAD_JOB: i32 = -32007;
	/// `generationLeaves`: the generation has no such position.
	pub const NO_SUCH_POSITION: i32 = -32008;
	/// Malformed parameter (bad hex, wrong hash length): the standard code.
	pub const INVALID_PARAMS: i32 = -32602;
}
