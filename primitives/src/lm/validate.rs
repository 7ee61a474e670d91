//! Validation of a transformer header: structure, accumulator bounds and the caller's
//! [`Limits`] on the largest step at the declared maximum context.
//!
//! As for classifiers, validity depends on the header alone: any weight chunk of the declared
//! length is valid (non-finite fp16 scales read as 0), so a header that validates can be
//! executed on every prompt and every weight blob, and every step fits the limits.

use alloc::vec::Vec;
use codec::{Decode, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

use super::{
	fixed::EXP_TERMS,
	graph::{attn_parts_at, block_positions, op_at, ops_at, output_elements, LmOp, Shape},
	header::{
		LmHeader, WeightChunk, ELEMENT_BYTES, LM_HEADER_VERSION, LM_HEADER_VERSION_MIN,
		MAX_CONTEXT, MAX_EOS_TOKENS, MAX_INV_FREQ,
	},
	quant::{ActLevels, BLOCK_LEN},
};
use crate::{model::Hash, validate::Limits};

/// Upper bound of the SCALE bytes of a step proof around its payload: position, op, the
/// committed hash and its inclusion proof's fixed fields, the group and chunk counts.
pub const PROOF_FIXED_BYTES: u64 = 64;

/// Upper bound of the SCALE bytes of one proven input tensor around its data and siblings:
/// position (4), op (4), `compact(len)` (<= 5), leaf index (4), leaf count (4),
/// `compact(siblings)` (1).
pub const REF_OVERHEAD_BYTES: u64 = 22;

/// Upper bound of the SCALE bytes of one proven weight chunk around its data and siblings.
pub const CHUNK_OVERHEAD_BYTES: u64 = 14;

/// Why a transformer header is invalid.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum LmInvalid {
	/// `version` outside `LM_HEADER_VERSION_MIN ..= LM_HEADER_VERSION`.
	UnsupportedVersion,
	/// A dimension, count, chunk size, the attention block or the maximum context is 0.
	ZeroDimension,
	/// `head_dim` is odd (RoPE rotates pairs).
	OddHeadDim,
	/// `n_kv_heads` does not divide `n_heads`.
	BadHeadGroups,
	/// `dim`, `ffn_dim` or `n_heads * head_dim` is not a multiple of 32 (the block length).
	NotBlockAligned,
	/// `chunk_rows` does not divide `dim` and `ffn_dim`, or `vocab_chunk_rows` `vocab`.
	BadChunkRows,
	/// The rotary table does not have `head_dim / 2` entries, or one exceeds `2^32`.
	BadRopeTable,
	/// `norm_eps == 0` (the square root could be 0).
	ZeroEps,
	/// `max_context > MAX_CONTEXT`.
	ContextTooLarge,
	/// `layers.len() != n_layers`.
	BadLayerCount,
	/// No end-of-sequence token, more than `MAX_EOS_TOKENS`, or one `>= vocab`.
	BadEosTokens,
	/// The encoded header is longer than `max_header_bytes`.
	HeaderTooLarge,
	/// A position has more ops than `max_ops`.
	TooManyOps,
	/// A step output has more than `max_tensor_elements` elements.
	TensorTooLarge,
	/// The step proof of `op` at the maximum context exceeds `max_step_proof_bytes`.
	StepProofTooLarge { op: LmOp },
	/// The re-execution cost of `op` at the maximum context exceeds `max_step_macs`.
	TooManyMacs { op: LmOp },
	/// An accumulator bound could not be proven (cannot happen within the other rules).
	AccumulatorOverflow,
	/// A size computation overflowed.
	SizeOverflow,
}

impl core::fmt::Display for LmInvalid {
	fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
		write!(f, "invalid transformer header: {:?}", self)
	}
}

#[cfg(feature = "std")]
impl std::error::Error for LmInvalid {}

/// Sizes and cost of one step (from the header alone).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct LmStepCost {
	pub op: LmOp,
	/// The position the cost is computed for (attention grows with it).
	pub position: u32,
	/// Number of input steps (each with an inclusion proof).
	pub input_refs: u64,
	/// Bytes of the input tensors.
	pub input_bytes: u64,
	/// Number of weight chunks (each with an inclusion proof).
	pub weight_chunks: u64,
	/// Bytes of the weight chunks.
	pub weight_bytes: u64,
	/// Bytes of the output.
	pub output_bytes: u64,
	/// Upper bound of the SCALE-encoded step proof: payload, inclusion proofs and framing.
	pub proof_bytes: u64,
	/// Re-execution cost: multiply-accumulates (matmul: rows * K; attention part: `2 * keys *
	/// head_dim`, at least `head_dim`; merge: `parts * head_dim + head_dim`; norms and
	/// embedding: `D`), plus the series terms of `exp` (`EXP_TERMS` per softmax, merge factor
	/// or SiLU element, `16` per RoPE element, `EXP_TERMS + 32` per vocabulary entry of
	/// Select, which also sorts).
	pub macs: u64,
}

