//! Speed of one attention part (`lm_fast::ops::attention_part_fast`: the scores of one query
//! over a head's keys, their exponentials, and the weighted sums of the values) with each
//! kernel this CPU runs, side by side in one run (docs/PERFORMANCE.md): SmolLM2's head size
//! (64) at 128 keys and at a whole attention block (256 keys: a decode position at context
//! 1,024 computes four such parts per query head and layer), values of the size a real model's
//! keys and values have. Every kernel's result is checked equal to the portable one's first.
//!
//! `cargo run --release -p verity-worker --example attn_speed`

use std::time::Instant;

use verity_primitives::testing::Rng;
use verity_worker::lm_fast::{ops::attention_part_fast, Kernel};

const HEAD: usize = 64;
/// `1 / sqrt(64)` in Q16.
const SCALE_Q16: u32 = 8192;
const ROUNDS: usize = 200;

fn main() {
	let mut rng = Rng::new(1);
	let kernels: Vec<Kernel> = [Kernel::Portable, Kernel::Avx2, Kernel::Vnni]
		.into_iter()
		.filter(|k| k.available() == *k)
		.collect();
	println!("| keys | kernel | µs per part | against portable |");
	println!("|---|---|---|---|");
	for n in [128usize, 256] {
		// Q16 values of a few units, as SmolLM2's keys and values after RoPE: scores a few
		// units apart, so that most exponentials are neither 0 nor 1.
		let mut vec = |len: usize, bits: u32| -> Vec<i32> {
			(0..len).map(|_| rng.range(-(1 << bits), 1 << bits) as i32).collect()
		};
		let (q, keys, values) = (vec(HEAD, 17), vec(n * HEAD, 17), vec(n * HEAD, 19));
		let max = |v: &[i32]| v.iter().map(|x| u64::from(x.unsigned_abs())).max().unwrap_or(0);
		let (kmax, vmax) = (max(&keys), max(&values));
		let (mut z, mut e) = (Vec::new(), Vec::new());
		let mut run = |kernel: Kernel, e: &mut Vec<u64>| {
			attention_part_fast(&q, &keys, &values, kmax, vmax, SCALE_Q16, &mut z, e, kernel)
		};
		let want = run(Kernel::Portable, &mut e);
		let between = e.iter().filter(|&&w| w > 0 && w < 1 << 32).count();
		for &k in &kernels {
			assert_eq!(run(k, &mut e), want, "{k:?} equals the portable kernel");
		}
		// Alternate the kernels, medians.
		let mut times: Vec<Vec<f64>> = vec![Vec::new(); kernels.len()];
		for _ in 0..ROUNDS {
			for (i, &k) in kernels.iter().enumerate() {
				let t = Instant::now();
				std::hint::black_box(run(k, &mut e));
				times[i].push(t.elapsed().as_secs_f64() * 1e6);
			}
		}
		let medians: Vec<f64> = times
			.iter_mut()
			.map(|t| {
				t.sort_by(f64::total_cmp);
				t[t.len() / 2]
			})
			.collect();
		for (k, m) in kernels.iter().zip(&medians) {
			println!(
				"| {n} ({between} weights in (0, 1)) | {k:?} | {m:.1} | {:.2}× |",
				medians[0] / m
			);
		}
	}
}
