//! The example models in `inference-worker/models/` and the quantizer.

use std::path::PathBuf;

use tch::{Device, Kind, Tensor};
use verity_primitives::execute;
use verity_worker::{
	exact::TchModel,
	model::LoadedModel,
	quantize::{build_model, calibrate, quantize_inputs, FloatNet},
};

fn models_dir() -> PathBuf {
	PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

#[test]
fn example_models_verify_and_classify_their_sample_input() {
	for name in ["digits_mlp", "digits_cnn"] {
		let bytes = std::fs::read(models_dir().join(format!("{name}.vmodel"))).expect("model file");
		let model = LoadedModel::from_bytes(&bytes, None).expect("verifies and validates");
		let input =
			std::fs::read(models_dir().join(format!("{name}.input"))).expect("sample input");
		assert_eq!(input.len(), model.input_len(), "{name}");
		let tm = TchModel::new(&model, Device::Cpu).expect("prepare");
		let (traces, _) = tm.run_batch(&[&input]).expect("run");
		let reference = execute(&model.header, &model.weights, &input).expect("reference");
		assert_eq!(
			traces[0].step_hashes,
			reference.step_hashes(&model.header).expect("hashes"),
			"{name}"
		);
		// The sample is the first held-out image, a 0.
		let out: Vec<i8> = traces[0].output().iter().map(|&b| b as i8).collect();
		let best =
			(0..out.len()).max_by_key(|&i| (out[i], std::cmp::Reverse(i))).expect("10 classes");
		assert_eq!(best, 0, "{name}: output {out:?}");
	}
}

#[test]
fn quantizer_builds_a_valid_model_close_to_the_float_one() {
	let dir = std::env::temp_dir().join(format!("verity-quantize-test-{}", std::process::id()));
	std::fs::create_dir_all(&dir).expect("dir");
	let arch = r#"{ "input": { "shape": [3, 10, 10] }, "layers": [
		{ "type": "conv2d", "name": "c1", "out_channels": 8, "kernel": [3, 3], "stride": [2, 2], "padding": [1, 1, 0, 0], "relu": true },
		{ "type": "conv2d", "name": "dw", "out_channels": 8, "kernel": [3, 3], "padding": [1, 1, 1, 1], "groups": 8, "relu": true },
		{ "type": "avg_pool", "kernel": [2, 2] },
		{ "type": "max_pool", "kernel": [2, 2], "stride": [1, 1] },
		{ "type": "flatten" },
		{ "type": "linear", "name": "fc", "out_features": 5 }
	] }"#;
	std::fs::write(dir.join("arch.json"), arch).expect("write");
	tch::manual_seed(1);
	let w = [
		("c1.weight", Tensor::randn([8, 3, 3, 3], (Kind::Float, Device::Cpu)) * 0.3),
		("c1.bias", Tensor::randn([8], (Kind::Float, Device::Cpu)) * 0.1),
		("dw.weight", Tensor::randn([8, 1, 3, 3], (Kind::Float, Device::Cpu)) * 0.3),
		("fc.weight", Tensor::randn([5, 8], (Kind::Float, Device::Cpu)) * 0.3),
		("fc.bias", Tensor::randn([5], (Kind::Float, Device::Cpu)) * 0.1),
	];
	let refs: Vec<(&str, &Tensor)> = w.iter().map(|(n, t)| (*n, t)).collect();
	Tensor::write_safetensors(&refs, dir.join("w.safetensors")).expect("write");
	let net = FloatNet::load(&dir.join("arch.json"), &dir.join("w.safetensors")).expect("load");
	let x = Tensor::rand([200, 3, 10, 10], (Kind::Float, Device::Cpu)) * 2.0 - 0.5;
	let (input_range, ranges) = calibrate(&net, &x, false).expect("calibrate");
	let file = build_model(&net, input_range, &ranges).expect("quantize");
	let model = LoadedModel::from_file(file, None).expect("valid");
	assert_eq!(model.num_ops(), 6);
	let inputs = quantize_inputs(&model.header, &x).expect("inputs");
	let tm = TchModel::new(&model, Device::Cpu).expect("prepare");
	let (traces, _) = tm.run_batch(&inputs).expect("run");
	let float = net.forward_all(&x).expect("float").pop().expect("out");
	let float: Vec<f32> = Vec::<f32>::try_from(float.reshape([-1])).expect("vec");
	let spec = &model.header.output_spec();
	let (s, z) = (f64::from(spec.scale()), f64::from(spec.zero_point));
	let (mut err, mut mag) = (0.0, 0.0);
	for (i, t) in traces.iter().enumerate() {
		let reference = execute(&model.header, &model.weights, &inputs[i]).expect("reference");
		assert_eq!(t.tensors, reference.tensors);
		for (j, &q) in t.output().iter().enumerate() {
			let deq = s * (f64::from(q as i8) - z);
			err += (deq - f64::from(float[i * 5 + j])).abs();
			mag += f64::from(float[i * 5 + j]).abs();
		}
	}
	assert!(err / mag < 0.1, "relative error {}", err / mag);
	let _ = std::fs::remove_dir_all(&dir);
}
