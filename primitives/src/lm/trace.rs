//! Commitments of a generation and the one-step proof.
//!
//! * step hash `blake2_256(b"verity/lm/step/v1" || u32_le(position) || u32_le(op) || output)`;
//! * position root: the Merkle root ([`crate::commit::trace_root`]) over the step hashes of a
//!   position, in op order;
//! * job root: the same Merkle root over the position roots.
//!
//! The chain stores the position roots (32 bytes per position) and the job root. A step proof
//! carries the disputed step's committed hash with its inclusion proof, every input step's
//! output with its inclusion proof against the root of the position that produced it (the
//! keys and values of earlier positions included), and every weight chunk with its inclusion
//! proof against the header's `weights_root`. [`check_step_proof`] re-executes the step.

use alloc::vec::Vec;
use codec::{Decode, Encode, MaxEncodedLen};
use scale_info::TypeInfo;
use sp_crypto_hashing::blake2_256;

use super::{
	graph::{op_at, op_inputs, ops_at, output_elements, Shape},
	header::{LmHeader, ELEMENT_BYTES},
	interp::{execute_op, gather_inputs, generate, step_chunks, LmExecError, LmJob, LmTrace},
};
use crate::{
	commit::{merkle_levels, merkle_proof_from_levels, trace_root, verify_inclusion, MerkleProof},
	fraud::Verdict,
	model::Hash,
};

/// Domain tag of transformer step hashes.
pub const LM_STEP_TAG: &[u8] = b"verity/lm/step/v1";

/// `blake2_256(b"verity/lm/step/v1" || u32_le(position) || u32_le(op) || output)`.
pub fn lm_step_hash(position: u32, op: u32, output: &[u8]) -> Hash {
	let mut buf = Vec::with_capacity(LM_STEP_TAG.len() + 8 + output.len());
	buf.extend_from_slice(LM_STEP_TAG);
	buf.extend_from_slice(&position.to_le_bytes());
	buf.extend_from_slice(&op.to_le_bytes());
	buf.extend_from_slice(output);
	blake2_256(&buf)
}

/// The root of one position: [`trace_root`] over its step hashes in op order.
pub fn position_root(step_hashes: &[Hash]) -> Hash {
	trace_root(step_hashes)
}

/// The job root: [`trace_root`] over the position roots.
pub fn job_root(position_roots: &[Hash]) -> Hash {
	trace_root(position_roots)
}

/// `blake2_256` of each weight chunk: the leaves of `weights_root`.
pub fn chunk_hashes<W: AsRef<[u8]>>(chunks: &[W]) -> Vec<Hash> {
	chunks.iter().map(|c| blake2_256(c.as_ref())).collect()
}

/// The `weights_root` of a model: [`trace_root`] over [`chunk_hashes`], in leaf order.
pub fn weights_root<W: AsRef<[u8]>>(chunks: &[W]) -> Hash {
	trace_root(&chunk_hashes(chunks))
}

impl LmTrace {
	/// The step hashes, `[position][op]`.
	pub fn step_hashes(&self) -> Vec<Vec<Hash>> {
		let mut all = Vec::with_capacity(self.outputs.len());
		for (t, outputs) in self.outputs.iter().enumerate() {
			let t = crate::len_u32(t);
			let hashes = outputs
				.iter()
				.enumerate()
				.map(|(i, o)| lm_step_hash(t, crate::len_u32(i), o))
				.collect();
			all.push(hashes);
		}
		all
	}

	/// The position roots.
	pub fn position_roots(&self) -> Vec<Hash> {
		self.step_hashes().iter().map(|h| position_root(h)).collect()
	}
}

/// A committed step output with its inclusion proof in its position's tree.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct ProvenOutput {
	pub position: u32,
	pub op: u32,
	pub data: Vec<u8>,
	pub proof: MerkleProof,
}

/// A weight chunk with its inclusion proof in `weights_root` (`proof.leaf_index` is the
/// chunk's index).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct ProvenChunk {
	pub data: Vec<u8>,
	pub proof: MerkleProof,
}

/// A claim that the operator's committed hash of step `(position, op)` is wrong.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct LmStepProof {
	pub position: u32,
	pub op: u32,
	/// The operator's (revealed) step hash and its inclusion proof in the position root.
	pub committed: Hash,
	pub committed_proof: MerkleProof,
	/// The input groups of [`op_inputs`], each step with its proof, in order.
	pub inputs: Vec<Vec<ProvenOutput>>,
	/// The weight chunks of [`super::graph::op_weights`], in order.
	pub weights: Vec<ProvenChunk>,
}

/// Why a step proof is rejected (not judged).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum LmProofError {
	/// The job does not fit the model, or there are more position roots than `max_context`.
	BadJob,
	/// The position has no committed root, or the op does not exist there.
	NoSuchStep,
	/// The committed hash is not at `(position, op)` of the position root.
	CommittedMismatch,
	/// The input groups do not have the expected number of groups or steps.
	WrongInputCount,
	/// Input step `index` (counted over all groups) is not the expected step, has the wrong
	/// length, or is not included in its position root.
	InputMismatch { index: u32 },
	/// The number of weight chunks is wrong.
	WrongWeightCount,
	/// Weight chunk `index` (in the step's order) is not the expected chunk, has the wrong
	/// length, or is not included in `weights_root`.
	WeightMismatch { index: u32 },
	/// The step could not be executed (an invalid header, or an out-of-range token).
	Execution(LmExecError),
}

