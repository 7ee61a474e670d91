//! Trains the example models on the 8x8 digits data set (1797 images, 10 classes; the
//! `load_digits` data bundled inside the scikit-learn wheel on PyPI) with libtorch, on one
//! thread with fixed seeds so that the result is deterministic.
//!
//! `cargo run --release -p verity-worker --example train_digits -- DIGITS_CSV MODELS_DIR DATA_DIR`
//!
//! * `DIGITS_CSV`: `sklearn/datasets/data/digits.csv` (64 pixel values 0..16, then the label);
//! * writes `MODELS_DIR/digits_{mlp,cnn}.{json,safetensors}` (architecture + float weights, the
//!   input of `verity-worker quantize`) and `DATA_DIR/{train,test}.safetensors` (`x`
//!   `[N, 1, 8, 8]` scaled to `[0, 1]`, `y` labels). The split is a fixed shuffle: 1347 train,
//!   450 test. `inference-worker/models/build.sh` runs the whole pipeline.

use std::path::PathBuf;

use tch::{
	nn::{self, Module, OptimizerConfig},
	Device, Kind, Tensor,
};
use verity_primitives::testing::Rng;

const MLP_ARCH: &str = r#"{
  "input": { "shape": [1, 8, 8] },
  "layers": [
    { "type": "linear", "name": "fc1", "out_features": 64, "relu": true },
    { "type": "linear", "name": "fc2", "out_features": 32, "relu": true },
    { "type": "linear", "name": "fc3", "out_features": 10 }
  ]
}
"#;

const CNN_ARCH: &str = r#"{
  "input": { "shape": [1, 8, 8] },
  "layers": [
    { "type": "conv2d", "name": "conv1", "out_channels": 16, "kernel": [3, 3], "padding": [1, 1, 1, 1], "relu": true },
    { "type": "conv2d", "name": "conv2", "out_channels": 32, "kernel": [3, 3], "padding": [1, 1, 1, 1], "relu": true },
    { "type": "max_pool", "kernel": [2, 2] },
    { "type": "conv2d", "name": "conv3", "out_channels": 64, "kernel": [3, 3], "padding": [1, 1, 1, 1], "relu": true },
    { "type": "max_pool", "kernel": [2, 2] },
    { "type": "flatten" },
    { "type": "linear", "name": "fc", "out_features": 10 }
  ]
}
"#;

fn load(path: &PathBuf) -> (Vec<f32>, Vec<i64>) {
	let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
	let mut x = Vec::new();
	let mut y = Vec::new();
	for line in text.lines().filter(|l| !l.trim().is_empty()) {
		let v: Vec<f32> = line.split(',').map(|s| s.trim().parse().expect("number")).collect();
		assert_eq!(v.len(), 65, "64 pixels and a label per line");
		x.extend(v[..64].iter().map(|p| p / 16.0));
		y.push(v[64] as i64);
	}
	(x, y)
}

fn train(
	name: &str,
	vs: &nn::VarStore,
	net: &dyn Module,
	(xtr, ytr): (&Tensor, &Tensor),
	(xte, yte): (&Tensor, &Tensor),
	epochs: usize,
	lr: f64,
) {
	let mut opt = nn::Adam::default().build(vs, lr).expect("optimizer");
	let n = xtr.size()[0];
	let mut rng = Rng::new(7);
	for epoch in 0..epochs {
		let mut idx: Vec<i64> = (0..n).collect();
		for i in (1..idx.len()).rev() {
			idx.swap(i, rng.below(i as u64 + 1) as usize);
		}
		for chunk in idx.chunks(32) {
			let ix = Tensor::from_slice(chunk);
			let loss = net
				.forward(&xtr.index_select(0, &ix))
				.cross_entropy_for_logits(&ytr.index_select(0, &ix));
			opt.backward_step(&loss);
		}
		if epoch % 10 == 9 || epoch + 1 == epochs {
			let acc = tch::no_grad(|| net.forward(xte).accuracy_for_logits(yte));
			eprintln!(
				"{name}: epoch {:>3} test accuracy {:.2} %",
				epoch + 1,
				100.0 * f64::try_from(acc).unwrap_or(0.0)
			);
		}
	}
}