/// What validation learned about a transformer.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct LmInfo {
	pub id: Hash,
	pub header_bytes: u32,
	/// Ops of a position that does not select a token, at most (at `max_context - 1`; a
	/// position `t` has `t / attn_block + 1` attention parts per head).
	pub ops_per_position: u64,
	/// Ops of a position that selects a token, at most (the last position at `max_context`).
	pub ops_per_sampling_position: u64,
	pub weight_chunks: u64,
	pub total_weight_bytes: u64,
	/// The costs of every op of the last position of a generation at `max_context`.
	pub steps: Vec<LmStepCost>,
	/// Largest `proof_bytes` of `steps`, and its op.
	pub max_step_proof_bytes: u64,
	pub max_proof_op: LmOp,
	/// Largest `macs` of `steps`, and its op.
	pub max_step_macs: u64,
	pub max_macs_op: LmOp,
}

/// Number of siblings of an inclusion proof in a tree of `n` leaves: `ceil(log2(n))`.
pub fn merkle_depth(n: u64) -> u64 {
	if n <= 1 {
		0
	} else {
		u64::from(64 - (n - 1).leading_zeros())
	}
}

fn ovf<T>(v: Option<T>) -> Result<T, LmInvalid> {
	v.ok_or(LmInvalid::SizeOverflow)
}

/// `v` as a `u64`, saturated (a saturated size or cost exceeds every limit).
fn sat64(v: u128) -> u64 {
	u64::try_from(v).unwrap_or(u64::MAX)
}

/// The cost of `op` at `position` of a generation in which that position and the previous
/// one select tokens (the worst case: the `Embed` step then reads a proven token and every
/// position tree is as deep as possible). Computed in `u128` (every product has at most three
/// factors below `2^35`) and saturated to `u64`, so that no header can wrap a cost below a
/// limit.
pub fn step_cost(h: &LmHeader, position: u32, op: LmOp) -> Result<LmStepCost, LmInvalid> {
	let (d, hd, f) = (u128::from(h.dim), u128::from(h.head_dim), u128::from(h.ffn_dim));
	let (cr, vcr) = (u128::from(h.chunk_rows.max(1)), u128::from(h.vocab_chunk_rows.max(1)));
	let (hh, ad) = (u128::from(h.n_heads), u128::from(h.n_heads) * u128::from(h.head_dim));
	let exp = u128::from(EXP_TERMS);
	// (input refs, input elements, macs)
	let (refs, elements, macs): (u128, u128, u128) = match op {
		LmOp::Embed => (1, 1, d),
		LmOp::AttnNorm(l) | LmOp::FfnNorm(l) => {
			let refs = if matches!(op, LmOp::AttnNorm(_)) && l == 0 { 1 } else { d / cr };
			(refs, d, d)
		},
		LmOp::FinalNorm => (d / cr, d, d),
		LmOp::Q(..) | LmOp::K(..) => (1, d, hd * d + 16 * hd),
		LmOp::V(..) => (1, d, hd * d),
		LmOp::AttnPart(_, _, b) => {
			let keys = u128::from(block_positions(h, position, b).len() as u32);
			(1 + 2 * keys, hd + 2 * keys * hd, (2 * hd + exp) * keys + hd)
		},
		LmOp::Attn(..) => {
			let parts = u128::from(attn_parts_at(h, position));
			(parts, parts * (3 + hd), parts * (hd + exp) + hd)
		},
		LmOp::OProj(l, _) => (hh + 1, ad + if l == 0 { d } else { cr }, cr * ad),
		LmOp::GateUp(..) => (1, d, 2 * cr * d + exp * cr),
		LmOp::Down(..) => (f / cr + 1, f + cr, cr * f),
		LmOp::Head(_) => (1, d, vcr * d),
		LmOp::Select => {
			let v = u128::from(h.vocab);
			(v / vcr, v, v * (exp + 32))
		},
	};
	let chunks = super::graph::op_weights(h, op, 0);
	let weight_bytes: u128 = chunks.iter().map(|&c| u128::from(h.chunk_bytes(c))).sum();
	let depth_p = u128::from(merkle_depth(ops_at(h, Shape::last(h))));
	let depth_w = u128::from(merkle_depth(h.num_weight_chunks()));
	let input_bytes = elements * u128::from(ELEMENT_BYTES);
	let n_chunks = chunks.len() as u128;
	let proof_bytes = u128::from(PROOF_FIXED_BYTES)
		+ 32 * depth_p
		+ input_bytes
		+ refs * (u128::from(REF_OVERHEAD_BYTES) + 32 * depth_p)
		+ weight_bytes
		+ n_chunks * (u128::from(CHUNK_OVERHEAD_BYTES) + 32 * depth_w);
	Ok(LmStepCost {
		op,
		position,
		input_refs: sat64(refs),
		input_bytes: sat64(input_bytes),
		weight_chunks: sat64(n_chunks),
		weight_bytes: sat64(weight_bytes),
		output_bytes: ELEMENT_BYTES.saturating_mul(u64::from(output_elements(h, op))),
		proof_bytes: sat64(proof_bytes),
		macs: sat64(macs),
	})
}

