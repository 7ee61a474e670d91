//! Side-by-side benchmark of the example models (`inference-worker/models/*.vmodel`), batch 1
//! and 32, one libtorch thread count for every libtorch run (`VERITY_BENCH_THREADS`, default: the
//! number of cores):
//!
//! * **exact**: the exact tch backend with its CPU defaults (integer output stage on the host
//!   fused with the copy back, steps below 16k MACs x batch on the reference ops, traces of
//!   256 KiB or more hashed on a second thread), whole trace (every tensor copied back and
//!   hashed);
//! * **exact, tensor ops**: every step in libtorch, integer stage in int64 tensor ops, hashing
//!   inline (the configuration used on CUDA, without the GPU);
//! * **fp32**: a plain fp32 libtorch forward pass of the same architecture (no exactness, no
//!   trace, no hashing): the price of exactness is exact / fp32;
//! * **reference**: the reference interpreter of verity-primitives (single thread), with hashing;
//! * **hash share**: the wall-clock cost of hashing the trace, `1 - t(exact without hashing) /
//!   t(exact)`.
//!
//! `cargo bench -p verity-worker --bench backends` prints a Markdown table (docs/PERFORMANCE.md).
//! `VERITY_BENCH_DEVICE=cuda` runs the libtorch columns on the GPU (the exact column with the
//! device's defaults: every step on the device); the reference stays on the CPU.

use std::time::{Duration, Instant};

use tch::Device;
use verity_worker::{
	backend::run_reference,
	exact::{TchModel, TchOptions},
	float::FloatModel,
	model::LoadedModel,
};

/// Fastest time of `f` over repeated runs (after a warm-up), at least `min_runs` runs and about
/// `budget` of total time.
fn measure(mut f: impl FnMut() -> Duration, min_runs: usize, budget: Duration) -> Duration {
	for _ in 0..5 {
		f();
	}
	let mut times = Vec::new();
	let start = Instant::now();
	while times.len() < min_runs || (start.elapsed() < budget && times.len() < 10_000) {
		times.push(f());
	}
	// The minimum: on a shared machine it is the run least disturbed by other processes.
	times.into_iter().min().unwrap_or_default()
}

fn us(d: Duration) -> f64 {
	d.as_secs_f64() * 1e6
}

fn main() {
	let threads: i32 =
		std::env::var("VERITY_BENCH_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or_else(
			|| std::thread::available_parallelism().map(|n| n.get() as i32).unwrap_or(1),
		);
	tch::set_num_threads(threads);
	// VERITY_BENCH_HASH_THREAD=0: never hash on a second thread (the default hashes traces of
	// 256 KiB or more on a second thread, overlapped with execution).
	let device = std::env::var("VERITY_BENCH_DEVICE").map_or(Device::Cpu, |name| {
		verity_worker::backend::parse_device(&name).expect("VERITY_BENCH_DEVICE")
	});
	verity_worker::backend::configure_device(device);
	let options = TchOptions {
		hash_thread: std::env::var("VERITY_BENCH_HASH_THREAD").as_deref() != Ok("0"),
		..TchOptions::for_device(device)
	};
	let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
	println!(
		"device: {device:?}, libtorch threads: {threads} (reference interpreter: 1 thread), hashing thread: {}; times are the fastest of many runs, per batch\n",
		options.hash_thread
	);
	println!("| model | batch | exact tch | exact, tensor ops | fp32 libtorch | exact / fp32 | tensor ops / fp32 | reference | reference / exact | hashing share of exact |");
	println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
	for name in ["digits_mlp", "digits_cnn", "synthetic_cnn32"] {
		let (model, sample) = if name == "synthetic_cnn32" {
			synthetic_cnn32()
		} else {
			let bytes = match std::fs::read(dir.join(format!("{name}.vmodel"))) {
				Ok(b) => b,
				Err(e) => {
					eprintln!("{name}: {e}");
					continue;
				},
			};
			let model = match LoadedModel::from_bytes(&bytes, None) {
				Ok(m) => m,
				Err(e) => {
					eprintln!("{name}: {e}");
					continue;
				},
			};
			let sample = std::fs::read(dir.join(format!("{name}.input"))).expect("sample input");
			(model, sample)
		};
		let exact = TchModel::with_options(&model, device, options).expect("prepare exact");
		let no_hash =
			TchModel::with_options(&model, device, TchOptions { hash_trace: false, ..options })
				.expect("prepare exact");
		let tensor_ops = TchModel::with_options(&model, device, TchOptions::tensor_ops_only())
			.expect("prepare exact");
		let float = FloatModel::new(&model, device).expect("prepare fp32");
		for batch in [1usize, 32] {
			let inputs: Vec<Vec<u8>> = (0..batch)
				.map(|i| sample.iter().map(|&b| b.wrapping_add((i * 7) as u8)).collect())
				.collect();
			let run = |m: &TchModel| {
				measure(
					|| {
						let t0 = Instant::now();
						let _ = m.run_batch(&inputs).expect("exact");
						t0.elapsed()
					},
					50,
					Duration::from_secs(2),
				)
			};
			let t_exact = run(&exact);
			let t_no_hash = run(&no_hash);
			let t_tensor = run(&tensor_ops);
			let x = float.random_input(batch).expect("input");
			let t_float = measure(
				|| {
					let t0 = Instant::now();
					let _ = float.forward(&x).expect("fp32");
					if let Device::Cuda(index) = device {
						tch::Cuda::synchronize(index as i64);
					}
					t0.elapsed()
				},
				50,
				Duration::from_secs(2),
			);
			let t_ref = measure(
				|| {
					let t0 = Instant::now();
					let _ = run_reference(&model, &inputs).expect("reference");
					t0.elapsed()
				},
				if model.info.total_macs > 10_000_000 { 1 } else { 10 },
				Duration::from_secs(2),
			);
			println!(
				"| {name} | {batch} | {:.1} µs | {:.1} µs | {:.1} µs | {:.2}× | {:.2}× | {:.1} µs | {:.1}× | {:.1} % |",
				us(t_exact),
				us(t_tensor),
				us(t_float),
				t_exact.as_secs_f64() / t_float.as_secs_f64(),
				t_tensor.as_secs_f64() / t_float.as_secs_f64(),
				us(t_ref),
				t_ref.as_secs_f64() / t_exact.as_secs_f64(),
				100.0 * (1.0 - t_no_hash.as_secs_f64() / t_exact.as_secs_f64()),
			);
		}
	}
}

