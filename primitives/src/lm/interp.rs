//! The reference interpreter of a transformer: [`generate`] runs a whole generation and
//! returns every step's output; [`execute_op`] runs one `(position, op)` step from its input
//! groups and weight chunks (what the chain does to judge a step proof).

use alloc::vec::Vec;
use codec::{Decode, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

use super::{
	graph::{attn_parts_at, op_at, op_inputs, op_weights, ops_at, LmOp, Shape},
	header::{LmHeader, WeightChunk},
	ops::{
		attention_merge, attention_part, attn_part_bytes, bytes_to_i32s, i32s_to_bytes, rms_norm,
		rope, swiglu_vec, AttnPart,
	},
	quant::{dequantize_row, matmul_rows},
	sample::{select_token, SamplingParams},
	validate::{check_structure, LmInvalid},
};

/// A generation job: the prompt tokens, how tokens are selected and how many at most.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct LmJob {
	/// Prompt token ids (`1 ..= max_context` of them, each `< vocab`).
	pub prompt: Vec<u32>,
	pub params: SamplingParams,
	/// Largest number of generated tokens (`>= 1`).
	pub max_new_tokens: u32,
}

impl LmJob {
	/// Number of prompt tokens.
	pub fn prompt_len(&self) -> u32 {
		crate::len_u32(self.prompt.len())
	}

	/// Check the job against a header: a non-empty prompt of at most `max_context` tokens,
	/// each `< vocab`, and `max_new_tokens >= 1`.
	pub fn check(&self, h: &LmHeader) -> Result<(), LmExecError> {
		let ok = !self.prompt.is_empty()
			&& self.prompt.len() as u64 <= u64::from(h.max_context)
			&& self.prompt.iter().all(|&t| t < h.vocab)
			&& self.max_new_tokens >= 1;
		if ok {
			Ok(())
		} else {
			Err(LmExecError::BadJob)
		}
	}
}

/// Why a generation or a step could not be executed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum LmExecError {
	/// The header is structurally invalid.
	InvalidModel(LmInvalid),
	/// The job does not fit the model (see [`LmJob::check`]).
	BadJob,
	/// The number of weight chunks differs from the header's.
	WrongWeightCount,
	/// Weight chunk `chunk` (leaf index) has the wrong length.
	WeightLength { chunk: u64 },
	/// The step does not exist at that position.
	NoSuchStep { position: u32, op: u32 },
	/// The token read by `Embed` at `position` is not below `vocab`.
	TokenOutOfRange { position: u32 },
	/// The inputs or weights given to the step do not have the lengths the header implies.
	Malformed { position: u32, op: u32 },
}

impl core::fmt::Display for LmExecError {
	fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
		write!(f, "generation failed: {:?}", self)
	}
}

#[cfg(feature = "std")]
impl std::error::Error for LmExecError {}

/// Every step output of a generation and the generated tokens.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct LmTrace {
	/// `outputs[t][i]`: the bytes of op `i` at position `t`.
	pub outputs: Vec<Vec<Vec<u8>>>,
	/// The generated tokens: the `Select` outputs of positions `prompt_len - 1, ...`.
	pub tokens: Vec<u32>,
}

impl LmTrace {
	/// The output of step `(position, op)`.
	pub fn output(&self, position: u32, op: u32) -> Option<&[u8]> {
		let p = self.outputs.get(usize::try_from(position).ok()?)?;
		p.get(usize::try_from(op).ok()?).map(|v| v.as_slice())
	}
}

/// The token an `Embed` step at `position` reads: the prompt token for `position <
/// prompt_len`, else the `u32` of its single input group (the previous `Select`).
pub fn embed_token(job: &LmJob, position: u32, inputs: &[Vec<u8>]) -> Option<u32> {
	match job.prompt.get(usize::try_from(position).ok()?) {
		Some(&t) => Some(t),
		None => {
			let bytes: [u8; 4] = inputs.first()?.as_slice().try_into().ok()?;
			Some(u32::from_le_bytes(bytes))
		},
	}
}

