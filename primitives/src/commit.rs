//! Trace commitments: step hashes, the trace root (a binary Merkle tree) and inclusion proofs.

use alloc::vec::Vec;
use codec::{Decode, Encode};
use scale_info::TypeInfo;
use sp_crypto_hashing::blake2_256;

use crate::model::{Hash, ModelHeader};

/// Domain tag of step hashes.
pub const STEP_TAG: &[u8] = b"verity/step/v1";

/// Prefix byte of a Merkle leaf node: `leaf = blake2_256(0x00 || h_i)`.
pub const MERKLE_LEAF_PREFIX: u8 = 0x00;

/// Prefix byte of an internal Merkle node: `node = blake2_256(0x01 || left || right)`.
pub const MERKLE_NODE_PREFIX: u8 = 0x01;

/// The step hash
/// `h_i = blake2_256(b"verity/step/v1" || u32_le(step) || SCALE(shape as Vec<u32>) || data)`,
/// where `SCALE(shape)` is the compact-encoded dimension count followed by each dimension as
/// a little-endian `u32`. `h_0` hashes the model input (`step = 0`, the input shape).
///
/// The part before `data` is [`encode_step_prefix`]; batched implementations hash
/// `prefix || data` with BLAKE2b-256 (unkeyed, 32-byte output) and must equal this function.
pub fn step_hash(step: u32, shape: &[u32], data: &[u8]) -> Hash {
	let mut buf = Vec::with_capacity(step_prefix_len(shape) + data.len());
	encode_step_prefix(step, shape, &mut buf);
	buf.extend_from_slice(data);
	blake2_256(&buf)
}

/// Appends the framing that a step hash puts before the tensor bytes,
/// `b"verity/step/v1" || u32_le(step) || SCALE(shape as Vec<u32>)`, to `out` (the one
/// definition of that framing; see [`step_hash`]).
pub fn encode_step_prefix(step: u32, shape: &[u32], out: &mut Vec<u8>) {
	out.extend_from_slice(STEP_TAG);
	out.extend_from_slice(&step.to_le_bytes());
	shape.encode_to(out);
}

/// The length in bytes of [`encode_step_prefix`]'s output for a tensor of `shape`.
pub fn step_prefix_len(shape: &[u32]) -> usize {
	STEP_TAG.len().saturating_add(4).saturating_add(shape.encoded_size())
}

/// The step hash of tensor `index` of a model (0 = input) with the shape the header declares;
/// `None` if the header has no such tensor.
pub fn tensor_hash(header: &ModelHeader, index: u32, data: &[u8]) -> Option<Hash> {
	Some(step_hash(index, &header.tensor_spec(index)?.shape, data))
}

/// A Merkle leaf: `blake2_256(0x00 || h)`.
pub fn merkle_leaf(h: &Hash) -> Hash {
	let mut buf = [0u8; 33];
	let (prefix, rest) = buf.split_at_mut(1);
	prefix.copy_from_slice(&[MERKLE_LEAF_PREFIX]);
	rest.copy_from_slice(h);
	blake2_256(&buf)
}

/// An internal Merkle node: `blake2_256(0x01 || left || right)`.
pub fn merkle_node(left: &Hash, right: &Hash) -> Hash {
	let mut buf = [0u8; 65];
	let (prefix, rest) = buf.split_at_mut(1);
	prefix.copy_from_slice(&[MERKLE_NODE_PREFIX]);
	let (l, r) = rest.split_at_mut(32);
	l.copy_from_slice(left);
	r.copy_from_slice(right);
	blake2_256(&buf)
}

/// How a Merkle tree of this module's shape hashes: its leaves (from the hashes it is built
/// over) and its internal nodes. The shape (pairing left to right, an odd last node promoted)
/// and the inclusion proofs are the same for every tree; only the hashing differs.
pub trait TreeHash {
	/// The leaf of hash `h`.
	fn leaf(h: &Hash) -> Hash;
	/// The parent of two nodes.
	fn node(left: &Hash, right: &Hash) -> Hash;
}

/// The tree of classifier traces and of model weights: leaves [`merkle_leaf`], nodes
/// [`merkle_node`] (BLAKE2b-256 with a one-byte prefix each).
pub enum StepTree {}

