//! The step grid of a generation: which ops run at a position, in which order, what each reads
//! (earlier steps, possibly of earlier positions) and which weight chunks it uses.
//!
//! Position `t` processes token `t` (a prompt token, or the token selected at position
//! `t - 1`). Its ops, in order (the op index is the leaf index in the position's tree):
//!
//! ```text
//! Embed
//! for each layer l:  AttnNorm(l), Q(l, 0..H), K(l, 0..G), V(l, 0..G),
//!                    AttnPart(l, h, b) for h in 0..H, b in 0..P(t), Attn(l, 0..H),
//!                    OProj(l, 0..D/c), FfnNorm(l), GateUp(l, 0..F/c), Down(l, 0..D/c)
//! if t >= prompt_len - 1 (the position selects the next token):
//!                    FinalNorm, Head(0..V/vc), Select
//! ```
//!
//! `P(t) = t / attn_block + 1`: the attention blocks that hold positions `0..=t` (every part
//! reads at least one position). A position's op list, and so the index of every op after the
//! first layer's attention parts, depends on its [`Shape`]: `P(t)` and whether it selects.

use alloc::vec::Vec;
use codec::{Decode, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

use super::header::{LmHeader, WeightChunk};

/// One op of a position. Layer, head and chunk numbers are 0-based.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum LmOp {
	/// The token's embedding row, dequantized to Q16: the residual stream entering layer 0.
	Embed,
	/// RMSNorm of the residual stream entering layer `l`.
	AttnNorm(u32),
	/// Query head `h`: its `head_dim` rows of `wq` times the normed vector, then RoPE.
	Q(u32, u32),
	/// Key head `g` (with RoPE): a KV-cache entry read by later positions.
	K(u32, u32),
	/// Value head `g`: a KV-cache entry read by later positions.
	V(u32, u32),
	/// Partial attention of query head `h` over the keys and values of the positions of block
	/// `b` (`b * attn_block ..`, those `<= t`; `b < P(t)`, so at least one).
	AttnPart(u32, u32, u32),
	/// Causal attention of query head `h`: the merge of its `AttnPart(l, h, 0..P(t))`.
	Attn(u32, u32),
	/// Rows `c * chunk_rows ..` of `residual + wo * attention output`.
	OProj(u32, u32),
	/// RMSNorm of the residual stream after attention.
	FfnNorm(u32),
	/// Rows `c * chunk_rows ..` of `silu(gate x) * (up x)`.
	GateUp(u32, u32),
	/// Rows `c * chunk_rows ..` of `residual + down * hidden`: the residual stream entering
	/// layer `l + 1`.
	Down(u32, u32),
	/// RMSNorm of the last residual stream.
	FinalNorm,
	/// Logits of vocabulary rows `c * vocab_chunk_rows ..` (tied embedding matrix).
	Head(u32),
	/// The selected token (greedy or sampled), stored as one `u32`.
	Select,
}

/// A step of a generation: `(position, op index)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct StepRef {
	pub position: u32,
	pub op: u32,
}

/// The kinds of op of a layer, in their order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Segment {
	AttnNorm,
	Q,
	K,
	V,
	AttnPart,
	Attn,
	OProj,
	FfnNorm,
	GateUp,
	Down,
}

/// What a position's op list depends on besides the model.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Shape {
	/// Attention parts per query head: `P(t)` ([`attn_parts_at`]).
	pub parts: u32,
	/// The position selects the next token ([`samples_at`]).
	pub samples: bool,
}

impl Shape {
	/// The shape of position `position` of a job with a `prompt_len`-token prompt.
	pub fn at(h: &LmHeader, prompt_len: u32, position: u32) -> Shape {
		Shape { parts: attn_parts_at(h, position), samples: samples_at(prompt_len, position) }
	}

	/// The largest shape: the last position of a generation that reaches `max_context`.
	pub fn last(h: &LmHeader) -> Shape {
		Shape { parts: h.attn_parts(), samples: true }
	}
}

