//! The JSON-RPC 2.0 API over HTTP (jsonrpsee). Bytes and hashes are `0x`-prefixed hex strings.
//! Parameters may be given by position or by name. See `inference-worker/README.md` for the
//! reference of every method and error code.

use std::{net::SocketAddr, time::Duration};

use codec::Encode;
use jsonrpsee::{
	core::{async_trait, RpcResult},
	proc_macros::rpc,
	server::{Server, ServerHandle},
	types::{ErrorObject, ErrorObjectOwned},
};
use verity_primitives::lm::{interp::LmJob, sample::SamplingParams};
pub use verity_worker_api::codes;
use verity_worker_api::{
	hex::{self, HexError},
	Detokenized, ExecuteReply, Executed, GenerateReply, Generated, GenerationJob, Health,
	HealthStatus, ModelEntry, ProveGenerationReply, ProveReply, Reveal, TextPrompt, Tokenized,
};

use crate::{
	generate::Prompt,
	genservice::{GenError, GenResult, GenService},
	service::{JobResult, Outcome, ProveResult, Service, ServiceError},
	verify::Outcome as Judgement,
};

/// The JSON-RPC error of a generation service error.
pub fn gen_error(e: &GenError) -> ErrorObjectOwned {
	let code = match e {
		GenError::UnknownModel(_) => codes::UNKNOWN_MODEL,
		GenError::BadJob(_) => codes::BAD_JOB,
		GenError::QueueFull { .. } => codes::QUEUE_FULL,
		GenError::UnknownJob(_) => codes::UNKNOWN_JOB,
		GenError::NoSuchPosition { .. } => codes::NO_SUCH_POSITION,
		GenError::Reveal(_) => codes::INVALID_PARAMS,
		GenError::Execution(_) => codes::EXECUTION_FAILED,
	};
	ErrorObject::owned(code, e.to_string(), None::<()>)
}

/// The exact job of a generation request.
pub fn lm_job(j: GenerationJob) -> LmJob {
	LmJob {
		prompt: j.prompt,
		params: SamplingParams {
			temperature_q16: j.temperature_q16,
			top_k: j.top_k,
			top_p_q16: j.top_p_q16,
			seed: j.seed,
		},
		max_new_tokens: j.max_new_tokens,
	}
}

/// The `generate` answer of a finished generation.
pub fn generated(r: &GenResult) -> Generated {
	Generated {
		job: r.key,
		model: r.model,
		tokens: r.run.tokens.clone(),
		position_roots: r.run.position_roots.clone(),
		job_root: r.job_root,
		positions: r.run.positions,
		queue_ms: r.queue.as_secs_f64() * 1e3,
		generate_ms: r.generate.as_secs_f64() * 1e3,
		hash_ms: r.run.hash_time.as_secs_f64() * 1e3,
	}
}

fn gen_reply(o: Outcome<std::sync::Arc<GenResult>>) -> GenerateReply {
	match o {
		Outcome::Pending(job) => GenerateReply::Pending { job },
		Outcome::Done(r) => GenerateReply::Done(generated(&r)),
	}
}

/// Default listen address of `verity-worker serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9955";

/// The JSON-RPC error of a service error.
pub fn rpc_error(e: &ServiceError) -> ErrorObjectOwned {
	let data = match e {
		ServiceError::WrongInputSize { expected, got } => {
			Some(serde_json::json!({ "expected": expected, "got": got }))
		},
		ServiceError::WrongHashCount { expected, got } => {
			Some(serde_json::json!({ "expected": expected, "got": got }))
		},
		ServiceError::QueueFull { capacity } => Some(serde_json::json!({ "capacity": capacity })),
		_ => None,
	};
	let code = match e {
		ServiceError::UnknownModel(_) => codes::UNKNOWN_MODEL,
		ServiceError::WrongInputSize { .. } => codes::WRONG_INPUT_SIZE,
		ServiceError::QueueFull { .. } => codes::QUEUE_FULL,
		ServiceError::WrongHashCount { .. } => codes::WRONG_HASH_COUNT,
		ServiceError::InputMismatch => codes::INPUT_MISMATCH,
		ServiceError::UnknownJob(_) => codes::UNKNOWN_JOB,
		ServiceError::Execution(_) => codes::EXECUTION_FAILED,
		ServiceError::ShuttingDown => codes::SHUTTING_DOWN,
	};
	ErrorObject::owned(code, e.to_string(), data)
}

