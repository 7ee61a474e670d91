//! Random tiny transformers of the Llama family (1-3 layers, several head layouts including
//! grouped-query attention, every block format) with weights and a generation job.

use alloc::{vec, vec::Vec};

use super::Rng;
use crate::lm::{
	header::{LayerFormats, LmHeader, WeightChunk, LM_HEADER_VERSION},
	interp::LmJob,
	quant::{BlockFormat, BLOCK_LEN},
	sample::SamplingParams,
	trace::weights_root,
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
