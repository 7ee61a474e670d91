//! The tch backend against the reference interpreter: golden vectors, thousands of random valid
//! models at varied batch sizes, and hand-made extreme models (chunked accumulation, the fp64
//! fallbacks, saturating shifts, extreme zero points and clamps).

use std::path::PathBuf;

use tch::Device;
use verity_primitives::{
	execute,
	testing::{
		conv_params, pool_params, random_case, test_limits, Kernel, ModelBuilder, Rng, TestCase,
	},
	trace_root, ModelFile, Requant, TensorSpec,
};
use verity_worker::{
	exact::{TchModel, TchOptions},
	model::LoadedModel,
};

/// The device the tch backend runs on: the CPU, or the one named by `VERITY_TEST_DEVICE`
/// (`cuda`, `cuda:N`), which must then be usable: a machine with a GPU runs these tests with
/// `VERITY_TEST_DEVICE=cuda`, and a missing GPU is a failure there, not a skip.
fn device() -> Device {
	match std::env::var("VERITY_TEST_DEVICE") {
		Ok(name) => {
			let device = verity_worker::backend::parse_device(&name)
				.unwrap_or_else(|e| panic!("VERITY_TEST_DEVICE: {e}"));
			if device != Device::Cpu {
				assert!(
					tch::Cuda::is_available(),
					"VERITY_TEST_DEVICE={name}: CUDA is not available to libtorch"
				);
				verity_worker::backend::configure_device(device);
			}
			device
		},
		Err(_) => Device::Cpu,
	}
}

/// Every configuration of the tch backend: integer stage on the host or in tensor ops, small
/// steps on the reference or in libtorch, hashing inline or on a thread. On a GPU: its own
/// defaults (every step on the device), the integer stage on the host after the copy back, and
/// everything in tensor ops.
fn configurations() -> Vec<TchOptions> {
	let defaults = TchOptions::for_device(device());
	vec![
		defaults,
		TchOptions {
			host_finish: true,
			small_step_macs: 0,
			hash_thread: true,
			hash_thread_min_bytes: 0,
			host_max_elements: usize::MAX,
			..defaults
		},
		TchOptions::tensor_ops_only(),
	]
}

fn loaded(case: &TestCase) -> LoadedModel {
	LoadedModel::from_file(case.file(), None).expect("valid model")
}

/// Random inputs for a model: all -128, all 127, the zero point, alternating extremes, noise.
fn inputs_for(case: &TestCase, rng: &mut Rng, batch: usize) -> Vec<Vec<u8>> {
	let n = case.input.len();
	let zp = case.header.input.zero_point as u8;
	let mut out = vec![case.input.clone()];
	while out.len() < batch {
		let x = match rng.below(8) {
			0 => vec![0x80; n],
			1 => vec![0x7f; n],
			2 => vec![zp; n],
			3 => (0..n).map(|_| if rng.chance(50) { 0x80 } else { 0x7f }).collect(),
			_ => rng.bytes(n),
		};
		out.push(x);
	}
	out
}

/// Run `inputs` as one tch batch and compare every tensor and step hash with the reference.
fn check(case: &TestCase, inputs: &[Vec<u8>], what: &str) {
	for options in configurations() {
		check_with(case, inputs, &format!("{what} {options:?}"), options);
	}
}

fn check_with(case: &TestCase, inputs: &[Vec<u8>], what: &str, options: TchOptions) {
	let model = loaded(case);
	let tch_model =
		TchModel::with_options(&model, device(), options).unwrap_or_else(|e| panic!("{what}: {e}"));
	let (traces, _) = tch_model.run_batch(inputs).unwrap_or_else(|e| panic!("{what}: {e}"));
	assert_eq!(traces.len(), inputs.len());
	for (b, (x, got)) in inputs.iter().zip(&traces).enumerate() {
		let want = execute(&case.header, &case.weights, x).expect("reference executes");
		let want_hashes = want.step_hashes(&case.header).expect("hashes");
		if got.step_hashes != want_hashes {
			let step =
				got.step_hashes.iter().zip(&want_hashes).position(|(a, b)| a != b).unwrap_or(0);
			panic!(
				"{what}: sample {b} of {}: first differing step {step}\nmodel: {}\ntch:       {}\nreference: {}",
				inputs.len(),
				verity_primitives::testing::describe(&case.header),
				hex::encode(&got.tensors[step]),
				hex::encode(&want.tensors[step]),
			);
		}
		assert_eq!(got.tensors, want.tensors, "{what}: sample {b}");
	}
}