/// `P(t) = t / attn_block + 1`, the attention parts of position `t` (at most
/// [`LmHeader::attn_parts`]).
pub fn attn_parts_at(h: &LmHeader, position: u32) -> u32 {
	(position / h.attn_block.max(1)).saturating_add(1).min(h.attn_parts())
}

/// The ops of one layer as `(kind, count)` segments, in order, at a position with `parts`
/// attention parts.
fn segments(h: &LmHeader, parts: u32) -> [(Segment, u64); 10] {
	let (hh, g) = (u64::from(h.n_heads), u64::from(h.n_kv_heads));
	let (dc, fc) = (u64::from(h.dim_chunks()), u64::from(h.ffn_chunks()));
	[
		(Segment::AttnNorm, 1),
		(Segment::Q, hh),
		(Segment::K, g),
		(Segment::V, g),
		(Segment::AttnPart, hh.saturating_mul(u64::from(parts))),
		(Segment::Attn, hh),
		(Segment::OProj, dc),
		(Segment::FfnNorm, 1),
		(Segment::GateUp, fc),
		(Segment::Down, dc),
	]
}

/// Ops of one layer at a position with `parts` attention parts (saturating).
pub fn ops_per_layer(h: &LmHeader, parts: u32) -> u64 {
	segments(h, parts).iter().fold(0u64, |a, &(_, n)| a.saturating_add(n))
}

/// Number of ops at a position of shape `s`.
pub fn ops_at(h: &LmHeader, s: Shape) -> u64 {
	// Saturating: an absurd header gives u64::MAX, which every limit rejects.
	let body = u64::from(h.n_layers).saturating_mul(ops_per_layer(h, s.parts)).saturating_add(1);
	if s.samples {
		body.saturating_add(2 + u64::from(h.vocab_chunks()))
	} else {
		body
	}
}

/// Whether position `position` selects a token: `position + 1 >= prompt_len`.
pub fn samples_at(prompt_len: u32, position: u32) -> bool {
	u64::from(position) + 1 >= u64::from(prompt_len)
}

/// A layer op as `(segment, layer, index within the segment)`; `None` for other ops or
/// out-of-range numbers.
fn in_segment(parts: u32, h: &LmHeader, op: LmOp) -> Option<(Segment, u32, u64)> {
	let (seg, l, i) = match op {
		LmOp::AttnNorm(l) => (Segment::AttnNorm, l, 0),
		LmOp::Q(l, i) => (Segment::Q, l, u64::from(i)),
		LmOp::K(l, i) => (Segment::K, l, u64::from(i)),
		LmOp::V(l, i) => (Segment::V, l, u64::from(i)),
		LmOp::AttnPart(l, i, b) => {
			if b >= parts {
				return None;
			}
			(Segment::AttnPart, l, u64::from(i) * u64::from(parts) + u64::from(b))
		},
		LmOp::Attn(l, i) => (Segment::Attn, l, u64::from(i)),
		LmOp::OProj(l, i) => (Segment::OProj, l, u64::from(i)),
		LmOp::FfnNorm(l) => (Segment::FfnNorm, l, 0),
		LmOp::GateUp(l, i) => (Segment::GateUp, l, u64::from(i)),
		LmOp::Down(l, i) => (Segment::Down, l, u64::from(i)),
		LmOp::Embed | LmOp::FinalNorm | LmOp::Head(_) | LmOp::Select => return None,
	};
	(l < h.n_layers).then_some((seg, l, i))
}

