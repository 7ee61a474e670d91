//! `verity-node receipt fetch | verify`: a closed job's receipt that anyone can check offline,
//! without trusting the RPC node it came from.
//!
//! A receipt file (JSON, hex for bytes) holds:
//! - every block header from block 1 to a block `F` finalized by GRANDPA;
//! - the GRANDPA justification of `F`;
//! - a storage proof of the job's `Jobs.Receipts` record in the state of `F`;
//! - a storage proof of the job's `Jobs.Jobs` record in the state of the block before it closed
//!   (the record that still holds the input, so the model can be re-run);
//! - the claims a reader sees (outcome, model, operator, output, trace root, ...), which must equal
//!   what the proofs show.
//!
//! `verify` trusts only the chain specification it is given (`--chain`): it builds the genesis
//! state from it, hence the genesis hash and the GRANDPA authority set. Then it checks that the
//! headers form one chain from that genesis, that none of them changes the GRANDPA authority set
//! (the Verity runtime never does; a receipt that spans a change is refused rather than trusted),
//! that the justification is signed by more than two thirds of the set and finalizes the last
//! header, that both storage proofs match the state roots of their headers, and that the claims
//! equal the proven records. With `--model FILE` it re-runs the model with the reference
//! interpreter on the proven input and compares the output and the trace root.
//!
//! Limits: the header chain starts at genesis (a receipt grows with the chain by about 130 bytes
//! per block); a light client with a trusted checkpoint would shorten it. The RPC client speaks
//! plain HTTP (the node serves HTTP and WebSocket on one port); TLS is not needed for soundness.

use std::{
	io::{Read, Write},
	net::TcpStream,
	path::PathBuf,
	time::Duration,
};

use codec::{Decode, Encode};
use pallet_verity_jobs::{Job, JobId, Outcome, Receipt};
use sc_consensus_grandpa::GrandpaJustification;
use serde_json::{json, Value};
use sp_consensus_grandpa::{AuthorityList, ConsensusLog, GRANDPA_ENGINE_ID};
use sp_core::{crypto::Ss58Codec, H256};
use sp_runtime::{
	generic::DigestItem,
	traits::{BlakeTwo256, Header as _},
};
use verity_runtime::{opaque::Block, AccountId, BlockNumber, Header, Runtime};

/// The format tag of receipt files.
const FORMAT: &str = "verity-receipt/1";
/// Headers asked for in one JSON-RPC batch.
const HEADER_BATCH: usize = 256;

type Result<T> = std::result::Result<T, String>;

/// `verity-node receipt ...`
#[derive(Debug, clap::Subcommand)]
pub enum ReceiptCmd {
	/// Fetch a closed job's receipt from a node and write it to a file.
	Fetch(FetchCmd),
	/// Verify a receipt file offline against a chain specification.
	Verify(VerifyCmd),
}

/// `verity-node receipt fetch`
#[derive(Debug, clap::Parser)]
pub struct FetchCmd {
	/// The job.
	#[arg(long)]
	pub job: JobId,
	/// The node's JSON-RPC endpoint (HTTP; `ws://` is read as `http://`, the node serves both on
	/// one port).
	#[arg(long, default_value = "http://127.0.0.1:9944")]
	pub rpc: String,
	/// Where to write the receipt (default: `receipt-<job>.json`).
	#[arg(long)]
	pub out: Option<PathBuf>,
}

/// `verity-node receipt verify`
#[derive(Debug, clap::Parser)]
pub struct VerifyCmd {
	/// The receipt file.
	pub file: PathBuf,
	/// The chain specification to trust: `dev`, `local` or a chain-spec file.
	#[arg(long, default_value = "dev")]
	pub chain: String,
	/// The model file: re-run the model on the proven input and compare output and trace root.
	#[arg(long)]
	pub model: Option<PathBuf>,
}

