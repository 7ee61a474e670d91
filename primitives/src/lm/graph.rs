//! The step grid of a generation: which ops run at a position, in which order, what each reads
//! (earlier steps, possibly of earlier positions) and which weight chunks it uses.
//!
//! Position `t` processes token `t` (a prompt token, or the token selected at position
//! `t - 1`). Its ops, in order (the op index is the leaf index in the position's tree):
//!
//! ```text
//! Embed
//! for each layer l:  AttnNorm(l), Q(l, 0..H), K(l, 0..G), V(l, 0..G), Attn(l, 0..H),
//!                    OProj(l, 0..D/c), FfnNorm(l), GateUp(l, 0..F/c), Down(l, 0..D/c)
//! if t >= prompt_len - 1 (the position selects the next token):
//!                    FinalNorm, Head(0..V/vc), Select
//! ```

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
	/// Causal attention of query head `h` over the keys and values of positions `0..=t`.
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

/// Ops of one layer.
pub fn ops_per_layer(h: &LmHeader) -> u64 {
	// Each term is below 2^33: no overflow.
	2 + 2 * u64::from(h.n_heads)
		+ 2 * u64::from(h.n_kv_heads)
		+ 2 * u64::from(h.dim_chunks())
		+ u64::from(h.ffn_chunks())
}

/// Number of ops at a position (`samples`: the position selects the next token).
pub fn ops_at(h: &LmHeader, samples: bool) -> u64 {
	// Saturating: an absurd header gives u64::MAX, which every limit rejects.
	let body = u64::from(h.n_layers).saturating_mul(ops_per_layer(h)).saturating_add(1);
	if samples {
		body.saturating_add(2 + u64::from(h.vocab_chunks()))
	} else {
		body
	}
}

/// Whether position `position` selects a token: `position + 1 >= prompt_len`.
pub fn samples_at(prompt_len: u32, position: u32) -> bool {
	u64::from(position) + 1 >= u64::from(prompt_len)
}

/// The index of `op` in a position's op list (`None` if the model has no such op).
pub fn op_index(h: &LmHeader, op: LmOp) -> Option<u32> {
	let (hh, g) = (u64::from(h.n_heads), u64::from(h.n_kv_heads));
	let (dc, fc) = (u64::from(h.dim_chunks()), u64::from(h.ffn_chunks()));
	let after_layers = u64::from(h.n_layers).checked_mul(ops_per_layer(h))?.checked_add(1)?;
	let layer = |l: u32, offset: u64, i: u32, count: u64| -> Option<u64> {
		// l < n_layers, so this is below after_layers (which did not overflow).
		(l < h.n_layers && u64::from(i) < count)
			.then(|| 1 + u64::from(l) * ops_per_layer(h) + offset + u64::from(i))
	};
	let index = match op {
		LmOp::Embed => Some(0),
		LmOp::AttnNorm(l) => layer(l, 0, 0, 1),
		LmOp::Q(l, i) => layer(l, 1, i, hh),
		LmOp::K(l, i) => layer(l, 1 + hh, i, g),
		LmOp::V(l, i) => layer(l, 1 + hh + g, i, g),
		LmOp::Attn(l, i) => layer(l, 1 + hh + 2 * g, i, hh),
		LmOp::OProj(l, i) => layer(l, 1 + 2 * hh + 2 * g, i, dc),
		LmOp::FfnNorm(l) => layer(l, 1 + 2 * hh + 2 * g + dc, 0, 1),
		LmOp::GateUp(l, i) => layer(l, 2 + 2 * hh + 2 * g + dc, i, fc),
		LmOp::Down(l, i) => layer(l, 2 + 2 * hh + 2 * g + dc + fc, i, dc),
		LmOp::FinalNorm => Some(after_layers),
		LmOp::Head(c) => (c < h.vocab_chunks()).then(|| after_layers + 1 + u64::from(c)),
		LmOp::Select => after_layers.checked_add(1 + u64::from(h.vocab_chunks())),
	}?;
	u32::try_from(index).ok()
}

/// The op at `index` of a position (`samples` as in [`ops_at`]); the inverse of [`op_index`].
pub fn op_at(h: &LmHeader, index: u32, samples: bool) -> Option<LmOp> {
	let index = u64::from(index);
	if index >= ops_at(h, samples) {
		return None;
	}
	if index == 0 {
		return Some(LmOp::Embed);
	}
	let per = ops_per_layer(h);
	// index < ops_at(h, samples), which did not saturate, so neither does this.
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
	let (hh, g) = (u64::from(h.n_heads), u64::from(h.n_kv_heads));
	let (dc, fc) = (u64::from(h.dim_chunks()), u64::from(h.ffn_chunks()));
	let segments: [(u64, MakeOp); 9] = [
		(1, |l, _| LmOp::AttnNorm(l)),
		(hh, LmOp::Q),
		(g, LmOp::K),
		(g, LmOp::V),
		(hh, LmOp::Attn),
		(dc, LmOp::OProj),
		(1, |l, _| LmOp::FfnNorm(l)),
		(fc, LmOp::GateUp),
		(dc, LmOp::Down),
	];
	for (count, make) in segments {
		if i < count {
			return Some(make(l, u32::try_from(i).ok()?));
		}
		i -= count;
	}
	None
}

/// Builds a layer op from its layer and head or chunk number.
type MakeOp = fn(u32, u32) -> LmOp;