#[test]
fn golden_vectors_reproduce() {
	let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../primitives/testdata");
	let json: serde_json::Value = serde_json::from_str(
		&std::fs::read_to_string(dir.join("golden.json")).expect("golden.json"),
	)
	.expect("json");
	let cases = json["cases"].as_array().expect("cases");
	assert!(cases.len() >= 12);
	for c in cases {
		let name = c["name"].as_str().expect("name");
		let bytes =
			std::fs::read(dir.join(c["model_file"].as_str().expect("file"))).expect("model");
		let input =
			std::fs::read(dir.join(c["input_file"].as_str().expect("file"))).expect("input");
		let id = hex::decode(c["model_id"].as_str().expect("id")).expect("hex");
		let model = LoadedModel::from_bytes(&bytes, Some(&id.try_into().expect("32 bytes")))
			.expect("golden model verifies");
		for options in configurations() {
			let tch_model = TchModel::with_options(&model, device(), options).expect("prepare");
			// Also inside a batch, at another position than 0.
			let other = vec![0x7fu8; input.len()];
			let (traces, _) = tch_model.run_batch(&[other, input.clone()]).expect("run");
			let t = &traces[1];
			let hashes: Vec<String> = t.step_hashes.iter().map(hex::encode).collect();
			let want: Vec<String> = c["step_hashes"]
				.as_array()
				.expect("hashes")
				.iter()
				.map(|h| h.as_str().expect("str").to_string())
				.collect();
			assert_eq!(hashes, want, "{name}: step hashes");
			assert_eq!(
				hex::encode(trace_root(&t.step_hashes)),
				c["trace_root"].as_str().expect("root")
			);
			assert_eq!(hex::encode(t.output()), c["output"].as_str().expect("output"), "{name}");
			let tensors: Vec<String> = t.tensors.iter().map(hex::encode).collect();
			let want_t: Vec<String> = c["tensors"]
				.as_array()
				.expect("tensors")
				.iter()
				.map(|h| h.as_str().expect("str").to_string())
				.collect();
			assert_eq!(tensors, want_t, "{name}: tensors");
		}
	}
}

fn random_range(first: u64, count: u64) {
	let limits = test_limits();
	let mut rng = Rng::new(first ^ 0xd1ff);
	const BATCHES: [usize; 8] = [1, 2, 3, 5, 8, 16, 17, 33];
	for seed in first..first + count {
		let case = random_case(seed, &limits);
		let batch = BATCHES[(seed % BATCHES.len() as u64) as usize];
		let inputs = inputs_for(&case, &mut rng, batch);
		check(&case, &inputs, &format!("seed {seed} batch {batch}"));
	}
}

// Thousands of random models (every op kind, extreme weights, biases, multipliers, zero points,
// shifts, paddings, groups, dilations) in four parallel test functions.
#[test]
fn random_models_0() {
	random_range(0, 800);
}
#[test]
fn random_models_1() {
	random_range(800, 800);
}
#[test]
fn random_models_2() {
	random_range(1600, 800);
}
#[test]
fn random_models_3() {
	random_range(2400, 800);
}

#[test]
fn random_models_large_batches() {
	let limits = test_limits();
	let mut rng = Rng::new(77);
	for seed in 100_000..100_040u64 {
		let case = random_case(seed, &limits);
		let inputs = inputs_for(&case, &mut rng, 64);
		check(&case, &inputs, &format!("seed {seed} batch 64"));
	}
}

