//! Keyed BLAKE3 of many messages at once: the step hashes and tree nodes of a position
//! (`verity_primitives::lm::trace`), sixteen messages per SIMD pass on AVX-512 (eight on AVX2,
//! four on SSE4.1) instead of one message at a time.
//!
//! The work is cut along the BLAKE3 tree of each message and grouped across messages:
//!
//! * a message of at most one chunk (1,024 bytes) whose length is a whole number of 64-byte
//!   blocks is hashed as a root chunk, in a group of messages of its length;
//! * the chunks of longer messages are hashed to chaining values in groups of the same length
//!   and chunk index (the chunk counter); a last chunk that ends in a partial block of its only
//!   block is one compression; the chaining values are merged pairwise, level by level, the
//!   parents of all messages of a level in one group (BLAKE3's tree: the left subtree holds the
//!   largest power of two of chunks that leaves one on the right, which is the tree that pairs
//!   left to right and promotes an odd last node);
//! * anything else (a short message ending in a partial block, a last chunk of several blocks
//!   ending in a partial one) goes to `blake3::keyed_hash` or the crate's own hasher.
//!
//! The groups run through `blake3::platform::Platform::hash_many`, the crate's SIMD-across-inputs
//! kernel (an unstable part of its API, hence the exact version pin); every result is
//! `blake3::keyed_hash(key, message)`, which the tests check on every length class around the
//! block and chunk boundaries.

use blake3::{
	platform::{words_from_le_bytes_32, Platform},
	IncrementCounter, BLOCK_LEN, CHUNK_LEN,
};
use verity_primitives::{
	lm::trace::{LM_NODE_KEY, LM_STEP_KEY},
	Hash,
};

// The domain flags of the BLAKE3 specification.
const CHUNK_START: u8 = 1;
const CHUNK_END: u8 = 2;
const PARENT: u8 = 4;
const ROOT: u8 = 8;
const KEYED_HASH: u8 = 16;

/// `hash_many` over pieces of one length `len` (a multiple of 64, at most a chunk), each hashed
/// from `key` with counter `counter`: their 32-byte chaining values (their hashes, with the
/// `ROOT` flag) back to back in `out`. Pieces of another length are skipped (callers group by
/// length: there are none).
#[allow(clippy::too_many_arguments)]
fn hash_group<'m>(
	platform: Platform,
	len: usize,
	inputs: impl Iterator<Item = &'m [u8]>,
	key: &[u32; 8],
	counter: u64,
	flags: u8,
	start: u8,
	end: u8,
	out: &mut Vec<u8>,
) {
	macro_rules! lengths {
		($($n:literal)*) => {
			match len {
				$($n => {
					let arrays: Vec<&[u8; $n]> = inputs.filter_map(|m| m.first_chunk::<$n>()).collect();
					out.clear();
					out.resize(32 * arrays.len(), 0);
					platform.hash_many(&arrays, key, counter, IncrementCounter::No, flags, start, end, out);
				},)*
				_ => out.clear(),
			}
		};
	}
	lengths!(64 128 192 256 320 384 448 512 576 640 704 768 832 896 960 1024);
}

/// One compression of a last block shorter than 64 bytes that is also its chunk's first.
fn one_block(platform: Platform, key: &[u32; 8], bytes: &[u8], counter: u64, root: bool) -> Hash {
	let mut block = [0u8; BLOCK_LEN];
	let len = bytes.len().min(BLOCK_LEN);
	block[..len].copy_from_slice(&bytes[..len]);
	let mut cv = *key;
	let flags = KEYED_HASH | CHUNK_START | CHUNK_END | if root { ROOT } else { 0 };
	platform.compress_in_place(&mut cv, &block, len as u8, counter, flags);
	let mut out = [0u8; 32];
	for (to, w) in out.chunks_exact_mut(4).zip(cv) {
		to.copy_from_slice(&w.to_le_bytes());
	}
	out
}

/// Pieces of messages hashed together: all of length `len`, chunk counter `counter`, either
/// whole messages (`root`: results are hashes) or chunks of longer ones (chaining values).
struct Group {
	len: usize,
	counter: u64,
	root: bool,
	/// `(message, offset of the piece, slot of its result)`.
	pieces: Vec<(usize, usize, usize)>,
}

