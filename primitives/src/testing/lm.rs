//! Random tiny transformers of the Llama family (1-3 layers, several head layouts including
//! grouped-query attention, every block format) with weights and a generation job.

use alloc::{collections::BTreeMap, vec, vec::Vec};
use sp_crypto_hashing::blake2_256;

use super::Rng;
use crate::{
	commit::{merkle_levels, merkle_proof_from_levels, MerkleProof},
	lm::{
		graph::{op_at, op_index, op_inputs, ops_at, output_elements, LmOp, Shape},
		header::{LayerFormats, LmHeader, WeightChunk, LM_HEADER_VERSION, LM_HEADER_VERSION_MIN},
		interp::{execute_op, step_chunks, LmJob},
		ops::AttnPart,
		quant::{BlockFormat, BLOCK_LEN},
		sample::SamplingParams,
		trace::{
			lm_step_hash, position_levels, weights_root, LmStepProof, ProvenChunk, ProvenOutput,
		},
	},
	model::Hash,
};

/// A transformer, its weight chunks (leaf order) and a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LmCase {
	pub header: LmHeader,
	pub chunks: Vec<Vec<u8>>,
	pub job: LmJob,
}

fn format(rng: &mut Rng) -> BlockFormat {
	rng.pick(&[BlockFormat::Q8_0, BlockFormat::Q4_0, BlockFormat::Q4_1])
		.unwrap_or(BlockFormat::Q8_0)
}

/// An fp16 scale: mostly moderate (`2^-(lo+4) .. 2^-lo` with a random mantissa, so that
/// weights stay around `0.1 .. 1`), rarely an edge (largest, smallest subnormal, zero,
/// infinity, NaN), sometimes negative unless `positive`.
fn scale(rng: &mut Rng, lo: i64, positive: bool) -> u16 {
	let bits = match rng.below(5000) {
		0 => 0x7bff,
		1 => 0x0001,
		2 => 0x0000,
		3 => 0x7c00,
		4 => 0x7e00,
		_ => {
			let exponent = (15 - lo - rng.range(0, 4)) as u16;
			(exponent << 10) | (rng.below(1024) as u16)
		},
	};
	if !positive && rng.chance(30) {
		bits | 0x8000
	} else {
		bits
	}
}

/// `rows * k / 32` random blocks of `format`.
fn blocks(rng: &mut Rng, format: BlockFormat, rows: u32, k: u32) -> Vec<u8> {
	let n = (rows as usize) * (k as usize) / BLOCK_LEN;
	let mut out = Vec::with_capacity(n * format.block_bytes());
	// Q8_0 weights reach 127, nibbles 15: smaller scales for Q8_0.
	let lo = if format == BlockFormat::Q8_0 { 7 } else { 3 };
	for _ in 0..n {
		out.extend_from_slice(&scale(rng, lo, true).to_le_bytes());
		if format == BlockFormat::Q4_1 {
			// A negative minimum of about half the range, as real Q4_1 blocks have.
			out.extend_from_slice(&(scale(rng, lo - 3, false) | 0x8000).to_le_bytes());
		}
		out.extend(
			rng.bytes(format.block_bytes() - if format == BlockFormat::Q4_1 { 4 } else { 2 }),
		);
	}
	out
}

/// RMSNorm weights: around 1.0 (Q16), sometimes an extreme.
fn norm_weights(rng: &mut Rng, dim: u32) -> Vec<u8> {
	(0..dim)
		.flat_map(|_| {
			let g: i32 = match rng.below(20_000) {
				0 => i32::MAX,
				1 => i32::MIN,
				2 => 0,
				3..=999 => rng.range(-(1 << 16), 1 << 16) as i32,
				_ => rng.range(1 << 15, 3 << 15) as i32,
			};
			g.to_le_bytes()
		})
		.collect()
}

