//! The exact fast backend of language models: the generation of
//! `verity_primitives::lm::interp::generate`, step for step and bit for bit, with a KV cache.
//!
//! The reference interpreter gathers every step's inputs from a trace of byte strings and runs
//! each op through the plain integer rules. Here a position runs as whole vectors: one packed
//! matrix–vector product for the query, key and value heads of a layer, one for its output
//! projection, one for gate and up, one for down, one for the LM head ([`kernels`], AVX-512
//! VNNI where the CPU has it, spread over a rayon pool); keys and values of earlier positions
//! come from the cache; the elementwise rules run in their faster exact forms ([`ops`]). The
//! outputs are then cut into the steps of `verity_primitives::lm::graph` in op order and
//! hashed several at a time ([`hash`]: keyed BLAKE3, sixteen messages per pass on AVX-512), so
//! the step hashes, position roots and job root are those of the reference. A batch's outputs
//! are hashed every few ops, while they are still in the caches, and a decoded position's at
//! its end ([`flush_batch`], [`flush`]); the position trees of a batch of prompt positions are
//! built while the next batch computes (`rayon::join`: on a second thread when the pool has
//! one). The differential tests check exactly that on random models and on both shipped
//! models.
//!
//! What the fast backend does not do differently: every rule is the primitives' (the fast
//! forms are tested against them one by one), the op order is the graph's, and tokens are
//! selected by `sample::select_token` itself.

pub mod hash;
pub mod kernels;
pub mod ops;

use std::time::{Duration, Instant};

use rayon::prelude::*;
use verity_primitives::{
	lm::{
		graph::{attn_parts_at, block_positions, ops_at, Shape},
		header::{LmHeader, WeightChunk},
		interp::{LmExecError, LmJob, LmTrace},
		ops::{attn_part_bytes, i32s_to_bytes, rms_norm},
		quant::dequantize_row,
		sample::{select_token, SamplingParams},
		trace::{build_step_proof, LmFindFraudError, LmStepProof, ProverTrees},
		validate::check_structure,
	},
	Hash,
};

pub use kernels::Kernel;
use kernels::{Packed, QuantX};
use ops::{attention_merge_fast, attention_part_fast, rope_apply, rope_table, swiglu_many};

/// Prompt positions run together by default (see [`FastLm::positions`]).
pub const PREFILL_BATCH: u32 = 64;

/// Kept outputs: `[position][op]` bytes.
type Outputs = Vec<Vec<Vec<u8>>>;

/// One layer's weights, packed.
struct Layer {
	attn_norm: Vec<i32>,
	/// Rows of `wq` (all heads), then `wk`, then `wv`.
	qkv: Packed,
	wo: Packed,
	ffn_norm: Vec<i32>,
	/// Rows of `gate`, then `up`.
	gate_up: Packed,
	down: Packed,
}

/// A language model prepared for fast exact generation.
pub struct FastLm {
	h: LmHeader,
	layers: Vec<Layer>,
	/// The embedding chunks as stored (an `Embed` step dequantizes one row).
	embedding: Vec<Vec<u8>>,
	/// The embedding matrix packed, as the LM head.
	head: Packed,
	output_norm: Vec<i32>,
}

/// A position's message buffer and the ends of its messages.
type Buffers = (Vec<u8>, Vec<usize>);

/// A dishonest operator's generation (cargo feature `fault-injection`, test builds only): the
/// step hashes are computed honestly from what it actually did.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub enum LmFault<'a> {
	/// From position `from_position` on, the layers of `model` (the same architecture with
	/// some weight changed) are used instead.
	WeightsFrom { from_position: u32, model: &'a FastLm },
	/// Once position `position` is hashed, `delta` (Q16) is added to element `index` of its
	/// cached key of layer `layer`, kv head `kv_head`: later positions attend to a key that is
	/// not the committed one.
	KeyEntry { layer: u32, kv_head: u32, position: u32, index: u32, delta: i32 },
}

/// How a generation runs.
#[derive(Clone, Copy, Debug)]
pub struct FastOptions {
	/// Compute step hashes and position roots (the commitment). Off only to measure their cost.
	pub hash: bool,
	pub kernel: Kernel,
	/// Prompt positions computed together (at least 1; the result does not depend on it).
	pub prefill_batch: u32,
}

impl FastOptions {
	/// Hashing, the given kernel, batches of [`PREFILL_BATCH`].
	pub fn with_kernel(kernel: Kernel) -> FastOptions {
		FastOptions { hash: true, kernel, prefill_batch: PREFILL_BATCH }
	}
}

impl Default for FastOptions {
	fn default() -> Self {
		FastOptions::with_kernel(Kernel::detect())
	}
}

