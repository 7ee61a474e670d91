//! `receipt fetch`: read a closed job's receipt from a node over JSON-RPC (jsonrpsee's HTTP
//! client, driven by a single-threaded tokio runtime).

use codec::Decode;
use jsonrpsee::core::{
	client::{BatchResponse, ClientT},
	params::{ArrayParams, BatchRequestBuilder},
	ClientError,
};
use jsonrpsee_http_client::{HttpClient, HttpClientBuilder};
use pallet_verity_jobs::JobId;
use sc_consensus_grandpa::GrandpaJustification;
use serde_json::Value;
use sp_core::H256;
use verity_runtime::{opaque::Block, BlockNumber, Header};

use super::{
	file::{
		claims_of, digest_key, generation_claims, generation_key, hex, job_key, receipt_key, unhex,
		BlockRef, GenerationRecord, JobsReceipt, StorageProofAt,
	},
	ReceiptFile, Result, FORMAT,
};

/// Headers asked for in one JSON-RPC batch.
const HEADER_BATCH: usize = 256;

/// A blocking JSON-RPC client of one node; every error is one line that names the node or the
/// method.
#[derive(Debug)]
pub struct Rpc {
	client: HttpClient,
	/// `host:port` as given, for messages.
	endpoint: String,
	runtime: jsonrpsee::tokio::runtime::Runtime,
}

impl Rpc {
	/// A client of `url`: `http://HOST:PORT[/PATH]`; `ws://` is read as `http://` (the node
	/// serves both on one port).
	pub fn new(url: &str) -> Result<Self> {
		let rest =
			["http://", "ws://"].iter().find_map(|p| url.strip_prefix(p)).ok_or_else(|| {
				format!("--rpc {url}: only http:// (or ws://) endpoints are supported")
			})?;
		let endpoint = rest.split('/').next().unwrap_or_default();
		if endpoint.is_empty() {
			return Err(format!("--rpc {url}: no host"));
		}
		let runtime = jsonrpsee::tokio::runtime::Builder::new_current_thread()
			.enable_all()
			.build()
			.map_err(|e| format!("starting the RPC client: {e}"))?;
		let client = {
			let _in_runtime = runtime.enter();
			HttpClientBuilder::default()
				.build(format!("http://{rest}"))
				.map_err(|e| format!("--rpc {url}: {e}"))?
		};
		Ok(Rpc { client, endpoint: endpoint.into(), runtime })
	}

	/// `method(params)`'s result.
	pub fn call(&self, method: &str, params: ArrayParams) -> Result<Value> {
		self.runtime
			.block_on(self.client.request(method, params))
			.map_err(|e| self.error(method, e))
	}

	/// `method` once per entry of `params`, in one batch; the results in the same order.
	pub fn batch(
		&self,
		method: &str,
		params: impl IntoIterator<Item = ArrayParams>,
	) -> Result<Vec<Value>> {
		let mut batch = BatchRequestBuilder::new();
		for p in params {
			batch.insert(method, p).map_err(|e| format!("{method}: {e}"))?;
		}
		let answers: BatchResponse<Value> = self
			.runtime
			.block_on(self.client.batch_request(batch))
			.map_err(|e| self.error(method, e))?;
		answers.into_iter().map(|a| a.map_err(|e| format!("{method}: {}", e.message()))).collect()
	}

	fn error(&self, method: &str, e: ClientError) -> String {
		let endpoint = &self.endpoint;
		match e {
			ClientError::Call(e) => format!("{method}: {}", e.message()),
			ClientError::RequestTimeout => format!("{endpoint}: no answer to {method} in time"),
			ClientError::Transport(e) => {
				use jsonrpsee_http_client::transport::Error as T;
				// A networking error (refused, reset, unreachable) carries an `io::Error`.
				let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&*e);
				while let Some(s) = source {
					if let Some(io) = s.downcast_ref::<std::io::Error>() {
						return format!("cannot connect to the node at {endpoint}: {io}");
					}
					source = s.source();
				}
				match e.downcast_ref::<T>() {
					Some(T::Rejected { status_code }) => {
						format!("{endpoint} answered HTTP {status_code} to {method}")
					},
					_ => format!("{endpoint}: {e}"),
				}
			},
			ClientError::ParseError(e) => {
				format!("{endpoint}: {method}: answer is not JSON-RPC: {e}")
			},
			e => format!("{method}: {e}"),
		}
	}
}

/// `[a, b, ...]` as JSON-RPC parameters.
fn params<const N: usize>(values: [Value; N]) -> ArrayParams {
	let mut p = ArrayParams::new();
	for v in values {
		// A `serde_json::Value` always serializes.
		let _ = p.insert(v);
	}
	p
}

fn as_hex_bytes(what: &str, v: &Value) -> Result<Vec<u8>> {
	unhex(what, v.as_str().ok_or_else(|| format!("{what}: expected a hex string, got {v}"))?)
}

fn as_hash(what: &str, v: &Value) -> Result<H256> {
	let b = as_hex_bytes(what, v)?;
	(b.len() == 32)
		.then(|| H256::from_slice(&b))
		.ok_or_else(|| format!("{what}: not a 32-byte hash"))
}