/// Execute op `op` (index in the position's op list) at `position` on its input groups (each
/// the concatenated outputs of [`op_inputs`]) and weight chunks ([`op_weights`]). Returns the
/// output bytes (`i32` little-endian Q16 values, an attention part, or the selected `u32`
/// token). Total: any header, job, inputs and weights give an output or an error.
pub fn execute_op(
	h: &LmHeader,
	job: &LmJob,
	position: u32,
	op: u32,
	inputs: &[Vec<u8>],
	weights: &[&[u8]],
) -> Result<Vec<u8>, LmExecError> {
	// Every division and chunk size below relies on the structural rules (dimensions >= 1).
	check_structure(h).map_err(LmExecError::InvalidModel)?;
	let malformed = LmExecError::Malformed { position, op };
	let kind = op_at(h, Shape::at(h, job.prompt_len(), position), op)
		.ok_or(LmExecError::NoSuchStep { position, op })?;
	let input = |i: usize| -> Result<Vec<i32>, LmExecError> {
		inputs.get(i).and_then(|b| bytes_to_i32s(b)).ok_or(malformed)
	};
	let weight =
		|i: usize| -> Result<&[u8], LmExecError> { weights.get(i).copied().ok_or(malformed) };
	let layer = |l: u32| h.layers.get(usize::try_from(l).unwrap_or(usize::MAX)).ok_or(malformed);
	let (d, hd, cr) = (h.dim as usize, h.head_dim as usize, h.chunk_rows as usize);
	let out: Option<Vec<i32>> = match kind {
		LmOp::Embed => {
			let token = embed_token(job, position, inputs).ok_or(malformed)?;
			if token >= h.vocab {
				return Err(LmExecError::TokenOutOfRange { position });
			}
			let row_bytes = h.embedding.row_bytes(d).ok_or(malformed)?;
			let row = (token % h.vocab_chunk_rows.max(1)) as usize;
			let start = row.checked_mul(row_bytes).ok_or(malformed)?;
			let end = start.checked_add(row_bytes).ok_or(malformed)?;
			let bytes = weight(0)?.get(start..end).ok_or(malformed)?;
			dequantize_row(h.embedding, bytes, d)
		},
		LmOp::AttnNorm(_) | LmOp::FfnNorm(_) | LmOp::FinalNorm => {
			let gamma = bytes_to_i32s(weight(0)?).ok_or(malformed)?;
			rms_norm(&input(0)?, &gamma, h.norm_eps)
		},
		LmOp::Q(l, _) | LmOp::K(l, _) => {
			let f = layer(l)?;
			let format = if matches!(kind, LmOp::Q(..)) { f.wq } else { f.wk };
			matmul_rows(h.act_levels(), format, weight(0)?, hd, &input(0)?, None)
				.and_then(|v| rope(&v, position, &h.rope_inv_freq))
		},
		LmOp::V(l, _) => {
			matmul_rows(h.act_levels(), layer(l)?.wv, weight(0)?, hd, &input(0)?, None)
		},
		LmOp::AttnPart(..) => {
			let (q, keys, values) = (input(0)?, input(1)?, input(2)?);
			if hd == 0 || q.len() != hd || keys.len() != values.len() || keys.len() % hd != 0 {
				return Err(malformed);
			}
			let part = if keys.is_empty() {
				AttnPart::empty(hd)
			} else {
				let keys: Vec<&[i32]> = keys.chunks(hd).collect();
				let values: Vec<&[i32]> = values.chunks(hd).collect();
				attention_part(&q, &keys, &values, h.attn_scale_q16).ok_or(malformed)?
			};
			return Ok(part.encode());
		},
		LmOp::Attn(..) => {
			let bytes = inputs.first().ok_or(malformed)?;
			let parts: Option<Vec<AttnPart>> =
				bytes.chunks(attn_part_bytes(hd)).map(|p| AttnPart::decode(p, hd)).collect();
			let parts = parts.ok_or(malformed)?;
			if parts.len() != attn_parts_at(h, position) as usize {
				return Err(malformed);
			}
			Some(attention_merge(&parts))
		},
		LmOp::OProj(l, c) => {
			let residual = input(1)?;
			// Layer 0 reads the whole embedding output and uses rows c * chunk_rows ...
			let rows = if l == 0 {
				let start = (c as usize).checked_mul(cr).ok_or(malformed)?;
				let end = start.checked_add(cr).ok_or(malformed)?;
				residual.get(start..end).ok_or(malformed)?.to_vec()
			} else {
				residual
			};
			matmul_rows(h.act_levels(), layer(l)?.wo, weight(0)?, cr, &input(0)?, Some(&rows))
		},
		LmOp::GateUp(l, _) => {
			let (f, x) = (layer(l)?, input(0)?);
			let gate =
				matmul_rows(h.act_levels(), f.gate, weight(0)?, cr, &x, None).ok_or(malformed)?;
			let up =
				matmul_rows(h.act_levels(), f.up, weight(1)?, cr, &x, None).ok_or(malformed)?;
			swiglu_vec(&gate, &up)
		},
		LmOp::Down(l, _) => {
			let residual = input(1)?;
			matmul_rows(h.act_levels(), layer(l)?.down, weight(0)?, cr, &input(0)?, Some(&residual))
		},
		LmOp::Head(_) => matmul_rows(
			h.act_levels(),
			h.embedding,
			weight(0)?,
			h.vocab_chunk_rows as usize,
			&input(0)?,
			None,
		),
		LmOp::Select => {
			let logits = input(0)?;
			if logits.len() != h.vocab as usize {
				return Err(malformed);
			}
			let token = select_token(&logits, &job.params, position).ok_or(malformed)?;
			return Ok(token.to_le_bytes().to_vec());
		},
	};
	out.map(|v| i32s_to_bytes(&v)).ok_or(malformed)
}