/// A finished fast generation.
#[derive(Clone, Debug, Default)]
pub struct FastRun {
	/// The generated tokens (as `LmTrace::tokens`).
	pub tokens: Vec<u32>,
	/// `step_hashes[t][i]` (empty without hashing).
	pub step_hashes: Vec<Vec<Hash>>,
	/// The position roots (empty without hashing).
	pub position_roots: Vec<Hash>,
	/// Positions run.
	pub positions: u32,
	/// Positions of the prompt that only fill the cache (no token selected).
	pub prefill_positions: u32,
	/// Time spent computing prompt positions (all but the last) and the others.
	pub prefill_time: Duration,
	pub decode_time: Duration,
	/// Time spent hashing: the flushes (the step hashes, shared between the pool's threads)
	/// and the position trees. The trees of a batch of prompt positions followed by another
	/// batch are built while that one computes (on another thread of the pool when one is
	/// free), so with several threads that part overlaps the times above rather than adding to
	/// them; everything else is part of them.
	pub hash_time: Duration,
}

/// Cached keys and values of one kv head of one layer: `head_dim` values per position, and
/// the largest magnitude per position (to choose the `i64` paths of attention).
#[derive(Default, Clone)]
struct KvHead {
	k: Vec<i32>,
	v: Vec<i32>,
	kmax: Vec<u64>,
	vmax: Vec<u64>,
}

/// What a position keeps of its outputs besides hashing them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
	Nothing,
	/// The outputs later positions read (keys, values, the selected token).
	Inputs,
	Everything,
}

/// The outputs of one position in op order: hashed several at a time (a layer's outputs of a
/// batch of positions together, while they are still in the caches: [`flush`]), and optionally
/// kept.
struct Emitter {
	position: u32,
	op: u32,
	hash: bool,
	keep: Keep,
	/// The outputs not hashed yet, back to back, and where each ends.
	messages: Vec<u8>,
	ends: Vec<usize>,
	/// The step hashes, in op order: the first `hashed` are computed. Allocated zeroed for the
	/// position's ops at once (no growth, no copies; where the allocator hands out fresh pages,
	/// they are first touched by the threads that hash, not here).
	hashes: Vec<Hash>,
	hashed: usize,
	/// Time spent hashing this emitter's batch (counted on its first emitter).
	hash_time: Duration,
	kept: Vec<Vec<u8>>,
}

impl Emitter {
	/// `buffers`: the (emptied) message buffers of an earlier position, so their memory is
	/// reused rather than allocated and faulted in again for every position; `ops`: the
	/// position's op count (room for its step hashes, which are kept).
	fn new(position: u32, hash: bool, keep: Keep, buffers: Buffers, ops: u64) -> Emitter {
		let (mut messages, mut ends) = buffers;
		messages.clear();
		ends.clear();
		Emitter {
			position,
			op: 0,
			hash,
			keep,
			messages,
			ends,
			hashes: vec![[0u8; 32]; if hash { ops.min(1 << 20) as usize } else { 0 }],
			hashed: 0,
			hash_time: Duration::ZERO,
			kept: Vec::new(),
		}
	}

	fn wants_bytes(&self) -> bool {
		self.hash || self.keep != Keep::Nothing
	}

	/// The next op's output; `input`: a later position reads it.
	fn bytes(&mut self, out: &[u8], input: bool) {
		if self.hash {
			self.messages.extend_from_slice(out);
			self.ends.push(self.messages.len());
		}
		match self.keep {
			Keep::Nothing => {},
			Keep::Everything => self.kept.push(out.to_vec()),
			Keep::Inputs => self.kept.push(if input { out.to_vec() } else { Vec::new() }),
		}
		self.op += 1;
	}

	fn i32s(&mut self, out: &[i32], input: bool) {
		if self.keep != Keep::Nothing {
			self.bytes(&i32s_to_bytes(out), input);
			return;
		}
		if self.hash {
			// Straight into the message buffer: the bytes of `i32s_to_bytes`, which on a
			// little-endian CPU are the values' own memory (one copy).
			#[cfg(target_endian = "little")]
			self.messages.extend_from_slice(bytemuck::cast_slice(out));
			#[cfg(not(target_endian = "little"))]
			for v in out {
				self.messages.extend_from_slice(&v.to_le_bytes());
			}
			self.ends.push(self.messages.len());
		}
		self.op += 1;
	}
}

/// Messages of a flush from which it is split between the threads of the pool.
const SPLIT_MESSAGES: usize = 256;

/// [`flush`] for a batch of several positions, a no-op for one position. A batch's outputs are
/// hashed as soon as a few of its ops have emitted them (Q, K, V; the attention and the output
/// projection; the MLP's norm and gate; its down projection), while they are still in the core's
/// caches, and the same op of the batch's positions fills the SIMD lanes (measured on SmolLM2:
/// 4.7 GB/s, against 3.5 GB/s when a whole layer of a batch of 64 positions, 2 MB, was hashed at
/// its end). One position (decoding) is hashed once, at its end: a layer of one position is too
/// few messages of each length to fill the lanes (measured: a layer at a time was slower).
fn flush_batch(ems: &mut [Emitter]) {
	if ems.len() > 1 {
		flush(ems);
	}
}

