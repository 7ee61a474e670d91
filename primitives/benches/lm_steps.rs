//! Native time of the largest transformer steps at SmolLM2-135M dimensions with attention in
//! blocks of 256 positions (re-execution plus the hashing a step-proof check does), under both
//! header versions (8-bit and 15-bit activations in the matrix steps). Run with
//! `cargo bench -p verity-primitives --bench lm_steps --features testing`.
//! (In-wasm times on the runtime's executor are the chain issue's benchmark.)

use std::{hint::black_box, time::Instant};
use verity_primitives::{
	lm::{
		graph::{op_index, LmOp, Shape},
		interp::{execute_op, LmJob},
		ops::{i32s_to_bytes, AttnPart},
		sample::SamplingParams,
		validate::step_cost,
	},
	testing::{lm::smollm2_135m_header, Rng},
};

/// An op with its input groups and weight chunks.
type Case = (LmOp, Vec<Vec<u8>>, Vec<Vec<u8>>);

/// Median seconds of 7 runs of `f`.
fn time(mut f: impl FnMut()) -> f64 {
	f();
	let mut samples: Vec<f64> = (0..7)
		.map(|_| {
			let start = Instant::now();
			f();
			start.elapsed().as_secs_f64()
		})
		.collect();
	samples.sort_by(f64::total_cmp);
	samples[3]
}

fn q16_vector(rng: &mut Rng, n: usize) -> Vec<i32> {
	(0..n).map(|_| rng.range(-(2 << 16), 2 << 16) as i32).collect()
}

fn main() {
	let mut rng = Rng::new(7);
	for (ctx, version) in [512u32, 1024, 2048].into_iter().flat_map(|c| [(c, 1), (c, 2)]) {
		let mut h = smollm2_135m_header(ctx, 256);
		h.version = version;
		let t = ctx - 1;
		let job = LmJob {
			prompt: vec![1],
			params: SamplingParams {
				temperature_q16: 45_875,
				top_k: 0,
				top_p_q16: 58_982,
				seed: [3; 32],
			},
			max_new_tokens: ctx,
		};
		let hd = h.head_dim as usize;
		let n = 256usize; // one full block of positions
		let cases: Vec<Case> = vec![
			(
				LmOp::AttnPart(0, 0, (ctx - 1) / 256),
				vec![
					i32s_to_bytes(&q16_vector(&mut rng, hd)),
					i32s_to_bytes(&q16_vector(&mut rng, n * hd)),
					i32s_to_bytes(&q16_vector(&mut rng, n * hd)),
				],
				vec![],
			),
			(
				LmOp::Attn(0, 0),
				vec![(0..h.attn_parts())
					.flat_map(|_| {
						let out: Vec<i32> = q16_vector(&mut rng, hd);
						let part = AttnPart {
							max: rng.range(-(8 << 16), 8 << 16) as i32,
							sum: 256 << 32,
							out,
						};
						part.encode()
					})
					.collect()],
				vec![],
			),
			(LmOp::Select, vec![i32s_to_bytes(&q16_vector(&mut rng, h.vocab as usize))], vec![]),
			(
				LmOp::Head(0),
				vec![i32s_to_bytes(&q16_vector(&mut rng, h.dim as usize))],
				vec![rng.bytes(256 * 18 * 34)],
			),
			(
				LmOp::Down(0, 0),
				vec![
					i32s_to_bytes(&q16_vector(&mut rng, h.ffn_dim as usize)),
					i32s_to_bytes(&q16_vector(&mut rng, h.chunk_rows as usize)),
				],
				vec![rng.bytes(64 * 48 * 20)],
			),
		];
		for (op, inputs, weights) in cases {
			let i = op_index(&h, Shape::at(&h, 1, t), op).expect("op");
			let w: Vec<&[u8]> = weights.iter().map(|w| w.as_slice()).collect();
			let exec = time(|| {
				black_box(execute_op(&h, &job, t, i, black_box(&inputs), &w).expect("step"));
			});
			let cost = step_cost(&h, t, op).expect("cost");
			// What a check hashes besides: every input's step hash and one Merkle path per
			// input and chunk (12 levels), and each chunk once.
			let payload: Vec<u8> = vec![0; cost.proof_bytes as usize];
			let paths = (cost.input_refs + cost.weight_chunks + 1) * 12;
			let hashing = time(|| {
				black_box(sp_crypto_hashing::blake2_256(black_box(&payload)));
				for k in 0..paths {
					black_box(sp_crypto_hashing::blake2_256(&k.to_le_bytes()));
				}
			});
			println!(
				"ctx {ctx} v{version} {op:?}: execute {:.2} ms, hashing ~{:.2} ms, proof <= {} B, {} MACs",
				exec * 1e3,
				hashing * 1e3,
				cost.proof_bytes,
				cost.macs
			);
		}
	}
}
