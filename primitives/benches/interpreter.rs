//! Reference-interpreter throughput in multiply-accumulates per second (criterion reports it as
//! "elem/s", one element = one MAC). Run with `cargo bench -p verity-primitives`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use verity_primitives::{testing::ModelBuilder, testing::Rng, *};

fn spec(shape: &[u32]) -> TensorSpec {
	TensorSpec::new(shape.to_vec(), -3, 0.05)
}

fn bench(c: &mut Criterion) {
	let mut rng = Rng::new(1);
	let mut group = c.benchmark_group("reference_interpreter");
	group
		.sample_size(10)
		.warm_up_time(Duration::from_secs(1))
		.measurement_time(Duration::from_secs(5));

	// Fully connected 1024 -> 1024.
	let (k, n) = (1024u32, 1024u32);
	let mut b = ModelBuilder::new(spec(&[k]));
	b.push(
		OpKind::FullyConnected,
		vec![0],
		spec(&[n]),
		(-128, 127),
		vec![100; n as usize],
		vec![Requant { multiplier: 1 << 30, shift: -12 }; n as usize],
		rng.bytes((k * n) as usize),
	);
	let case = b.finish(rng.bytes(k as usize));
	let macs = step_macs(&case.header, 1).unwrap();
	group.throughput(Throughput::Elements(macs));
	group.bench_function(BenchmarkId::new("fully_connected", "1024x1024"), |bench| {
		bench.iter(|| execute_step(&case.header, 1, &[&case.input], &case.weights[0]).unwrap())
	});

	// Conv2d 64 -> 64, 3x3, stride 1, padding 1, on 32x32.
	let p = Conv2dParams {
		kernel_h: 3,
		kernel_w: 3,
		stride_h: 1,
		stride_w: 1,
		dilation_h: 1,
		dilation_w: 1,
		pad_top: 1,
		pad_left: 1,
		pad_bottom: 1,
		pad_right: 1,
		groups: 1,
	};
	let mut b = ModelBuilder::new(spec(&[64, 32, 32]));
	b.push(
		OpKind::Conv2d(p),
		vec![0],
		spec(&[64, 32, 32]),
		(-128, 127),
		vec![100; 64],
		vec![Requant { multiplier: 1 << 30, shift: -10 }; 64],
		rng.bytes(64 * 64 * 9),
	);
	let case = b.finish(rng.bytes(64 * 32 * 32));
	validate(&case.header, &Limits::default()).unwrap();
	let macs = step_macs(&case.header, 1).unwrap();
	group.throughput(Throughput::Elements(macs));
	group.bench_function(BenchmarkId::new("conv2d", "64x32x32_to_64_3x3"), |bench| {
		bench.iter(|| execute_step(&case.header, 1, &[&case.input], &case.weights[0]).unwrap())
	});
	group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