fn main() {
	let args: Vec<String> = std::env::args().collect();
	if args.len() != 4 {
		eprintln!("usage: train_digits DIGITS_CSV MODELS_DIR DATA_DIR");
		std::process::exit(2);
	}
	let (csv, models, data) =
		(PathBuf::from(&args[1]), PathBuf::from(&args[2]), PathBuf::from(&args[3]));
	std::fs::create_dir_all(&models).expect("models dir");
	std::fs::create_dir_all(&data).expect("data dir");
	tch::set_num_threads(1);
	tch::manual_seed(2024);

	let (x, y) = load(&csv);
	let n = y.len();
	assert_eq!(n, 1797);
	let mut order: Vec<usize> = (0..n).collect();
	let mut rng = Rng::new(2024);
	for i in (1..n).rev() {
		order.swap(i, rng.below(i as u64 + 1) as usize);
	}
	let n_train = 1347;
	let pick = |ids: &[usize]| -> (Tensor, Tensor) {
		let xs: Vec<f32> =
			ids.iter().flat_map(|&i| x[i * 64..(i + 1) * 64].iter().copied()).collect();
		let ys: Vec<i64> = ids.iter().map(|&i| y[i]).collect();
		(Tensor::from_slice(&xs).reshape([ids.len() as i64, 1, 8, 8]), Tensor::from_slice(&ys))
	};
	let (xtr, ytr) = pick(&order[..n_train]);
	let (xte, yte) = pick(&order[n_train..]);
	Tensor::write_safetensors(&[("x", &xtr), ("y", &ytr)], data.join("train.safetensors"))
		.expect("write");
	Tensor::write_safetensors(&[("x", &xte), ("y", &yte)], data.join("test.safetensors"))
		.expect("write");

	// MLP 64-64-32-10.
	let vs = nn::VarStore::new(Device::Cpu);
	let r = vs.root();
	let mlp = nn::seq()
		.add_fn(|x| x.flatten(1, -1))
		.add(nn::linear(&r / "fc1", 64, 64, Default::default()))
		.add_fn(|x| x.relu())
		.add(nn::linear(&r / "fc2", 64, 32, Default::default()))
		.add_fn(|x| x.relu())
		.add(nn::linear(&r / "fc3", 32, 10, Default::default()));
	train("mlp", &vs, &mlp, (&xtr, &ytr), (&xte, &yte), 60, 2e-3);
	vs.save(models.join("digits_mlp.safetensors")).expect("save");
	std::fs::write(models.join("digits_mlp.json"), MLP_ARCH).expect("write");

	// CNN: conv16-conv32-pool-conv64-pool-fc10.
	let vs = nn::VarStore::new(Device::Cpu);
	let r = vs.root();
	let c = nn::ConvConfig { padding: 1, ..Default::default() };
	let cnn = nn::seq()
		.add(nn::conv2d(&r / "conv1", 1, 16, 3, c))
		.add_fn(|x| x.relu())
		.add(nn::conv2d(&r / "conv2", 16, 32, 3, c))
		.add_fn(|x| x.relu().max_pool2d_default(2))
		.add(nn::conv2d(&r / "conv3", 32, 64, 3, c))
		.add_fn(|x| x.relu().max_pool2d_default(2).flatten(1, -1))
		.add(nn::linear(&r / "fc", 256, 10, Default::default()));
	train("cnn", &vs, &cnn, (&xtr, &ytr), (&xte, &yte), 30, 2e-3);
	vs.save(models.join("digits_cnn.safetensors")).expect("save");
	std::fs::write(models.join("digits_cnn.json"), CNN_ARCH).expect("write");
	let _ = Kind::Float;
}
