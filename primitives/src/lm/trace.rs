//! Commitments of a generation and the one-step proof.
//!
//! * step hash: the keyed BLAKE3 hash of the step's output, key [`LM_STEP_KEY`];
//! * position root: the root of the binary tree ([`LmTree`]: the shape of
//!   [`crate::commit::trace_root`], the step hashes themselves as leaves, nodes the keyed
//!   BLAKE3 hash of `left || right` with key [`LM_NODE_KEY`]) over the step hashes of a
//!   position, in op order;
//! * job root: the same tree over the position roots.
//!
//! A step hash does not name its position and op: the tree does. Every inclusion proof a
//! verifier accepts is checked at its leaf index (the op) among the position's leaf count, under
//! the root of its position, so the same output at another step cannot stand in for it; and
//! leaves and nodes are hashed under different keys.
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
	commit::{
		merkle_levels, merkle_proof_from_levels, trace_root, tree_levels, tree_root,
		verify_inclusion, verify_inclusion_in, MerkleProof, TreeHash,
	},
	fraud::Verdict,
	model::Hash,
};

/// The BLAKE3 key of transformer step hashes: `verity/lm/step/v2`, zero-padded to 32 bytes.
pub const LM_STEP_KEY: [u8; 32] = *b"verity/lm/step/v2\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

/// The BLAKE3 key of the nodes of position and job trees: `verity/lm/node/v2`, zero-padded
/// to 32 bytes.
pub const LM_NODE_KEY: [u8; 32] = *b"verity/lm/node/v2\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

/// The step hash of an output: `BLAKE3-keyed(LM_STEP_KEY, output)`, 32 bytes.
pub fn lm_step_hash(output: &[u8]) -> Hash {
	*blake3::keyed_hash(&LM_STEP_KEY, output).as_bytes()
}

/// A node of a position or job tree: `BLAKE3-keyed(LM_NODE_KEY, left || right)`.
pub fn lm_node(left: &Hash, right: &Hash) -> Hash {
	let mut buf = [0u8; 64];
	let (l, r) = buf.split_at_mut(32);
	l.copy_from_slice(left);
	r.copy_from_slice(right);
	*blake3::keyed_hash(&LM_NODE_KEY, &buf).as_bytes()
}

/// The hashing of position and job trees: the hashes themselves as leaves, [`lm_node`] as
/// nodes.
pub enum LmTree {}

impl TreeHash for LmTree {
	fn leaf(h: &Hash) -> Hash {
		*h
	}
	fn node(left: &Hash, right: &Hash) -> Hash {
		lm_node(left, right)
	}
}

/// The root of one position: the [`LmTree`] root over its step hashes in op order.
pub fn position_root(step_hashes: &[Hash]) -> Hash {
	tree_root::<LmTree>(step_hashes)
}

/// The job root: the [`LmTree`] root over the position roots.
pub fn job_root(position_roots: &[Hash]) -> Hash {
	tree_root::<LmTree>(position_roots)
}

/// Every level of a position's tree ([`crate::commit::merkle_levels`] for [`LmTree`]), for
/// taking inclusion proofs with [`merkle_proof_from_levels`].
pub fn position_levels(step_hashes: &[Hash]) -> Vec<Vec<Hash>> {
	tree_levels::<LmTree>(step_hashes)
}

/// `leaf` at `proof.leaf_index` of a position or job tree with root `root`
/// ([`crate::commit::verify_inclusion`] for [`LmTree`]).
pub fn verify_lm_inclusion(root: &Hash, leaf: &Hash, proof: &MerkleProof) -> bool {
	verify_inclusion_in::<LmTree>(root, leaf, proof)
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
		for outputs in &self.outputs {
			all.push(outputs.iter().map(|o| lm_step_hash(o)).collect());
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
/// 5. [`Verdict::Fraud`] iff `lm_step_hash(output) != committed`.
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
	let at = |p: &MerkleProof, index: u64, count: u64| {
		u64::from(p.leaf_index) == index && u64::from(p.leaf_count) == count
	};
	// A step hash under a position root, a weight chunk's hash under `weights_root`.
	let in_tree = |root: &Hash, leaf: &Hash, p: &MerkleProof, index: u64, count: u64| {
		at(p, index, count) && verify_lm_inclusion(root, leaf, p)
	};
	let in_weights = |leaf: &Hash, p: &MerkleProof, index: u64, count: u64| {
		at(p, index, count) && verify_inclusion(&h.weights_root, leaf, p)
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
			let leaf = lm_step_hash(&input.data);
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
			&& in_weights(&blake2_256(&w.data), &w.proof, c, h.num_weight_chunks());
		if !ok {
			return Err(mismatch);
		}
	}
	let weights: Vec<&[u8]> = proof.weights.iter().map(|w| w.data.as_slice()).collect();
	let output =
		execute_op(h, job, position, op, &groups, &weights).map_err(LmProofError::Execution)?;
	Ok(if lm_step_hash(&output) == proof.committed { Verdict::NoFraud } else { Verdict::Fraud })
}

/// Merkle trees built once for a prover: every level ([`merkle_levels`]) of the weights tree
/// and of each position tree of the operator's revealed step hashes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ProverTrees {
	/// Levels of the tree over the weight chunk hashes.
	pub weights: Vec<Vec<Hash>>,
	/// Levels of each position's tree ([`position_levels`]) over the revealed step hashes
	/// `committed[t][i]`.
	pub positions: Vec<Vec<Vec<Hash>>>,
}

