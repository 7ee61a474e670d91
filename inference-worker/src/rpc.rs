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
use serde::Serialize;

use crate::{
	hexfmt::{hex0x, parse_hash, parse_hex},
	service::{Outcome, ProveResult, Service, ServiceError, Stats, Timings},
};

/// Default listen address of `verity-worker serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9955";

/// JSON-RPC error codes of the worker (server-defined range `-32000..-32099`).
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
	/// Malformed parameter (bad hex, wrong hash length): the standard code.
	pub const INVALID_PARAMS: i32 = -32602;
}

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

fn invalid(what: &str, e: String) -> ErrorObjectOwned {
	ErrorObject::owned(codes::INVALID_PARAMS, format!("invalid {what}: {e}"), None::<()>)
}

/// `execute` and `job` answer.
#[derive(Serialize, Debug, Clone)]
pub struct ExecuteResponse {
	/// `"done"` or `"pending"`.
	pub status: &'static str,
	/// The job key (`blake2_256("verity/job/v1" ‖ model ‖ input)`); pass it to `job` or repeat
	/// the call to get the result.
	pub job: String,
	#[serde(skip_serializing_if = "Option::is_none")]
	pub model: Option<String>,
	#[serde(skip_serializing_if = "Option::is_none")]
	pub output: Option<String>,
	#[serde(skip_serializing_if = "Option::is_none")]
	pub step_hashes: Option<Vec<String>>,
	#[serde(skip_serializing_if = "Option::is_none")]
	pub trace_root: Option<String>,
	#[serde(skip_serializing_if = "Option::is_none")]
	pub timings: Option<Timings>,
	#[serde(skip_serializing_if = "Option::is_none")]
	pub backend: Option<String>,
}

fn exec_response(o: Outcome<std::sync::Arc<crate::service::JobResult>>) -> ExecuteResponse {
	match o {
		Outcome::Pending(key) => ExecuteResponse {
			status: "pending",
			job: hex0x(key),
			model: None,
			output: None,
			step_hashes: None,
			trace_root: None,
			timings: None,
			backend: None,
		},
		Outcome::Done(r) => ExecuteResponse {
			status: "done",
			job: hex0x(r.key),
			model: Some(hex0x(r.model)),
			output: Some(hex0x(r.output())),
			step_hashes: Some(r.step_hashes.iter().map(hex0x).collect()),
			trace_root: Some(hex0x(r.trace_root)),
			timings: Some(r.timings),
			backend: Some(r.backend.to_string()),
		},
	}
}

/// `prove` answer.
#[derive(Serialize, Debug, Clone)]
pub struct ProveResponse {
	/// `"consistent"`, `"fraud"` or `"pending"`.
	pub status: &'static str,
	#[serde(skip_serializing_if = "Option::is_none")]
	pub job: Option<String>,
	/// `consistent`: the trace root of the (correct) commitment.
	#[serde(skip_serializing_if = "Option::is_none")]
	pub trace_root: Option<String>,
	/// `fraud`: the first wrong step (1-based op index).
	#[serde(skip_serializing_if = "Option::is_none")]
	pub step: Option<u32>,
	/// `fraud`: the SCALE-encoded `FraudProof { step, input_tensors, weights }`.
	#[serde(skip_serializing_if = "Option::is_none")]
	pub proof: Option<String>,
	/// `fraud`: the verdict of `check_fraud_proof` on this proof (`"Fraud"`).
	#[serde(skip_serializing_if = "Option::is_none")]
	pub verdict: Option<String>,
}

/// One served model, as listed by `models`.
#[derive(Serialize, Debug, Clone)]
pub struct ModelEntry {
	pub id: String,
	pub num_ops: u32,
	pub input_shape: Vec<u32>,
	pub input_zero_point: i8,
	pub input_len: usize,
	pub output_shape: Vec<u32>,
	pub output_len: usize,
	pub total_macs: u64,
	pub weight_bytes: u64,
}

/// `health` answer.
#[derive(Serialize, Debug, Clone)]
pub struct Health {
	pub status: &'static str,
	pub version: &'static str,
	pub backend: String,
	pub device: String,
	pub models: usize,
	pub queue_len: usize,
	pub queue_capacity: usize,
	pub max_batch: usize,
	pub uptime_s: f64,
	pub stats: Stats,
	/// The injected fault (`verity-worker-faulty` only; absent from honest workers).
	#[cfg(feature = "fault-injection")]
	#[serde(skip_serializing_if = "Option::is_none")]
	pub fault: Option<&'static str>,
}