/// Elements of the op's output (each stored in 4 bytes: `i32` Q16, or the `u32` token).
pub fn output_elements(h: &LmHeader, op: LmOp) -> u32 {
	match op {
		LmOp::Embed | LmOp::AttnNorm(_) | LmOp::FfnNorm(_) | LmOp::FinalNorm => h.dim,
		LmOp::Q(..) | LmOp::K(..) | LmOp::V(..) | LmOp::Attn(..) => h.head_dim,
		LmOp::OProj(..) | LmOp::GateUp(..) | LmOp::Down(..) => h.chunk_rows,
		LmOp::Head(_) => h.vocab_chunk_rows,
		LmOp::Select => 1,
	}
}

/// The steps (all at `position`) that hold the residual stream entering layer `l`
/// (`l == n_layers`: the last one): `Embed` for layer 0, else `Down(l - 1, 0..D/c)`.
fn residual_in(h: &LmHeader, position: u32, l: u32) -> Option<Vec<StepRef>> {
	if l == 0 {
		return Some(alloc::vec![at(h, position, LmOp::Embed)?]);
	}
	(0..h.dim_chunks()).map(|c| at(h, position, LmOp::Down(l - 1, c))).collect()
}

fn at(h: &LmHeader, position: u32, op: LmOp) -> Option<StepRef> {
	Some(StepRef { position, op: op_index(h, op)? })
}

/// The inputs of `op` at `position` as groups: each group is the concatenation of the
/// outputs of its steps, in order. `None` if the op does not exist.
///
/// | op | groups |
/// |---|---|
/// | `Embed` | none at `t < prompt_len` (the prompt token), else `[Select@(t-1)]` |
/// | `AttnNorm(l)` | residual entering `l` |
/// | `Q/K/V(l, i)` | `[AttnNorm(l)]` |
/// | `Attn(l, i)` | `[Q(l, i)]`, `[K(l, g)@0, ..., K(l, g)@t]`, `[V(l, g)@0, ..., V(l, g)@t]`, `g = i / (H/G)` |
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
	op_index(h, op)?;
	let one = |op: LmOp| -> Option<Vec<StepRef>> { Some(alloc::vec![at(h, position, op)?]) };
	let range = |n: u32, f: &dyn Fn(u32) -> LmOp| -> Option<Vec<StepRef>> {
		(0..n).map(|i| at(h, position, f(i))).collect()
	};
	Some(match op {
		LmOp::Embed => {
			if position < prompt_len {
				Vec::new()
			} else {
				let prev = position.checked_sub(1)?;
				alloc::vec![alloc::vec![at(h, prev, LmOp::Select)?]]
			}
		},
		LmOp::AttnNorm(l) => alloc::vec![residual_in(h, position, l)?],
		LmOp::Q(l, _) | LmOp::K(l, _) | LmOp::V(l, _) => alloc::vec![one(LmOp::AttnNorm(l))?],
		LmOp::Attn(l, i) => {
			let g = i / h.group_size();
			let k = op_index(h, LmOp::K(l, g))?;
			let v = op_index(h, LmOp::V(l, g))?;
			let keys = (0..=position).map(|s| StepRef { position: s, op: k }).collect();
			let values = (0..=position).map(|s| StepRef { position: s, op: v }).collect();
			alloc::vec![one(LmOp::Q(l, i))?, keys, values]
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
		LmOp::FinalNorm => alloc::vec![residual_in(h, position, h.n_layers)?],
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
		LmOp::Attn(..) | LmOp::Select => Vec::new(),
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
		for samples in [false, true] {
			let n = ops_at(&h, samples);
			for i in 0..n as u32 {
				let op = op_at(&h, i, samples).unwrap();
				assert_eq!(op_index(&h, op), Some(i), "{op:?}");
			}
			assert_eq!(op_at(&h, n as u32, samples), None);
		}
		// 1 + 2 * (2 + 8 + 4 + 4 + 3) + (2 + 5)
		assert_eq!(ops_at(&h, false), 43);
		assert_eq!(ops_at(&h, true), 50);
	}

	#[test]
	fn inputs_only_point_backwards() {
		let h = tiny();
		let prompt_len = 3;
		for position in 0..5u32 {
			let samples = samples_at(prompt_len, position);
			for i in 0..ops_at(&h, samples) as u32 {
				let op = op_at(&h, i, samples).unwrap();
				for group in op_inputs(&h, prompt_len, position, op).unwrap() {
					for r in group {
						assert!(
							r.position < position || (r.position == position && r.op < i),
							"{op:?} at {position} reads {r:?}"
						);
						assert!(u64::from(r.op) < ops_at(&h, samples_at(prompt_len, r.position)));
					}
				}
			}
		}
		// Grouped-query: heads 0, 1 read kv head 0; heads 2, 3 read kv head 1.
		let g = op_inputs(&h, 1, 2, LmOp::Attn(1, 3)).unwrap();
		let k1 = op_index(&h, LmOp::K(1, 1)).unwrap();
		assert_eq!(g[1], (0..=2).map(|s| StepRef { position: s, op: k1 }).collect::<Vec<_>>());
		assert!(op_inputs(&h, 3, 2, LmOp::Embed).unwrap().is_empty());
		assert_eq!(op_inputs(&h, 3, 3, LmOp::Embed).unwrap().len(), 1);
	}
}