/// The structural rules (everything but the limits).
pub fn check_structure(h: &LmHeader) -> Result<(), LmInvalid> {
	if !(LM_HEADER_VERSION_MIN..=LM_HEADER_VERSION).contains(&h.version) {
		return Err(LmInvalid::UnsupportedVersion);
	}
	let dims = [
		h.dim,
		h.n_layers,
		h.n_heads,
		h.n_kv_heads,
		h.head_dim,
		h.ffn_dim,
		h.vocab,
		h.max_context,
		h.chunk_rows,
		h.vocab_chunk_rows,
		h.attn_block,
	];
	if dims.contains(&0) {
		return Err(LmInvalid::ZeroDimension);
	}
	if !h.head_dim.is_multiple_of(2) {
		return Err(LmInvalid::OddHeadDim);
	}
	if !h.n_heads.is_multiple_of(h.n_kv_heads) {
		return Err(LmInvalid::BadHeadGroups);
	}
	let attn_dim = ovf(h.n_heads.checked_mul(h.head_dim))?;
	let block = BLOCK_LEN as u32;
	if !h.dim.is_multiple_of(block)
		|| !h.ffn_dim.is_multiple_of(block)
		|| !attn_dim.is_multiple_of(block)
	{
		return Err(LmInvalid::NotBlockAligned);
	}
	if !h.dim.is_multiple_of(h.chunk_rows)
		|| !h.ffn_dim.is_multiple_of(h.chunk_rows)
		|| !h.vocab.is_multiple_of(h.vocab_chunk_rows)
	{
		return Err(LmInvalid::BadChunkRows);
	}
	if h.rope_inv_freq.len() as u64 != u64::from(h.head_dim / 2)
		|| h.rope_inv_freq.iter().any(|&f| f > MAX_INV_FREQ)
	{
		return Err(LmInvalid::BadRopeTable);
	}
	if h.norm_eps == 0 {
		return Err(LmInvalid::ZeroEps);
	}
	if h.max_context > MAX_CONTEXT {
		return Err(LmInvalid::ContextTooLarge);
	}
	if h.layers.len() as u64 != u64::from(h.n_layers) {
		return Err(LmInvalid::BadLayerCount);
	}
	if h.eos_tokens.is_empty()
		|| h.eos_tokens.len() > MAX_EOS_TOKENS
		|| h.eos_tokens.iter().any(|&t| t >= h.vocab)
	{
		return Err(LmInvalid::BadEosTokens);
	}
	check_accumulators(h)
}

/// The accumulator bounds, computed in `u128` from the header (each `checked_*` failing is
/// an [`LmInvalid::AccumulatorOverflow`]); all values are magnitudes:
///
/// * matmul (`K` = `dim`, `n_heads * head_dim` or `ffn_dim`): `(K / 32) * 2^91 <= i128::MAX`
///   with 8-bit activations (per block `amax * |d S + m A| < 2^31 * 2^60`), `(K / 32) * 2^98`
///   with 15-bit ones (`2^31 * 2^67`);
/// * RMSNorm: `(dim * 2^62 + 2^32) * 2^32 < 2^128` (`u128`), numerator `2^78`;
/// * attention: scores `head_dim * 2^62 * 2^32 <= i128::MAX`; weighted sum
///   `max_context * 2^32 * 2^31 <= i128::MAX`;
/// * Select: `vocab * 2^32 * 2^64 < 2^128` (top-p threshold and the random draw).
pub fn check_accumulators(h: &LmHeader) -> Result<(), LmInvalid> {
	let bad = LmInvalid::AccumulatorOverflow;
	let fits_i128 = |v: Option<u128>| match v {
		Some(v) if v <= i128::MAX as u128 => Ok(()),
		_ => Err(bad),
	};
	let per_block: u128 = match h.act_levels() {
		ActLevels::L127 => 1 << 91,
		ActLevels::L16383 => 1 << 98,
	};
	for k in [h.dim, h.attn_dim(), h.ffn_dim] {
		fits_i128(u128::from(k / 32).checked_mul(per_block))?;
	}
	let rms = u128::from(h.dim).checked_mul(1 << 62).and_then(|v| v.checked_add(1 << 32));
	rms.and_then(|v| v.checked_mul(1 << 32)).ok_or(bad)?;
	fits_i128(u128::from(h.head_dim).checked_mul(1 << 94))?;
	fits_i128(u128::from(h.max_context).checked_mul(1 << 63))?;
	u128::from(h.vocab).checked_mul(1 << 96).ok_or(bad)?;
	Ok(())
}

