//! The receipt file (JSON, `0x` hex for bytes), the storage keys it proves and the claims a reader
//! sees.

use pallet_verity_jobs::{Generation, Job, JobId, Outcome, Receipt};
use sp_core::crypto::Ss58Codec;
use verity_runtime::{AccountId, BlockNumber, Runtime};

use super::Result;

/// The format tag of receipt files.
pub const FORMAT: &str = "verity-receipt/1";

/// A receipt file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReceiptFile {
	/// [`FORMAT`].
	pub format: String,
	/// The job.
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
	/// `Jobs.Jobs(job)` and `Jobs.Generations(job)` at the block before the job closed (they
	/// hold the input: a classifier's input tensor, or a generation's prompt and sampling; the
	/// proof shows the generation record or its absence).
	pub job_proof: StorageProofAt,
}

/// A receipt record as a reader sees it ([`claims_of`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claims {
	/// `final`, `expired` or `fraud at step S, proven by ACCOUNT`.
	pub outcome: String,
	/// The model id (hex).
	pub model: String,
	/// SS58 address.
	pub requester: String,
	/// SS58 address.
	pub operator: String,
	/// The output tensor (hex; empty unless final).
	pub output: String,
	/// The committed trace root (hex; `None` unless final).
	pub trace_root: Option<String>,
	/// The fee paid to the operator, in plancks (decimal).
	pub fee: String,
	/// The block in which the job closed.
	pub closed_at: BlockNumber,
	/// A generation job's request and output tokens (absent for a classifier job).
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub generation: Option<GenerationClaims>,
}

/// What a generation job asked for and got, as a reader sees it ([`generation_claims`]); the
/// text is the model's tokenizer's decoding of `tokens` (the model's header commits to the
/// tokenizer file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GenerationClaims {
	/// The prompt's token ids.
	pub prompt: Vec<u32>,
	/// The most tokens the job asked for.
	pub max_new_tokens: u32,
	/// Sampling temperature in Q16 (0: greedy).
	pub temperature_q16: u32,
	/// Keep the `top_k` most likely tokens (0: off).
	pub top_k: u32,
	/// Nucleus threshold in Q16 (65,536: off).
	pub top_p_q16: u32,
	/// The job's sampling seed (hex).
	pub seed: String,
	/// The generated token ids (the receipt's output; empty unless final).
	pub tokens: Vec<u32>,
}

/// A block by number and hash (hex).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BlockRef {
	/// Its number.
	pub number: BlockNumber,
	/// Its hash (hex).
	pub hash: String,
}

/// A storage proof (trie nodes, hex) against the state root of block `block`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StorageProofAt {
	/// The block whose state root the proof is checked against.
	pub block: BlockNumber,
	/// The trie nodes.
	pub nodes: Vec<String>,
}

/// The jobs pallet's record of a closed job.
pub type JobsReceipt = Receipt<Runtime>;
/// The jobs pallet's record of an open job.
pub type JobRecord = Job<Runtime>;
/// The jobs pallet's record of an open generation job's request.
pub type GenerationRecord = Generation<Runtime>;

/// The storage key of `Jobs.Receipts(job)`.
pub fn receipt_key(job: JobId) -> Vec<u8> {
	pallet_verity_jobs::Receipts::<Runtime>::hashed_key_for(job)
}

/// The storage key of `Jobs.ReceiptDigests(job)` (what stays of a pruned receipt).
pub fn digest_key(job: JobId) -> Vec<u8> {
	pallet_verity_jobs::ReceiptDigests::<Runtime>::hashed_key_for(job)
}

/// The storage key of `Jobs.Generations(job)` (a generation job's prompt and sampling).
pub fn generation_key(job: JobId) -> Vec<u8> {
	pallet_verity_jobs::Generations::<Runtime>::hashed_key_for(job)
}

/// The storage key of `Jobs.Jobs(job)`.
pub fn job_key(job: JobId) -> Vec<u8> {
	pallet_verity_jobs::Jobs::<Runtime>::hashed_key_for(job)
}