fn make(parts: u32, seg: Segment, l: u32, i: u64) -> Option<LmOp> {
	let i32_ = u32::try_from(i).ok();
	Some(match seg {
		Segment::AttnNorm => LmOp::AttnNorm(l),
		Segment::Q => LmOp::Q(l, i32_?),
		Segment::K => LmOp::K(l, i32_?),
		Segment::V => LmOp::V(l, i32_?),
		Segment::AttnPart => {
			let parts = u64::from(parts.max(1));
			LmOp::AttnPart(l, u32::try_from(i / parts).ok()?, u32::try_from(i % parts).ok()?)
		},
		Segment::Attn => LmOp::Attn(l, i32_?),
		Segment::OProj => LmOp::OProj(l, i32_?),
		Segment::FfnNorm => LmOp::FfnNorm(l),
		Segment::GateUp => LmOp::GateUp(l, i32_?),
		Segment::Down => LmOp::Down(l, i32_?),
	})
}

/// The index of `op` in the op list of a position of shape `s` (`None` if there is no such
/// op; the sampling ops have their index whether or not `s.samples`).
pub fn op_index(h: &LmHeader, s: Shape, op: LmOp) -> Option<u32> {
	let per = ops_per_layer(h, s.parts);
	let after_layers = u64::from(h.n_layers).checked_mul(per)?.checked_add(1)?;
	let index = match op {
		LmOp::Embed => 0,
		LmOp::FinalNorm => after_layers,
		LmOp::Head(c) => {
			if c >= h.vocab_chunks() {
				return None;
			}
			after_layers + 1 + u64::from(c)
		},
		LmOp::Select => after_layers.checked_add(1 + u64::from(h.vocab_chunks()))?,
		_ => {
			let (seg, l, i) = in_segment(s.parts, h, op)?;
			let mut offset = 1 + u64::from(l) * per; // < after_layers
			for (kind, count) in segments(h, s.parts) {
				if kind == seg {
					if i >= count {
						return None;
					}
					offset += i;
					break;
				}
				offset += count;
			}
			offset
		},
	};
	u32::try_from(index).ok()
}

/// The op at `index` of a position of shape `s`; the inverse of [`op_index`].
pub fn op_at(h: &LmHeader, s: Shape, index: u32) -> Option<LmOp> {
	let index = u64::from(index);
	if index >= ops_at(h, s) {
		return None;
	}
	if index == 0 {
		return Some(LmOp::Embed);
	}
	let per = ops_per_layer(h, s.parts);
	// index < ops_at(h, s), which did not saturate, so neither does this.
	let after_layers = u64::from(h.n_layers).saturating_mul(per).saturating_add(1);
	if index >= after_layers {
		let rest = index - after_layers;
		return Some(if rest == 0 {
			LmOp::FinalNorm
		} else if rest <= u64::from(h.vocab_chunks()) {
			LmOp::Head(u32::try_from(rest - 1).ok()?)
		} else {
			LmOp::Select
		});
	}
	let l = u32::try_from((index - 1) / per).ok()?;
	let mut i = (index - 1) % per;
	for (seg, count) in segments(h, s.parts) {
		if i < count {
			return make(s.parts, seg, l, i);
		}
		i -= count;
	}
	None
}

/// Elements of the op's output (each stored in 4 bytes: `i32` Q16, or the `u32` token).
pub fn output_elements(h: &LmHeader, op: LmOp) -> u32 {
	match op {
		LmOp::Embed | LmOp::AttnNorm(_) | LmOp::FfnNorm(_) | LmOp::FinalNorm => h.dim,
		LmOp::Q(..) | LmOp::K(..) | LmOp::V(..) | LmOp::Attn(..) => h.head_dim,
		// i32 max, u64 sum, head_dim i32: 3 + head_dim words of 4 bytes
		LmOp::AttnPart(..) => h.head_dim.saturating_add(3),
		LmOp::OProj(..) | LmOp::GateUp(..) | LmOp::Down(..) => h.chunk_rows,
		LmOp::Head(_) => h.vocab_chunk_rows,
		LmOp::Select => 1,
	}
}

