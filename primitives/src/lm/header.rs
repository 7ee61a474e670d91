//! The header of a transformer language model and its weight chunks.
//!
//! The header (on-chain, SCALE-encoded, id = `blake2_256(SCALE(header))`) holds every
//! dimension, the quantization format of every matrix, the rotary table, the norm epsilon,
//! the hashes of the tokenizer and chat-template bytes, and `weights_root`: the Merkle root
//! (the rules of [`crate::commit`]) over the blake2-256 hashes of the model's **weight
//! chunks**, so that the weights one step touches can be proven with one inclusion proof each.

use alloc::vec::Vec;
use codec::{Decode, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

use super::quant::{ActLevels, BlockFormat};
use crate::model::Hash;

/// The transformer header version new models get (part of the encoding): 2, whose matrix
/// products quantize activations to 15 bits per block (`ActLevels::L16383`).
pub const LM_HEADER_VERSION: u32 = 2;

/// The oldest version still executed: 1, the same format with 8-bit activations
/// (`ActLevels::L127`). The version is part of the header, so of the model id: a model's
/// rule never changes under it.
pub const LM_HEADER_VERSION_MIN: u32 = 1;

/// Largest `max_context` (positions are `u32`; angles `position * inv_freq` then fit `u64`).
pub const MAX_CONTEXT: u32 = 1 << 24;

/// Largest entry of the rotary table: `2^32` (a frequency of 1 radian per position).
pub const MAX_INV_FREQ: u64 = 1 << 32;

/// Largest number of end-of-sequence tokens.
pub const MAX_EOS_TOKENS: usize = 16;

/// Bytes per element of every stored activation vector (`i32` little-endian) and of the
/// selected token (`u32` little-endian).
pub const ELEMENT_BYTES: u64 = 4;

/// Quantization formats of the matrices of one layer.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct LayerFormats {
	pub wq: BlockFormat,
	pub wk: BlockFormat,
	pub wv: BlockFormat,
	pub wo: BlockFormat,
	pub gate: BlockFormat,
	pub up: BlockFormat,
	pub down: BlockFormat,
}

impl LayerFormats {
	/// Every matrix in `format`.
	pub const fn uniform(format: BlockFormat) -> LayerFormats {
		LayerFormats {
			wq: format,
			wk: format,
			wv: format,
			wo: format,
			gate: format,
			up: format,
			down: format,
		}
	}
}

/// A decoder-only transformer (Llama family) with tied embeddings. See
/// `docs/MODEL_FORMAT.md` section 12 for the meaning of every field.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct LmHeader {
	/// [`LM_HEADER_VERSION_MIN`] ..= [`LM_HEADER_VERSION`]; selects the activations' precision
	/// ([`LmHeader::act_levels`]).
	pub version: u32,
	/// Model (residual stream) dimension `D`, a multiple of 32.
	pub dim: u32,
	/// Number of transformer blocks `L >= 1`.
	pub n_layers: u32,
	/// Query heads `H`.
	pub n_heads: u32,
	/// Key/value heads `G`, dividing `H` (query head `h` reads kv head `h / (H / G)`).
	pub n_kv_heads: u32,
	/// Head dimension (even); `H * head_dim` is a multiple of 32.
	pub head_dim: u32,
	/// FFN hidden dimension `F`, a multiple of 32.
	pub ffn_dim: u32,
	/// Vocabulary size `V`.
	pub vocab: u32,
	/// Largest number of positions of a generation (prompt and generated tokens).
	pub max_context: u32,
	/// RMSNorm epsilon in units of `2^-32` (`>= 1`); `1e-5` is `42950`.
	pub norm_eps: u32,
	/// Attention score scale in Q16 (`round(2^16 / sqrt(head_dim))`; `8192` for 64).
	pub attn_scale_q16: u32,
	/// Rotary frequencies in Q32, `head_dim / 2` entries, each `<= 2^32`:
	/// `round(base^(-2i / head_dim) * 2^32)` for the usual RoPE with base `base`.
	pub rope_inv_freq: Vec<u64>,
	/// Format of the token embedding matrix `[V][D]`, which is also the LM head (tied).
	pub embedding: BlockFormat,
	/// Formats of each layer's matrices, `n_layers` entries.
	pub layers: Vec<LayerFormats>,
	/// Rows per weight chunk (and per step) of `wo`, `gate`, `up`, `down`; divides `D` and `F`.
	pub chunk_rows: u32,
	/// Rows per chunk (and per LM-head step) of the embedding matrix; divides `V`.
	pub vocab_chunk_rows: u32,
	/// Positions per attention block: one `AttnPart` step reads the keys and values of at most
	/// this many positions (`>= 1`; `>= max_context` makes attention one part).
	pub attn_block: u32,
	/// Tokens that end a generation (each `< V`, at most [`MAX_EOS_TOKENS`]).
	pub eos_tokens: Vec<u32>,
	/// `blake2_256` of the tokenizer file bytes (e.g. `tokenizer.json`).
	pub tokenizer_hash: Hash,
	/// `blake2_256` of the chat-template bytes.
	pub chat_template_hash: Hash,
	/// Merkle root over the hashes of the weight chunks, in [`LmHeader::weight_chunks`] order.
	pub weights_root: Hash,
}