/// [`flush_batch`] where one thread gains by hashing what is still in its caches (after Q/K/V,
/// after the MLP's gate); with several threads the next flush takes these messages too: each
/// flush hands part of its messages to another thread, and half as many hand-offs measured a
/// lower hashing share (SmolLM2, two threads: 5.1-6.7 % -> 4.8-5.4 % at context 128,
/// 6.0-7.1 % -> 5.4-5.9 % at 1,024; docs/PERFORMANCE.md, session 27).
fn flush_batch_if_alone(ems: &mut [Emitter]) {
	if rayon::current_num_threads() == 1 {
		flush_batch(ems);
	}
}

/// Hashes the outputs emitted so far by every emitter of a batch, all together (the more
/// messages, the fuller the SIMD lanes; one share per thread of the pool), appends each
/// emitter's step hashes and empties the message buffers for the next layer.
fn flush(ems: &mut [Emitter]) {
	if ems.iter().all(|em| em.ends.is_empty()) {
		return;
	}
	let t0 = Instant::now();
	// Every message and the slot of its step hash, in emitter and op order: the hashes are
	// written where they are kept.
	let count: usize = ems.iter().map(|em| em.ends.len()).sum();
	let mut messages: Vec<&[u8]> = Vec::with_capacity(count);
	let mut slots: Vec<&mut Hash> = Vec::with_capacity(count);
	let mut bytes = 0;
	let mut first_time = None;
	for em in ems.iter_mut() {
		let Emitter { messages: buffer, ends, hashes, hashed, hash_time, .. } = em;
		let from = *hashed;
		*hashed += ends.len();
		if hashes.len() < *hashed {
			hashes.resize(*hashed, [0u8; 32]); // more ops than the position has: refused later
		}
		slots.extend(hashes[from..*hashed].iter_mut());
		let mut start = 0;
		for &end in ends.iter() {
			messages.push(buffer.get(start..end).unwrap_or_default());
			start = end;
		}
		bytes += buffer.len();
		first_time.get_or_insert(hash_time);
	}
	// A share per thread of the pool when there is enough to share (a few ops of a batch of
	// prompt positions, a whole decode position), of about equal bytes (a decode position's
	// head chunks are four times its other messages); a handful of messages (some microseconds)
	// is hashed by this thread rather than split and handed to another.
	let threads = if count >= SPLIT_MESSAGES { rayon::current_num_threads().max(1) } else { 1 };
	if threads == 1 {
		hash::step_hashes_into(&messages, &mut slots);
	} else {
		let mut shares: Vec<(&[&[u8]], &mut [&mut Hash])> = Vec::with_capacity(threads);
		let (mut rest, mut rest_slots) = (&messages[..], &mut slots[..]);
		let mut taken = 0;
		for k in 1..threads {
			let target = bytes * k / threads;
			let mut cut = 0;
			while cut < rest.len() && taken < target {
				taken += rest[cut].len();
				cut += 1;
			}
			let (share, more) = rest.split_at(cut);
			let (share_slots, more_slots) = std::mem::take(&mut rest_slots).split_at_mut(cut);
			shares.push((share, share_slots));
			(rest, rest_slots) = (more, more_slots);
		}
		shares.push((rest, rest_slots));
		shares
			.into_par_iter()
			.for_each(|(messages, slots)| hash::step_hashes_into(messages, slots));
	}
	drop(slots);
	if let Some(time) = first_time {
		*time += t0.elapsed();
	}
	for em in ems.iter_mut() {
		em.messages.clear();
		em.ends.clear();
	}
}

fn i32s(bytes: &[u8]) -> Option<Vec<i32>> {
	verity_primitives::lm::ops::bytes_to_i32s(bytes)
}