/// A random valid tiny transformer, its weights and a job, from a seed.
pub fn random_lm_case(seed: u64) -> LmCase {
	let mut rng = Rng::new(seed ^ 0x4c4d_4341_5345);
	let head_dim = rng.pick(&[8u32, 16, 32]).unwrap_or(16);
	let n_heads = match head_dim {
		8 => 4,
		16 => rng.pick(&[2u32, 4]).unwrap_or(2),
		_ => rng.pick(&[1u32, 2, 3]).unwrap_or(1),
	};
	let divisors: Vec<u32> = (1..=n_heads).filter(|g| n_heads % g == 0).collect();
	let n_kv_heads = rng.pick(&divisors).unwrap_or(1);
	let dim = rng.pick(&[32u32, 64, 96]).unwrap_or(32);
	let ffn_dim = rng.pick(&[32u32, 64, 96, 128]).unwrap_or(64);
	let chunk_rows = rng.pick(&[8u32, 16, 32]).unwrap_or(16);
	let vocab_chunk_rows = rng.pick(&[4u32, 8, 16]).unwrap_or(8);
	let vocab = vocab_chunk_rows * rng.range(2, 6) as u32;
	let n_layers = rng.range(1, 3) as u32;
	let max_context = rng.range(3, 10) as u32;
	// One to several attention parts (a single part for attn_block >= max_context).
	let attn_block = rng.pick(&[1u32, 2, 3, 4, max_context, 64]).unwrap_or(2);
	let rope_inv_freq = (0..head_dim / 2)
		.map(|i| if rng.chance(80) { (1u64 << 32) >> (2 * i) } else { rng.below((1 << 32) + 1) })
		.collect();
	let layers = (0..n_layers)
		.map(|_| LayerFormats {
			wq: format(&mut rng),
			wk: format(&mut rng),
			wv: format(&mut rng),
			wo: format(&mut rng),
			gate: format(&mut rng),
			up: format(&mut rng),
			down: format(&mut rng),
		})
		.collect();
	let n_eos = rng.range(1, 3) as usize;
	let eos_tokens = (0..n_eos).map(|_| rng.below(u64::from(vocab)) as u32).collect();
	let mut header = LmHeader {
		version: LM_HEADER_VERSION,
		dim,
		n_layers,
		n_heads,
		n_kv_heads,
		head_dim,
		ffn_dim,
		vocab,
		max_context,
		norm_eps: if rng.chance(20) { 1 } else { 42950 },
		attn_scale_q16: rng.range(1 << 12, 1 << 16) as u32,
		rope_inv_freq,
		embedding: format(&mut rng),
		layers,
		chunk_rows,
		vocab_chunk_rows,
		attn_block,
		eos_tokens,
		tokenizer_hash: [0x70; 32],
		chat_template_hash: [0x63; 32],
		weights_root: [0; 32],
	};
	let chunks: Vec<Vec<u8>> = header
		.weight_chunks()
		.into_iter()
		.map(|c| match (header.chunk_matrix(c), c) {
			(Some((f, rows, k)), _) => blocks(&mut rng, f, rows, k),
			(
				None,
				WeightChunk::AttnNorm(_) | WeightChunk::FfnNorm(_) | WeightChunk::OutputNorm,
			) => norm_weights(&mut rng, dim),
			(None, _) => Vec::new(),
		})
		.collect();
	header.weights_root = weights_root(&chunks);
	let prompt_len = rng.range(1, i64::from(max_context.min(4))) as usize;
	let prompt = (0..prompt_len).map(|_| rng.below(u64::from(vocab)) as u32).collect();
	let params = if rng.chance(30) {
		SamplingParams::GREEDY
	} else {
		let mut seed = [0u8; 32];
		seed.iter_mut().for_each(|b| *b = rng.byte());
		SamplingParams {
			temperature_q16: rng.range(1, 3 << 16) as u32,
			top_k: rng.below(u64::from(vocab) + 2) as u32,
			top_p_q16: rng.range(0, (1 << 16) + 10) as u32,
			seed,
		}
	};
	let job = LmJob { prompt, params, max_new_tokens: rng.range(1, 6) as u32 };
	// Drawn last, so the rest of a seed's case is the same in either version.
	if rng.chance(35) {
		header.version = LM_HEADER_VERSION_MIN;
	}
	LmCase { header, chunks, job }
}

/// The dimensions of SmolLM2-135M at a given maximum context (weights root zero), for cost
/// reports: 30 layers, dim 576, 9 query / 3 kv heads of 64, FFN 1536, vocabulary 49152,
/// Q4_1 matrices and a Q8_0 embedding, `chunk_rows` 64, `vocab_chunk_rows` 256, and
/// `attn_block` positions per attention part.
pub fn smollm2_135m_header(max_context: u32, attn_block: u32) -> LmHeader {
	LmHeader {
		version: LM_HEADER_VERSION,
		dim: 576,
		n_layers: 30,
		n_heads: 9,
		n_kv_heads: 3,
		head_dim: 64,
		ffn_dim: 1536,
		vocab: 49152,
		max_context,
		norm_eps: 42950,
		attn_scale_q16: 8192,
		rope_inv_freq: vec![0; 32],
		embedding: BlockFormat::Q8_0,
		layers: vec![LayerFormats::uniform(BlockFormat::Q4_1); 30],
		chunk_rows: 64,
		vocab_chunk_rows: 256,
		attn_block,
		eos_tokens: vec![2],
		tokenizer_hash: [0; 32],
		chat_template_hash: [0; 32],
		weights_root: [0; 32],
	}
}

/// Plausible output bytes of a step of kind `op`: an attention part with a full block's
/// normaliser, a token id below `vocab`, or Q16 values in `(-2, 2)`.
fn plausible_output(rng: &mut Rng, h: &LmHeader, op: LmOp) -> Vec<u8> {
	match op {
		LmOp::AttnPart(..) => AttnPart {
			max: rng.range(-(8 << 16), 8 << 16) as i32,
			sum: u64::from(h.attn_block.max(1)) << 32,
			out: (0..h.head_dim).map(|_| rng.range(-(2 << 16), 2 << 16) as i32).collect(),
		}
		.encode(),
		LmOp::Select => (rng.below(u64::from(h.vocab.max(1))) as u32).to_le_bytes().to_vec(),
		_ => {
			let n = output_elements(h, op) as usize;
			(0..n).flat_map(|_| (rng.range(-(2 << 16), 2 << 16) as i32).to_le_bytes()).collect()
		},
	}
}