impl core::fmt::Display for LmProofError {
	fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
		write!(f, "step proof rejected: {:?}", self)
	}
}

#[cfg(feature = "std")]
impl std::error::Error for LmProofError {}

/// Number of leaves of position `position`'s tree.
fn leaves_at(h: &LmHeader, job: &LmJob, position: u32) -> u64 {
	ops_at(h, Shape::at(h, job.prompt_len(), position))
}

/// Judge a step proof against the committed position roots of a job:
///
/// 1. the job fits the model, `position < position_roots.len() <= max_context`, the op
///    exists at that position, and `committed` is leaf `op` of `leaves_at(position)` leaves
///    under `position_roots[position]`;
/// 2. the input groups are exactly the steps of [`op_inputs`]; each has the output length of
///    its op and its step hash is included at `(r.position, r.op)` under
///    `position_roots[r.position]` (leaf count of that position);
/// 3. the weight chunks are exactly those of the step (an `Embed` step's depends on its
///    token), each of its declared length and included under `weights_root` with leaf count
///    `num_weight_chunks`;
/// 4. the step is re-executed with [`execute_op`];
/// 5. [`Verdict::Fraud`] iff `lm_step_hash(position, op, output) != committed`.
///
/// A failure of 1-4 is an `Err`: the proof is rejected, never judged.
pub fn check_step_proof(
	h: &LmHeader,
	job: &LmJob,
	position_roots: &[Hash],
	proof: &LmStepProof,
) -> Result<Verdict, LmProofError> {
	job.check(h).map_err(|_| LmProofError::BadJob)?;
	if position_roots.len() as u64 > u64::from(h.max_context) {
		return Err(LmProofError::BadJob);
	}
	let (position, op) = (proof.position, proof.op);
	let root_of = |p: u32| position_roots.get(usize::try_from(p).ok()?);
	let root = root_of(position).ok_or(LmProofError::NoSuchStep)?;
	let prompt_len = job.prompt_len();
	let kind = op_at(h, Shape::at(h, prompt_len, position), op).ok_or(LmProofError::NoSuchStep)?;
	let in_tree = |root: &Hash, leaf: &Hash, p: &MerkleProof, index: u64, count: u64| {
		u64::from(p.leaf_index) == index
			&& u64::from(p.leaf_count) == count
			&& verify_inclusion(root, leaf, p)
	};
	let count = leaves_at(h, job, position);
	if !in_tree(root, &proof.committed, &proof.committed_proof, u64::from(op), count) {
		return Err(LmProofError::CommittedMismatch);
	}
	let expected = op_inputs(h, prompt_len, position, kind).ok_or(LmProofError::NoSuchStep)?;
	if expected.len() != proof.inputs.len()
		|| expected.iter().zip(&proof.inputs).any(|(e, g)| e.len() != g.len())
	{
		return Err(LmProofError::WrongInputCount);
	}
	let mut groups = Vec::with_capacity(expected.len());
	let mut index = 0u32;
	for (want, got) in expected.iter().zip(&proof.inputs) {
		let mut bytes = Vec::new();
		for (r, input) in want.iter().zip(got) {
			let mismatch = LmProofError::InputMismatch { index };
			let producer = op_at(h, Shape::at(h, prompt_len, r.position), r.op).ok_or(mismatch)?;
			let len = u64::from(output_elements(h, producer)) * ELEMENT_BYTES;
			let leaf = lm_step_hash(r.position, r.op, &input.data);
			let ok = input.position == r.position
				&& input.op == r.op
				&& input.data.len() as u64 == len
				&& root_of(r.position).is_some_and(|root| {
					in_tree(
						root,
						&leaf,
						&input.proof,
						u64::from(r.op),
						leaves_at(h, job, r.position),
					)
				});
			if !ok {
				return Err(mismatch);
			}
			bytes.extend_from_slice(&input.data);
			index = index.saturating_add(1);
		}
		groups.push(bytes);
	}
	let chunks = step_chunks(h, job, position, op, &groups).map_err(LmProofError::Execution)?;
	if chunks.len() != proof.weights.len() {
		return Err(LmProofError::WrongWeightCount);
	}
	for (i, (&(chunk, c), w)) in chunks.iter().zip(&proof.weights).enumerate() {
		let mismatch = LmProofError::WeightMismatch { index: crate::len_u32(i) };
		let ok = w.data.len() as u64 == h.chunk_bytes(chunk)
			&& in_tree(&h.weights_root, &blake2_256(&w.data), &w.proof, c, h.num_weight_chunks());
		if !ok {
			return Err(mismatch);
		}
	}
	let weights: Vec<&[u8]> = proof.weights.iter().map(|w| w.data.as_slice()).collect();
	let output =
		execute_op(h, job, position, op, &groups, &weights).map_err(LmProofError::Execution)?;
	Ok(if lm_step_hash(position, op, &output) == proof.committed {
		Verdict::NoFraud
	} else {
		Verdict::Fraud
	})
}