impl FastLm {
	/// Check the header and the weight chunks (count and lengths, as `generate` does) and
	/// pack the matrices.
	pub fn new<W: AsRef<[u8]>>(h: &LmHeader, chunks: &[W]) -> Result<FastLm, LmExecError> {
		check_structure(h).map_err(LmExecError::InvalidModel)?;
		if chunks.len() as u64 != h.num_weight_chunks() {
			return Err(LmExecError::WrongWeightCount);
		}
		for (i, (chunk, w)) in h.weight_chunks().iter().zip(chunks).enumerate() {
			if w.as_ref().len() as u64 != h.chunk_bytes(*chunk) {
				return Err(LmExecError::WeightLength { chunk: i as u64 });
			}
		}
		let bad = LmExecError::WrongWeightCount;
		let chunk = |c: WeightChunk| -> Result<&[u8], LmExecError> {
			let i = h.chunk_index(c).ok_or(bad)?;
			chunks.get(usize::try_from(i).map_err(|_| bad)?).map(|w| w.as_ref()).ok_or(bad)
		};
		let gamma =
			|c: WeightChunk| -> Result<Vec<i32>, LmExecError> { i32s(chunk(c)?).ok_or(bad) };
		let (d, f) = (h.dim as usize, h.ffn_dim as usize);
		let mut layers = Vec::with_capacity(h.n_layers as usize);
		for (l, formats) in (0..h.n_layers).zip(&h.layers) {
			let mut qkv = Vec::new();
			for i in 0..h.n_heads {
				qkv.push((formats.wq, chunk(WeightChunk::Wq(l, i))?));
			}
			for i in 0..h.n_kv_heads {
				qkv.push((formats.wk, chunk(WeightChunk::Wk(l, i))?));
			}
			for i in 0..h.n_kv_heads {
				qkv.push((formats.wv, chunk(WeightChunk::Wv(l, i))?));
			}
			let rows = |fmt, make: &dyn Fn(u32) -> WeightChunk, n: u32| {
				(0..n).map(|c| Ok((fmt, chunk(make(c))?))).collect::<Result<Vec<_>, LmExecError>>()
			};
			let wo = rows(formats.wo, &|c| WeightChunk::Wo(l, c), h.dim_chunks())?;
			let mut gate_up = rows(formats.gate, &|c| WeightChunk::Gate(l, c), h.ffn_chunks())?;
			gate_up.extend(rows(formats.up, &|c| WeightChunk::Up(l, c), h.ffn_chunks())?);
			let down = rows(formats.down, &|c| WeightChunk::Down(l, c), h.dim_chunks())?;
			layers.push(Layer {
				attn_norm: gamma(WeightChunk::AttnNorm(l))?,
				qkv: Packed::new(d, &qkv).ok_or(bad)?,
				wo: Packed::new(h.attn_dim() as usize, &wo).ok_or(bad)?,
				ffn_norm: gamma(WeightChunk::FfnNorm(l))?,
				gate_up: Packed::new(d, &gate_up).ok_or(bad)?,
				down: Packed::new(f, &down).ok_or(bad)?,
			});
		}
		let embedding: Vec<Vec<u8>> = (0..h.vocab_chunks())
			.map(|c| chunk(WeightChunk::Embedding(c)).map(<[u8]>::to_vec))
			.collect::<Result<_, _>>()?;
		let parts: Vec<_> = embedding.iter().map(|c| (h.embedding, c.as_slice())).collect();
		Ok(FastLm {
			head: Packed::new(d, &parts).ok_or(bad)?,
			embedding,
			output_norm: gamma(WeightChunk::OutputNorm)?,
			layers,
			h: h.clone(),
		})
	}

	pub fn header(&self) -> &LmHeader {
		&self.h
	}

	/// Run a whole generation (the stopping rules of `generate`).
	pub fn generate(&self, job: &LmJob, opts: FastOptions) -> Result<FastRun, LmExecError> {
		self.run(job, opts, None, None).map(|(run, _)| run)
	}

	/// A dishonest generation (see [`LmFault`]).
	#[cfg(feature = "fault-injection")]
	pub fn generate_faulty(
		&self,
		job: &LmJob,
		opts: FastOptions,
		fault: LmFault<'_>,
	) -> Result<FastRun, LmExecError> {
		self.run(job, opts, None, Some(fault)).map(|(run, _)| run)
	}

	/// Run positions `0 ..= position` (or until the generation stops) and return the trace a
	/// step proof at `position` needs: every output of `position`, the keys, values and
	/// selected tokens of earlier positions, and nothing else (other entries are empty).
	pub fn trace_for(
		&self,
		job: &LmJob,
		position: u32,
		kernel: Kernel,
	) -> Result<LmTrace, LmExecError> {
		let opts = FastOptions { hash: false, ..FastOptions::with_kernel(kernel) };
		let (run, outputs) = self.run(job, opts, Some(position), None)?;
		Ok(LmTrace { outputs, tokens: run.tokens })
	}