/// A valid step proof of `op` at `position` built without a generation, for measuring a
/// check at a real model's dimensions (SmolLM2-135M) whose weights are not at hand. The job
/// has a one-token prompt (every position selects a token). Every input step holds
/// [`plausible_output`] data, and each position tree holds those steps' hashes among filler
/// leaves; the weights tree holds random chunks for the step among filler leaves, and the
/// returned header commits to it. The committed hash is the honest output's when `honest`,
/// else another. Returns the header, the job, the roots of positions `0..=position` and the
/// proof; `None` if the op or position does not exist.
pub fn synthetic_step_proof(
	h: &LmHeader,
	position: u32,
	op: LmOp,
	seed: u64,
	honest: bool,
) -> Option<(LmHeader, LmJob, Vec<Hash>, LmStepProof)> {
	let mut rng = Rng::new(seed ^ 0x5354_4550);
	let filler = [0x11u8; 32];
	let job = LmJob {
		prompt: vec![1],
		params: SamplingParams {
			temperature_q16: 45_875,
			top_k: 40,
			top_p_q16: 58_982,
			seed: [3; 32],
		},
		max_new_tokens: h.max_context.checked_sub(1)?.max(1),
	};
	if position >= h.max_context {
		return None;
	}
	let shape = |p: u32| Shape::at(h, 1, p);
	let index = op_index(h, shape(position), op)?;
	let leaves = |p: u32| usize::try_from(ops_at(h, shape(p))).ok();
	// Input steps: data, and their leaves by position.
	let mut by_position: BTreeMap<u32, Vec<(u32, Hash)>> = BTreeMap::new();
	let mut groups = Vec::new();
	let mut outputs = Vec::new();
	for group in op_inputs(h, 1, position, op)? {
		let mut bytes = Vec::new();
		let mut steps = Vec::new();
		for r in group {
			let data = plausible_output(&mut rng, h, op_at(h, shape(r.position), r.op)?);
			by_position.entry(r.position).or_default().push((r.op, lm_step_hash(&data)));
			bytes.extend_from_slice(&data);
			steps.push((r, data));
		}
		groups.push(bytes);
		outputs.push(steps);
	}
	// Weight chunks and their tree.
	let chunks = step_chunks(h, &job, position, index, &groups).ok()?;
	let data: Vec<Vec<u8>> = chunks
		.iter()
		.map(|&(chunk, _)| rng.bytes(usize::try_from(h.chunk_bytes(chunk)).unwrap_or(0)))
		.collect();
	let mut weight_leaves = vec![filler; usize::try_from(h.num_weight_chunks()).ok()?];
	for (&(_, c), d) in chunks.iter().zip(&data) {
		*weight_leaves.get_mut(usize::try_from(c).ok()?)? = blake2_256(d);
	}
	let levels = merkle_levels(&weight_leaves);
	let mut header = h.clone();
	header.weights_root = *levels.last()?.first()?;
	let mut weights = Vec::new();
	for (&(_, c), d) in chunks.iter().zip(data) {
		weights.push(ProvenChunk {
			data: d,
			proof: merkle_proof_from_levels(&levels, u32::try_from(c).ok()?)?,
		});
	}
	// The committed hash.
	let refs: Vec<&[u8]> = weights.iter().map(|w| w.data.as_slice()).collect();
	let output = execute_op(&header, &job, position, index, &groups, &refs).ok()?;
	let committed =
		if honest { lm_step_hash(&output) } else { blake2_256(b"not the honest output") };
	by_position.entry(position).or_default().push((index, committed));
	// Each position tree: its proofs, then its root (one tree in memory at a time).
	let mut proofs: BTreeMap<(u32, u32), MerkleProof> = BTreeMap::new();
	let mut roots: Vec<Hash> = (0..=position).map(|p| blake2_256(&p.to_le_bytes())).collect();
	for (p, set) in by_position {
		let mut tree = vec![filler; leaves(p)?];
		for &(i, hash) in &set {
			*tree.get_mut(usize::try_from(i).ok()?)? = hash;
		}
		let levels = position_levels(&tree);
		for &(i, _) in &set {
			proofs.insert((p, i), merkle_proof_from_levels(&levels, i)?);
		}
		*roots.get_mut(usize::try_from(p).ok()?)? = *levels.last()?.first()?;
	}
	let inputs = outputs
		.into_iter()
		.map(|steps| {
			steps
				.into_iter()
				.map(|(r, data)| {
					Some(ProvenOutput {
						position: r.position,
						op: r.op,
						data,
						proof: proofs.get(&(r.position, r.op))?.clone(),
					})
				})
				.collect::<Option<Vec<_>>>()
		})
		.collect::<Option<Vec<_>>>()?;
	let proof = LmStepProof {
		position,
		op: index,
		committed,
		committed_proof: proofs.get(&(position, index))?.clone(),
		inputs,
		weights,
	};
	Some((header, job, roots, proof))
}