impl TreeHash for StepTree {
	fn leaf(h: &Hash) -> Hash {
		merkle_leaf(h)
	}
	fn node(left: &Hash, right: &Hash) -> Hash {
		merkle_node(left, right)
	}
}

fn next_level<T: TreeHash>(level: &[Hash]) -> Vec<Hash> {
	level
		.chunks(2)
		.map(|pair| match pair {
			[l, r] => T::node(l, r),
			[single] => *single, // an odd last node is promoted unchanged
			_ => [0u8; 32],
		})
		.collect()
}

/// The trace root over step hashes `[h_0, ..., h_n]`: a binary Merkle tree whose leaves are
/// [`merkle_leaf`]`(h_i)` in order; each level pairs nodes left to right with
/// [`merkle_node`], and an odd last node is promoted to the next level unchanged (never
/// duplicated). The root of one leaf is that leaf; the root of no leaf is 32 zero bytes.
pub fn trace_root(hashes: &[Hash]) -> Hash {
	tree_root::<StepTree>(hashes)
}

/// The root of the tree of [`trace_root`]'s shape hashed with `T`.
pub fn tree_root<T: TreeHash>(hashes: &[Hash]) -> Hash {
	let mut level: Vec<Hash> = hashes.iter().map(T::leaf).collect();
	while level.len() > 1 {
		level = next_level::<T>(&level);
	}
	level.first().copied().unwrap_or([0u8; 32])
}

/// An inclusion proof of `h_{leaf_index}` in a trace root over `leaf_count` step hashes:
/// the sibling nodes from the leaf level up, levels where the node is promoted having none.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct MerkleProof {
	pub leaf_index: u32,
	pub leaf_count: u32,
	pub siblings: Vec<Hash>,
}

/// Every level of the tree over `hashes`, from the leaves ([`merkle_leaf`] of each hash) up
/// to the root (the last level, of one node; no level at all for no hash). Building it once
/// lets a prover take many inclusion proofs with [`merkle_proof_from_levels`].
pub fn merkle_levels(hashes: &[Hash]) -> Vec<Vec<Hash>> {
	tree_levels::<StepTree>(hashes)
}

/// [`merkle_levels`] of the tree hashed with `T`.
pub fn tree_levels<T: TreeHash>(hashes: &[Hash]) -> Vec<Vec<Hash>> {
	let mut levels = Vec::new();
	let mut level: Vec<Hash> = hashes.iter().map(T::leaf).collect();
	while level.len() > 1 {
		let next = next_level::<T>(&level);
		levels.push(level);
		level = next;
	}
	if !level.is_empty() {
		levels.push(level);
	}
	levels
}

/// The inclusion proof of leaf `index` from [`merkle_levels`]; `None` if out of range.
pub fn merkle_proof_from_levels(levels: &[Vec<Hash>], index: u32) -> Option<MerkleProof> {
	let leaf_count = u32::try_from(levels.first()?.len()).ok()?;
	if index >= leaf_count {
		return None;
	}
	let mut i = usize::try_from(index).ok()?;
	let mut siblings = Vec::new();
	for level in levels.iter().take(levels.len().saturating_sub(1)) {
		if let Some(s) = level.get(i ^ 1) {
			siblings.push(*s);
		}
		i /= 2;
	}
	Some(MerkleProof { leaf_index: index, leaf_count, siblings })
}

/// The inclusion proof of `hashes[index]`; `None` if `index` is out of range.
pub fn merkle_proof(hashes: &[Hash], index: u32) -> Option<MerkleProof> {
	merkle_proof_from_levels(&merkle_levels(hashes), index)
}

/// Checks that `leaf` (a step hash `h_i`, not yet leaf-hashed) is at `proof.leaf_index` of a
/// tree of `proof.leaf_count` leaves with root `root`. Every sibling must be used.
///
/// The root does not commit to the leaf count: a verifier must also check that
/// `proof.leaf_count` is the model's `n + 1` (and `leaf_index` the step it cares about).
pub fn verify_inclusion(root: &Hash, leaf: &Hash, proof: &MerkleProof) -> bool {
	verify_inclusion_in::<StepTree>(root, leaf, proof)
}