fn invalid(what: &str, e: HexError) -> ErrorObjectOwned {
	ErrorObject::owned(codes::INVALID_PARAMS, format!("invalid {what}: {e}"), None::<()>)
}

/// The `execute` answer of a finished job (also what `run --json` prints).
pub fn executed(r: &JobResult) -> Executed {
	Executed {
		job: r.key,
		model: r.model,
		output: r.output().to_vec(),
		step_hashes: r.step_hashes.clone(),
		trace_root: r.trace_root,
		timings: r.timings,
		backend: r.backend.to_string(),
	}
}

/// The `prove` answer of a finished comparison (also what `verify --json` prints).
pub fn proved(r: ProveResult) -> ProveReply {
	match r {
		ProveResult::Consistent { trace_root } => ProveReply::Consistent { trace_root },
		ProveResult::Fraud { step, proof, verdict } => {
			ProveReply::Fraud { step, proof: proof.encode(), verdict: format!("{verdict:?}") }
		},
	}
}

fn exec_reply(o: Outcome<std::sync::Arc<JobResult>>) -> ExecuteReply {
	match o {
		Outcome::Pending(job) => ExecuteReply::Pending { job },
		Outcome::Done(r) => ExecuteReply::Done(executed(&r)),
	}
}

// The method names are `verity_worker_api::method`'s (the macro takes literals only;
// `tests/api.rs` checks that they agree).
#[rpc(server)]
pub trait WorkerApi {
	/// Execute `input` (hex) on model `model` (hex id); waits at most `deadline_ms`.
	#[method(name = "execute")]
	async fn execute(
		&self,
		model: String,
		input: String,
		deadline_ms: Option<u64>,
	) -> RpcResult<ExecuteReply>;

	/// The result of a job by key; waits at most `deadline_ms` if it is still pending.
	#[method(name = "job")]
	async fn job(&self, job: String, deadline_ms: Option<u64>) -> RpcResult<ExecuteReply>;

	/// Compare committed step hashes with an honest run; the first wrong step and its fraud
	/// proof, or "consistent".
	#[method(name = "prove")]
	async fn prove(
		&self,
		model: String,
		input: String,
		step_hashes: Vec<String>,
		deadline_ms: Option<u64>,
	) -> RpcResult<ProveReply>;

	/// The served models.
	#[method(name = "models")]
	async fn models(&self) -> RpcResult<Vec<ModelEntry>>;

	/// Liveness and queue state.
	#[method(name = "health")]
	async fn health(&self) -> RpcResult<Health>;

	/// Generate with a served language model; waits at most `deadline_ms`.
	#[method(name = "generate")]
	async fn generate(
		&self,
		model: String,
		job: GenerationJob,
		deadline_ms: Option<u64>,
	) -> RpcResult<GenerateReply>;

	/// A generation's result by key; waits at most `deadline_ms` while it is pending.
	#[method(name = "generation")]
	async fn generation(&self, job: String, deadline_ms: Option<u64>) -> RpcResult<GenerateReply>;

	/// The step hashes of one position of a finished generation.
	#[method(name = "generationLeaves")]
	async fn generation_leaves(&self, job: String, position: u32) -> RpcResult<Vec<String>>;

	/// Judge someone's position roots of a generation (and the revealed step hashes of the
	/// first differing position) against the honest generation.
	#[method(name = "proveGeneration")]
	async fn prove_generation(
		&self,
		model: String,
		job: GenerationJob,
		position_roots: Vec<String>,
		reveal: Option<Reveal>,
		deadline_ms: Option<u64>,
	) -> RpcResult<ProveGenerationReply>;

	/// The prompt tokens of a text, or of one user message in the model's chat template.
	#[method(name = "tokenize")]
	async fn tokenize(&self, model: String, prompt: TextPrompt) -> RpcResult<Tokenized>;