/// A closed job's receipt as the node shows it at its latest justified block.
pub fn fetch(rpc: &Rpc, job: JobId) -> Result<ReceiptFile> {
	let head = as_hash("chain_getFinalizedHead", &rpc.call("chain_getFinalizedHead", params([]))?)?;
	let at = Value::from(hex(head.as_bytes()));
	let stored =
		rpc.call("state_getStorage", params([hex(&receipt_key(job)).into(), at.clone()]))?;
	let record = match stored {
		Value::Null => {
			let open =
				rpc.call("state_getStorage", params([hex(&job_key(job)).into(), at.clone()]))?;
			if !open.is_null() {
				return Err(format!(
					"job {job} is still open at the finalized block (no receipt yet)"
				));
			}
			let pruned =
				rpc.call("state_getStorage", params([hex(&digest_key(job)).into(), at]))?;
			return Err(if pruned.is_null() {
				format!("job {job} is unknown at the finalized block {head:?}")
			} else {
				format!(
					"job {job}'s receipt was pruned (receipts are kept for Jobs.ReceiptRetention \
					 blocks after closing; only its digest {} is left)",
					pruned.as_str().unwrap_or("?")
				)
			});
		},
		v => JobsReceipt::decode(&mut &as_hex_bytes("receipt", &v)?[..])
			.map_err(|e| format!("the node's receipt record does not decode: {e}"))?,
	};

	let justification = rpc.call("verity_bestJustification", params([]))?;
	if justification.is_null() {
		return Err("the node has no GRANDPA justification yet".into());
	}
	let justification = as_hex_bytes("justification", &justification)?;
	let (final_number, final_hash) = GrandpaJustification::<Block>::decode(&justification)
		.map_err(|e| format!("the node's justification does not decode: {e}"))?
		.target();
	if final_number < record.closed_at {
		return Err(format!(
			"the node's latest justification (#{final_number}) is older than the job's closing block #{}",
			record.closed_at
		));
	}

	// Headers 1 ..= F, by number, in batches.
	let numbers: Vec<BlockNumber> = (1..=final_number).collect();
	let mut headers = Vec::with_capacity(numbers.len());
	for chunk in numbers.chunks(HEADER_BATCH) {
		let hashes =
			rpc.batch("chain_getBlockHash", chunk.iter().map(|n| params([(*n).into()])))?;
		let hashes =
			hashes.iter().map(|h| as_hash("chain_getBlockHash", h)).collect::<Result<Vec<_>>>()?;
		let answers = rpc
			.batch("chain_getHeader", hashes.iter().map(|h| params([hex(h.as_bytes()).into()])))?;
		for (hash, answer) in hashes.iter().zip(answers) {
			let header: Header = serde_json::from_value(answer)
				.map_err(|e| format!("header {hash:?} does not parse: {e}"))?;
			if header.hash() != *hash {
				return Err(format!("the node's header {hash:?} does not hash to its hash"));
			}
			headers.push(header);
		}
	}
	let last = headers.last().ok_or("the finalized block is genesis")?;
	if last.hash() != final_hash {
		return Err("the node's chain does not lead to the justified block".into());
	}
	let hash_at = |n: BlockNumber| -> Result<H256> {
		usize::try_from(n)
			.ok()
			.and_then(|n| n.checked_sub(1))
			.and_then(|i| headers.get(i))
			.map(|h| h.hash())
			.ok_or_else(|| format!("no header #{n}"))
	};
	let read_proof = |keys: &[Vec<u8>], at: BlockNumber| -> Result<StorageProofAt> {
		let keys: Vec<String> = keys.iter().map(|k| hex(k)).collect();
		let answer = rpc.call(
			"state_getReadProof",
			params([keys.into(), hex(hash_at(at)?.as_bytes()).into()]),
		)?;
		let nodes = answer
			.get("proof")
			.and_then(Value::as_array)
			.ok_or("state_getReadProof: no proof in the answer")?
			.iter()
			.map(|n| n.as_str().map(String::from).ok_or("state_getReadProof: bad proof node"))
			.collect::<std::result::Result<Vec<_>, _>>()?;
		Ok(StorageProofAt { block: at, nodes })
	};
	let before_close = record.closed_at.checked_sub(1).ok_or("the job closed at genesis")?;
	// A generation job's request, from the block before it closed (pruned at closing).
	let generation = rpc.call(
		"state_getStorage",
		params([hex(&generation_key(job)).into(), hex(hash_at(before_close)?.as_bytes()).into()]),
	)?;
	let mut claimed = claims_of(&record);
	if !generation.is_null() {
		let g = GenerationRecord::decode(&mut &as_hex_bytes("generation", &generation)?[..])
			.map_err(|e| format!("the node's generation record does not decode: {e}"))?;
		claimed.generation = Some(generation_claims(&record, &g));
	}

	Ok(ReceiptFile {
		format: FORMAT.into(),
		job,
		claimed,
		finalized: BlockRef { number: final_number, hash: hex(final_hash.as_bytes()) },
		headers: headers.iter().map(|h| hex(&codec::Encode::encode(h))).collect(),
		justification: hex(&justification),
		receipt_proof: read_proof(&[receipt_key(job)], final_number)?,
		job_proof: read_proof(&[job_key(job), generation_key(job)], before_close)?,
	})
}