/// A CIFAR-sized CNN with random weights (not trained; for the cost of exactness on a model with
/// more computation per activation byte than the digits models): 3x32x32 input,
/// conv 64, conv 64, maxpool, conv 128, conv 128, maxpool, global average pool, fc 10
/// (about 96 M MACs per image).
fn synthetic_cnn32() -> (LoadedModel, Vec<u8>) {
	use verity_primitives::{
		testing::{pool_params, same3x3, Kernel, ModelBuilder, Rng},
		Requant, TensorSpec,
	};
	let mut rng = Rng::new(32);
	let spec = |shape: Vec<u32>, zp: i8| TensorSpec::new(shape, zp, 0.05);
	let mut b = ModelBuilder::new(spec(vec![3, 32, 32], 0));
	let mut t = 0u32;
	let conv = |b: &mut ModelBuilder, t: u32, cin: u32, cout: u32, hw: u32, rng: &mut Rng| {
		let w: Vec<u8> = (0..cout * cin * 9).map(|_| (rng.range(-40, 40) as i8) as u8).collect();
		let rq = vec![Requant { multiplier: 1_300_000_000, shift: -10 }; cout as usize];
		b.conv2d(
			t,
			same3x3(1),
			spec(vec![cout, hw, hw], -128),
			(-128, 127),
			Kernel { bias: vec![100; cout as usize], requant: rq, weights: w },
		)
	};
	t = conv(&mut b, t, 3, 64, 32, &mut rng);
	t = conv(&mut b, t, 64, 64, 32, &mut rng);
	t = b.max_pool(
		t,
		pool_params((2, 2), (2, 2), [0; 4]),
		spec(vec![64, 16, 16], -128),
		(-128, 127),
	);
	t = conv(&mut b, t, 64, 128, 16, &mut rng);
	t = conv(&mut b, t, 128, 128, 16, &mut rng);
	t = b.max_pool(
		t,
		pool_params((2, 2), (2, 2), [0; 4]),
		spec(vec![128, 8, 8], -128),
		(-128, 127),
	);
	t = b.global_avg_pool(t, spec(vec![128], -128), (-128, 127));
	let w: Vec<u8> = (0..10 * 128).map(|_| rng.byte()).collect();
	b.fully_connected(
		t,
		spec(vec![10], 0),
		(-128, 127),
		Kernel {
			bias: vec![0; 10],
			requant: vec![Requant { multiplier: 1 << 30, shift: -8 }; 10],
			weights: w,
		},
	);
	let input = rng.bytes(3 * 32 * 32);
	let case = b.finish(input.clone());
	let model = LoadedModel::from_file(case.file(), None).expect("valid synthetic model");
	(model, input)
}
