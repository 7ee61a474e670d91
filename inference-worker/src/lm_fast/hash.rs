//! Keyed BLAKE3 of many messages at once: the step hashes and tree nodes of a position
//! (`verity_primitives::lm::trace`), sixteen messages per SIMD pass on AVX-512 (eight on AVX2,
//! four on SSE4.1) instead of one message at a time.
//!
//! The work is cut along the BLAKE3 tree of each message and grouped across messages:
//!
//! * a message of at most one chunk (1,024 bytes) whose length is a whole number of 64-byte
//!   blocks is hashed as a root chunk, in a group of messages of its length;
//! * the chunks of longer messages are hashed to chaining values in groups of the same length
//!   and chunk index (the chunk counter); the chaining values are merged pairwise, level by
//!   level, the parents of all messages of a level in one group (BLAKE3's tree: the left
//!   subtree holds the largest power of two of chunks that leaves one on the right, which is
//!   the tree that pairs left to right and promotes an odd last node);
//! * a piece that ends in a partial block (a message or last chunk whose length is not a
//!   multiple of 64: an attention part, 12 bytes more than its 256-byte output) has its whole
//!   blocks hashed as above, in groups of their length but without the chunk's end flags (the
//!   result is the chaining value after them), and its partial last block is one compression
//!   from that value (or from the key, when it is also the first block), done sixteen pieces
//!   at a time by this module on AVX-512 (one at a time elsewhere).
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

/// A last block shorter than 64 bytes: its bytes, its chunk's counter, whether it ends a
/// whole message (`ROOT`), and the chaining value it starts from (`None`: the key, the block
/// being also its chunk's first, `CHUNK_START`).
#[derive(Clone, Copy)]
struct Tail<'m> {
	bytes: &'m [u8],
	counter: u64,
	root: bool,
	cv: Option<[u32; 8]>,
}

impl Tail<'_> {
	fn flags(&self) -> u8 {
		let start = if self.cv.is_none() { CHUNK_START } else { 0 };
		KEYED_HASH | start | CHUNK_END | if self.root { ROOT } else { 0 }
	}
}

/// One compression of a last block shorter than 64 bytes.
fn one_block(platform: Platform, key: &[u32; 8], tail: &Tail) -> Hash {
	let mut block = [0u8; BLOCK_LEN];
	let len = tail.bytes.len().min(BLOCK_LEN);
	block[..len].copy_from_slice(&tail.bytes[..len]);
	let mut cv = tail.cv.unwrap_or(*key);
	platform.compress_in_place(&mut cv, &block, len as u8, tail.counter, tail.flags());
	let mut out = [0u8; 32];
	for (to, w) in out.chunks_exact_mut(4).zip(cv) {
		to.copy_from_slice(&w.to_le_bytes());
	}
	out
}

/// [`one_block`] of every tail: sixteen at a time on AVX-512 when `wide` (one at a time, an
/// attention part's 12-byte last block is ~70 ns: about a sixth of a long context's hashing),
/// else one by one.
fn one_blocks(platform: Platform, key: &[u32; 8], tails: &[Tail], wide: bool) -> Vec<Hash> {
	#[cfg(target_arch = "x86_64")]
	if wide && std::arch::is_x86_feature_detected!("avx512f") {
		let mut out = Vec::with_capacity(tails.len());
		for group in tails.chunks(avx512::LANES) {
			// SAFETY: the CPU has AVX-512F (checked just above).
			#[allow(unsafe_code)]
			out.extend(unsafe { avx512::one_blocks(key, group) });
		}
		return out;
	}
	let _ = wide;
	tails.iter().map(|tail| one_block(platform, key, tail)).collect()
}