/// The file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReceiptFile {
	pub format: String,
	pub job: JobId,
	/// What the receipt says, for a reader; `verify` checks it against the proven record.
	pub claimed: Claims,
	/// The block whose justification is included (informational: `verify` recomputes it).
	pub finalized: BlockRef,
	/// SCALE-encoded headers of blocks 1 ..= `finalized.number`, in order.
	pub headers: Vec<String>,
	/// SCALE-encoded GRANDPA justification of the last header.
	pub justification: String,
	/// `Jobs.Receipts(job)` at the finalized block.
	pub receipt_proof: StorageProofAt,
	/// `Jobs.Jobs(job)` at the block before the job closed (it holds the input).
	pub job_proof: StorageProofAt,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claims {
	pub outcome: String,
	pub model: String,
	pub requester: String,
	pub operator: String,
	pub output: String,
	pub trace_root: Option<String>,
	pub fee: String,
	pub closed_at: BlockNumber,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BlockRef {
	pub number: BlockNumber,
	pub hash: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StorageProofAt {
	pub block: BlockNumber,
	pub nodes: Vec<String>,
}

type JobsReceipt = Receipt<Runtime>;
type JobRecord = Job<Runtime>;

fn receipt_key(job: JobId) -> Vec<u8> {
	pallet_verity_jobs::Receipts::<Runtime>::hashed_key_for(job)
}

fn job_key(job: JobId) -> Vec<u8> {
	pallet_verity_jobs::Jobs::<Runtime>::hashed_key_for(job)
}

fn hex(bytes: &[u8]) -> String {
	format!("0x{}", sp_core::hexdisplay::HexDisplay::from(&bytes))
}

fn unhex(what: &str, s: &str) -> Result<Vec<u8>> {
	let digits = s.strip_prefix("0x").unwrap_or(s);
	if digits.len() % 2 != 0 {
		return Err(format!("{what}: odd number of hex digits"));
	}
	(0..digits.len())
		.step_by(2)
		.map(|i| {
			digits
				.get(i..i + 2)
				.and_then(|d| u8::from_str_radix(d, 16).ok())
				.ok_or_else(|| format!("{what}: not hex"))
		})
		.collect()
}

fn account(a: &AccountId) -> String {
	a.to_ss58check()
}

fn outcome(o: &Outcome<AccountId>) -> String {
	match o {
		Outcome::Final => "final".into(),
		Outcome::Fraud { prover, step } => {
			format!("fraud at step {step}, proven by {}", account(prover))
		},
		Outcome::Expired => "expired".into(),
	}
}

fn claims_of(r: &JobsReceipt) -> Claims {
	Claims {
		outcome: outcome(&r.outcome),
		model: hex(&r.model),
		requester: account(&r.requester),
		operator: account(&r.operator),
		output: hex(&r.output),
		trace_root: r.trace_root.map(|h| hex(&h)),
		fee: r.fee.to_string(),
		closed_at: r.closed_at,
	}
}

// ---------------------------------------------------------------------------------------------
// A small JSON-RPC client over HTTP/1.1.

struct Rpc {
	host: String,
	port: u16,
	path: String,
}

impl Rpc {
	fn new(url: &str) -> Result<Self> {
		let rest =
			["http://", "ws://"].iter().find_map(|p| url.strip_prefix(p)).ok_or_else(|| {
				format!("--rpc {url}: only http:// (or ws://) endpoints are supported")
			})?;
		let (authority, path) = match rest.find('/') {
			Some(i) => (&rest[..i], &rest[i..]),
			None => (rest, "/"),
		};
		let (host, port) = match authority.rsplit_once(':') {
			Some((h, p)) => (h, p.parse().map_err(|_| format!("--rpc {url}: bad port"))?),
			None => (authority, 80),
		};
		if host.is_empty() {
			return Err(format!("--rpc {url}: no host"));
		}
		Ok(Rpc { host: host.into(), port, path: path.into() })
	}

	fn post(&self, body: &str) -> Result<Value> {
		let endpoint = format!("{}:{}", self.host, self.port);
		let mut stream = TcpStream::connect(&endpoint)
			.map_err(|e| format!("cannot connect to the node at {endpoint}: {e}"))?;
		stream.set_read_timeout(Some(Duration::from_secs(60))).ok();
		let request = format!(
			"POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
			self.path,
			endpoint,
			body.len(),
			body
		);
		stream.write_all(request.as_bytes()).map_err(|e| format!("sending to {endpoint}: {e}"))?;
		let mut response = Vec::new();
		stream.read_to_end(&mut response).map_err(|e| format!("reading from {endpoint}: {e}"))?;
		let split = response
			.windows(4)
			.position(|w| w == b"\r\n\r\n")
			.ok_or_else(|| format!("{endpoint}: not an HTTP response"))?;
		let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
		let mut body = response[split + 4..].to_vec();
		let status = head.split_whitespace().nth(1).unwrap_or("");
		if status != "200" {
			return Err(format!(
				"{endpoint} answered HTTP {status}: {}",
				String::from_utf8_lossy(&body).trim()
			));
		}
		if head.contains("transfer-encoding: chunked") {
			body = dechunk(&body).ok_or_else(|| format!("{endpoint}: bad chunked encoding"))?;
		}
		serde_json::from_slice(&body).map_err(|e| format!("{endpoint}: answer is not JSON: {e}"))
	}

	fn call(&self, method: &str, params: Value) -> Result<Value> {
		let body = json!({ "jsonrpc": "2.0", "id": 0, "method": method, "params": params });
		let answer = self.post(&body.to_string())?;
		result_of(method, answer)
	}

	fn batch(&self, method: &str, params: &[Value]) -> Result<Vec<Value>> {
		let body: Vec<Value> = params
			.iter()
			.enumerate()
			.map(|(id, p)| json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": p }))
			.collect();
		let answers = match self.post(&Value::Array(body).to_string())? {
			Value::Array(a) => a,
			other => return Err(format!("{method}: batch answered with {other}")),
		};
		let mut out = vec![Value::Null; params.len()];
		for a in answers {
			let id = a.get("id").and_then(Value::as_u64).and_then(|i| usize::try_from(i).ok());
			match id.and_then(|i| out.get_mut(i)) {
				Some(slot) => *slot = result_of(method, a)?,
				None => return Err(format!("{method}: answer with an unknown id")),
			}
		}
		Ok(out)
	}
}

fn result_of(method: &str, answer: Value) -> Result<Value> {
	if let Some(e) = answer.get("error") {
		let msg = e.get("message").and_then(Value::as_str).unwrap_or("error");
		return Err(format!("{method}: {msg}"));
	}
	answer.get("result").cloned().ok_or_else(|| format!("{method}: answer without a result"))
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
	let mut out = Vec::new();
	loop {
		let line_end = body.windows(2).position(|w| w == b"\r\n")?;
		let size_text = std::str::from_utf8(body.get(..line_end)?).ok()?;
		let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
		body = body.get(line_end + 2..)?;
		if size == 0 {
			return Some(out);
		}
		out.extend_from_slice(body.get(..size)?);
		body = body.get(size + 2..)?;
	}
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

// ---------------------------------------------------------------------------------------------
// fetch

impl FetchCmd {
	pub fn run(&self) -> Result<()> {
		let receipt = fetch(&Rpc::new(&self.rpc)?, self.job)?;
		let path =
			self.out.clone().unwrap_or_else(|| PathBuf::from(format!("receipt-{}.json", self.job)));
		let text = serde_json::to_string_pretty(&receipt).map_err(|e| e.to_string())?;
		std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
		println!(
			"receipt of job {} ({}) written to {}: {} headers, finalized at #{}",
			self.job,
			receipt.claimed.outcome,
			path.display(),
			receipt.headers.len(),
			receipt.finalized.number
		);
		Ok(())
	}
}

fn fetch(rpc: &Rpc, job: JobId) -> Result<ReceiptFile> {
	let head = as_hash("chain_getFinalizedHead", &rpc.call("chain_getFinalizedHead", json!([]))?)?;
	let stored =
		rpc.call("state_getStorage", json!([hex(&receipt_key(job)), hex(head.as_bytes())]))?;
	let record = match stored {
		Value::Null => {
			let open =
				rpc.call("state_getStorage", json!([hex(&job_key(job)), hex(head.as_bytes())]))?;
			return Err(if open.is_null() {
				format!("job {job} is unknown at the finalized block {head:?}")
			} else {
				format!("job {job} is still open at the finalized block (no receipt yet)")
			});
		},
		v => JobsReceipt::decode(&mut &as_hex_bytes("receipt", &v)?[..])
			.map_err(|e| format!("the node's receipt record does not decode: {e}"))?,
	};

	let justification = rpc.call("verity_bestJustification", json!([]))?;
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
			rpc.batch("chain_getBlockHash", &chunk.iter().map(|n| json!([n])).collect::<Vec<_>>())?;
		let hashes =
			hashes.iter().map(|h| as_hash("chain_getBlockHash", h)).collect::<Result<Vec<_>>>()?;
		let answers = rpc.batch(
			"chain_getHeader",
			&hashes.iter().map(|h| json!([hex(h.as_bytes())])).collect::<Vec<_>>(),
		)?;
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
	let read_proof = |key: Vec<u8>, at: BlockNumber| -> Result<StorageProofAt> {
		let answer =
			rpc.call("state_getReadProof", json!([[hex(&key)], hex(hash_at(at)?.as_bytes())]))?;
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

	Ok(ReceiptFile {
		format: FORMAT.into(),
		job,
		claimed: claims_of(&record),
		finalized: BlockRef { number: final_number, hash: hex(final_hash.as_bytes()) },
		headers: headers.iter().map(|h| hex(&h.encode())).collect(),
		justification: hex(&justification),
		receipt_proof: read_proof(receipt_key(job), final_number)?,
		job_proof: read_proof(job_key(job), before_close)?,
	})
}

// ---------------------------------------------------------------------------------------------
// verify

/// What `verify` trusts: the chain specification's genesis.
pub struct TrustRoot {
	pub genesis_hash: H256,
	pub authorities: AuthorityList,
}

/// The genesis hash and GRANDPA authority set of a chain specification.
pub fn trust_root(spec: &dyn sc_service::ChainSpec) -> Result<TrustRoot> {
	let storage = spec.build_storage().map_err(|e| format!("building the genesis state: {e}"))?;
	let executor = sc_executor::WasmExecutor::<sp_io::SubstrateHostFunctions>::builder().build();
	let state_version =
		sc_service::resolve_state_version_from_wasm::<_, BlakeTwo256>(&storage, &executor)
			.map_err(|e| format!("reading the runtime version of the genesis: {e}"))?;
	let authorities_key = [
		sp_crypto_hashing::twox_128(b"Grandpa").as_slice(),
		sp_crypto_hashing::twox_128(b"Authorities").as_slice(),
	]
	.concat();
	let authorities = storage
		.top
		.get(&authorities_key)
		.ok_or("the chain specification has no GRANDPA authorities")
		.and_then(|v| {
			AuthorityList::decode(&mut &v[..]).map_err(|_| "its GRANDPA authorities do not decode")
		})?;
	let backend: sp_state_machine::TrieBackend<_, BlakeTwo256> = (storage, state_version).into();
	let genesis = sc_service::construct_genesis_block::<Block>(*backend.root(), state_version);
	Ok(TrustRoot { genesis_hash: genesis.header.hash(), authorities })
}

/// What a verified receipt shows.
pub struct Verified {
	pub receipt: JobsReceipt,
	pub job: JobRecord,
	pub finalized: (BlockNumber, H256),
	pub voters: usize,
}

/// Check a receipt file against a trust root; every failure names what is wrong.
pub fn verify(file: &ReceiptFile, root: &TrustRoot) -> Result<Verified> {
	if file.format != FORMAT {
		return Err(format!("unknown receipt format {:?} (expected {FORMAT})", file.format));
	}
	// 1. One chain of headers from the trusted genesis, without GRANDPA set changes.
	let mut headers = Vec::with_capacity(file.headers.len());
	let mut parent = root.genesis_hash;
	for (i, text) in file.headers.iter().enumerate() {
		let number = BlockNumber::try_from(i + 1).map_err(|_| "too many headers")?;
		let bytes = unhex(&format!("header #{number}"), text)?;
		let header = Header::decode(&mut &bytes[..])
			.map_err(|e| format!("header #{number} does not decode: {e}"))?;
		if *header.number() != number {
			return Err(format!("header {} is numbered #{}", number, header.number()));
		}
		if *header.parent_hash() != parent {
			return Err(if number == 1 {
				format!(
					"header #1 does not extend the genesis of the chain specification ({parent:?})"
				)
			} else {
				format!("header #{number} does not extend header #{}: broken chain", number - 1)
			});
		}
		for log in header.digest().logs() {
			if let DigestItem::Consensus(id, data) = log {
				if *id == GRANDPA_ENGINE_ID {
					match ConsensusLog::<BlockNumber>::decode(&mut &data[..]) {
						Ok(ConsensusLog::ScheduledChange(_) | ConsensusLog::ForcedChange(..)) =>
							return Err(format!(
								"header #{number} changes the GRANDPA authority set; receipts across a set change are not supported"
							)),
						_ => {},
					}
				}
			}
		}
		parent = header.hash();
		headers.push(header);
	}
	let last = headers.last().ok_or("the receipt has no headers")?;
	let finalized = (*last.number(), last.hash());

	// 2. The last header is final: a justification by the genesis set (set id 0).
	let justification = unhex("justification", &file.justification)?;
	let justification = GrandpaJustification::<Block>::decode(&justification)
		.map_err(|e| format!("the justification does not decode: {e}"))?;
	if justification.target() != finalized {
		return Err(format!(
			"the justification finalizes block #{}, not the last header #{}",
			justification.target().0,
			finalized.0
		));
	}
	justification.verify(0, &root.authorities).map_err(|e| {
		format!("the justification does not prove block #{} final: {e}", finalized.0)
	})?;

	// 3. The records, by storage proofs against the state roots of their blocks.
	let read = |what: &str, proof: &StorageProofAt, key: Vec<u8>| -> Result<Vec<u8>> {
		let header = usize::try_from(proof.block)
			.ok()
			.and_then(|n| n.checked_sub(1))
			.and_then(|i| headers.get(i))
			.ok_or_else(|| {
				format!("the {what} proof is at block #{}, beyond the headers", proof.block)
			})?;
		let nodes = proof
			.nodes
			.iter()
			.map(|n| unhex(&format!("{what} proof node"), n))
			.collect::<Result<Vec<_>>>()?;
		let values = sp_state_machine::read_proof_check::<BlakeTwo256, _>(
			*header.state_root(),
			sp_state_machine::StorageProof::new(nodes),
			[key.as_slice()],
		)
		.map_err(|e| {
			format!("the {what} proof does not match the state root of block #{}: {e}", proof.block)
		})?;
		values
			.get(&key)
			.cloned()
			.flatten()
			.ok_or_else(|| format!("the {what} proof shows no record at block #{}", proof.block))
	};
	let receipt =
		JobsReceipt::decode(&mut &read("receipt", &file.receipt_proof, receipt_key(file.job))?[..])
			.map_err(|e| format!("the proven receipt record does not decode: {e}"))?;
	if receipt.closed_at > finalized.0 {
		return Err("the receipt record closes after the finalized block".into());
	}
	if file.job_proof.block.checked_add(1) != Some(receipt.closed_at) {
		return Err(format!(
			"the job record is proven at block #{}, not at the block before the job closed (#{})",
			file.job_proof.block,
			receipt.closed_at.saturating_sub(1)
		));
	}
	let job = JobRecord::decode(&mut &read("job", &file.job_proof, job_key(file.job))?[..])
		.map_err(|e| format!("the proven job record does not decode: {e}"))?;
	if job.model != receipt.model || job.requester != receipt.requester {
		return Err("the proven job record is for another model or requester".into());
	}

	// 4. The claims are what was proven.
	let proven = claims_of(&receipt);
	let fields = [
		("outcome", &file.claimed.outcome, &proven.outcome),
		("model", &file.claimed.model, &proven.model),
		("requester", &file.claimed.requester, &proven.requester),
		("operator", &file.claimed.operator, &proven.operator),
		("output", &file.claimed.output, &proven.output),
		("fee", &file.claimed.fee, &proven.fee),
	];
	for (name, claimed, proven) in fields {
		if claimed != proven {
			return Err(format!(
				"the claimed {name} {claimed} differs from the {name} proven on chain {proven}"
			));
		}
	}
	if file.claimed.trace_root != proven.trace_root {
		return Err("the claimed trace root differs from the trace root proven on chain".into());
	}
	if file.claimed.closed_at != proven.closed_at {
		return Err("the claimed closing block differs from the one proven on chain".into());
	}
	Ok(Verified { receipt, job, finalized, voters: root.authorities.len() })
}

/// Re-run a model file on the proven input: `Ok(description)` when output and trace root match.
pub fn rerun(model: &[u8], v: &Verified) -> Result<String> {
	let file = verity_primitives::ModelFile::decode(model)
		.map_err(|e| format!("the model file does not decode: {e:?}"))?;
	if file.id() != v.receipt.model {
		return Err(format!(
			"the model file is model {}, the job ran model {}",
			hex(&file.id()),
			hex(&v.receipt.model)
		));
	}
	file.verify_weights()
		.map_err(|e| format!("the model file's weights do not match its header: {e:?}"))?;
	let trace = verity_primitives::execute(&file.header, &file.weights, &v.job.input)
		.map_err(|e| format!("the model does not run on the proven input: {e:?}"))?;
	let hashes = trace.step_hashes(&file.header).ok_or("the trace does not match the model")?;
	let root = verity_primitives::trace_root(&hashes);
	match v.receipt.outcome {
		Outcome::Final => {
			if trace.output() != &v.receipt.output[..] {
				return Err(format!(
					"re-run output {} differs from the receipt's output {}",
					hex(trace.output()),
					hex(&v.receipt.output)
				));
			}
			if Some(root) != v.receipt.trace_root {
				return Err(format!("re-run trace root {} differs from the receipt's", hex(&root)));
			}
			Ok(format!(
				"re-run with the reference interpreter: same output and trace root {}",
				hex(&root)
			))
		},
		_ => Ok(format!(
			"re-run with the reference interpreter: output {} (the job has no final output to compare)",
			hex(trace.output())
		)),
	}
}

impl VerifyCmd {
	pub fn run(&self, spec: &dyn sc_service::ChainSpec) -> Result<()> {
		let text = std::fs::read_to_string(&self.file)
			.map_err(|e| format!("reading {}: {e}", self.file.display()))?;
		let file: ReceiptFile = serde_json::from_str(&text)
			.map_err(|e| format!("{} is not a receipt file: {e}", self.file.display()))?;
		let root = trust_root(spec)?;
		let v = verify(&file, &root)?;
		let rerun = match &self.model {
			Some(path) => {
				let bytes =
					std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
				Some(rerun(&bytes, &v)?)
			},
			None => None,
		};
		let c = claims_of(&v.receipt);
		println!(
			"receipt verified against chain {:?} (genesis {:?})",
			spec.id(),
			root.genesis_hash
		);
		println!("  job:         {}", file.job);
		println!("  outcome:     {}", c.outcome);
		println!("  model:       {}", c.model);
		println!("  requester:   {}", c.requester);
		println!("  operator:    {}", c.operator);
		println!("  output:      {}", c.output);
		println!("  trace root:  {}", c.trace_root.as_deref().unwrap_or("-"));
		println!("  fee:         {}", c.fee);
		println!("  closed at:   #{}", c.closed_at);
		println!(
			"  finalized:   #{} {:?} (GRANDPA justification, set 0, {} voters)",
			v.finalized.0, v.finalized.1, v.voters
		);
		if let Some(r) = rerun {
			println!("  {r}");
		}
		Ok(())
	}
}