/// Adds a piece to its group (found from the last one used: a position's messages come in runs
/// of one length).
fn add(
	groups: &mut Vec<Group>,
	last: &mut usize,
	len: usize,
	counter: u64,
	root: bool,
	piece: (usize, usize, usize),
) {
	let same = |g: &Group| g.len == len && g.counter == counter && g.root == root;
	if !groups.get(*last).is_some_and(same) {
		*last = match groups.iter().position(same) {
			Some(i) => i,
			None => {
				groups.push(Group { len, counter, root, pieces: Vec::new() });
				groups.len() - 1
			},
		};
	}
	if let Some(g) = groups.get_mut(*last) {
		g.pieces.push(piece);
	}
}

/// `blake3::keyed_hash(key, m)` of every message, in order.
pub fn keyed_hash_many(key: &[u8; 32], messages: &[&[u8]]) -> Vec<Hash> {
	let platform = Platform::detect();
	let kw = words_from_le_bytes_32(key);
	let mut out = vec![[0u8; 32]; messages.len()];
	let (mut groups, mut last) = (Vec::new(), usize::MAX);
	// The chunk chaining values of the messages longer than a chunk, back to back, and per
	// such message `(message, its first value, its number of values)`.
	let mut cvs: Vec<Hash> = Vec::new();
	let mut long: Vec<(usize, usize, usize)> = Vec::new();
	for (i, m) in messages.iter().enumerate() {
		let len = m.len();
		if len <= CHUNK_LEN {
			if len > 0 && len % BLOCK_LEN == 0 {
				add(&mut groups, &mut last, len, 0, true, (i, 0, i));
			} else if len < BLOCK_LEN {
				out[i] = one_block(platform, &kw, m, 0, true);
			} else {
				out[i] = *blake3::keyed_hash(key, m).as_bytes();
			}
			continue;
		}
		let (first, n) = (cvs.len(), len.div_ceil(CHUNK_LEN));
		cvs.resize(first + n, [0u8; 32]);
		long.push((i, first, n));
		for c in 0..n {
			let offset = c * CHUNK_LEN;
			let piece = &m[offset..len.min(offset + CHUNK_LEN)];
			if piece.len() % BLOCK_LEN == 0 {
				add(&mut groups, &mut last, piece.len(), c as u64, false, (i, offset, first + c));
			} else if piece.len() < BLOCK_LEN {
				cvs[first + c] = one_block(platform, &kw, piece, c as u64, false);
			} else {
				use blake3::hazmat::HasherExt;
				let mut hasher = blake3::Hasher::new_keyed(key);
				hasher.set_input_offset(offset as u64).update(piece);
				cvs[first + c] = hasher.finalize_non_root();
			}
		}
	}
	let mut results = Vec::new();
	for g in &groups {
		let inputs = g.pieces.iter().map(|&(m, offset, _)| &messages[m][offset..]);
		let end = if g.root { CHUNK_END | ROOT } else { CHUNK_END };
		hash_group(
			platform,
			g.len,
			inputs,
			&kw,
			g.counter,
			KEYED_HASH,
			CHUNK_START,
			end,
			&mut results,
		);
		let to = if g.root { &mut out } else { &mut cvs };
		for (&(_, _, slot), h) in g.pieces.iter().zip(results.chunks_exact(32)) {
			if let Some(to) = to.get_mut(slot) {
				to.copy_from_slice(h);
			}
		}
	}
	// Merge the chaining values of each long message level by level, in place: the parents of
	// a level of every message in one group (two: the roots and the others). A pair of values
	// is already the 64-byte block of its parent.
	let mut parents: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
	while !long.is_empty() {
		let flat = cvs.as_flattened();
		for (root, parents) in parents.iter_mut().enumerate() {
			let inputs = long
				.iter()
				.filter(|&&(_, _, n)| (n == 2) == (root == 1))
				.flat_map(|&(_, first, n)| flat[32 * first..32 * (first + n)].chunks_exact(64));
			let end = if root == 1 { ROOT } else { 0 };
			hash_group(platform, 64, inputs, &kw, 0, KEYED_HASH | PARENT, 0, end, parents);
		}
		let mut taken = [0usize; 2];
		for (m, first, n) in long.iter_mut() {
			let which = usize::from(*n == 2);
			for j in 0..*n / 2 {
				let at = 32 * (taken[which] + j);
				cvs[*first + j].copy_from_slice(&parents[which][at..at + 32]);
			}
			taken[which] += *n / 2;
			if *n % 2 == 1 {
				cvs[*first + *n / 2] = cvs[*first + *n - 1]; // an odd last node is promoted
			}
			*n = *n / 2 + *n % 2;
			if *n == 1 {
				out[*m] = cvs[*first];
			}
		}
		long.retain(|&(_, _, n)| n > 1);
	}
	out
}