/// BLAKE3's compression function sixteen inputs at a time, one per 32-bit lane of the AVX-512
/// registers (the crate's `hash_many` cannot take a block shorter than 64 bytes: its block
/// length is fixed).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
	use std::arch::x86_64::*;

	use super::{Hash, Tail, BLOCK_LEN};

	pub(super) const LANES: usize = 16;

	/// The BLAKE3 specification's IV and message schedule (the crate keeps its own private).
	const IV: [u32; 8] = [
		0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB,
		0x5BE0CD19,
	];
	const MSG_SCHEDULE: [[usize; 16]; 7] = [
		[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
		[2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8],
		[3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1],
		[10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6],
		[12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4],
		[9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7],
		[11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13],
	];

	/// [`super::one_block`] of each of up to sixteen tails (more: the first sixteen), one per
	/// lane: the chaining value is the tail's (or the key), the block is zero-padded, its
	/// length is the tail's, the flags are [`Tail::flags`].
	///
	/// # Safety
	/// The CPU must have AVX-512F.
	#[target_feature(enable = "avx512f")]
	pub(super) unsafe fn one_blocks(key: &[u32; 8], tails: &[Tail]) -> Vec<Hash> {
		let tails = &tails[..tails.len().min(LANES)];
		// The inputs transposed: word `w` of piece `l` in lane `l` of row `w`.
		let mut m = [[0u32; LANES]; 16];
		let mut lanes = [[0u32; LANES]; 4]; // counter low, counter high, block length, flags
		let mut start = [[0u32; LANES]; 8]; // the chaining values
		for (l, tail) in tails.iter().enumerate() {
			let mut block = [0u8; BLOCK_LEN];
			let len = tail.bytes.len().min(BLOCK_LEN);
			block[..len].copy_from_slice(&tail.bytes[..len]);
			for (w, word) in block.chunks_exact(4).enumerate() {
				m[w][l] = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
			}
			for (row, &w) in start.iter_mut().zip(&tail.cv.unwrap_or(*key)) {
				row[l] = w;
			}
			lanes[0][l] = tail.counter as u32;
			lanes[1][l] = (tail.counter >> 32) as u32;
			lanes[2][l] = len as u32;
			lanes[3][l] = u32::from(tail.flags());
		}
		// SAFETY: an unaligned load of the sixteen `u32` of a row.
		let load = |row: &[u32; LANES]| unsafe { _mm512_loadu_si512(row.as_ptr().cast()) };
		let mut mv = [_mm512_setzero_si512(); 16];
		for (to, row) in mv.iter_mut().zip(&m) {
			*to = load(row);
		}
		let mut v = [_mm512_setzero_si512(); 16];
		for i in 0..8 {
			v[i] = load(&start[i]);
		}
		for i in 0..4 {
			v[8 + i] = _mm512_set1_epi32(IV[i] as i32);
			v[12 + i] = load(&lanes[i]);
		}
		macro_rules! g {
			($a:literal, $b:literal, $c:literal, $d:literal, $x:expr, $y:expr) => {
				v[$a] = _mm512_add_epi32(_mm512_add_epi32(v[$a], v[$b]), $x);
				v[$d] = _mm512_ror_epi32::<16>(_mm512_xor_si512(v[$d], v[$a]));
				v[$c] = _mm512_add_epi32(v[$c], v[$d]);
				v[$b] = _mm512_ror_epi32::<12>(_mm512_xor_si512(v[$b], v[$c]));
				v[$a] = _mm512_add_epi32(_mm512_add_epi32(v[$a], v[$b]), $y);
				v[$d] = _mm512_ror_epi32::<8>(_mm512_xor_si512(v[$d], v[$a]));
				v[$c] = _mm512_add_epi32(v[$c], v[$d]);
				v[$b] = _mm512_ror_epi32::<7>(_mm512_xor_si512(v[$b], v[$c]));
			};
		}
		for s in &MSG_SCHEDULE {
			g!(0, 4, 8, 12, mv[s[0]], mv[s[1]]);
			g!(1, 5, 9, 13, mv[s[2]], mv[s[3]]);
			g!(2, 6, 10, 14, mv[s[4]], mv[s[5]]);
			g!(3, 7, 11, 15, mv[s[6]], mv[s[7]]);
			g!(0, 5, 10, 15, mv[s[8]], mv[s[9]]);
			g!(1, 6, 11, 12, mv[s[10]], mv[s[11]]);
			g!(2, 7, 8, 13, mv[s[12]], mv[s[13]]);
			g!(3, 4, 9, 14, mv[s[14]], mv[s[15]]);
		}
		let mut cv = [[0u32; LANES]; 8];
		for (i, row) in cv.iter_mut().enumerate() {
			let x = _mm512_xor_si512(v[i], v[i + 8]);
			// SAFETY: an unaligned store of sixteen `u32` into a row.
			unsafe { _mm512_storeu_si512(row.as_mut_ptr().cast(), x) };
		}
		(0..tails.len())
			.map(|l| {
				let mut h = [0u8; 32];
				for (to, row) in h.chunks_exact_mut(4).zip(&cv) {
					to.copy_from_slice(&row[l].to_le_bytes());
				}
				h
			})
			.collect()
	}
}

/// A partial last block before its chaining value is known: its bytes, its chunk's counter,
/// the `Open` value it starts from, where its result goes (a whole message's hash: `ROOT`).
type Pending<'m> = (&'m [u8], u64, Option<usize>, Slot);

/// What the result of a group's pieces is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
	/// Whole messages: their hashes (`CHUNK_END | ROOT`).
	Root,
	/// Whole chunks of longer messages: chaining values (`CHUNK_END`).
	Chunk,
	/// The whole blocks of a piece that ends in a partial block: the chaining value after them
	/// (no end flag), where its [`Tail`] starts.
	Open,
}