/// Merkle trees built once for a prover: every level ([`merkle_levels`]) of the weights tree
/// and of each position tree of the operator's revealed step hashes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ProverTrees {
	/// Levels of the tree over the weight chunk hashes.
	pub weights: Vec<Vec<Hash>>,
	/// Levels of each position's tree over the revealed step hashes `committed[t][i]`.
	pub positions: Vec<Vec<Vec<Hash>>>,
}

impl ProverTrees {
	/// Build the trees from the weight chunks and the revealed step hashes.
	pub fn new<W: AsRef<[u8]>>(weights: &[W], committed: &[Vec<Hash>]) -> ProverTrees {
		ProverTrees {
			weights: merkle_levels(&chunk_hashes(weights)),
			positions: committed.iter().map(|leaves| merkle_levels(leaves)).collect(),
		}
	}
}

/// The step proof of `(position, op)` from an honest trace, the model's weight chunks, the
/// operator's revealed step hashes (`committed[t][i]`) and the [`ProverTrees`] built from
/// them (the inclusion proofs are taken in the operator's trees). `None` if the step or a
/// revealed position is missing.
#[allow(clippy::too_many_arguments)]
pub fn build_step_proof<W: AsRef<[u8]>>(
	h: &LmHeader,
	weights: &[W],
	job: &LmJob,
	trace: &LmTrace,
	committed: &[Vec<Hash>],
	trees: &ProverTrees,
	position: u32,
	op: u32,
) -> Option<LmStepProof> {
	let prove = |p: u32, i: u32| -> Option<MerkleProof> {
		merkle_proof_from_levels(trees.positions.get(usize::try_from(p).ok()?)?, i)
	};
	let leaves = committed.get(usize::try_from(position).ok()?)?;
	let committed_hash = *leaves.get(usize::try_from(op).ok()?)?;
	let committed_proof = prove(position, op)?;
	let kind = op_at(h, Shape::at(h, job.prompt_len(), position), op)?;
	let mut inputs = Vec::new();
	for group in op_inputs(h, job.prompt_len(), position, kind)? {
		let mut proven = Vec::with_capacity(group.len());
		for r in group {
			proven.push(ProvenOutput {
				position: r.position,
				op: r.op,
				data: trace.output(r.position, r.op)?.to_vec(),
				proof: prove(r.position, r.op)?,
			});
		}
		inputs.push(proven);
	}
	let groups = gather_inputs(h, job, trace, position, op).ok()?;
	let mut proven_chunks = Vec::new();
	for (_, c) in step_chunks(h, job, position, op, &groups).ok()? {
		let index = u32::try_from(c).ok()?;
		let data = weights.get(usize::try_from(c).ok()?)?.as_ref().to_vec();
		let proof = merkle_proof_from_levels(&trees.weights, index)?;
		proven_chunks.push(ProvenChunk { data, proof });
	}
	Some(LmStepProof {
		position,
		op,
		committed: committed_hash,
		committed_proof,
		inputs,
		weights: proven_chunks,
	})
}

/// Why [`find_lm_fraud`] cannot produce a proof.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum LmFindFraudError {
	/// Honest generation failed.
	Execution(LmExecError),
	/// Revealed position `position` does not have the number of leaves its op list has.
	WrongLeafCount { position: u32 },
	/// The commitment has a different number of positions than the honest generation and
	/// agrees with it on every common step (a matter for the chain's output checks, not a
	/// step proof).
	LengthMismatch,
}

/// Re-run the generation honestly and compare with the operator's revealed step hashes
/// (`committed[t][i]`). `Ok(None)` if they are identical; otherwise the step proof of the
/// first differing step in `(position, op)` order. Every input of that step is an earlier
/// step (an earlier op of the same position, or an earlier position), so its committed hash
/// is honest and [`check_step_proof`] returns `Fraud`.
pub fn find_lm_fraud<W: AsRef<[u8]>>(
	h: &LmHeader,
	weights: &[W],
	job: &LmJob,
	committed: &[Vec<Hash>],
) -> Result<Option<LmStepProof>, LmFindFraudError> {
	let trace = generate(h, weights, job).map_err(LmFindFraudError::Execution)?;
	for (t, leaves) in committed.iter().enumerate() {
		let t = crate::len_u32(t);
		if leaves.len() as u64 != leaves_at(h, job, t) {
			return Err(LmFindFraudError::WrongLeafCount { position: t });
		}
	}
	let honest = trace.step_hashes();
	for (t, (mine, theirs)) in honest.iter().zip(committed).enumerate() {
		if let Some(i) = mine.iter().zip(theirs).position(|(a, b)| a != b) {
			let (t, i) = (crate::len_u32(t), crate::len_u32(i));
			let trees = ProverTrees::new(weights, committed);
			let proof = build_step_proof(h, weights, job, &trace, committed, &trees, t, i);
			return Ok(proof);
		}
	}
	if honest.len() != committed.len() {
		return Err(LmFindFraudError::LengthMismatch);
	}
	Ok(None)
}
