//! `receipt verify`: check a receipt file against the genesis of a chain specification, and
//! re-run the model.

use codec::Decode;
use pallet_verity_jobs::Outcome;
use sc_consensus_grandpa::GrandpaJustification;
use sp_consensus_grandpa::{AuthorityList, ConsensusLog, GRANDPA_ENGINE_ID};
use sp_core::H256;
use sp_runtime::{
	generic::DigestItem,
	traits::{BlakeTwo256, Header as _},
};
use verity_runtime::{opaque::Block, BlockNumber, Header, Runtime};

use super::{
	file::{
		claims_of, generation_claims, generation_key, hex, job_key, receipt_key, tokens_of, unhex,
		GenerationRecord, JobRecord, JobsReceipt, StorageProofAt,
	},
	ReceiptFile, Result, FORMAT,
};

/// What `verify` trusts: the chain specification's genesis.
pub struct TrustRoot {
	/// The genesis block's hash.
	pub genesis_hash: H256,
	/// The GRANDPA authority set of the genesis (set id 0).
	pub authorities: AuthorityList,
}

/// The genesis hash and GRANDPA authority set of a chain specification.
pub fn trust_root(spec: &dyn sc_service::ChainSpec) -> Result<TrustRoot> {
	let storage = spec.build_storage().map_err(|e| format!("building the genesis state: {e}"))?;
	let executor = sc_executor::WasmExecutor::<sp_io::SubstrateHostFunctions>::builder().build();
	let state_version =
		sc_service::resolve_state_version_from_wasm::<_, BlakeTwo256>(&storage, &executor)
			.map_err(|e| format!("reading the runtime version of the genesis: {e}"))?;
	// Stored as the pallet's `BoundedAuthorityList`, which encodes as an `AuthorityList`.
	let authorities = storage
		.top
		.get(&pallet_grandpa::Authorities::<Runtime>::hashed_key()[..])
		.ok_or("the chain specification has no GRANDPA authorities")
		.and_then(|v| {
			AuthorityList::decode(&mut &v[..]).map_err(|_| "its GRANDPA authorities do not decode")
		})?;
	let backend: sp_state_machine::TrieBackend<_, BlakeTwo256> = (storage, state_version).into();
	let genesis = sc_service::construct_genesis_block::<Block>(*backend.root(), state_version);
	Ok(TrustRoot { genesis_hash: genesis.header.hash(), authorities })
}

/// The GRANDPA authorities that are public development keys (`//Alice`, `//Bob`, ... of the
/// well-known development phrase), by name: whoever holds the phrase (everyone) can finalize
/// blocks of such a chain.
pub fn development_keys(authorities: &AuthorityList) -> Vec<String> {
	sp_keyring::Ed25519Keyring::iter()
		.filter(|k| {
			let key = sp_consensus_grandpa::AuthorityId::from(k.public());
			authorities.iter().any(|(id, _)| *id == key)
		})
		.map(|k| k.to_seed())
		.collect()
}

/// What a verified receipt shows.
#[derive(Debug)]
pub struct Verified {
	/// The proven `Jobs.Receipts(job)` record.
	pub receipt: JobsReceipt,
	/// The proven `Jobs.Jobs(job)` record of the block before the job closed.
	pub job: JobRecord,
	/// The proven `Jobs.Generations(job)` record of that block: the prompt and sampling of a
	/// generation job (`None`: a classifier job).
	pub generation: Option<GenerationRecord>,
	/// The last header, final by the justification.
	pub finalized: (BlockNumber, H256),
	/// The size of the GRANDPA set that signed it.
	pub voters: usize,
}

/// Check a receipt file against a trust root; every failure names what is wrong.
pub fn verify(file: &ReceiptFile, root: &TrustRoot) -> Result<Verified> {
	if file.format != FORMAT {
		return Err(format!("unknown receipt format {:?} (expected {FORMAT})", file.format));
	}
	let headers = header_chain(&file.headers, root.genesis_hash)?;
	let last = headers.last().ok_or("the receipt has no headers")?;
	let finalized = (*last.number(), last.hash());
	check_justification(&file.justification, finalized, &root.authorities)?;

	// The records, by storage proofs against the state roots of their blocks.
	let [receipt] = read_proven(&headers, "receipt", &file.receipt_proof, [receipt_key(file.job)])?;
	let receipt = receipt.ok_or_else(|| {
		format!("the receipt proof shows no record at block #{}", file.receipt_proof.block)
	})?;
	let receipt = JobsReceipt::decode(&mut &receipt[..])
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
	let [job, generation] = read_proven(
		&headers,
		"job",
		&file.job_proof,
		[job_key(file.job), generation_key(file.job)],
	)?;
	let job = job.ok_or_else(|| {
		format!("the job proof shows no record at block #{}", file.job_proof.block)
	})?;
	let job = JobRecord::decode(&mut &job[..])
		.map_err(|e| format!("the proven job record does not decode: {e}"))?;
	if job.model != receipt.model || job.requester != receipt.requester {
		return Err("the proven job record is for another model or requester".into());
	}
	let generation = generation
		.map(|g| {
			GenerationRecord::decode(&mut &g[..])
				.map_err(|e| format!("the proven generation record does not decode: {e}"))
		})
		.transpose()?;
	if generation.is_none() && matches!(receipt.outcome, Outcome::GenerationFraud { .. }) {
		return Err("a generation's fraud outcome for a job that is not a generation".into());
	}

	check_claims(file, &receipt)?;
	let proven = generation.as_ref().map(|g| generation_claims(&receipt, g));
	if file.claimed.generation != proven {
		return Err(match proven {
			None => "the receipt claims a generation; the job proven on chain is not one".into(),
			Some(_) => "the claimed generation (prompt, sampling, tokens) differs from the one \
			            proven on chain"
				.into(),
		});
	}
	Ok(Verified { receipt, job, generation, finalized, voters: root.authorities.len() })
}