/// The claims a receipt record shows.
pub fn claims_of(r: &JobsReceipt) -> Claims {
	Claims {
		outcome: outcome(&r.outcome),
		model: hex(&r.model),
		requester: account(&r.requester),
		operator: account(&r.operator),
		output: hex(&r.output),
		trace_root: r.trace_root.map(|h| hex(&h)),
		fee: r.fee.to_string(),
		closed_at: r.closed_at,
		generation: None,
	}
}

/// The claims of a generation job: its request (`g`) and the receipt's output as tokens.
pub fn generation_claims(r: &JobsReceipt, g: &GenerationRecord) -> GenerationClaims {
	GenerationClaims {
		prompt: g.prompt.to_vec(),
		max_new_tokens: g.max_new_tokens,
		temperature_q16: g.params.temperature_q16,
		top_k: g.params.top_k,
		top_p_q16: g.params.top_p_q16,
		seed: hex(&g.params.seed),
		tokens: tokens_of(&r.output),
	}
}

/// The token ids of a generation's output (4 bytes each, little-endian, as committed).
pub fn tokens_of(output: &[u8]) -> Vec<u32> {
	output.chunks_exact(4).filter_map(|c| c.try_into().ok().map(u32::from_le_bytes)).collect()
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
		Outcome::GenerationFraud { prover, position, op } => {
			let at = match (position, op) {
				(Some(p), Some(i)) => format!(" at step {i} of position {p}"),
				(Some(p), None) => format!(" at position {p} (not revealed)"),
				_ => " (position roots not revealed)".into(),
			};
			format!("generation fraud{at}, proven by {}", account(prover))
		},
	}
}

// The receipt's hex (`0x`, lowercase), in this one place.

/// `0x` and lowercase hex digits.
pub fn hex(bytes: &[u8]) -> String {
	verity_worker_api::hex::encode(bytes)
}

/// The bytes of a hex string (`0x` optional); errors name `what`.
pub fn unhex(what: &str, s: &str) -> Result<Vec<u8>> {
	use verity_worker_api::hex::{decode, FromHexError, HexError};
	decode(s).map_err(|e| match e {
		HexError::Invalid(FromHexError::OddLength) => {
			format!("{what}: odd number of hex digits")
		},
		_ => format!("{what}: not hex"),
	})
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn hex_round_trips_and_names_what_is_wrong() {
		assert_eq!(hex(&[]), "0x");
		assert_eq!(hex(&[0x00, 0xab, 0x7f]), "0x00ab7f");
		assert_eq!(unhex("x", "0x00ab7f"), Ok(vec![0x00, 0xab, 0x7f]));
		assert_eq!(unhex("x", "00AB7F"), Ok(vec![0x00, 0xab, 0x7f]));
		assert_eq!(unhex("x", "0x"), Ok(vec![]));
		assert_eq!(unhex("header #3", "0xabc"), Err("header #3: odd number of hex digits".into()));
		assert_eq!(unhex("header #3", "0xzz"), Err("header #3: not hex".into()));
	}

	#[test]
	fn storage_keys_are_the_pallet_prefix_and_the_hashed_job() {
		// `Jobs.Receipts(7)` and `Jobs.Jobs(7)`: twox128(pallet) ++ twox128(item) ++ key hash.
		let pallet = sp_crypto_hashing::twox_128(b"Jobs");
		for (key, item) in [(receipt_key(7), &b"Receipts"[..]), (job_key(7), &b"Jobs"[..])] {
			assert_eq!(key.get(..16), Some(&pallet[..]));
			assert_eq!(key.get(16..32), Some(&sp_crypto_hashing::twox_128(item)[..]));
			assert!(key.ends_with(&codec::Encode::encode(&7u64)), "the hasher keeps the job id");
		}
		assert_ne!(receipt_key(7), receipt_key(8));
	}
}