/// One weight chunk: a contiguous byte string, hashed as one leaf of `weights_root`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum WeightChunk {
	/// Rows `c * vocab_chunk_rows ..` of the embedding matrix (also the LM head).
	Embedding(u32),
	/// RMSNorm weights before attention of layer `l`: `D` `i32` (Q16).
	AttnNorm(u32),
	/// Rows of query head `h` of layer `l`: `head_dim` rows of `D`.
	Wq(u32, u32),
	/// Rows of key head `g`.
	Wk(u32, u32),
	/// Rows of value head `g`.
	Wv(u32, u32),
	/// Rows `c * chunk_rows ..` of the output projection `[D][H * head_dim]`.
	Wo(u32, u32),
	/// RMSNorm weights before the FFN of layer `l`.
	FfnNorm(u32),
	/// Rows `c * chunk_rows ..` of the gate projection `[F][D]`.
	Gate(u32, u32),
	/// Rows `c * chunk_rows ..` of the up projection `[F][D]`.
	Up(u32, u32),
	/// Rows `c * chunk_rows ..` of the down projection `[D][F]`.
	Down(u32, u32),
	/// Final RMSNorm weights.
	OutputNorm,
}

impl LmHeader {
	/// The model id: `blake2_256(SCALE(header))`.
	pub fn id(&self) -> Hash {
		sp_crypto_hashing::blake2_256(&self.encode())
	}

	/// How finely the matrix products quantize their activations: 8 bits in version 1,
	/// 15 bits from version 2 on (validation refuses any other version).
	pub fn act_levels(&self) -> ActLevels {
		if self.version <= 1 {
			ActLevels::L127
		} else {
			ActLevels::L16383
		}
	}

	/// `H * head_dim` (saturating; validation bounds it).
	pub fn attn_dim(&self) -> u32 {
		self.n_heads.saturating_mul(self.head_dim)
	}

	/// Query heads per kv head (`H / G`, at least 1).
	pub fn group_size(&self) -> u32 {
		(self.n_heads / self.n_kv_heads.max(1)).max(1)
	}

	/// Chunks of `D` rows (`wo`, `down`, residual stream).
	pub fn dim_chunks(&self) -> u32 {
		self.dim / self.chunk_rows.max(1)
	}

	/// Chunks of `F` rows (`gate`, `up`).
	pub fn ffn_chunks(&self) -> u32 {
		self.ffn_dim / self.chunk_rows.max(1)
	}

	/// Attention parts per query head: `ceil(max_context / attn_block)`.
	pub fn attn_parts(&self) -> u32 {
		self.max_context.div_ceil(self.attn_block.max(1))
	}

	/// Chunks of the embedding / LM head.
	pub fn vocab_chunks(&self) -> u32 {
		self.vocab / self.vocab_chunk_rows.max(1)
	}