	fn run(
		&self,
		job: &LmJob,
		opts: FastOptions,
		record: Option<u32>,
		fault: Option<LmFault<'_>>,
	) -> Result<(FastRun, Outputs), LmExecError> {
		let h = &self.h;
		job.check(h)?;
		let prompt_len = job.prompt_len();
		let mut cache = vec![vec![KvHead::default(); h.n_kv_heads as usize]; h.n_layers as usize];
		let mut run = FastRun::default();
		let mut outputs = Vec::new();
		let mut last_token = 0u32;
		let mut position = 0u32;
		// Message buffers of hashed positions, reused by the next ones.
		let mut spare: Vec<Buffers> = Vec::new();
		// The emitters of the last batch, hashed while the next batch computes.
		let mut pending: Vec<Emitter> = Vec::new();
		let mut last_samples = false;
		while position < h.max_context {
			let started = Instant::now();
			// Prompt positions that only fill the cache run in batches (one pass over the
			// weights for all of them); a fault is injected one position at a time.
			let mut end = position + 1;
			if fault.is_none() && position + 1 < prompt_len {
				end = (prompt_len - 1).min(position.saturating_add(opts.prefill_batch.max(1)));
				if let Some(r) = record {
					end = end.min(r.saturating_add(1));
				}
				end = end.max(position + 1);
			}
			let keep = |p: u32| match record {
				Some(r) if p == r => Keep::Everything,
				Some(r) if p < r => Keep::Inputs,
				_ => Keep::Nothing,
			};
			// Only the last position of a batch can select (a batch of several never does).
			let samples = Shape::at(h, prompt_len, end - 1).samples;
			let tokens: Vec<u32> = (position..end)
				.map(|p| job.prompt.get(p as usize).copied().unwrap_or(last_token))
				.collect();
			let mut ems: Vec<Emitter> = (position..end)
				.map(|p| {
					let ops = ops_at(h, Shape::at(h, prompt_len, p));
					Emitter::new(p, opts.hash, keep(p), spare.pop().unwrap_or_default(), ops)
				})
				.collect();
			let layers = match fault {
				Some(LmFault::WeightsFrom { from_position, model })
					if position >= from_position =>
				{
					&model.layers
				},
				_ => &self.layers,
			};
			// The previous batch's hashing alongside this batch (on another thread of the pool
			// when one is idle; one after the other on one thread).
			let to_hash = std::mem::take(&mut pending);
			let (selected, hashed) = rayon::join(
				|| {
					self.positions(
						layers,
						job,
						position,
						&tokens,
						samples,
						&mut cache,
						&mut ems,
						opts.kernel,
						None,
					)
				},
				|| hash_positions(to_hash),
			);
			run.add_hashed(hashed, &mut spare);
			let selected = selected?;
			flush(&mut ems); // the head and the selected token
			if let Some(LmFault::KeyEntry { layer, kv_head, position: p, index, delta }) = fault {
				let hd = h.head_dim as usize;
				let entry = cache.get_mut(layer as usize).and_then(|l| l.get_mut(kv_head as usize));
				if let (true, Some(entry)) = (p == position, entry) {
					let at = p as usize * hd + index as usize;
					if let Some(k) = entry.k.get_mut(at) {
						*k = k.saturating_add(delta);
						let m = &mut entry.kmax[p as usize];
						*m = (*m).max(u64::from(k.unsigned_abs()));
					}
				}
			}
			for em in &mut ems {
				if u64::from(em.op) != ops_at(h, Shape::at(h, prompt_len, em.position)) {
					return Err(LmExecError::Malformed { position: em.position, op: em.op });
				}
				if em.keep != Keep::Nothing {
					outputs.push(std::mem::take(&mut em.kept));
				}
			}
			if opts.hash {
				if !samples && end + 1 < prompt_len {
					// Another batch of prompt positions follows: hash this one alongside it.
					pending = ems;
				} else {
					// Positions that select tokens are hashed at once (overlapping them with
					// the next position did not make decoding faster at two threads), and so
					// is the prompt's last batch, so its hashing counts as prefill.
					run.add_hashed(hash_positions(ems), &mut spare);
				}
			}
			last_samples = samples;
			run.positions = end;
			if samples {
				run.decode_time += started.elapsed();
			} else {
				run.prefill_positions += end - position;
				run.prefill_time += started.elapsed();
			}
			if let Some(token) = selected {
				run.tokens.push(token);
				last_token = token;
				let done = h.eos_tokens.contains(&token)
					|| run.tokens.len() as u64 >= u64::from(job.max_new_tokens);
				if done {
					break;
				}
			}
			if record.is_some_and(|r| end > r) {
				break;
			}
			position = end;
		}
		// The last batch's hashing, counted in its phase.
		let started = Instant::now();
		run.add_hashed(hash_positions(pending), &mut spare);
		if last_samples {
			run.decode_time += started.elapsed();
		} else {
			run.prefill_time += started.elapsed();
		}
		Ok((run, outputs))
	}