/// Validate a transformer header against `limits` (`max_header_bytes`; `max_ops` bounds the
/// ops of one position; `max_tensor_elements` every step output; `max_step_proof_bytes` and
/// `max_step_macs` every step of the last position of a generation at `max_context`).
pub fn validate_lm(h: &LmHeader, limits: &Limits) -> Result<LmInfo, LmInvalid> {
	check_structure(h)?;
	let header_bytes = crate::len_u32(h.encoded_size());
	if header_bytes > limits.max_header_bytes {
		return Err(LmInvalid::HeaderTooLarge);
	}
	let last = Shape::last(h);
	let n_sampling = ops_at(h, last);
	if n_sampling > u64::from(limits.max_ops) {
		return Err(LmInvalid::TooManyOps);
	}
	let position = h.max_context - 1;
	let mut steps = Vec::with_capacity(usize::try_from(n_sampling).unwrap_or(0));
	for i in 0..n_sampling {
		let op = op_at(h, last, ovf(u32::try_from(i).ok())?).ok_or(LmInvalid::SizeOverflow)?;
		if output_elements(h, op) > limits.max_tensor_elements {
			return Err(LmInvalid::TensorTooLarge);
		}
		let cost = step_cost(h, position, op)?;
		if cost.proof_bytes > limits.max_step_proof_bytes {
			return Err(LmInvalid::StepProofTooLarge { op });
		}
		if cost.macs > limits.max_step_macs {
			return Err(LmInvalid::TooManyMacs { op });
		}
		steps.push(cost);
	}
	// The first step (in op order) with the largest value: the one validation names.
	let largest = |key: fn(&LmStepCost) -> u64| {
		steps
			.iter()
			.fold((0, LmOp::Embed), |best, c| if key(c) > best.0 { (key(c), c.op) } else { best })
	};
	let (max_step_proof_bytes, max_proof_op) = largest(|c| c.proof_bytes);
	let (max_step_macs, max_macs_op) = largest(|c| c.macs);
	let total_weight_bytes = h.total_weight_bytes();
	Ok(LmInfo {
		id: h.id(),
		header_bytes,
		ops_per_position: ops_at(h, Shape { samples: false, ..last }),
		ops_per_sampling_position: n_sampling,
		weight_chunks: h.num_weight_chunks(),
		total_weight_bytes,
		steps,
		max_step_proof_bytes,
		max_proof_op,
		max_step_macs,
		max_macs_op,
	})
}

