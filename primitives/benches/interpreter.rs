//! Reference-interpreter throughput in multiply-accumulates per second.
//! Run with `cargo bench -p verity-primitives`.
//!
//! A plain harness (no criterion): criterion's dependencies change the features of crates that
//! the node shares, which would make `cargo test` rebuild the whole FRAME stack after
//! `cargo build`. Each case is warmed up, then timed in 10 samples of at least 0.5 s; the median
//! sample is reported.

use std::{
	hint::black_box,
	time::{Duration, Instant},
};
use verity_primitives::{
	testing::{Kernel, ModelBuilder, Rng},
	*,
};

/// Median seconds per call of `f` over 10 samples of at least 0.5 s each.
fn time_per_call(mut f: impl FnMut()) -> f64 {
	let warm = Instant::now();
	while warm.elapsed() < Duration::from_millis(500) {
		f();
	}
	let mut samples = Vec::new();
	for _ in 0..10 {
		let (start, mut n) = (Instant::now(), 0u32);
		while start.elapsed() < Duration::from_millis(500) {
			f();
			n += 1;
		}
		samples.push(start.elapsed().as_secs_f64() / f64::from(n));
	}
	samples.sort_by(f64::total_cmp);
	samples[samples.len() / 2]
}

fn report(name: &str, macs: u64, secs: f64) {
	println!(
		"reference_interpreter/{name}: {:.1} us/call, {:.3} G MAC/s ({macs} MACs)",
		secs * 1e6,
		macs as f64 / secs / 1e9
	);
}

fn main() {
	// `cargo test` runs bench targets once in test mode; there is nothing to check then.
	if std::env::args().any(|a| a == "--test") {
		return;
	}
	bench();
}

fn spec(shape: &[u32]) -> TensorSpec {
	TensorSpec::new(shape.to_vec(), -3, 0.05)
}

fn bench() {
	let mut rng = Rng::new(1);

	// Fully connected 1024 -> 1024.
	let (k, n) = (1024u32, 1024u32);
	let mut b = ModelBuilder::new(spec(&[k]));
	b.fully_connected(
		0,
		spec(&[n]),
		(-128, 127),
		Kernel {
			bias: vec![100; n as usize],
			requant: vec![Requant { multiplier: 1 << 30, shift: -12 }; n as usize],
			weights: rng.bytes((k * n) as usize),
		},
	);
	let case = b.finish(rng.bytes(k as usize));
	let macs = step_macs(&case.header, 1).unwrap();
	let secs = time_per_call(|| {
		black_box(execute_step(&case.header, 1, &[&case.input], &case.weights[0]).unwrap());
	});
	report("fully_connected_1024x1024", macs, secs);

	// Conv2d 64 -> 64, 3x3, stride 1, padding 1, on 32x32.
	let p = testing::same3x3(1);
	let mut b = ModelBuilder::new(spec(&[64, 32, 32]));
	b.conv2d(
		0,
		p,
		spec(&[64, 32, 32]),
		(-128, 127),
		Kernel {
			bias: vec![100; 64],
			requant: vec![Requant { multiplier: 1 << 30, shift: -10 }; 64],
			weights: rng.bytes(64 * 64 * 9),
		},
	);
	let case = b.finish(rng.bytes(64 * 32 * 32));
	validate(&case.header, &Limits::default()).unwrap();
	let macs = step_macs(&case.header, 1).unwrap();
	let secs = time_per_call(|| {
		black_box(execute_step(&case.header, 1, &[&case.input], &case.weights[0]).unwrap());
	});
	report("conv2d_64x32x32_to_64_3x3", macs, secs);
}
