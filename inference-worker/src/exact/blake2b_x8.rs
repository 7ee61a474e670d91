//! BLAKE2b-256 of many messages at once with AVX-512: eight messages in the eight 64-bit lanes
//! of each vector (one message per lane, a new one loaded into a lane as soon as its message
//! ends), the longest messages first so that a long one (an LM head's logits) never runs alone
//! at the end.
//!
//! It computes exactly `sp_crypto_hashing::blake2_256` of every message (RFC 7693, unkeyed,
//! 32-byte output); the tests check it against `blake2b_simd` (the node's implementation) on
//! every message length around the block boundaries and on random batches. On a CPU without
//! AVX-512F, [`blake2_256_many_x8`] returns `None` and the caller uses `blake2b_simd`'s
//! four-lane AVX2 `hash_many`.

use verity_primitives::Hash;

/// The BLAKE2b-256 hashes of `messages` (in their order), computed eight at a time with
/// AVX-512; `None` if this CPU has no AVX-512F.
#[allow(unsafe_code)]
pub fn blake2_256_many_x8(messages: &[&[u8]]) -> Option<Vec<Hash>> {
	#[cfg(target_arch = "x86_64")]
	if std::arch::is_x86_feature_detected!("avx512f") {
		// SAFETY: AVX-512F is present (checked just above).
		return Some(unsafe { x86::hash_many(messages) });
	}
	let _ = messages;
	None
}

