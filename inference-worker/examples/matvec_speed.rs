//! Speed of the exact block-quantized matrix–vector product (`lm_fast::kernels::Packed`) with
//! each kernel this CPU runs, side by side in one run: Q4_1 matrices of SmolLM2's shapes
//! (576 → 1,536 and 1,536 → 576 with 15-bit activations) small enough to stay in the caches
//! and, as in a decode step, a set of them larger than the caches read once each (the weights'
//! bytes per second). Every kernel's result is checked equal to the portable one's first.
//!
//! `cargo run --release -p verity-worker --example matvec_speed`

use std::time::Instant;

use rayon::prelude::*;
use verity_primitives::{
	lm::quant::{ActLevels, BlockFormat},
	testing::Rng,
};
use verity_worker::lm_fast::{
	kernels::{Packed, QuantX},
	with_threads, Kernel,
};

/// Q4_1 rows with fp16 scales of a real model's size (d about 0.008, m about -0.06).
fn q4_1_rows(rng: &mut Rng, rows: usize, k: usize) -> Vec<u8> {
	let mut out = Vec::with_capacity(rows * k / 32 * 20);
	for _ in 0..rows * k / 32 {
		let d: u16 = 0x2000 | rng.below(1024) as u16;
		let m: u16 = 0xac00 | rng.below(1024) as u16;
		out.extend_from_slice(&d.to_le_bytes());
		out.extend_from_slice(&m.to_le_bytes());
		out.extend(rng.bytes(16));
	}
	out
}

fn median(mut v: Vec<f64>) -> f64 {
	v.sort_by(f64::total_cmp);
	v[v.len() / 2]
}