/// The positions of attention block `b` read at `position`: `b * attn_block ..=
/// min((b + 1) * attn_block - 1, position)` (empty if the block starts after `position`, which
/// no op of the graph reads).
pub fn block_positions(h: &LmHeader, position: u32, b: u32) -> core::ops::Range<u32> {
	let start = u64::from(b) * u64::from(h.attn_block.max(1));
	let end = (start + u64::from(h.attn_block.max(1))).min(u64::from(position) + 1);
	let start = u32::try_from(start).unwrap_or(u32::MAX);
	let end = u32::try_from(end).unwrap_or(u32::MAX);
	start..end.max(start)
}

/// The steps (all at `position`) that hold the residual stream entering layer `l`
/// (`l == n_layers`: the last one): `Embed` for layer 0, else `Down(l - 1, 0..D/c)`.
fn residual_in(h: &LmHeader, s: Shape, position: u32, l: u32) -> Option<Vec<StepRef>> {
	if l == 0 {
		return Some(alloc::vec![at(h, s, position, LmOp::Embed)?]);
	}
	(0..h.dim_chunks()).map(|c| at(h, s, position, LmOp::Down(l - 1, c))).collect()
}

fn at(h: &LmHeader, s: Shape, position: u32, op: LmOp) -> Option<StepRef> {
	Some(StepRef { position, op: op_index(h, s, op)? })
}

/// The inputs of `op` at `position` as groups: each group is the concatenation of the
/// outputs of its steps, in order. `None` if the op does not exist.
///
/// | op | groups |
/// |---|---|
/// | `Embed` | none at `t < prompt_len` (the prompt token), else `[Select@(t-1)]` |
/// | `AttnNorm(l)` | residual entering `l` |
/// | `Q/K/V(l, i)` | `[AttnNorm(l)]` |
/// | `AttnPart(l, i, b)` | `[Q(l, i)]`, `[K(l, g)@s for s in block b]`, `[V(l, g)@s ...]`, `g = i / (H/G)`, block `b` = [`block_positions`] |
/// | `Attn(l, i)` | `[AttnPart(l, i, 0..P(t))]` |
/// | `OProj(l, c)` | `[Attn(l, 0..H)]`, residual entering `l` (chunk `c` for `l > 0`: `[Down(l-1, c)]`; for `l = 0`: `[Embed]`, of which rows `c * chunk_rows ..` are used) |
/// | `FfnNorm(l)` | `[OProj(l, 0..D/c)]` |
/// | `GateUp(l, c)` | `[FfnNorm(l)]` |
/// | `Down(l, c)` | `[GateUp(l, 0..F/c)]`, `[OProj(l, c)]` |
/// | `FinalNorm` | residual entering layer `L` |
/// | `Head(c)` | `[FinalNorm]` |
/// | `Select` | `[Head(0..V/vc)]` |
pub fn op_inputs(
	h: &LmHeader,
	prompt_len: u32,
	position: u32,
	op: LmOp,
) -> Option<Vec<Vec<StepRef>>> {
	let s = Shape::at(h, prompt_len, position);
	// The op exists at this position (a sampling op only where the position samples).
	if u64::from(op_index(h, s, op)?) >= ops_at(h, s) {
		return None;
	}
	let one = |op: LmOp| -> Option<Vec<StepRef>> { Some(alloc::vec![at(h, s, position, op)?]) };
	let range = |n: u32, f: &dyn Fn(u32) -> LmOp| -> Option<Vec<StepRef>> {
		(0..n).map(|i| at(h, s, position, f(i))).collect()
	};
	Some(match op {
		LmOp::Embed => {
			if position < prompt_len {
				Vec::new()
			} else {
				let prev = position.checked_sub(1)?;
				alloc::vec![alloc::vec![at(h, Shape::at(h, prompt_len, prev), prev, LmOp::Select)?]]
			}
		},
		LmOp::AttnNorm(l) => alloc::vec![residual_in(h, s, position, l)?],
		LmOp::Q(l, _) | LmOp::K(l, _) | LmOp::V(l, _) => alloc::vec![one(LmOp::AttnNorm(l))?],
		LmOp::AttnPart(l, i, b) => {
			let g = i / h.group_size();
			let block = block_positions(h, position, b);
			// Each read position's own shape places its K and V (within a block they agree).
			let read = |op: LmOp| -> Option<Vec<StepRef>> {
				block.clone().map(|p| at(h, Shape::at(h, prompt_len, p), p, op)).collect()
			};
			alloc::vec![one(LmOp::Q(l, i))?, read(LmOp::K(l, g))?, read(LmOp::V(l, g))?]
		},
		LmOp::Attn(l, i) => {
			alloc::vec![range(s.parts, &|b| LmOp::AttnPart(l, i, b))?]
		},
		LmOp::OProj(l, c) => {
			let residual = if l == 0 { one(LmOp::Embed)? } else { one(LmOp::Down(l - 1, c))? };
			alloc::vec![range(h.n_heads, &|i| LmOp::Attn(l, i))?, residual]
		},
		LmOp::FfnNorm(l) => alloc::vec![range(h.dim_chunks(), &|c| LmOp::OProj(l, c))?],
		LmOp::GateUp(l, _) => alloc::vec![one(LmOp::FfnNorm(l))?],
		LmOp::Down(l, c) => {
			alloc::vec![range(h.ffn_chunks(), &|i| LmOp::GateUp(l, i))?, one(LmOp::OProj(l, c))?]
		},
		LmOp::FinalNorm => alloc::vec![residual_in(h, s, position, h.n_layers)?],
		LmOp::Head(_) => alloc::vec![one(LmOp::FinalNorm)?],
		LmOp::Select => alloc::vec![range(h.vocab_chunks(), &LmOp::Head)?],
	})
}