/// Total bytes of `chunks` (e.g. those of [`super::graph::op_weights`]).
pub fn weight_bytes_of(h: &LmHeader, chunks: &[WeightChunk]) -> u64 {
	chunks.iter().map(|&c| h.chunk_bytes(c)).sum()
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::lm::{
		graph::{op_inputs, op_weights},
		header::tests::tiny,
	};

	#[test]
	fn tiny_header_validates() {
		let h = tiny();
		let info = validate_lm(&h, &Limits::default()).unwrap();
		assert_eq!(info.ops_per_sampling_position, 74);
		assert_eq!(info.weight_chunks, 46);
	}

	#[test]
	fn structural_errors_are_typed() {
		type Mutate = fn(&mut LmHeader);
		let cases: [(Mutate, LmInvalid); 13] = [
			(|h| h.version = 3, LmInvalid::UnsupportedVersion),
			(|h| h.version = 0, LmInvalid::UnsupportedVersion),
			(|h| h.n_kv_heads = 0, LmInvalid::ZeroDimension),
			(|h| h.head_dim = 15, LmInvalid::OddHeadDim),
			(|h| h.n_kv_heads = 3, LmInvalid::BadHeadGroups),
			(|h| h.dim = 48, LmInvalid::NotBlockAligned),
			(|h| h.chunk_rows = 64, LmInvalid::BadChunkRows),
			(|h| h.rope_inv_freq[0] = (1 << 32) + 1, LmInvalid::BadRopeTable),
			(|h| h.norm_eps = 0, LmInvalid::ZeroEps),
			(|h| h.max_context = MAX_CONTEXT + 1, LmInvalid::ContextTooLarge),
			(|h| h.n_layers = 3, LmInvalid::BadLayerCount),
			(|h| h.eos_tokens = alloc::vec![40], LmInvalid::BadEosTokens),
			(|h| h.eos_tokens.clear(), LmInvalid::BadEosTokens),
		];
		for (mutate, want) in cases {
			let mut h = tiny();
			mutate(&mut h);
			assert_eq!(validate_lm(&h, &Limits::default()).unwrap_err(), want);
		}
	}

	#[test]
	fn limits_name_the_largest_step() {
		let h = tiny();
		let info = validate_lm(&h, &Limits::default()).unwrap();
		let limits =
			Limits { max_step_proof_bytes: info.max_step_proof_bytes - 1, ..Limits::default() };
		assert_eq!(
			validate_lm(&h, &limits),
			Err(LmInvalid::StepProofTooLarge { op: info.max_proof_op })
		);
		let limits = Limits { max_step_macs: info.max_step_macs - 1, ..Limits::default() };
		assert_eq!(validate_lm(&h, &limits), Err(LmInvalid::TooManyMacs { op: info.max_macs_op }));
		let limits = Limits { max_ops: 73, ..Limits::default() };
		assert_eq!(validate_lm(&h, &limits), Err(LmInvalid::TooManyOps));
		let limits = Limits { max_header_bytes: 10, ..Limits::default() };
		assert_eq!(validate_lm(&h, &limits), Err(LmInvalid::HeaderTooLarge));
	}

	/// The closed-form costs count exactly the refs, input bytes and weight bytes that the
	/// step graph defines (at a position whose predecessor selects a token).
	#[test]
	fn costs_match_the_graph() {
		let h = tiny();
		for position in [1, 5, 8, 15] {
			let shape = Shape::at(&h, 1, position);
			for i in 0..ops_at(&h, shape) as u32 {
				let op = op_at(&h, shape, i).unwrap();
				let cost = step_cost(&h, position, op).unwrap();
				let groups = op_inputs(&h, 1, position, op).unwrap();
				let refs: Vec<_> = groups.iter().flatten().collect();
				assert_eq!(cost.input_refs, refs.len() as u64, "{op:?}");
				let bytes: u64 = refs
					.iter()
					.map(|r| {
						let o = op_at(&h, Shape::at(&h, 1, r.position), r.op).unwrap();
						4 * u64::from(output_elements(&h, o))
					})
					.sum();
				assert_eq!(cost.input_bytes, bytes, "{op:?}");
				assert_eq!(cost.weight_bytes, weight_bytes_of(&h, &op_weights(&h, op, 0)));
			}
		}
	}

	/// Costs of absurd dimensions saturate (and are then refused by any limit) instead of
	/// wrapping below a limit.
	#[test]
	fn huge_costs_saturate() {
		let mut h = tiny();
		h.dim = 0xFFFF_FFE0;
		h.chunk_rows = 0xFFFF_FFE0;
		h.ffn_dim = 0xFFFF_FFE0;
		let cost = step_cost(&h, 0, LmOp::GateUp(0, 0)).unwrap();
		assert_eq!(cost.macs, u64::MAX);
		assert_eq!(cost.proof_bytes, u64::MAX);
		assert_eq!(step_cost(&h, 0, LmOp::Down(0, 0)).unwrap().macs, 0xFFFF_FFE0u64.pow(2));
		// Even limits just below "unlimited" refuse the saturated step.
		let limits = Limits {
			max_step_proof_bytes: u64::MAX - 1,
			max_step_macs: u64::MAX - 1,
			..Limits::UNLIMITED
		};
		assert_eq!(
			validate_lm(&h, &limits),
			Err(LmInvalid::StepProofTooLarge { op: LmOp::GateUp(0, 0) })
		);
	}

	#[test]
	fn merkle_depths() {
		assert_eq!(merkle_depth(0), 0);
		assert_eq!(merkle_depth(1), 0);
		assert_eq!(merkle_depth(2), 1);
		assert_eq!(merkle_depth(3), 2);
		assert_eq!(merkle_depth(4), 2);
		assert_eq!(merkle_depth(5), 3);
	}
}