// The SIMD intrinsics: unaligned loads and stores of whole arrays, and the entry point, which
// needs AVX-512F (checked by its caller).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
	use std::arch::x86_64::*;

	use verity_primitives::Hash;

	const BLOCK: usize = 128;
	const IV: [u64; 8] = [
		0x6a09e667f3bcc908,
		0xbb67ae8584caa73b,
		0x3c6ef372fe94f82b,
		0xa54ff53a5f1d36f1,
		0x510e527fade682d1,
		0x9b05688c2b3e6c1f,
		0x1f83d9abfb41bd6b,
		0x5be0cd19137e2179,
	];
	/// The parameter block's first word for an unkeyed 32-byte digest (fanout 1, depth 1).
	const PARAM0: u64 = 0x0101_0020;
	const SIGMA: [[usize; 16]; 12] = [
		[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
		[14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
		[11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
		[7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
		[9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
		[2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
		[12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
		[13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
		[6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
		[10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
		[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
		[14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
	];

	/// The mixing function G on the state words `a, b, c, d` of all eight lanes.
	#[target_feature(enable = "avx512f")]
	#[inline]
	fn g(v: &mut [__m512i; 16], [a, b, c, d]: [usize; 4], x: __m512i, y: __m512i) {
		v[a] = _mm512_add_epi64(_mm512_add_epi64(v[a], v[b]), x);
		v[d] = _mm512_ror_epi64::<32>(_mm512_xor_si512(v[d], v[a]));
		v[c] = _mm512_add_epi64(v[c], v[d]);
		v[b] = _mm512_ror_epi64::<24>(_mm512_xor_si512(v[b], v[c]));
		v[a] = _mm512_add_epi64(_mm512_add_epi64(v[a], v[b]), y);
		v[d] = _mm512_ror_epi64::<16>(_mm512_xor_si512(v[d], v[a]));
		v[c] = _mm512_add_epi64(v[c], v[d]);
		v[b] = _mm512_ror_epi64::<63>(_mm512_xor_si512(v[b], v[c]));
	}

	#[target_feature(enable = "avx512f")]
	#[inline]
	fn round(v: &mut [__m512i; 16], m: &[__m512i; 16], s: &[usize; 16]) {
		g(v, [0, 4, 8, 12], m[s[0]], m[s[1]]);
		g(v, [1, 5, 9, 13], m[s[2]], m[s[3]]);
		g(v, [2, 6, 10, 14], m[s[4]], m[s[5]]);
		g(v, [3, 7, 11, 15], m[s[6]], m[s[7]]);
		g(v, [0, 5, 10, 15], m[s[8]], m[s[9]]);
		g(v, [1, 6, 11, 12], m[s[10]], m[s[11]]);
		g(v, [2, 7, 8, 13], m[s[12]], m[s[13]]);
		g(v, [3, 4, 9, 14], m[s[14]], m[s[15]]);
	}

	/// Rows `r` (one lane's eight words each) to columns (word `j` of every lane).
	#[target_feature(enable = "avx512f")]
	#[inline]
	fn transpose(r: [__m512i; 8]) -> [__m512i; 8] {
		let t0 = _mm512_unpacklo_epi64(r[0], r[1]);
		let t1 = _mm512_unpackhi_epi64(r[0], r[1]);
		let t2 = _mm512_unpacklo_epi64(r[2], r[3]);
		let t3 = _mm512_unpackhi_epi64(r[2], r[3]);
		let t4 = _mm512_unpacklo_epi64(r[4], r[5]);
		let t5 = _mm512_unpackhi_epi64(r[4], r[5]);
		let t6 = _mm512_unpacklo_epi64(r[6], r[7]);
		let t7 = _mm512_unpackhi_epi64(r[6], r[7]);
		// Words {j, j + 4} of four lanes; then the two halves of eight lanes.
		let lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
		let hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
		let u0 = _mm512_permutex2var_epi64(t0, lo, t2);
		let u1 = _mm512_permutex2var_epi64(t0, hi, t2);
		let u2 = _mm512_permutex2var_epi64(t1, lo, t3);
		let u3 = _mm512_permutex2var_epi64(t1, hi, t3);
		let u4 = _mm512_permutex2var_epi64(t4, lo, t6);
		let u5 = _mm512_permutex2var_epi64(t4, hi, t6);
		let u6 = _mm512_permutex2var_epi64(t5, lo, t7);
		let u7 = _mm512_permutex2var_epi64(t5, hi, t7);
		let first = _mm512_set_epi64(11, 10, 9, 8, 3, 2, 1, 0);
		let second = _mm512_set_epi64(15, 14, 13, 12, 7, 6, 5, 4);
		[
			_mm512_permutex2var_epi64(u0, first, u4),
			_mm512_permutex2var_epi64(u2, first, u6),
			_mm512_permutex2var_epi64(u1, first, u5),
			_mm512_permutex2var_epi64(u3, first, u7),
			_mm512_permutex2var_epi64(u0, second, u4),
			_mm512_permutex2var_epi64(u2, second, u6),
			_mm512_permutex2var_epi64(u1, second, u5),
			_mm512_permutex2var_epi64(u3, second, u7),
		]
	}

	/// One compression in each lane: `blocks[l]` lane `l`'s 128-byte block, `t` the byte
	/// counters, `f` the final-block flags (all ones or zero).
	#[target_feature(enable = "avx512f")]
	fn compress(h: &mut [__m512i; 8], blocks: &[&[u8; BLOCK]; 8], t: __m512i, f: __m512i) {
		let mut m = [_mm512_setzero_si512(); 16];
		for half in 0..2 {
			let mut rows = [_mm512_setzero_si512(); 8];
			for (row, block) in rows.iter_mut().zip(blocks) {
				let words = block.get(64 * half..64 * half + 64).unwrap_or(&[0; 64]);
				// SAFETY: `words` is 64 readable bytes; the load is unaligned.
				*row = unsafe { _mm512_loadu_si512(words.as_ptr().cast()) };
			}
			for (j, col) in transpose(rows).into_iter().enumerate() {
				m[8 * half + j] = col;
			}
		}
		let mut v = [_mm512_setzero_si512(); 16];
		for i in 0..8 {
			v[i] = h[i];
			v[8 + i] = _mm512_set1_epi64(IV[i] as i64);
		}
		v[12] = _mm512_xor_si512(v[12], t);
		v[14] = _mm512_xor_si512(v[14], f);
		for s in &SIGMA {
			round(&mut v, &m, s);
		}
		for i in 0..8 {
			h[i] = _mm512_xor_si512(h[i], _mm512_xor_si512(v[i], v[i + 8]));
		}
	}

	/// A lane's message: its index and how many bytes of it are compressed.
	#[derive(Clone, Copy)]
	struct Lane {
		message: usize,
		done: usize,
	}

	/// # Safety
	/// AVX-512F must be present.
	#[target_feature(enable = "avx512f")]
	pub(super) unsafe fn hash_many(messages: &[&[u8]]) -> Vec<Hash> {
		let mut out = vec![[0u8; 32]; messages.len()];
		let mut queue = super::super::hashing::longest_first(messages).into_iter();
		let mut lanes: [Option<Lane>; 8] = [None; 8];
		// The state vectors (word `w` of every lane), the initial state, and the first four
		// words of finished lanes stored back as `words[w][lane]`.
		let mut h = [_mm512_setzero_si512(); 8];
		let mut init = [_mm512_setzero_si512(); 8];
		for (w, (v, iv)) in init.iter_mut().zip(IV).enumerate() {
			*v = _mm512_set1_epi64((if w == 0 { iv ^ PARAM0 } else { iv }) as i64);
		}
		let mut words = [[0u64; 8]; 4];
		let mut blocks = [[0u8; BLOCK]; 8];
		loop {
			// Lanes without a message take the next one, from the initial state.
			let mut fresh: __mmask8 = 0;
			for (l, lane) in lanes.iter_mut().enumerate() {
				if lane.is_none() {
					let Some(message) = queue.next() else { break };
					*lane = Some(Lane { message, done: 0 });
					fresh |= 1 << l;
				}
			}
			if fresh != 0 {
				for (v, i) in h.iter_mut().zip(&init) {
					*v = _mm512_mask_mov_epi64(*v, fresh, *i);
				}
			}
			if lanes.iter().all(Option::is_none) {
				break;
			}
			// Each lane's next block: a whole one inside the message, or the last one
			// (zero-padded, flagged final, counted at the message's length).
			let mut t = [0u64; 8];
			let mut f = [0u64; 8];
			// Whole blocks are read in place; last blocks are padded in `blocks`.
			let mut inside: [Option<&[u8; BLOCK]>; 8] = [None; 8];
			for (l, lane) in lanes.iter_mut().enumerate() {
				let Some(Lane { message, done }) = *lane else { continue };
				let bytes = messages.get(message).copied().unwrap_or(&[]);
				let rest = bytes.get(done..).unwrap_or(&[]);
				match rest.first_chunk::<BLOCK>() {
					Some(block) if rest.len() > BLOCK => {
						inside[l] = Some(block);
						t[l] = (done + BLOCK) as u64;
						*lane = Some(Lane { message, done: done + BLOCK });
					},
					_ => {
						let block = &mut blocks[l];
						block[..rest.len()].copy_from_slice(rest);
						block[rest.len()..].fill(0);
						t[l] = bytes.len() as u64;
						f[l] = u64::MAX;
					},
				}
			}
			let mut refs = [&blocks[0]; 8];
			for (l, r) in refs.iter_mut().enumerate() {
				*r = inside[l].unwrap_or(&blocks[l]);
			}
			compress(&mut h, &refs, load_words(&t), load_words(&f));
			if f.iter().any(|&x| x != 0) {
				for (v, to) in h.iter().zip(words.iter_mut()) {
					store_words(*v, to);
				}
				for (l, lane) in lanes.iter_mut().enumerate() {
					if f[l] == 0 {
						continue;
					}
					if let Some(Lane { message, .. }) = lane.take() {
						if let Some(hash) = out.get_mut(message) {
							for (w, to) in hash.chunks_exact_mut(8).enumerate() {
								to.copy_from_slice(&words[w][l].to_le_bytes());
							}
						}
					}
				}
			}
		}
		out
	}

	#[target_feature(enable = "avx512f")]
	#[inline]
	fn load_words(w: &[u64; 8]) -> __m512i {
		// SAFETY: 64 readable bytes; the load is unaligned.
		unsafe { _mm512_loadu_si512(w.as_ptr().cast()) }
	}

	#[target_feature(enable = "avx512f")]
	#[inline]
	fn store_words(v: __m512i, to: &mut [u64; 8]) {
		// SAFETY: 64 writable bytes; the store is unaligned.
		unsafe { _mm512_storeu_si512(to.as_mut_ptr().cast(), v) };
	}
}

#[cfg(test)]
mod tests {
	use super::*;

	fn reference(message: &[u8]) -> Hash {
		let mut h = [0u8; 32];
		h.copy_from_slice(blake2b_simd::Params::new().hash_length(32).hash(message).as_bytes());
		h
	}

	/// A deterministic pseudo-random byte stream.
	fn bytes(seed: u64, n: usize) -> Vec<u8> {
		let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
		(0..n)
			.map(|_| {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				x as u8
			})
			.collect()
	}

	/// Every length from 0 to three blocks and a few more, as one batch and one at a time,
	/// equal to blake2b_simd's BLAKE2b-256 (which the node's `blake2_256` is).
	#[test]
	fn equals_blake2b_around_block_boundaries() {
		if blake2_256_many_x8(&[]).is_none() {
			eprintln!("no AVX-512F on this CPU: the 8-lane hashing is not exercised");
			return;
		}
		let mut lengths: Vec<usize> = (0..=3 * 128 + 1).collect();
		lengths.extend([1_000, 1_036, 2_316, 6_156, 196_620]);
		let data: Vec<Vec<u8>> = lengths.iter().map(|&n| bytes(n as u64, n)).collect();
		let messages: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
		let want: Vec<Hash> = messages.iter().map(|m| reference(m)).collect();
		assert_eq!(blake2_256_many_x8(&messages), Some(want.clone()));
		for (m, w) in messages.iter().zip(&want) {
			assert_eq!(blake2_256_many_x8(&[m]), Some(vec![*w]), "length {}", m.len());
		}
		assert_eq!(blake2_256_many_x8(&[]), Some(vec![]));
	}

	/// Random batches (sizes 1..40, lengths 0..3,000, duplicates): the hashes in input order.
	#[test]
	fn random_batches_equal_blake2b() {
		if blake2_256_many_x8(&[]).is_none() {
			return;
		}
		for seed in 0..200u64 {
			let r = bytes(seed, 64);
			let count = 1 + r[0] as usize % 40;
			let data: Vec<Vec<u8>> = (0..count)
				.map(|i| {
					let len = (u16::from_le_bytes([r[1 + i], r[2 + i]]) as usize) % 3_000;
					bytes(seed * 1_000 + i as u64, len)
				})
				.collect();
			let mut messages: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
			messages.push(messages[0]);
			let want: Vec<Hash> = messages.iter().map(|m| reference(m)).collect();
			assert_eq!(blake2_256_many_x8(&messages), Some(want), "seed {seed}");
		}
	}
}