/// Run a whole generation. `weights` are the model's weight chunks in leaf order
/// ([`LmHeader::weight_chunks`]; their hashes are not checked here, only their lengths).
///
/// Positions `t = 0, 1, ...` run the ops of [`super::graph`]; position `t` embeds prompt token
/// `t` or, past the prompt, the token selected at `t - 1`. Positions `t >= prompt_len - 1`
/// select a token; generation **stops** after the selected token if it is one of the
/// header's `eos_tokens` (it is part of the output), if `max_new_tokens` tokens were
/// selected, or if `t + 1 == max_context` (no room for another position).
pub fn generate<W: AsRef<[u8]>>(
	h: &LmHeader,
	weights: &[W],
	job: &LmJob,
) -> Result<LmTrace, LmExecError> {
	check_structure(h).map_err(LmExecError::InvalidModel)?;
	job.check(h)?;
	if weights.len() as u64 != h.num_weight_chunks() {
		return Err(LmExecError::WrongWeightCount);
	}
	for (i, (chunk, w)) in h.weight_chunks().iter().zip(weights).enumerate() {
		if w.as_ref().len() as u64 != h.chunk_bytes(*chunk) {
			return Err(LmExecError::WeightLength { chunk: i as u64 });
		}
	}
	let prompt_len = job.prompt_len();
	let mut trace = LmTrace { outputs: Vec::new(), tokens: Vec::new() };
	for position in 0..h.max_context {
		let shape = Shape::at(h, prompt_len, position);
		let samples = shape.samples;
		trace.outputs.push(Vec::new());
		for op in 0..ops_at(h, shape) as u32 {
			let output = run_step(h, weights, job, &trace, position, op)?;
			if let Some(outputs) = trace.outputs.last_mut() {
				outputs.push(output);
			}
		}
		if samples {
			let last = trace.outputs.last().and_then(|p| p.last());
			let token = last
				.and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
				.map(u32::from_le_bytes)
				.ok_or(LmExecError::Malformed { position, op: 0 })?;
			trace.tokens.push(token);
			let done = h.eos_tokens.contains(&token)
				|| trace.tokens.len() as u64 >= u64::from(job.max_new_tokens);
			if done {
				break;
			}
		}
	}
	Ok(trace)
}

/// The input groups of a step, gathered from a trace (each group the concatenation of its
/// steps' outputs).
pub fn gather_inputs(
	h: &LmHeader,
	job: &LmJob,
	trace: &LmTrace,
	position: u32,
	op: u32,
) -> Result<Vec<Vec<u8>>, LmExecError> {
	let missing = LmExecError::NoSuchStep { position, op };
	let kind = op_at(h, Shape::at(h, job.prompt_len(), position), op).ok_or(missing)?;
	let groups = op_inputs(h, job.prompt_len(), position, kind).ok_or(missing)?;
	let mut out = Vec::with_capacity(groups.len());
	for group in groups {
		let mut bytes = Vec::new();
		for r in group {
			bytes.extend_from_slice(trace.output(r.position, r.op).ok_or(missing)?);
		}
		out.push(bytes);
	}
	Ok(out)
}

/// The weight chunks a step uses with their leaf indices in `weights_root`, given its input
/// groups (an `Embed` step's chunk depends on its token).
pub fn step_chunks(
	h: &LmHeader,
	job: &LmJob,
	position: u32,
	op: u32,
	inputs: &[Vec<u8>],
) -> Result<Vec<(WeightChunk, u64)>, LmExecError> {
	let kind = op_at(h, Shape::at(h, job.prompt_len(), position), op)
		.ok_or(LmExecError::NoSuchStep { position, op })?;
	let token = match kind {
		LmOp::Embed => {
			let t = embed_token(job, position, inputs)
				.ok_or(LmExecError::Malformed { position, op })?;
			if t >= h.vocab {
				return Err(LmExecError::TokenOutOfRange { position });
			}
			t
		},
		_ => 0,
	};
	op_weights(h, kind, token)
		.into_iter()
		.map(|c| Ok((c, h.chunk_index(c).ok_or(LmExecError::Malformed { position, op })?)))
		.collect()
}