	/// Every op of positions `first .. first + tokens.len()` (token `i` at position
	/// `first + i`), each emitted in the graph's order into its own emitter (`ems[i]`). The
	/// positions run as one batch: every matrix is read once for all of them, and position
	/// `first + i` attends to the cached keys and values up to itself, so each step's output is
	/// the one the position alone computes. Only the last position may select a token
	/// (`samples`); the selected token is returned.
	#[allow(clippy::too_many_arguments)]
	fn positions(
		&self,
		layers: &[Layer],
		job: &LmJob,
		first: u32,
		tokens: &[u32],
		samples: bool,
		cache: &mut [Vec<KvHead>],
		ems: &mut [Emitter],
		kernel: Kernel,
		logits_out: Option<&mut Vec<i32>>,
	) -> Result<Option<u32>, LmExecError> {
		let h = &self.h;
		let n = tokens.len();
		let malformed = |ems: &[Emitter]| LmExecError::Malformed {
			position: first,
			op: ems.first().map_or(0, |e| e.op),
		};
		if n == 0 || ems.len() != n {
			return Err(malformed(ems));
		}
		let (d, hd, cr) = (h.dim as usize, h.head_dim as usize, h.chunk_rows as usize);
		let (nh, nkv, f) = (h.n_heads as usize, h.n_kv_heads as usize, h.ffn_dim as usize);
		let at = |i: usize| first + i as u32;
		// Embed
		let vcr = h.vocab_chunk_rows.max(1);
		let row_bytes = h.embedding.row_bytes(d).ok_or(malformed(ems))?;
		let mut resid = Vec::with_capacity(n);
		for (i, &token) in tokens.iter().enumerate() {
			if token >= h.vocab {
				return Err(LmExecError::TokenOutOfRange { position: at(i) });
			}
			let chunk = self.embedding.get((token / vcr) as usize).ok_or(malformed(ems))?;
			let start = (token % vcr) as usize * row_bytes;
			let row = chunk.get(start..start + row_bytes).ok_or(malformed(ems))?;
			let x = dequantize_row(h.embedding, row, d).ok_or(malformed(ems))?;
			ems[i].i32s(&x, false);
			resid.push(x);
		}
		let tables = (0..n)
			.map(|i| rope_table(at(i), &h.rope_inv_freq))
			.collect::<Option<Vec<_>>>()
			.ok_or(malformed(ems))?;
		let parts: Vec<u32> = (0..n).map(|i| attn_parts_at(h, at(i))).collect();
		let want_bytes: Vec<bool> = ems.iter().map(Emitter::wants_bytes).collect();
		let group = h.group_size() as usize;
		let norm = |xs: &[Vec<i32>], gamma: &[i32]| {
			xs.iter().map(|x| rms_norm(x, gamma, h.norm_eps)).collect::<Option<Vec<_>>>()
		};
		let quantized =
			|xs: &[Vec<i32>]| xs.iter().map(|x| QuantX::new(x, h.act_levels())).collect::<Vec<_>>();
		for (layer, kv) in layers.iter().zip(cache.iter_mut()) {
			// AttnNorm, Q, K, V (keys and values cached in position order)
			let xn = norm(&resid, &layer.attn_norm).ok_or(malformed(ems))?;
			for (em, x) in ems.iter_mut().zip(&xn) {
				em.i32s(x, false);
			}
			let mut qkv = layer.qkv.matmul(&quantized(&xn), None, kernel).ok_or(malformed(ems))?;
			let absmax =
				|x: &[i32]| x.iter().map(|v| u64::from(v.unsigned_abs())).max().unwrap_or(0);
			for ((row, em), table) in qkv.iter_mut().zip(ems.iter_mut()).zip(&tables) {
				let (q, kv_rows) = row.split_at_mut(nh * hd);
				let (k, v) = kv_rows.split_at_mut(nkv * hd);
				for head in q.chunks_exact_mut(hd) {
					rope_apply(head, table);
					em.i32s(head, false);
				}
				for (g, head) in k.chunks_exact_mut(hd).enumerate() {
					rope_apply(head, table);
					em.i32s(head, true);
					kv[g].k.extend_from_slice(head);
					kv[g].kmax.push(absmax(head));
				}
				for (g, head) in v.chunks_exact(hd).enumerate() {
					em.i32s(head, true);
					kv[g].v.extend_from_slice(head);
					kv[g].vmax.push(absmax(head));
				}
			}
			flush_batch_if_alone(ems);
			// AttnPart (h, b) for every head and block up to the position, then Attn per
			// head, for every (position, head) in parallel.
			let kv = &*kv;
			let heads: Vec<(Vec<u8>, Vec<i32>)> = (0..n * nh)
				.into_par_iter()
				.map(|j| {
					let (i, head) = (j / nh, j % nh);
					let qh = &qkv[i][head * hd..(head + 1) * hd];
					let cache = &kv[head / group];
					let (mut z, mut e) = (Vec::new(), Vec::new());
					// The parts' encodings back to back (each `attn_part_bytes(hd)` long).
					let want =
						if want_bytes[i] { parts[i] as usize * attn_part_bytes(hd) } else { 0 };
					let mut encoded = Vec::with_capacity(want);
					let mut done = Vec::with_capacity(parts[i] as usize);
					for b in 0..parts[i] {
						// Never empty: b < P(t).
						let r = block_positions(h, at(i), b);
						let (s, e_) = (r.start as usize, r.end as usize);
						let kmax = cache.kmax[s..e_].iter().copied().max().unwrap_or(0);
						let vmax = cache.vmax[s..e_].iter().copied().max().unwrap_or(0);
						let part = attention_part_fast(
							qh,
							&cache.k[s * hd..e_ * hd],
							&cache.v[s * hd..e_ * hd],
							kmax,
							vmax,
							h.attn_scale_q16,
							&mut z,
							&mut e,
							kernel,
						);
						if want_bytes[i] {
							part.encode_into(&mut encoded);
						}
						done.push(part);
					}
					(encoded, attention_merge_fast(&done))
				})
				.collect();
			let mut attn = Vec::with_capacity(n);
			for (i, (em, per_head)) in ems.iter_mut().zip(heads.chunks_exact(nh)).enumerate() {
				for (encoded, _) in per_head {
					for part in encoded.chunks_exact(attn_part_bytes(hd)) {
						em.bytes(part, false);
					}
					if !want_bytes[i] {
						em.op += parts[i];
					}
				}
				let mut all = Vec::with_capacity(nh * hd);
				for (_, out) in per_head {
					em.i32s(out, false);
					all.extend_from_slice(out);
				}
				attn.push(all);
			}
			// OProj: residual + wo * attention, cut into chunks.
			let o =
				layer.wo.matmul(&quantized(&attn), Some(&resid), kernel).ok_or(malformed(ems))?;
			for (em, o) in ems.iter_mut().zip(&o) {
				for c in o.chunks_exact(cr) {
					em.i32s(c, false);
				}
			}
			flush_batch(ems);
			// FfnNorm, GateUp, Down
			let xn = norm(&o, &layer.ffn_norm).ok_or(malformed(ems))?;
			for (em, x) in ems.iter_mut().zip(&xn) {
				em.i32s(x, false);
			}
			let gu = layer.gate_up.matmul(&quantized(&xn), None, kernel).ok_or(malformed(ems))?;
			let mut hidden = Vec::with_capacity(n);
			for (em, gu) in ems.iter_mut().zip(&gu) {
				let (gate, up) = gu.split_at(f);
				let x = swiglu_many(gate, up, kernel);
				for c in x.chunks_exact(cr) {
					em.i32s(c, false);
				}
				hidden.push(x);
			}
			flush_batch_if_alone(ems);
			resid =
				layer.down.matmul(&quantized(&hidden), Some(&o), kernel).ok_or(malformed(ems))?;
			for (em, r) in ems.iter_mut().zip(&resid) {
				for c in r.chunks_exact(cr) {
					em.i32s(c, false);
				}
			}
			flush_batch(ems);
		}
		if !samples {
			return Ok(None);
		}
		let (last, em) = match (resid.last(), ems.last_mut()) {
			(Some(r), Some(em)) => (r, em),
			_ => return Err(LmExecError::Malformed { position: first, op: 0 }),
		};
		let position = at(n - 1);
		let bad = |em: &Emitter| LmExecError::Malformed { position, op: em.op };
		let xf = rms_norm(last, &self.output_norm, h.norm_eps).ok_or(bad(em))?;
		em.i32s(&xf, false);
		let logits =
			self.head.matvec(&QuantX::new(&xf, h.act_levels()), None, kernel).ok_or(bad(em))?;
		for c in logits.chunks_exact(vcr as usize) {
			em.i32s(c, false);
		}
		let token = select_token(&logits, &job.params, position).ok_or(bad(em))?;
		em.bytes(&token.to_le_bytes(), true);
		if let Some(out) = logits_out {
			*out = logits;
		}
		Ok(Some(token))
	}