/// Pieces of messages hashed together: all of length `len`, chunk counter `counter`, and
/// results of the kind `end`.
struct Group {
	len: usize,
	counter: u64,
	end: End,
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
	end: End,
	piece: (usize, usize, usize),
) {
	let same = |g: &Group| g.len == len && g.counter == counter && g.end == end;
	if !groups.get(*last).is_some_and(same) {
		*last = match groups.iter().position(same) {
			Some(i) => i,
			None => {
				groups.push(Group { len, counter, end, pieces: Vec::new() });
				groups.len() - 1
			},
		};
	}
	if let Some(g) = groups.get_mut(*last) {
		g.pieces.push(piece);
	}
}

/// Where a tail's result goes: a message's hash or a chunk's chaining value.
#[derive(Clone, Copy)]
enum Slot {
	Out(usize),
	Cv(usize),
}

/// `blake3::keyed_hash(key, m)` of every message, in order.
pub fn keyed_hash_many(key: &[u8; 32], messages: &[&[u8]]) -> Vec<Hash> {
	let mut out = vec![[0u8; 32]; messages.len()];
	keyed_hash_many_into(key, messages, &mut out.iter_mut().collect::<Vec<_>>());
	out
}

/// [`keyed_hash_many`] written to `out[i]` for message `i` (`out` as long as `messages`; the
/// results go straight to where the caller keeps them, with no vector of hashes in between).
pub fn keyed_hash_many_into(key: &[u8; 32], messages: &[&[u8]], out: &mut [&mut Hash]) {
	keyed_hash_many_with(key, messages, out, true)
}

/// The pieces of a batch of messages, sorted: the groups hashed together, the partial last
/// blocks, and how many `Open` values the groups will give them.
#[derive(Default)]
struct Sorted<'m> {
	groups: Vec<Group>,
	last: usize,
	tails: Vec<Pending<'m>>,
	opens: usize,
}

impl<'m> Sorted<'m> {
	/// A piece of at most a chunk (chunk `counter` of message `message`, from `offset`; a whole
	/// message when its result goes to `Slot::Out`): whole blocks into a group of their length,
	/// a partial last block into `tails` (after an `Open` group's value when the piece has whole
	/// blocks).
	fn piece(
		&mut self,
		piece: &'m [u8],
		(message, offset): (usize, usize),
		counter: u64,
		slot: Slot,
	) {
		let (len, rest) = (piece.len(), piece.len() % BLOCK_LEN);
		let whole = len - rest;
		let (end, at) = match slot {
			Slot::Out(i) => (End::Root, i),
			Slot::Cv(i) => (End::Chunk, i),
		};
		if rest == 0 && len > 0 {
			add(&mut self.groups, &mut self.last, len, counter, end, (message, offset, at));
		} else if whole == 0 {
			self.tails.push((piece, counter, None, slot));
		} else {
			let open = self.opens;
			add(
				&mut self.groups,
				&mut self.last,
				whole,
				counter,
				End::Open,
				(message, offset, open),
			);
			self.tails.push((&piece[whole..], counter, Some(open), slot));
			self.opens += 1;
		}
	}
}