#[rpc(server)]
pub trait WorkerApi {
	/// Execute `input` (hex) on model `model` (hex id); waits at most `deadline_ms`.
	#[method(name = "execute")]
	async fn execute(
		&self,
		model: String,
		input: String,
		deadline_ms: Option<u64>,
	) -> RpcResult<ExecuteResponse>;

	/// The result of a job by key; waits at most `deadline_ms` if it is still pending.
	#[method(name = "job")]
	async fn job(&self, job: String, deadline_ms: Option<u64>) -> RpcResult<ExecuteResponse>;

	/// Compare committed step hashes with an honest run; the first wrong step and its fraud
	/// proof, or "consistent".
	#[method(name = "prove")]
	async fn prove(
		&self,
		model: String,
		input: String,
		step_hashes: Vec<String>,
		deadline_ms: Option<u64>,
	) -> RpcResult<ProveResponse>;

	/// The served models.
	#[method(name = "models")]
	async fn models(&self) -> RpcResult<Vec<ModelEntry>>;

	/// Liveness and queue state.
	#[method(name = "health")]
	async fn health(&self) -> RpcResult<Health>;
}

/// The RPC implementation over a [`Service`].
pub struct Rpc {
	pub service: Service,
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
	) -> RpcResult<ExecuteResponse> {
		let id = parse_hash(&model).map_err(|e| invalid("model id", e))?;
		let input = parse_hex(&input).map_err(|e| invalid("input", e))?;
		let o =
			self.service.execute(&id, input, wait(deadline_ms)).await.map_err(|e| rpc_error(&e))?;
		Ok(exec_response(o))
	}

	async fn job(&self, job: String, deadline_ms: Option<u64>) -> RpcResult<ExecuteResponse> {
		let key = parse_hash(&job).map_err(|e| invalid("job key", e))?;
		let o = self.service.job(&key, wait(deadline_ms)).await.map_err(|e| rpc_error(&e))?;
		Ok(exec_response(o))
	}

	async fn prove(
		&self,
		model: String,
		input: String,
		step_hashes: Vec<String>,
		deadline_ms: Option<u64>,
	) -> RpcResult<ProveResponse> {
		let id = parse_hash(&model).map_err(|e| invalid("model id", e))?;
		let input = parse_hex(&input).map_err(|e| invalid("input", e))?;
		let committed = step_hashes
			.iter()
			.map(|h| parse_hash(h))
			.collect::<Result<Vec<_>, _>>()
			.map_err(|e| invalid("step hash", e))?;
		let o = self
			.service
			.prove(&id, input, committed, wait(deadline_ms))
			.await
			.map_err(|e| rpc_error(&e))?;
		let empty = ProveResponse {
			status: "pending",
			job: None,
			trace_root: None,
			step: None,
			proof: None,
			verdict: None,
		};
		Ok(match o {
			Outcome::Pending(key) => ProveResponse { job: Some(hex0x(key)), ..empty },
			Outcome::Done(ProveResult::Consistent { trace_root }) => {
				ProveResponse { status: "consistent", trace_root: Some(hex0x(trace_root)), ..empty }
			},
			Outcome::Done(ProveResult::Fraud { step, proof, verdict }) => ProveResponse {
				status: "fraud",
				step: Some(step),
				proof: Some(hex0x(proof.encode())),
				verdict: Some(format!("{verdict:?}")),
				..empty
			},
		})
	}

	async fn models(&self) -> RpcResult<Vec<ModelEntry>> {
		Ok(self.service.models().iter().map(|m| model_entry(m)).collect())
	}

	async fn health(&self) -> RpcResult<Health> {
		let c = self.service.config();
		Ok(Health {
			status: "ok",
			version: env!("CARGO_PKG_VERSION"),
			backend: c.backend.to_string(),
			device: format!("{:?}", c.device),
			models: self.service.models().len(),
			queue_len: self.service.queue_len(),
			queue_capacity: c.queue_capacity,
			max_batch: c.max_batch,
			uptime_s: self.service.uptime().as_secs_f64(),
			stats: self.service.stats(),
			#[cfg(feature = "fault-injection")]
			fault: crate::fault::active().map(crate::fault::Fault::name),
		})
	}
}

/// The `models` entry of a model.
pub fn model_entry(m: &crate::model::LoadedModel) -> ModelEntry {
	ModelEntry {
		id: hex0x(m.id),
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
	addr: SocketAddr,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
	let server = Server::builder()
		.http_only()
		.max_request_body_size(64 << 20)
		.max_response_body_size(256 << 20)
		.build(addr)
		.await?;
	let local = server.local_addr()?;
	let handle = server.start(Rpc { service }.into_rpc());
	Ok((local, handle))
}
