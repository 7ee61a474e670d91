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

use std::collections::BTreeMap;

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
/// `ROOT` flag). Pieces of another length are skipped (callers group by length: there are none).
#[allow(clippy::too_many_arguments)]
fn group(
	platform: Platform,
	len: usize,
	inputs: &[&[u8]],
	key: &[u32; 8],
	counter: u64,
	flags: u8,
	start: u8,
	end: u8,
) -> Vec<Hash> {
	let mut out = vec![0u8; 32 * inputs.len()];
	macro_rules! lengths {
		($($n:literal)*) => {
			match len {
				$($n => {
					let arrays: Vec<&[u8; $n]> =
						inputs.iter().filter_map(|m| m.first_chunk::<$n>()).collect();
					platform.hash_many(
						&arrays, key, counter, IncrementCounter::No, flags, start, end, &mut out,
					);
				},)*
				_ => {},
			}
		};
	}
	lengths!(64 128 192 256 320 384 448 512 576 640 704 768 832 896 960 1024);
	out.chunks_exact(32).map(|c| c.try_into().unwrap_or([0; 32])).collect()
}

fn cv_bytes(words: &[u32; 8]) -> Hash {
	let mut out = [0u8; 32];
	for (to, w) in out.chunks_exact_mut(4).zip(words) {
		to.copy_from_slice(&w.to_le_bytes());
	}
	out
}

/// `blake3::keyed_hash(key, m)` of every message, in order.
pub fn keyed_hash_many(key: &[u8; 32], messages: &[&[u8]]) -> Vec<Hash> {
	let platform = Platform::detect();
	let kw = words_from_le_bytes_32(key);
	let mut out = vec![[0u8; 32]; messages.len()];
	// Root chunks by length; chunks of long messages by (length, chunk index).
	let mut roots: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
	let mut chunks: BTreeMap<(usize, usize), Vec<(usize, usize)>> = BTreeMap::new();
	// The chunk chaining values of each long message (index into `trees`).
	let mut trees: Vec<(usize, Vec<Hash>)> = Vec::new();
	for (i, m) in messages.iter().enumerate() {
		let len = m.len();
		if len <= CHUNK_LEN {
			if len > 0 && len % BLOCK_LEN == 0 {
				roots.entry(len).or_default().push(i);
			} else if len < BLOCK_LEN {
				// One partial block: one compression.
				let mut block = [0u8; BLOCK_LEN];
				block[..len].copy_from_slice(m);
				let mut cv = kw;
				let flags = KEYED_HASH | CHUNK_START | CHUNK_END | ROOT;
				platform.compress_in_place(&mut cv, &block, len as u8, 0, flags);
				out[i] = cv_bytes(&cv);
			} else {
				out[i] = *blake3::keyed_hash(key, m).as_bytes();
			}
			continue;
		}
		let n = len.div_ceil(CHUNK_LEN);
		let tree = trees.len();
		trees.push((i, vec![[0u8; 32]; n]));
		for (c, piece) in m.chunks(CHUNK_LEN).enumerate() {
			let plen = piece.len();
			if plen % BLOCK_LEN == 0 {
				chunks.entry((plen, c)).or_default().push((tree, c));
			} else if plen < BLOCK_LEN {
				let mut block = [0u8; BLOCK_LEN];
				block[..plen].copy_from_slice(piece);
				let mut cv = kw;
				let flags = KEYED_HASH | CHUNK_START | CHUNK_END;
				platform.compress_in_place(&mut cv, &block, plen as u8, c as u64, flags);
				trees[tree].1[c] = cv_bytes(&cv);
			} else {
				use blake3::hazmat::HasherExt;
				let mut hasher = blake3::Hasher::new_keyed(key);
				hasher.set_input_offset((c * CHUNK_LEN) as u64).update(piece);
				trees[tree].1[c] = hasher.finalize_non_root();
			}
		}
	}
	for (len, ids) in roots {
		let inputs: Vec<&[u8]> = ids.iter().map(|&i| messages[i]).collect();
		let flags_end = CHUNK_END | ROOT;
		let hashes = group(platform, len, &inputs, &kw, 0, KEYED_HASH, CHUNK_START, flags_end);
		for (i, h) in ids.into_iter().zip(hashes) {
			out[i] = h;
		}
	}
	for ((len, c), ids) in chunks {
		let inputs: Vec<&[u8]> = ids
			.iter()
			.map(|&(t, c)| {
				let m = messages[trees[t].0];
				&m[c * CHUNK_LEN..(c * CHUNK_LEN + len).min(m.len())]
			})
			.collect();
		let cvs = group(platform, len, &inputs, &kw, c as u64, KEYED_HASH, CHUNK_START, CHUNK_END);
		for ((t, c), cv) in ids.into_iter().zip(cvs) {
			trees[t].1[c] = cv;
		}
	}
	// Merge level by level: the parents of every message's level in one group.
	let mut levels: Vec<(usize, Vec<Hash>)> = trees;
	while !levels.is_empty() {
		let mut blocks: Vec<[u8; 64]> = Vec::new();
		let mut last: Vec<bool> = Vec::new();
		for (_, level) in &levels {
			for pair in level.chunks_exact(2) {
				let mut b = [0u8; 64];
				b[..32].copy_from_slice(&pair[0]);
				b[32..].copy_from_slice(&pair[1]);
				blocks.push(b);
				last.push(level.len() == 2);
			}
		}
		// Root parents and the others, as two groups.
		let mut parents = vec![[0u8; 32]; blocks.len()];
		for root in [false, true] {
			let idx: Vec<usize> = (0..blocks.len()).filter(|&j| last[j] == root).collect();
			if idx.is_empty() {
				continue;
			}
			let inputs: Vec<&[u8]> = idx.iter().map(|&j| &blocks[j][..]).collect();
			let end = if root { ROOT } else { 0 };
			let hs = group(platform, 64, &inputs, &kw, 0, KEYED_HASH | PARENT, 0, end);
			for (j, h) in idx.into_iter().zip(hs) {
				parents[j] = h;
			}
		}
		let mut next = parents.into_iter();
		let mut remaining = Vec::new();
		for (i, level) in levels {
			let mut up: Vec<Hash> = next.by_ref().take(level.len() / 2).collect();
			if level.len() % 2 == 1 {
				up.extend(level.last().copied()); // an odd last node is promoted
			}
			if up.len() == 1 {
				out[i] = up[0];
			} else {
				remaining.push((i, up));
			}
		}
		levels = remaining;
	}
	out
}

/// The step hashes (`lm_step_hash`) of `outputs`, in order.
pub fn step_hashes_many(outputs: &[&[u8]]) -> Vec<Hash> {
	keyed_hash_many(&LM_STEP_KEY, outputs)
}

/// The position or job root (`verity_primitives::lm::trace::position_root`) of `hashes`, the
/// nodes of each level hashed together.
pub fn lm_tree_root_many(hashes: &[Hash]) -> Hash {
	let mut level = hashes.to_vec();
	while level.len() > 1 {
		let blocks: Vec<[u8; 64]> = level
			.chunks_exact(2)
			.map(|p| {
				let mut b = [0u8; 64];
				b[..32].copy_from_slice(&p[0]);
				b[32..].copy_from_slice(&p[1]);
				b
			})
			.collect();
		let inputs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
		let odd = (level.len() % 2 == 1).then(|| level[level.len() - 1]);
		level = keyed_hash_many(&LM_NODE_KEY, &inputs);
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