fn main() {
	let mut rng = Rng::new(2);
	let kernels: Vec<Kernel> = [Kernel::Portable, Kernel::Avx2, Kernel::Vnni]
		.into_iter()
		.filter(|k| k.available() == *k)
		.collect();
	println!("| matrices | kernel | µs per product | weight bytes/s | against portable |");
	println!("|---|---|---|---|---|");
	// (rows, k, copies): one copy stays in the caches; 60 copies (as many as 30 layers' FFN
	// matrices) are read from memory one after the other.
	for (rows, k, copies) in [(1536, 576, 1), (576, 1536, 1), (1536, 576, 60)] {
		let mats: Vec<Packed> = (0..copies)
			.map(|_| {
				let bytes = q4_1_rows(&mut rng, rows, k);
				Packed::new(k, &[(BlockFormat::Q4_1, &bytes)]).expect("packs")
			})
			.collect();
		let x: Vec<i32> = (0..k).map(|_| rng.range(-(1 << 18), 1 << 18) as i32).collect();
		let q = QuantX::new(&x, ActLevels::L16383);
		let want = mats[0].matvec(&q, None, Kernel::Portable).expect("matvec");
		for &kernel in &kernels {
			assert_eq!(mats[0].matvec(&q, None, kernel).expect("matvec"), want, "{kernel:?}");
		}
		let rounds = if copies == 1 { 400 } else { 10 };
		let mut times: Vec<Vec<f64>> = vec![Vec::new(); kernels.len()];
		for _ in 0..rounds {
			for (i, &kernel) in kernels.iter().enumerate() {
				let t = Instant::now();
				for m in &mats {
					std::hint::black_box(m.matvec(&q, None, kernel));
				}
				times[i].push(t.elapsed().as_secs_f64() / copies as f64);
			}
		}
		let medians: Vec<f64> = times.into_iter().map(median).collect();
		let bytes = mats[0].bytes() as f64;
		for (kernel, m) in kernels.iter().zip(&medians) {
			println!(
				"| {copies} × {rows}×{k} | {kernel:?} | {:.1} | {:.1} GB/s | {:.2}× |",
				m * 1e6,
				bytes / m / 1e9,
				medians[0] / m
			);
		}
	}

	// The roofline of a decode step: a model's worth of matrices (as many bytes as SmolLM2's
	// weights, more than a core's caches) read once each by the product, beside a
	// plain read of as many bytes (what one core, or two, streams from memory here): the
	// product's share of that rate says how much of a decode step's matrix time is the
	// memory's, not the arithmetic's.
	println!();
	println!("| threads | 96 MB of 1536×576 Q4_1 | plain read of as many bytes | product / read |");
	println!("|---|---|---|---|");
	let (rows, k) = (1536, 576);
	// 20 bytes per block of 32 weights (Q4_1).
	let copies = (96usize << 20) / (rows * k / 32 * 20);
	let mats: Vec<Packed> = (0..copies)
		.map(|_| {
			let bytes = q4_1_rows(&mut rng, rows, k);
			Packed::new(k, &[(BlockFormat::Q4_1, &bytes)]).expect("packs")
		})
		.collect();
	let total: usize = mats.iter().map(Packed::bytes).sum();
	let plain: Vec<u64> = (0..total / 8).map(|i| i as u64).collect();
	let x: Vec<i32> = (0..k).map(|_| rng.range(-(1 << 18), 1 << 18) as i32).collect();
	let q = QuantX::new(&x, ActLevels::L16383);
	for threads in [1, 2] {
		let (mut product, mut read) = (Vec::new(), Vec::new());
		// Ten products in a row, then ten reads, twice: within a block the 96 MB are all a
		// step touches, as in decode (whatever part of them the shared L3 keeps, it keeps for
		// both alike).
		with_threads(threads, || {
			for _ in 0..2 {
				for _ in 0..10 {
					let t = Instant::now();
					for m in &mats {
						std::hint::black_box(m.matvec(&q, None, Kernel::Vnni));
					}
					product.push(t.elapsed().as_secs_f64());
				}
				for _ in 0..10 {
					let t = Instant::now();
					let sum: u64 = plain
						.par_chunks(1 << 16)
						.map(|c| {
							let mut acc = [0u64; 8];
							for w in c.chunks_exact(8) {
								for j in 0..8 {
									acc[j] = acc[j].wrapping_add(w[j]);
								}
							}
							acc.iter().fold(0u64, |a, &b| a.wrapping_add(b))
						})
						.reduce(|| 0, u64::wrapping_add);
					std::hint::black_box(sum);
					read.push(t.elapsed().as_secs_f64());
				}
			}
		});
		let (p, r) = (median(product), median(read));
		let gb = |t: f64| total as f64 / t / 1e9;
		println!(
			"| {threads} | {:.2} ms, {:.1} GB/s | {:.2} ms, {:.1} GB/s | {:.2} |",
			p * 1e3,
			gb(p),
			r * 1e3,
			gb(r),
			r / p
		);
	}

	// A batch of prompt positions (`matmul`, as a prefill runs it): 64 vectors per pass over
	// the matrix, in the caches; each kernel's columns checked equal to one `matvec` each.
	println!();
	println!("| batch of 64 vectors | kernel | µs per vector | against portable |");
	println!("|---|---|---|---|");
	for (rows, k) in [(1536, 576), (576, 1536)] {
		let bytes = q4_1_rows(&mut rng, rows, k);
		let m = Packed::new(k, &[(BlockFormat::Q4_1, &bytes)]).expect("packs");
		let xs: Vec<QuantX> = (0..64)
			.map(|_| {
				let x: Vec<i32> = (0..k).map(|_| rng.range(-(1 << 18), 1 << 18) as i32).collect();
				QuantX::new(&x, ActLevels::L16383)
			})
			.collect();
		let want: Vec<Vec<i32>> =
			xs.iter().map(|x| m.matvec(x, None, Kernel::Portable).expect("matvec")).collect();
		for &kernel in &kernels {
			assert_eq!(m.matmul(&xs, None, kernel).expect("matmul"), want, "{kernel:?}");
		}
		let mut times: Vec<Vec<f64>> = vec![Vec::new(); kernels.len()];
		for _ in 0..20 {
			for (i, &kernel) in kernels.iter().enumerate() {
				let t = Instant::now();
				std::hint::black_box(m.matmul(&xs, None, kernel));
				times[i].push(t.elapsed().as_secs_f64() / xs.len() as f64);
			}
		}
		let medians: Vec<f64> = times.into_iter().map(median).collect();
		for (kernel, t) in kernels.iter().zip(&medians) {
			println!("| {rows}×{k} | {kernel:?} | {:.1} | {:.2}× |", t * 1e6, medians[0] / t);
		}
	}
}