	/// Weight chunks of one layer.
	pub fn chunks_per_layer(&self) -> u64 {
		2 + u64::from(self.n_heads)
			+ 2 * u64::from(self.n_kv_heads)
			+ 2 * u64::from(self.dim_chunks())
			+ 2 * u64::from(self.ffn_chunks())
	}

	/// Number of weight chunks (leaves of `weights_root`).
	pub fn num_weight_chunks(&self) -> u64 {
		u64::from(self.vocab_chunks())
			.saturating_add(u64::from(self.n_layers).saturating_mul(self.chunks_per_layer()))
			.saturating_add(1)
	}

	/// The leaf index of a chunk in `weights_root`: embedding chunks first, then per layer
	/// `AttnNorm, Wq(0..H), Wk(0..G), Wv(0..G), Wo(0..D/c), FfnNorm, Gate(0..F/c),
	/// Up(0..F/c), Down(0..D/c)`, then `OutputNorm`. `None` for a chunk the model lacks.
	pub fn chunk_index(&self, chunk: WeightChunk) -> Option<u64> {
		let (h, g) = (u64::from(self.n_heads), u64::from(self.n_kv_heads));
		let (dc, fc) = (u64::from(self.dim_chunks()), u64::from(self.ffn_chunks()));
		let layer = |l: u32, offset: u64, i: u32, count: u64| -> Option<u64> {
			if l >= self.n_layers || u64::from(i) >= count {
				return None;
			}
			let base = u64::from(l)
				.checked_mul(self.chunks_per_layer())?
				.checked_add(u64::from(self.vocab_chunks()))?;
			base.checked_add(offset)?.checked_add(u64::from(i))
		};
		match chunk {
			WeightChunk::Embedding(c) => (c < self.vocab_chunks()).then_some(u64::from(c)),
			WeightChunk::AttnNorm(l) => layer(l, 0, 0, 1),
			WeightChunk::Wq(l, i) => layer(l, 1, i, h),
			WeightChunk::Wk(l, i) => layer(l, 1 + h, i, g),
			WeightChunk::Wv(l, i) => layer(l, 1 + h + g, i, g),
			WeightChunk::Wo(l, i) => layer(l, 1 + h + 2 * g, i, dc),
			WeightChunk::FfnNorm(l) => layer(l, 1 + h + 2 * g + dc, 0, 1),
			WeightChunk::Gate(l, i) => layer(l, 2 + h + 2 * g + dc, i, fc),
			WeightChunk::Up(l, i) => layer(l, 2 + h + 2 * g + dc + fc, i, fc),
			WeightChunk::Down(l, i) => layer(l, 2 + h + 2 * g + dc + 2 * fc, i, dc),
			WeightChunk::OutputNorm => self.num_weight_chunks().checked_sub(1),
		}
	}

	/// The total bytes of all weight chunks (saturating), computed without listing them.
	pub fn total_weight_bytes(&self) -> u64 {
		use WeightChunk as W;
		let times = |n: u32, c: WeightChunk| u64::from(n).saturating_mul(self.chunk_bytes(c));
		let (h, g, dc, fc) = (self.n_heads, self.n_kv_heads, self.dim_chunks(), self.ffn_chunks());
		// Formats may differ per layer: sum each layer with its own formats.
		let mut total = times(self.vocab_chunks(), W::Embedding(0))
			.saturating_add(self.chunk_bytes(W::OutputNorm));
		for l in 0..u32::try_from(self.layers.len()).unwrap_or(u32::MAX) {
			let per_layer: u64 = [
				self.chunk_bytes(W::AttnNorm(l)),
				times(h, W::Wq(l, 0)),
				times(g, W::Wk(l, 0)),
				times(g, W::Wv(l, 0)),
				times(dc, W::Wo(l, 0)),
				self.chunk_bytes(W::FfnNorm(l)),
				times(fc, W::Gate(l, 0)),
				times(fc, W::Up(l, 0)),
				times(dc, W::Down(l, 0)),
			]
			.iter()
			.fold(0u64, |a, &b| a.saturating_add(b));
			total = total.saturating_add(per_layer);
		}
		total
	}