#[test]
fn same_result_at_every_batch_size() {
	let case = random_case(4242, &test_limits());
	let model = loaded(&case);
	for options in configurations() {
		let m = TchModel::with_options(&model, device(), options).expect("prepare");
		let mut rng = Rng::new(1);
		let inputs = inputs_for(&case, &mut rng, 40);
		let (all, _) = m.run_batch(&inputs).expect("run");
		for (i, x) in inputs.iter().enumerate() {
			let (one, _) = m.run_batch(std::slice::from_ref(x)).expect("run");
			assert_eq!(one[0], all[i], "sample {i}");
		}
	}
}

fn spec(shape: Vec<u32>, zp: i8) -> TensorSpec {
	TensorSpec::new(shape, zp, 0.05)
}

fn rq(multiplier: i32, shift: i8, n: usize) -> Vec<Requant> {
	vec![Requant { multiplier, shift }; n]
}

/// Inputs at the extremes for an input zero point.
fn extreme_inputs(n: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
	vec![
		vec![0x80; n],
		vec![0x7f; n],
		rng.bytes(n),
		(0..n).map(|i| if i % 2 == 0 { 0x80 } else { 0x7f }).collect(),
	]
}

#[test]
fn fully_connected_with_chunked_accumulation() {
	// K = 4096, weights all -128 and input zero point 127: |x - z| up to 255, partial sums far
	// beyond 2^24, so the reduction is split into chunks. Bias at the accumulator bound.
	let k = 4096u32;
	let n = 6u32;
	let mut rng = Rng::new(5);
	for (zp, wsel, shift) in [(127i8, 0u8, -20i8), (-128, 1, -31), (0, 2, 0), (127, 3, 30)] {
		let mut b = ModelBuilder::new(spec(vec![k], zp));
		let weights: Vec<u8> = (0..k * n)
			.map(|i| match wsel {
				0 => 0x80,
				1 => 0x7f,
				2 => {
					if i % 3 == 0 {
						0x80
					} else {
						0x7f
					}
				},
				_ => rng.byte(),
			})
			.collect();
		let bias: Vec<i32> = (0..n as i32).map(|i| (i - 3) * 1_000_000).collect();
		b.fully_connected(
			0,
			spec(vec![n], -5),
			(-128, 127),
			Kernel { bias, requant: rq(1_518_500_250, shift, n as usize), weights },
		);
		let case = b.finish(vec![0; k as usize]);
		verity_primitives::validate(&case.header, &verity_primitives::Limits::UNLIMITED)
			.expect("valid");
		check(&case, &extreme_inputs(k as usize, &mut rng), &format!("fc zp {zp} w {wsel}"));
	}
}

#[test]
fn conv_with_chunked_channels_and_fp64_fallback() {
	let mut rng = Rng::new(9);
	// 256 input channels, 3x3, weights -128: chunks of input channels; groups 2; asymmetric pad.
	let (cin, cout, h, w) = (256u32, 8u32, 5u32, 6u32);
	for groups in [1u32, 2, 4] {
		let p = conv_params((3, 3), (1, 2), (1, 1), [0, 2, 1, 0], groups);
		let oh = (h + 1 - 3) + 1;
		let ow = (w + 2 - 3) / 2 + 1;
		let mut b = ModelBuilder::new(spec(vec![cin, h, w], 127));
		let wl = (cout * (cin / groups) * 9) as usize;
		let weights: Vec<u8> =
			(0..wl).map(|i| if i % 7 == 0 { rng.byte() } else { 0x80 }).collect();
		b.conv2d(
			0,
			p,
			spec(vec![cout, oh, ow], 3),
			(-100, 120),
			Kernel {
				bias: vec![12345; cout as usize],
				requant: rq(1_900_000_000, -12, cout as usize),
				weights,
			},
		);
		let case = b.finish(vec![0; (cin * h * w) as usize]);
		verity_primitives::validate(&case.header, &verity_primitives::Limits::UNLIMITED)
			.expect("valid");
		check(
			&case,
			&extreme_inputs((cin * h * w) as usize, &mut rng),
			&format!("conv groups {groups}"),
		);
	}
	// One channel with a 25x25 kernel of -128: one channel exceeds 2^24, fp64 path; dilation.
	let p = conv_params((25, 25), (1, 1), (1, 1), [3, 0, 0, 3], 1);
	let mut b = ModelBuilder::new(spec(vec![1, 30, 28], -128));
	b.conv2d(
		0,
		p,
		spec(vec![2, 9, 7], 0),
		(-128, 127),
		Kernel { bias: vec![-7, 7], requant: rq(1 << 30, -14, 2), weights: vec![0x80; 2 * 625] },
	);
	let case = b.finish(vec![0; 30 * 28]);
	verity_primitives::validate(&case.header, &verity_primitives::Limits::UNLIMITED)
		.expect("valid");
	check(&case, &extreme_inputs(30 * 28, &mut rng), "conv 25x25 fp64");
}