	/// Teacher forcing (for accuracy measurements, not part of the protocol): the exact
	/// logits (Q16) after each of `tokens` (every position runs its head), nothing hashed.
	pub fn score(&self, tokens: &[u32], kernel: Kernel) -> Result<Vec<Vec<i32>>, LmExecError> {
		let job =
			LmJob { prompt: tokens.to_vec(), params: SamplingParams::GREEDY, max_new_tokens: 1 };
		job.check(&self.h)?;
		let mut cache =
			vec![vec![KvHead::default(); self.h.n_kv_heads as usize]; self.h.n_layers as usize];
		let mut all = Vec::with_capacity(tokens.len());
		for (t, &token) in tokens.iter().enumerate() {
			let mut em = [Emitter::new(t as u32, false, Keep::Nothing, Default::default(), 0)];
			let mut logits = Vec::new();
			self.positions(
				&self.layers,
				&job,
				t as u32,
				&[token],
				true,
				&mut cache,
				&mut em,
				kernel,
				Some(&mut logits),
			)?;
			all.push(logits);
		}
		Ok(all)
	}

	/// Re-run a generation and compare it with someone's revealed step hashes
	/// (`committed[t][i]`), as `verity_primitives::lm::trace::find_lm_fraud` does: `Ok(None)`
	/// if they are identical, otherwise the step proof of the first differing step, built
	/// from this backend's trace of that position (`chunks`: the model's weight chunks, for
	/// the proof's weights).
	pub fn find_fraud<W: AsRef<[u8]>>(
		&self,
		chunks: &[W],
		job: &LmJob,
		committed: &[Vec<Hash>],
		kernel: Kernel,
	) -> Result<Option<LmStepProof>, LmFindFraudError> {
		let h = &self.h;
		let run = self
			.generate(job, FastOptions::with_kernel(kernel))
			.map_err(LmFindFraudError::Execution)?;
		for (t, leaves) in committed.iter().enumerate() {
			let t = t as u32;
			if leaves.len() as u64 != ops_at(h, Shape::at(h, job.prompt_len(), t)) {
				return Err(LmFindFraudError::WrongLeafCount { position: t });
			}
		}
		for (t, (mine, theirs)) in run.step_hashes.iter().zip(committed).enumerate() {
			if let Some(i) = mine.iter().zip(theirs).position(|(a, b)| a != b) {
				let (t, i) = (t as u32, i as u32);
				let trace = self.trace_for(job, t, kernel).map_err(LmFindFraudError::Execution)?;
				let trees = ProverTrees::new(chunks, committed);
				let proof = build_step_proof(h, chunks, job, &trace, committed, &trees, t, i);
				// A proof that cannot be built is an error, never "consistent".
				let missing =
					LmFindFraudError::Execution(LmExecError::NoSuchStep { position: t, op: i });
				return proof.map(Some).ok_or(missing);
			}
		}
		if run.step_hashes.len() != committed.len() {
			return Err(LmFindFraudError::LengthMismatch);
		}
		Ok(None)
	}
}