	/// Every weight chunk in leaf order (call only on a header whose chunk count is bounded,
	/// e.g. after validation or against the bytes of a file).
	pub fn weight_chunks(&self) -> Vec<WeightChunk> {
		let mut out = Vec::new();
		out.extend((0..self.vocab_chunks()).map(WeightChunk::Embedding));
		for l in 0..self.n_layers {
			out.push(WeightChunk::AttnNorm(l));
			out.extend((0..self.n_heads).map(|i| WeightChunk::Wq(l, i)));
			out.extend((0..self.n_kv_heads).map(|i| WeightChunk::Wk(l, i)));
			out.extend((0..self.n_kv_heads).map(|i| WeightChunk::Wv(l, i)));
			out.extend((0..self.dim_chunks()).map(|i| WeightChunk::Wo(l, i)));
			out.push(WeightChunk::FfnNorm(l));
			out.extend((0..self.ffn_chunks()).map(|i| WeightChunk::Gate(l, i)));
			out.extend((0..self.ffn_chunks()).map(|i| WeightChunk::Up(l, i)));
			out.extend((0..self.dim_chunks()).map(|i| WeightChunk::Down(l, i)));
		}
		out.push(WeightChunk::OutputNorm);
		out
	}

	/// `(format, rows, row length)` of a matrix chunk, `None` for norm chunks and for chunks of
	/// layers the model lacks.
	pub fn chunk_matrix(&self, chunk: WeightChunk) -> Option<(BlockFormat, u32, u32)> {
		let layer = |l: u32| self.layers.get(usize::try_from(l).ok()?);
		let (d, f, hd, cr) = (self.dim, self.ffn_dim, self.head_dim, self.chunk_rows);
		Some(match chunk {
			WeightChunk::Embedding(_) => (self.embedding, self.vocab_chunk_rows, d),
			WeightChunk::Wq(l, _) => (layer(l)?.wq, hd, d),
			WeightChunk::Wk(l, _) => (layer(l)?.wk, hd, d),
			WeightChunk::Wv(l, _) => (layer(l)?.wv, hd, d),
			WeightChunk::Wo(l, _) => (layer(l)?.wo, cr, self.attn_dim()),
			WeightChunk::Gate(l, _) => (layer(l)?.gate, cr, d),
			WeightChunk::Up(l, _) => (layer(l)?.up, cr, d),
			WeightChunk::Down(l, _) => (layer(l)?.down, cr, f),
			WeightChunk::AttnNorm(_) | WeightChunk::FfnNorm(_) | WeightChunk::OutputNorm => {
				return None
			},
		})
	}

	/// Byte length of a chunk: `rows * (row length / 32) * block bytes` for a matrix chunk,
	/// `4 * D` for a norm chunk (`D` little-endian `i32` weights in Q16).
	pub fn chunk_bytes(&self, chunk: WeightChunk) -> u64 {
		match self.chunk_matrix(chunk) {
			Some((format, rows, k)) => u64::from(rows)
				.saturating_mul(u64::from(k / 32))
				.saturating_mul(format.block_bytes() as u64),
			None => ELEMENT_BYTES * u64::from(self.dim),
		}
	}
}

/// Decode a transformer header from untrusted bytes, canonically (see
/// [`crate::file::decode_canonical`]: size limit, depth limit, no trailing bytes, re-encodes
/// to the same bytes). Never panics. Decoding does not validate: call
/// [`super::validate::validate_lm`] next.
pub fn decode_lm_header(
	bytes: &[u8],
	max_bytes: u32,
) -> Result<LmHeader, crate::file::DecodeError> {
	crate::file::decode_canonical(bytes, max_bytes)
}

#[cfg(test)]
pub(crate) mod tests {
	use super::*;