#[test]
fn pools_add_lookup_concat_at_extremes() {
	let mut rng = Rng::new(11);
	let (c, h, w) = (3u32, 9u32, 7u32);
	let mut b = ModelBuilder::new(spec(vec![c, h, w], -128));
	// Max pool with asymmetric padding larger than kernel/2 (explicit padding path).
	let mp = b.max_pool(
		0,
		pool_params((3, 3), (2, 2), [2, 0, 1, 2]),
		spec(vec![c, 5, 4], -128),
		(-128, 127),
	);
	// Average pool whose windows have different real counts, ties at .5.
	let ap = b.avg_pool(
		0,
		pool_params((2, 4), (1, 3), [1, 3, 1, 1]),
		spec(vec![c, 10, 3], -128),
		(-120, 100),
	);
	let _gap = b.global_avg_pool(ap, spec(vec![c], -128), (-128, 127));
	let flat_mp = b.reshape(mp, spec(vec![c * 20], -128), (-50, 60));
	let table: Vec<u8> = (0..256u32).map(|i| (i * 37 % 256) as u8).collect();
	let lk = b.lookup(flat_mp, spec(vec![c * 20], 9), (-70, 90), table);
	// Add with the largest left shift and a positive (saturating) output shift.
	let add = verity_primitives::AddParams {
		left_shift: 20,
		lhs: Requant { multiplier: i32::MAX, shift: 0 },
		rhs: Requant { multiplier: 1 << 30, shift: -3 },
	};
	let out_rq = Requant { multiplier: 1_073_741_824, shift: 5 };
	let ad = b.add([flat_mp, lk], add, spec(vec![c * 20], -128), (-128, 127), out_rq);
	b.concat(vec![ad, flat_mp, ad], 0, spec(vec![c * 60], -128), (-128, 127));
	let case = b.finish(vec![0; (c * h * w) as usize]);
	verity_primitives::validate(&case.header, &verity_primitives::Limits::UNLIMITED)
		.expect("valid");
	let mut inputs = extreme_inputs((c * h * w) as usize, &mut rng);
	inputs.extend((0..20).map(|_| rng.bytes((c * h * w) as usize)));
	check(&case, &inputs, "pools/add/lookup/concat");
	// A huge average window (sums beyond 2^24 use fp64).
	let mut b = ModelBuilder::new(spec(vec![1, 400, 400], 0));
	b.avg_pool(
		0,
		pool_params((400, 400), (1, 1), [0, 0, 0, 0]),
		spec(vec![1, 1, 1], 0),
		(-128, 127),
	);
	let case = b.finish(vec![0; 160_000]);
	verity_primitives::validate(&case.header, &verity_primitives::Limits::UNLIMITED)
		.expect("valid");
	check(&case, &extreme_inputs(160_000, &mut rng), "avgpool 400x400");
}

#[test]
fn model_file_roundtrip_through_loaded_model() {
	let case = random_case(3, &test_limits());
	let bytes = case.file().encode();
	let m = LoadedModel::from_bytes(&bytes, Some(&case.header.id())).expect("verifies");
	assert_eq!(ModelFile::decode(&bytes).expect("decodes").header, m.header);
}