/// Headers 1, 2, ... as one chain from `genesis`, none of them changing the GRANDPA set.
fn header_chain(hex_headers: &[String], genesis: H256) -> Result<Vec<Header>> {
	let mut headers = Vec::with_capacity(hex_headers.len());
	let mut parent = genesis;
	for (i, text) in hex_headers.iter().enumerate() {
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
		if header.digest().logs().iter().any(changes_grandpa_set) {
			return Err(format!(
				"header #{number} changes the GRANDPA authority set; receipts across a set change are not supported"
			));
		}
		parent = header.hash();
		headers.push(header);
	}
	Ok(headers)
}

fn changes_grandpa_set(log: &DigestItem) -> bool {
	match log {
		DigestItem::Consensus(id, data) if *id == GRANDPA_ENGINE_ID => matches!(
			ConsensusLog::<BlockNumber>::decode(&mut &data[..]),
			Ok(ConsensusLog::ScheduledChange(_) | ConsensusLog::ForcedChange(..))
		),
		_ => false,
	}
}

/// The justification finalizes `finalized`, signed by the genesis set (set id 0).
fn check_justification(
	hex_justification: &str,
	finalized: (BlockNumber, H256),
	authorities: &AuthorityList,
) -> Result<()> {
	let justification = unhex("justification", hex_justification)?;
	let justification = GrandpaJustification::<Block>::decode(&justification)
		.map_err(|e| format!("the justification does not decode: {e}"))?;
	if justification.target() != finalized {
		return Err(format!(
			"the justification finalizes block #{}, not the last header #{}",
			justification.target().0,
			finalized.0
		));
	}
	justification
		.verify(0, authorities)
		.map_err(|e| format!("the justification does not prove block #{} final: {e}", finalized.0))
}

/// The values at `keys` in the state of `proof.block`, by the proof (`None`: proven absent).
fn read_proven<const N: usize>(
	headers: &[Header],
	what: &str,
	proof: &StorageProofAt,
	keys: [Vec<u8>; N],
) -> Result<[Option<Vec<u8>>; N]> {
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
		keys.iter().map(|k| k.as_slice()),
	)
	.map_err(|e| {
		format!("the {what} proof does not match the state root of block #{}: {e}", proof.block)
	})?;
	Ok(keys.map(|k| values.get(&k).cloned().flatten()))
}

/// The file's claims are what the proven receipt record shows.
fn check_claims(file: &ReceiptFile, receipt: &JobsReceipt) -> Result<()> {
	let proven = claims_of(receipt);
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
	Ok(())
}

/// Re-run a model file on the proven input: `Ok(description)` when output and trace root match.
/// A generation job is generated again from its proven prompt and sampling with a language
/// model file (`.vlm`), and its tokens and job root compared.
pub fn rerun(model: &[u8], v: &Verified) -> Result<String> {
	if let Some(g) = &v.generation {
		return regenerate(model, v, g);
	}
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

/// [`rerun`] of a generation job: the reference interpreter generates the proven job again with
/// the language model file; `Ok(description)` when tokens and job root are the receipt's.
fn regenerate(model: &[u8], v: &Verified, g: &GenerationRecord) -> Result<String> {
	use verity_primitives::lm::{file::LmFile, interp, trace};
	let file = LmFile::decode(model, u32::MAX)
		.map_err(|e| format!("the model file is not a language model file: {e}"))?;
	if file.id() != v.receipt.model {
		return Err(format!(
			"the model file is model {}, the job ran model {}",
			hex(&file.id()),
			hex(&v.receipt.model)
		));
	}
	file.verify_hashes(&v.receipt.model)
		.map_err(|e| format!("the model file's weights do not match its header: {e}"))?;
	let job = interp::LmJob {
		prompt: g.prompt.to_vec(),
		params: g.params,
		max_new_tokens: g.max_new_tokens,
	};
	let run = interp::generate(&file.header, &file.chunks, &job)
		.map_err(|e| format!("the model does not run the proven job: {e}"))?;
	let roots: Vec<_> = run.step_hashes().iter().map(|h| trace::position_root(h)).collect();
	let root = trace::job_root(&roots);
	let n = run.tokens.len();
	match v.receipt.outcome {
		Outcome::Final => {
			let committed = tokens_of(&v.receipt.output);
			if run.tokens != committed {
				return Err(format!(
					"re-generated tokens {:?} differ from the receipt's {committed:?}",
					run.tokens
				));
			}
			if Some(root) != v.receipt.trace_root {
				return Err(format!("re-generated job root {} differs from the receipt's", hex(&root)));
			}
			Ok(format!(
				"re-generated with the reference interpreter: the same {n} tokens and job root {}",
				hex(&root)
			))
		},
		_ => Ok(format!(
			"re-generated with the reference interpreter: {n} tokens {:?}, job root {} (the job has no final output to compare)",
			run.tokens,
			hex(&root)
		)),
	}
}