/// The weight chunks `op` uses (`token`: the token an `Embed` step reads; other ops ignore it).
pub fn op_weights(h: &LmHeader, op: LmOp, token: u32) -> Vec<WeightChunk> {
	use WeightChunk as W;
	match op {
		LmOp::Embed => alloc::vec![W::Embedding(token / h.vocab_chunk_rows.max(1))],
		LmOp::AttnNorm(l) => alloc::vec![W::AttnNorm(l)],
		LmOp::Q(l, i) => alloc::vec![W::Wq(l, i)],
		LmOp::K(l, i) => alloc::vec![W::Wk(l, i)],
		LmOp::V(l, i) => alloc::vec![W::Wv(l, i)],
		LmOp::AttnPart(..) | LmOp::Attn(..) | LmOp::Select => Vec::new(),
		LmOp::OProj(l, c) => alloc::vec![W::Wo(l, c)],
		LmOp::FfnNorm(l) => alloc::vec![W::FfnNorm(l)],
		LmOp::GateUp(l, c) => alloc::vec![W::Gate(l, c), W::Up(l, c)],
		LmOp::Down(l, c) => alloc::vec![W::Down(l, c)],
		LmOp::FinalNorm => alloc::vec![W::OutputNorm],
		LmOp::Head(c) => alloc::vec![W::Embedding(c)],
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::lm::header::tests::tiny;

	#[test]
	fn op_index_and_op_at_are_inverse() {
		let h = tiny();
		for parts in 1..=h.attn_parts() {
			for samples in [false, true] {
				let s = Shape { parts, samples };
				let n = ops_at(&h, s);
				for i in 0..n as u32 {
					let op = op_at(&h, s, i).unwrap();
					assert_eq!(op_index(&h, s, op), Some(i), "{op:?}");
				}
				assert_eq!(op_at(&h, s, n as u32), None);
				assert_eq!(op_index(&h, s, LmOp::AttnPart(0, 0, parts)), None);
			}
		}
		// 1 + 2 * (2 + 8 + 4 + 4 + 3 + 4 * P) + (2 + 5): P(t) = t / 6 + 1, at most 3.
		let shape = |prompt_len, t| Shape::at(&h, prompt_len, t);
		assert_eq!(shape(9, 0), Shape { parts: 1, samples: false });
		assert_eq!(shape(9, 8), Shape { parts: 2, samples: true });
		assert_eq!(shape(9, 15), Shape::last(&h));
		assert_eq!(ops_at(&h, shape(9, 0)), 51);
		assert_eq!(ops_at(&h, shape(1, 5)), 58);
		assert_eq!(ops_at(&h, shape(1, 6)), 66);
		assert_eq!(ops_at(&h, Shape { parts: 3, samples: false }), 67);
		assert_eq!(ops_at(&h, Shape::last(&h)), 74);
		// Ops after the first layer's parts move with P(t).
		let (one, two) = (Shape { parts: 1, samples: true }, Shape { parts: 2, samples: true });
		assert_eq!(
			op_index(&h, one, LmOp::Attn(0, 0)),
			op_index(&h, one, LmOp::AttnPart(0, 3, 0)).map(|i| i + 1)
		);
		assert_eq!(
			op_index(&h, two, LmOp::K(1, 0)).unwrap() - op_index(&h, one, LmOp::K(1, 0)).unwrap(),
			4
		);
		assert_eq!(
			op_index(&h, two, LmOp::Select).unwrap() - op_index(&h, one, LmOp::Select).unwrap(),
			8
		);
	}

	#[test]
	fn inputs_only_point_backwards() {
		let h = tiny();
		let prompt_len = 3;
		for position in 0..h.max_context {
			let s = Shape::at(&h, prompt_len, position);
			for i in 0..ops_at(&h, s) as u32 {
				let op = op_at(&h, s, i).unwrap();
				for group in op_inputs(&h, prompt_len, position, op).unwrap() {
					assert!(!group.is_empty(), "{op:?} at {position}");
					for r in group {
						assert!(
							r.position < position || (r.position == position && r.op < i),
							"{op:?} at {position} reads {r:?}"
						);
						let producer = Shape::at(&h, prompt_len, r.position);
						assert!(u64::from(r.op) < ops_at(&h, producer));
					}
				}
			}
		}
		// Grouped-query: heads 0, 1 read kv head 0; heads 2, 3 read kv head 1. Blocks of 6
		// positions: at position 8, part 0 reads 0..6 and part 1 reads 6..=8, each key at its
		// own position's index of K(1, 1) (positions 6.. have one more part per head).
		let keys =
			|position, b| op_inputs(&h, 1, position, LmOp::AttnPart(1, 3, b)).unwrap()[1].clone();
		let refs = |r: core::ops::Range<u32>| {
			r.map(|p| StepRef {
				position: p,
				op: op_index(&h, Shape::at(&h, 1, p), LmOp::K(1, 1)).unwrap(),
			})
			.collect::<Vec<_>>()
		};
		assert_eq!(keys(2, 0), refs(0..3));
		assert_eq!(keys(8, 0), refs(0..6));
		assert_eq!(keys(8, 1), refs(6..9));
		assert_ne!(refs(5..6)[0].op, refs(6..7)[0].op);
		assert_eq!(op_inputs(&h, 1, 8, LmOp::AttnPart(1, 3, 2)), None);
		assert_eq!(op_inputs(&h, 1, 8, LmOp::Attn(1, 3)).unwrap()[0].len(), 2);
		assert_eq!(op_inputs(&h, 1, 15, LmOp::Attn(1, 3)).unwrap()[0].len(), 3);
		assert!(op_inputs(&h, 3, 2, LmOp::Embed).unwrap().is_empty());
		assert_eq!(op_inputs(&h, 3, 3, LmOp::Embed).unwrap().len(), 1);
		// A sampling op exists only where the position samples.
		assert_eq!(op_inputs(&h, 3, 0, LmOp::Select), None);
		assert!(op_inputs(&h, 3, 2, LmOp::Select).is_some());
	}
}