/// [`verify_inclusion`] in the tree hashed with `T`.
pub fn verify_inclusion_in<T: TreeHash>(root: &Hash, leaf: &Hash, proof: &MerkleProof) -> bool {
	if proof.leaf_index >= proof.leaf_count {
		return false;
	}
	let mut node = T::leaf(leaf);
	let (mut index, mut count) = (proof.leaf_index, proof.leaf_count);
	let mut siblings = proof.siblings.iter();
	while count > 1 {
		let is_promoted = index % 2 == 0 && index == count - 1;
		if !is_promoted {
			let Some(s) = siblings.next() else { return false };
			node = if index % 2 == 0 { T::node(&node, s) } else { T::node(s, &node) };
		}
		index /= 2;
		count = count / 2 + count % 2;
	}
	siblings.next().is_none() && node == *root
}

#[cfg(test)]
mod tests {
	use super::*;
	use alloc::vec;

	fn leaves(n: u32) -> Vec<Hash> {
		(0..n).map(|i| step_hash(i, &[1], &[i as u8])).collect()
	}

	#[test]
	fn step_hash_layout() {
		let mut buf = b"verity/step/v1".to_vec();
		buf.extend_from_slice(&7u32.to_le_bytes());
		buf.extend_from_slice(&[8, 2, 0, 0, 0, 3, 0, 0, 0]); // compact(2), 2u32, 3u32
		buf.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
		assert_eq!(step_hash(7, &[2, 3], &[1, 2, 3, 4, 5, 6]), blake2_256(&buf));
	}

	#[test]
	fn step_prefix_is_the_framing_of_step_hash() {
		for (step, shape, data) in [
			(0u32, Vec::<u32>::new(), Vec::<u8>::new()),
			(7, vec![2, 3], vec![1, 2, 3, 4, 5, 6]),
			(u32::MAX, vec![64; 70], vec![9; 100]),
		] {
			let mut prefix = Vec::new();
			encode_step_prefix(step, &shape, &mut prefix);
			assert_eq!(prefix.len(), step_prefix_len(&shape));
			let mut message = prefix.clone();
			message.extend_from_slice(&data);
			assert_eq!(step_hash(step, &shape, &data), blake2_256(&message));
			// Appends: what was in the buffer stays.
			let mut buf = vec![0xAA];
			encode_step_prefix(step, &shape, &mut buf);
			assert_eq!(buf.get(1..), Some(prefix.as_slice()));
		}
	}

	#[test]
	fn root_shapes() {
		assert_eq!(trace_root(&[]), [0u8; 32]);
		let l = leaves(3);
		assert_eq!(trace_root(&l[..1]), merkle_leaf(&l[0]));
		let (a, b, c) = (merkle_leaf(&l[0]), merkle_leaf(&l[1]), merkle_leaf(&l[2]));
		assert_eq!(trace_root(&l[..2]), merkle_node(&a, &b));
		// odd count: c is promoted
		assert_eq!(trace_root(&l), merkle_node(&merkle_node(&a, &b), &c));
	}

	#[test]
	fn proofs_verify_for_all_sizes() {
		for n in 1..=17u32 {
			let l = leaves(n);
			let root = trace_root(&l);
			for i in 0..n {
				let proof = merkle_proof(&l, i).unwrap();
				assert!(verify_inclusion(&root, &l[i as usize], &proof), "n={n} i={i}");
				// wrong leaf, wrong index, extra sibling, wrong count: rejected
				assert!(!verify_inclusion(&root, &[9u8; 32], &proof));
				if n > 1 {
					let mut p = proof.clone();
					p.leaf_index = (i + 1) % n;
					assert!(!verify_inclusion(&root, &l[i as usize], &p));
				}
				let mut p = proof.clone();
				p.siblings.push([0u8; 32]);
				assert!(!verify_inclusion(&root, &l[i as usize], &p));
			}
			assert!(merkle_proof(&l, n).is_none());
			let levels = merkle_levels(&l);
			assert_eq!(levels.last().map(|top| top.as_slice()), Some(&[root][..]));
		}
		let p = MerkleProof { leaf_index: 0, leaf_count: 0, siblings: vec![] };
		assert!(!verify_inclusion(&[0u8; 32], &[0u8; 32], &p));
	}
}