	pub(crate) fn tiny() -> LmHeader {
		LmHeader {
			version: LM_HEADER_VERSION,
			dim: 64,
			n_layers: 2,
			n_heads: 4,
			n_kv_heads: 2,
			head_dim: 16,
			ffn_dim: 96,
			vocab: 40,
			max_context: 16,
			norm_eps: 42950,
			attn_scale_q16: 16384,
			rope_inv_freq: alloc::vec![1 << 32; 8],
			embedding: BlockFormat::Q8_0,
			layers: alloc::vec![LayerFormats::uniform(BlockFormat::Q4_1); 2],
			chunk_rows: 32,
			vocab_chunk_rows: 8,
			attn_block: 6,
			eos_tokens: alloc::vec![1],
			tokenizer_hash: [1; 32],
			chat_template_hash: [2; 32],
			weights_root: [0; 32],
		}
	}

	#[test]
	fn header_decodes_canonically() {
		use crate::file::DecodeError;
		let h = tiny();
		let bytes = h.encode();
		assert_eq!(decode_lm_header(&bytes, 1 << 20), Ok(h.clone()));
		let mut trailing = bytes.clone();
		trailing.push(0);
		assert_eq!(decode_lm_header(&trailing, 1 << 20), Err(DecodeError::Malformed));
		assert_eq!(decode_lm_header(&bytes, 10), Err(DecodeError::TooLarge));
		// An unknown block format index.
		let mut bad = bytes.clone();
		let at = 4 * 11 + 1 + 8 * 8; // the embedding format byte (after 11 u32 and the table)
		assert_eq!(bad[at], 0);
		bad[at] = 3;
		assert_eq!(decode_lm_header(&bad, 1 << 20), Err(DecodeError::Malformed));
		// Every truncation and every single-byte change decodes or fails, never panics.
		for n in 0..bytes.len() {
			assert!(decode_lm_header(&bytes[..n], 1 << 20).is_err());
			for v in [0u8, 1, 0x55, 0xff] {
				let mut b = bytes.clone();
				b[n] = v;
				let _ = decode_lm_header(&b, 1 << 20);
			}
		}
	}

	#[test]
	fn chunk_indices_follow_enumeration() {
		let h = tiny();
		let chunks = h.weight_chunks();
		assert_eq!(chunks.len() as u64, h.num_weight_chunks());
		// 5 embedding + 2 * (1 + 4 + 2 + 2 + 2 + 1 + 3 + 3 + 2) + 1
		assert_eq!(h.num_weight_chunks(), 5 + 2 * 20 + 1);
		for (i, c) in chunks.iter().enumerate() {
			assert_eq!(h.chunk_index(*c), Some(i as u64), "{c:?}");
		}
		assert_eq!(h.chunk_index(WeightChunk::Wq(2, 0)), None);
		assert_eq!(h.chunk_index(WeightChunk::Wk(0, 2)), None);
		assert_eq!(h.chunk_index(WeightChunk::Embedding(5)), None);
		// Q8_0 embedding chunk: 8 rows * 2 blocks * 34; Q4_1 down chunk: 32 rows * 3 * 20.
		assert_eq!(h.chunk_bytes(WeightChunk::Embedding(0)), 8 * 2 * 34);
		assert_eq!(h.chunk_bytes(WeightChunk::Down(1, 1)), 32 * 3 * 20);
		assert_eq!(h.chunk_bytes(WeightChunk::Wo(0, 0)), 32 * 2 * 20);
		assert_eq!(h.chunk_bytes(WeightChunk::FfnNorm(0)), 256);
		let listed: u64 = chunks.iter().map(|&c| h.chunk_bytes(c)).sum();
		assert_eq!(h.total_weight_bytes(), listed);
		// Absurd dimensions saturate instead of overflowing.
		let mut huge = h.clone();
		huge.n_layers = u32::MAX;
		huge.vocab = u32::MAX;
		huge.vocab_chunk_rows = 1;
		assert!(huge.chunk_index(WeightChunk::Down(u32::MAX - 1, 0)).is_some());
		let _ = huge.total_weight_bytes();
		let _ = huge.num_weight_chunks();
	}
}