	/// The text of token ids (special tokens left out).
	#[method(name = "detokenize")]
	async fn detokenize(&self, model: String, tokens: Vec<u32>) -> RpcResult<Detokenized>;
}

/// The RPC implementation over a [`Service`] (classifiers) and a [`GenService`] (language
/// models).
pub struct Rpc {
	pub service: Service,
	pub gen: GenService,
}

fn wait(deadline_ms: Option<u64>) -> Option<Duration> {
	deadline_ms.map(Duration::from_millis)
}

#[async_trait]
impl WorkerApiServer for Rpc {
	async fn execute(
		&self,
		model: String,
		input: String,
		deadline_ms: Option<u64>,
	) -> RpcResult<ExecuteReply> {
		let id = hex::decode_hash(&model).map_err(|e| invalid("model id", e))?;
		let input = hex::decode(&input).map_err(|e| invalid("input", e))?;
		let o =
			self.service.execute(&id, input, wait(deadline_ms)).await.map_err(|e| rpc_error(&e))?;
		Ok(exec_reply(o))
	}

	async fn job(&self, job: String, deadline_ms: Option<u64>) -> RpcResult<ExecuteReply> {
		let key = hex::decode_hash(&job).map_err(|e| invalid("job key", e))?;
		let o = self.service.job(&key, wait(deadline_ms)).await.map_err(|e| rpc_error(&e))?;
		Ok(exec_reply(o))
	}

	async fn prove(
		&self,
		model: String,
		input: String,
		step_hashes: Vec<String>,
		deadline_ms: Option<u64>,
	) -> RpcResult<ProveReply> {
		let id = hex::decode_hash(&model).map_err(|e| invalid("model id", e))?;
		let input = hex::decode(&input).map_err(|e| invalid("input", e))?;
		let committed = step_hashes
			.iter()
			.map(|h| hex::decode_hash(h))
			.collect::<Result<Vec<_>, _>>()
			.map_err(|e| invalid("step hash", e))?;
		let o = self
			.service
			.prove(&id, input, committed, wait(deadline_ms))
			.await
			.map_err(|e| rpc_error(&e))?;
		Ok(match o {
			Outcome::Pending(job) => ProveReply::Pending { job },
			Outcome::Done(r) => proved(r),
		})
	}

	async fn models(&self) -> RpcResult<Vec<ModelEntry>> {
		Ok(self.service.models().iter().map(|m| model_entry(m)).collect())
	}

	async fn health(&self) -> RpcResult<Health> {
		let c = self.service.config();
		Ok(Health {
			status: HealthStatus::Ok,
			version: env!("CARGO_PKG_VERSION").to_string(),
			backend: c.backend.to_string(),
			device: format!("{:?}", c.device),
			models: self.service.models().len(),
			queue_len: self.service.queue_len(),
			queue_capacity: c.queue_capacity,
			max_batch: c.max_batch,
			uptime_s: self.service.uptime().as_secs_f64(),
			stats: self.service.stats(),
			#[cfg(feature = "fault-injection")]
			fault: crate::fault::active().map(|f| f.name().to_string()),
			#[cfg(not(feature = "fault-injection"))]
			fault: None,
		})
	}

	async fn generate(
		&self,
		model: String,
		job: GenerationJob,
		deadline_ms: Option<u64>,
	) -> RpcResult<GenerateReply> {
		let id = hex::decode_hash(&model).map_err(|e| invalid("model id", e))?;
		let o = self.gen.generate(&id, lm_job(job), wait(deadline_ms)).await;
		Ok(gen_reply(o.map_err(|e| gen_error(&e))?))
	}

	async fn generation(&self, job: String, deadline_ms: Option<u64>) -> RpcResult<GenerateReply> {
		let key = hex::decode_hash(&job).map_err(|e| invalid("job key", e))?;
		let o = self.gen.generation(&key, wait(deadline_ms)).await;
		Ok(gen_reply(o.map_err(|e| gen_error(&e))?))
	}

	async fn generation_leaves(&self, job: String, position: u32) -> RpcResult<Vec<String>> {
		let key = hex::decode_hash(&job).map_err(|e| invalid("job key", e))?;
		let leaves = self.gen.leaves(&key, position).map_err(|e| gen_error(&e))?;
		Ok(leaves.iter().map(hex::encode).collect())
	}