/// The step hashes and position roots of emitted positions (in order), their message buffers
/// for reuse, and the time it took.
struct Hashed {
	positions: Vec<(Vec<Hash>, Hash)>,
	buffers: Vec<Buffers>,
	time: Duration,
}

fn hash_positions(mut ems: Vec<Emitter>) -> Hashed {
	flush(&mut ems); // nothing is left by `run`, which flushes after every batch
	let t0 = Instant::now();
	let mut out = Hashed { positions: Vec::new(), buffers: Vec::new(), time: Duration::ZERO };
	for mut em in ems {
		em.hashes.truncate(em.hashed);
		let root = position_root_many(&em.hashes);
		out.time += em.hash_time;
		out.positions.push((em.hashes, root));
		out.buffers.push((em.messages, em.ends));
	}
	out.time += t0.elapsed();
	out
}

impl FastRun {
	fn add_hashed(&mut self, hashed: Hashed, spare: &mut Vec<Buffers>) {
		for (hashes, root) in hashed.positions {
			self.position_roots.push(root);
			self.step_hashes.push(hashes);
		}
		self.hash_time += hashed.time;
		spare.extend(hashed.buffers);
	}
}

/// The position root (`verity_primitives::lm::trace::position_root`) with the nodes of each
/// level hashed several at a time.
pub fn position_root_many(hashes: &[Hash]) -> Hash {
	hash::lm_tree_root_many(hashes)
}

/// Run `f` on a rayon pool of `threads` threads (`0`: one per core).
pub fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
	match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
		Ok(pool) => pool.install(f),
		Err(_) => f(),
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use verity_primitives::lm::trace::position_root;

	/// `flush` of several emitters with messages of very different lengths, shared between one
	/// to four threads by bytes, twice (the second time past the room reserved for the hashes):
	/// every step hash lands in its emitter's slot, in op order.
	#[test]
	fn flush_puts_every_hash_in_its_slot() {
		use verity_primitives::lm::trace::lm_step_hash;
		let lens = [4usize, 256, 1036, 2304, 1024, 256, 256, 12, 196_608, 256];
		for threads in 1..=4 {
			let mut ems: Vec<Emitter> = (0..5)
				.map(|p| {
					Emitter::new(p, true, Keep::Nothing, Default::default(), 70 + u64::from(p))
				})
				.collect();
			let mut want: Vec<Vec<Hash>> = vec![Vec::new(); ems.len()];
			for round in 0..2 {
				for (k, em) in ems.iter_mut().enumerate() {
					for i in 0..(60 + 3 * k) {
						let len = lens[(i * 7 + k + round) % lens.len()];
						let out: Vec<u8> = (0..len).map(|j| (j * 31 + i + k) as u8).collect();
						want[k].push(lm_step_hash(&out));
						em.bytes(&out, false);
					}
				}
				with_threads(threads, || flush(&mut ems));
				assert!(ems.iter().all(|em| em.messages.is_empty() && em.ends.is_empty()));
			}
			for (em, want) in ems.iter().zip(&want) {
				assert_eq!(em.hashed, want.len());
				assert_eq!(&em.hashes[..em.hashed], &want[..], "threads {threads}");
			}
		}
	}

	#[test]
	fn position_root_many_is_the_trace_root() {
		for n in [0usize, 1, 2, 3, 4, 5, 7, 8, 9, 31, 64, 100, 1001] {
			let hashes: Vec<Hash> = (0..n).map(|i| [i as u8; 32]).collect();
			assert_eq!(position_root_many(&hashes), position_root(&hashes), "{n}");
		}
	}
}