fn run_step<W: AsRef<[u8]>>(
	h: &LmHeader,
	weights: &[W],
	job: &LmJob,
	trace: &LmTrace,
	position: u32,
	op: u32,
) -> Result<Vec<u8>, LmExecError> {
	let inputs = gather_inputs(h, job, trace, position, op)?;
	let mut chunks: Vec<&[u8]> = Vec::new();
	for (_, i) in step_chunks(h, job, position, op, &inputs)? {
		let w = usize::try_from(i).ok().and_then(|i| weights.get(i));
		chunks.push(w.ok_or(LmExecError::WrongWeightCount)?.as_ref());
	}
	execute_op(h, job, position, op, &inputs, &chunks)
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::lm::{header::tests::tiny, trace::weights_root};
	use alloc::vec;

	/// A model whose weights are all zero (scale 0): every logit is 0, so greedy decoding
	/// selects token 0 (lowest index among ties) at every position.
	fn zero_model(eos: u32, max_context: u32) -> (LmHeader, Vec<Vec<u8>>) {
		let mut h = tiny();
		h.eos_tokens = vec![eos];
		h.max_context = max_context;
		let chunks: Vec<Vec<u8>> =
			h.weight_chunks().iter().map(|&c| vec![0u8; h.chunk_bytes(c) as usize]).collect();
		h.weights_root = weights_root(&chunks);
		(h, chunks)
	}

	fn job(prompt: Vec<u32>, max_new_tokens: u32) -> LmJob {
		LmJob { prompt, params: SamplingParams::GREEDY, max_new_tokens }
	}

	#[test]
	fn stops_at_eos_max_new_tokens_and_context() {
		// EOS = 0 is selected first: one token, P - 1 + 1 positions.
		let (h, w) = zero_model(0, 16);
		let trace = generate(&h, &w, &job(vec![5, 6, 7], 10)).unwrap();
		assert_eq!((trace.tokens.clone(), trace.outputs.len()), (vec![0], 3));
		// EOS never selected: max_new_tokens tokens.
		let (h, w) = zero_model(1, 16);
		let trace = generate(&h, &w, &job(vec![5, 6, 7], 4)).unwrap();
		assert_eq!((trace.tokens.clone(), trace.outputs.len()), (vec![0; 4], 6));
		// The context fills first: positions 0..6, tokens selected at 2..=5.
		let (h, w) = zero_model(1, 6);
		let trace = generate(&h, &w, &job(vec![5, 6, 7], 100)).unwrap();
		assert_eq!((trace.tokens.clone(), trace.outputs.len()), (vec![0; 4], 6));
		// A prompt filling the context selects exactly one token.
		let trace = generate(&h, &w, &job(vec![5; 6], 100)).unwrap();
		assert_eq!((trace.tokens.clone(), trace.outputs.len()), (vec![0], 6));
		// Positions before the last prompt token do not select (no head ops).
		let sizes: Vec<usize> = trace.outputs.iter().map(|p| p.len()).collect();
		for (t, &n) in sizes.iter().enumerate() {
			let shape = Shape::at(&h, 6, t as u32);
			assert_eq!((n as u64, shape.samples), (ops_at(&h, shape), t == 5));
		}
	}

	#[test]
	fn bad_jobs_and_weights_are_errors() {
		let (h, w) = zero_model(0, 6);
		assert_eq!(generate(&h, &w, &job(vec![], 1)), Err(LmExecError::BadJob));
		assert_eq!(generate(&h, &w, &job(vec![5; 7], 1)), Err(LmExecError::BadJob));
		assert_eq!(generate(&h, &w, &job(vec![40], 1)), Err(LmExecError::BadJob));
		assert_eq!(generate(&h, &w, &job(vec![1], 0)), Err(LmExecError::BadJob));
		assert_eq!(generate(&h, &w[1..], &job(vec![1], 1)), Err(LmExecError::WrongWeightCount));
		let mut short = w.clone();
		short[3].pop();
		assert_eq!(
			generate(&h, &short, &job(vec![1], 1)),
			Err(LmExecError::WeightLength { chunk: 3 })
		);
		// A proven token out of range is an error of the Embed step, not a panic.
		let embed = execute_op(&h, &job(vec![1], 3), 1, 0, &[40u32.to_le_bytes().to_vec()], &[]);
		assert_eq!(embed, Err(LmExecError::TokenOutOfRange { position: 1 }));
		// An invalid header is refused by every step (no division by a zero dimension).
		let mut bad = h.clone();
		bad.head_dim = 0;
		let attn = crate::lm::graph::op_index(&h, Shape::at(&h, 1, 0), LmOp::AttnPart(0, 0, 0));
		let step =
			execute_op(&bad, &job(vec![1], 3), 0, attn.unwrap(), &[vec![], vec![], vec![]], &[]);
		assert!(matches!(step, Err(LmExecError::InvalidModel(_))));
	}
}