impl ProverTrees {
	/// Build the trees from the weight chunks and the revealed step hashes.
	pub fn new<W: AsRef<[u8]>>(weights: &[W], committed: &[Vec<Hash>]) -> ProverTrees {
		ProverTrees {
			weights: merkle_levels(&chunk_hashes(weights)),
			positions: committed.iter().map(|leaves| position_levels(leaves)).collect(),
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

#[cfg(test)]
mod tests {
	use super::*;
	use crate::commit::trace_root;

	#[test]
	fn step_hash_is_keyed_blake3_with_the_named_key() {
		for (key, name) in
			[(LM_STEP_KEY, b"verity/lm/step/v2"), (LM_NODE_KEY, b"verity/lm/node/v2")]
		{
			assert_eq!(&key[..17], name);
			assert!(key[17..].iter().all(|&b| b == 0));
		}
		// The BLAKE3 specification's keyed-hash test vector (1,025 bytes `i % 251`, key "whats
		// the Elvish word for friend"): the crate is the specification's function.
		let input: Vec<u8> = (0..1025u32).map(|i| (i % 251) as u8).collect();
		let vector = blake3::keyed_hash(b"whats the Elvish word for friend", &input);
		assert_eq!(
			vector.to_hex().as_str(),
			"357dc55de0c7e382c900fd6e320acc04146be01db6a8ce7210b7189bd664ea69"
		);
		assert_eq!(lm_step_hash(&input), *blake3::keyed_hash(&LM_STEP_KEY, &input).as_bytes());
		// Leaves and nodes are hashed under different keys.
		let (a, b) = (lm_step_hash(b"a"), lm_step_hash(b"b"));
		let mut pair = a.to_vec();
		pair.extend_from_slice(&b);
		assert_eq!(lm_node(&a, &b), *blake3::keyed_hash(&LM_NODE_KEY, &pair).as_bytes());
		assert_ne!(lm_node(&a, &b), lm_step_hash(&pair));
	}

	#[test]
	fn position_trees_prove_each_leaf_at_its_index_only() {
		for n in [1u32, 2, 3, 5, 8, 13, 100] {
			let leaves: Vec<Hash> = (0..n).map(|i| lm_step_hash(&i.to_le_bytes())).collect();
			let root = position_root(&leaves);
			let levels = position_levels(&leaves);
			assert_eq!(levels.last().and_then(|l| l.first()), Some(&root));
			assert_eq!(job_root(&leaves), root);
			// Not the classifier's tree (which hashes every leaf again).
			assert_ne!(root, trace_root(&leaves));
			for i in 0..n {
				let (leaf, other) = (leaves[i as usize], leaves[((i + 1) % n) as usize]);
				let proof = merkle_proof_from_levels(&levels, i).unwrap();
				assert!(verify_lm_inclusion(&root, &leaf, &proof), "{n} {i}");
				if n > 1 {
					assert!(!verify_lm_inclusion(&root, &other, &proof), "{n} {i}");
					assert!(!verify_inclusion(&root, &leaf, &proof), "{n} {i}");
					let mut moved = proof.clone();
					moved.leaf_index = (i + 1) % n;
					assert!(!verify_lm_inclusion(&root, &leaf, &moved), "{n} {i}");
				}
			}
		}
		let (a, b, c) = (lm_step_hash(b"a"), lm_step_hash(b"b"), lm_step_hash(b"c"));
		assert_eq!(position_root(&[a]), a);
		assert_eq!(position_root(&[a, b, c]), lm_node(&lm_node(&a, &b), &c));
		assert_eq!(position_root(&[]), [0u8; 32]);
	}
}