/// The step hashes (`lm_step_hash`) of `outputs`, in order.
pub fn step_hashes_many(outputs: &[&[u8]]) -> Vec<Hash> {
	keyed_hash_many(&LM_STEP_KEY, outputs)
}

/// The position or job root (`verity_primitives::lm::trace::position_root`) of `hashes`: the
/// nodes of each level hashed together (a pair of hashes is already its node's 64-byte message).
pub fn lm_tree_root_many(hashes: &[Hash]) -> Hash {
	let platform = Platform::detect();
	let kw = words_from_le_bytes_32(&LM_NODE_KEY);
	let mut level = hashes.to_vec();
	let mut next = Vec::new();
	while level.len() > 1 {
		let pairs = level.as_flattened().chunks_exact(64);
		let end = CHUNK_END | ROOT;
		hash_group(platform, 64, pairs, &kw, 0, KEYED_HASH, CHUNK_START, end, &mut next);
		let odd = (level.len() % 2 == 1).then(|| level[level.len() - 1]);
		level.clear();
		level.extend(next.chunks_exact(32).map(|h| h.try_into().unwrap_or([0u8; 32])));
		level.extend(odd); // an odd last node is promoted unchanged
	}
	level.first().copied().unwrap_or([0u8; 32])
}

#[cfg(test)]
mod tests {
	use super::*;
	use verity_primitives::lm::trace::{lm_step_hash, position_root};

	fn message(len: usize, seed: usize) -> Vec<u8> {
		(0..len).map(|i| ((i * 31 + seed * 7) % 251) as u8).collect()
	}

	#[test]
	fn every_length_class_is_the_keyed_hash() {
		// Around the block and chunk boundaries, one to eight chunks, and the LM's own sizes
		// (256-byte heads and chunks, 1,036-byte attention parts, 2,304-byte norms).
		let mut lens = vec![0usize, 1, 4, 12, 63, 64, 65, 100, 127, 128, 129, 256, 1000];
		lens.extend([1023, 1024, 1025, 1036, 1088, 1100, 2047, 2048, 2049, 2304, 3072, 3100]);
		lens.extend([4096, 5000, 6144, 7168, 8192, 8200, 196_608]);
		// Each length several times (full and partial lanes), shuffled together.
		let mut messages: Vec<Vec<u8>> = Vec::new();
		for (k, &len) in lens.iter().enumerate() {
			for copy in 0..(1 + k % 19) {
				messages.push(message(len, k * 100 + copy));
			}
		}
		messages.reverse();
		let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
		for key in [LM_STEP_KEY, LM_NODE_KEY, [7u8; 32]] {
			let got = keyed_hash_many(&key, &refs);
			for (m, h) in refs.iter().zip(&got) {
				assert_eq!(h, blake3::keyed_hash(&key, m).as_bytes(), "length {}", m.len());
			}
		}
		assert!(keyed_hash_many(&LM_STEP_KEY, &[]).is_empty());
	}

	#[test]
	fn step_hashes_and_roots_are_the_primitives() {
		let messages: Vec<Vec<u8>> =
			(0..300).map(|i| message([256, 1036, 2304, 4][i % 4], i)).collect();
		let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
		let hashes = step_hashes_many(&refs);
		for (m, h) in refs.iter().zip(&hashes) {
			assert_eq!(*h, lm_step_hash(m));
		}
		for n in [0usize, 1, 2, 3, 5, 8, 17, 33, 300] {
			assert_eq!(lm_tree_root_many(&hashes[..n]), position_root(&hashes[..n]), "{n}");
		}
	}
}