	async fn prove_generation(
		&self,
		model: String,
		job: GenerationJob,
		position_roots: Vec<String>,
		reveal: Option<Reveal>,
		deadline_ms: Option<u64>,
	) -> RpcResult<ProveGenerationReply> {
		let id = hex::decode_hash(&model).map_err(|e| invalid("model id", e))?;
		let roots = position_roots
			.iter()
			.map(|h| hex::decode_hash(h))
			.collect::<Result<Vec<_>, _>>()
			.map_err(|e| invalid("position root", e))?;
		let reveal = reveal.map(|r| (r.position, r.step_hashes));
		let o = self.gen.prove(&id, lm_job(job), roots, reveal, wait(deadline_ms)).await;
		Ok(match o.map_err(|e| gen_error(&e))? {
			Outcome::Pending(job) => ProveGenerationReply::Pending { job },
			Outcome::Done(Judgement::Consistent) => {
				let roots: Vec<_> =
					position_roots.iter().filter_map(|h| hex::decode_hash(h).ok()).collect();
				ProveGenerationReply::Consistent {
					job_root: verity_primitives::lm::trace::job_root(&roots),
				}
			},
			Outcome::Done(Judgement::Differs { position, .. }) => {
				ProveGenerationReply::Differs { position }
			},
			Outcome::Done(Judgement::Fraud { position, op, proof, .. }) => {
				ProveGenerationReply::Fraud {
					position,
					op,
					proof: proof.encode(),
					verdict: "Fraud".into(),
				}
			},
		})
	}

	async fn tokenize(&self, model: String, prompt: TextPrompt) -> RpcResult<Tokenized> {
		let id = hex::decode_hash(&model).map_err(|e| invalid("model id", e))?;
		let m = self.gen.model(&id).map_err(|e| gen_error(&e))?;
		let prompt = match prompt {
			TextPrompt::Text(t) => Prompt::Text(t),
			TextPrompt::Chat(c) => Prompt::Chat(c),
			TextPrompt::Messages(m) => {
				Prompt::Messages(m.into_iter().map(|m| (m.role, m.content)).collect())
			},
		};
		let bad = |e: crate::generate::GenerateError| gen_error(&GenError::BadJob(e.to_string()));
		let text = m.prompt_text(&prompt).map_err(bad)?;
		let tokens = m.prompt_tokens(&prompt).map_err(bad)?;
		Ok(Tokenized { tokens, text })
	}

	async fn detokenize(&self, model: String, tokens: Vec<u32>) -> RpcResult<Detokenized> {
		let id = hex::decode_hash(&model).map_err(|e| invalid("model id", e))?;
		let m = self.gen.model(&id).map_err(|e| gen_error(&e))?;
		let text =
			m.tokenizer.decode(&tokens).map_err(|e| gen_error(&GenError::BadJob(e.to_string())))?;
		Ok(Detokenized { text })
	}
}

/// The `models` entry of a model.
pub fn model_entry(m: &crate::model::LoadedModel) -> ModelEntry {
	ModelEntry {
		id: m.id,
		num_ops: m.num_ops(),
		input_shape: m.header.input.shape.clone(),
		input_zero_point: m.header.input.zero_point,
		input_len: m.input_len(),
		output_shape: m.header.output_spec().shape.clone(),
		output_len: m.output_len(),
		total_macs: m.info.total_macs,
		weight_bytes: m.info.total_weight_bytes,
	}
}

/// Start the HTTP JSON-RPC server on `addr` (port 0: any free port); returns the bound address
/// and the handle (dropping the handle does not stop the server; call `stop`).
pub async fn serve(
	service: Service,
	gen: GenService,
	addr: SocketAddr,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
	let server = Server::builder()
		.http_only()
		.max_request_body_size(64 << 20)
		.max_response_body_size(256 << 20)
		.build(addr)
		.await?;
	let local = server.local_addr()?;
	let handle = server.start(Rpc { service, gen }.into_rpc());
	Ok((local, handle))
}