/// [`keyed_hash_many_into`]; `wide`: tails sixteen at a time where the CPU has AVX-512 (else
/// one at a time, as without it: the tests compare both).
fn keyed_hash_many_with(key: &[u8; 32], messages: &[&[u8]], out: &mut [&mut Hash], wide: bool) {
	let platform = Platform::detect();
	let kw = words_from_le_bytes_32(key);
	let mut put = |i: usize, h: &[u8]| {
		if let Some(to) = out.get_mut(i) {
			to.copy_from_slice(h);
		}
	};
	// The groups, and the partial last blocks compressed together once the groups (and so the
	// open values they start from) are hashed.
	let mut sorted = Sorted::default();
	// The chunk chaining values of the messages longer than a chunk, back to back, and per
	// such message `(message, its first value, its number of values)`.
	let mut cvs: Vec<Hash> = Vec::new();
	let mut long: Vec<(usize, usize, usize)> = Vec::new();
	for (i, m) in messages.iter().enumerate() {
		let len = m.len();
		if len <= CHUNK_LEN {
			sorted.piece(m, (i, 0), 0, Slot::Out(i));
			continue;
		}
		let (first, n) = (cvs.len(), len.div_ceil(CHUNK_LEN));
		cvs.resize(first + n, [0u8; 32]);
		long.push((i, first, n));
		for c in 0..n {
			let offset = c * CHUNK_LEN;
			let piece = &m[offset..len.min(offset + CHUNK_LEN)];
			sorted.piece(piece, (i, offset), c as u64, Slot::Cv(first + c));
		}
	}
	let Sorted { groups, tails, opens, .. } = sorted;
	let mut open_cvs = vec![[0u32; 8]; opens];
	let mut results = Vec::new();
	for g in &groups {
		let inputs = g.pieces.iter().map(|&(m, offset, _)| &messages[m][offset..]);
		let end = match g.end {
			End::Root => CHUNK_END | ROOT,
			End::Chunk => CHUNK_END,
			End::Open => 0,
		};
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
		for (&(_, _, slot), h) in g.pieces.iter().zip(results.chunks_exact(32)) {
			match g.end {
				End::Root => put(slot, h),
				End::Chunk => {
					if let Some(to) = cvs.get_mut(slot) {
						to.copy_from_slice(h);
					}
				},
				End::Open => {
					if let (Some(to), Ok(h)) = (open_cvs.get_mut(slot), <&[u8; 32]>::try_from(h)) {
						*to = words_from_le_bytes_32(h);
					}
				},
			}
		}
	}
	let pieces: Vec<Tail> = tails
		.iter()
		.map(|&(bytes, counter, open, slot)| Tail {
			bytes,
			counter,
			root: matches!(slot, Slot::Out(_)),
			cv: open.and_then(|o| open_cvs.get(o).copied()),
		})
		.collect();
	for (&(_, _, _, slot), h) in tails.iter().zip(one_blocks(platform, &kw, &pieces, wide)) {
		match slot {
			Slot::Out(i) => put(i, &h),
			Slot::Cv(i) => cvs[i] = h,
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
				put(*m, &cvs[*first]);
			}
		}
		long.retain(|&(_, _, n)| n > 1);
	}
}

/// The step hashes (`lm_step_hash`) of `outputs`, in order.
pub fn step_hashes_many(outputs: &[&[u8]]) -> Vec<Hash> {
	keyed_hash_many(&LM_STEP_KEY, outputs)
}

/// [`step_hashes_many`] written to `slots[i]` for output `i`.
pub fn step_hashes_into(outputs: &[&[u8]], slots: &mut [&mut Hash]) {
	keyed_hash_many_into(&LM_STEP_KEY, outputs, slots)
}

/// The position or job root (`verity_primitives::lm::trace::position_root`) of `hashes`: the
/// nodes of each level hashed together (a pair of hashes is already its node's 64-byte message).
pub fn lm_tree_root_many(hashes: &[Hash]) -> Hash {
	let platform = Platform::detect();
	let kw = words_from_le_bytes_32(&LM_NODE_KEY);
	let mut next = Vec::new();
	// The level above `from` into `to`.
	let mut up = |from: &[Hash], to: &mut Vec<Hash>| {
		let pairs = from.as_flattened().chunks_exact(64);
		let end = CHUNK_END | ROOT;
		hash_group(platform, 64, pairs, &kw, 0, KEYED_HASH, CHUNK_START, end, &mut next);
		to.clear();
		to.extend(next.chunks_exact(32).map(|h| h.try_into().unwrap_or([0u8; 32])));
		to.extend((from.len() % 2 == 1).then(|| from[from.len() - 1])); // an odd last node is promoted
	};
	if hashes.len() <= 1 {
		return hashes.first().copied().unwrap_or([0u8; 32]);
	}
	let (mut level, mut above) = (Vec::with_capacity(hashes.len() / 2 + 1), Vec::new());
	up(hashes, &mut level);
	while level.len() > 1 {
		up(&level, &mut above);
		std::mem::swap(&mut level, &mut above);
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
		// (256-byte heads and chunks, 268-byte attention parts, 2,304-byte norms).
		let mut lens = vec![0usize, 1, 4, 12, 63, 64, 65, 100, 127, 128, 129, 256, 268, 1000];
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
		// Partial last blocks sixteen at a time (AVX-512) and one by one (any other CPU).
		for (key, wide) in [(LM_STEP_KEY, true), (LM_NODE_KEY, true), ([7u8; 32], true)]
			.into_iter()
			.chain([(LM_STEP_KEY, false), ([7u8; 32], false)])
		{
			let mut got = vec![[0u8; 32]; refs.len()];
			keyed_hash_many_with(&key, &refs, &mut got.iter_mut().collect::<Vec<_>>(), wide);
			for (m, h) in refs.iter().zip(&got) {
				let want = blake3::keyed_hash(&key, m);
				assert_eq!(h, want.as_bytes(), "length {}, wide {wide}", m.len());
			}
		}
		assert!(keyed_hash_many(&LM_STEP_KEY, &[]).is_empty());
	}

	#[test]
	fn step_hashes_and_roots_are_the_primitives() {
		let messages: Vec<Vec<u8>> =
			(0..300).map(|i| message([256, 268, 1036, 2304, 4][i % 5], i)).collect();
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
