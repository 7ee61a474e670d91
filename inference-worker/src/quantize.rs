//! Post-training quantization: a float model (weights in safetensors + a small JSON
//! architecture file) and calibration inputs → a Verity model file, with float vs quantized
//! accuracy on held-out data.
//!
//! ## Architecture file (JSON)
//!
//! A sequential network; tensors are `[C, H, W]` images or `[K]` vectors, no batch dimension:
//!
//! ```json
//! {
//!   "input": { "shape": [1, 8, 8] },
//!   "layers": [
//!     { "type": "conv2d", "name": "conv1", "out_channels": 16, "kernel": [3, 3],
//!       "stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1, "relu": true },
//!     { "type": "max_pool", "kernel": [2, 2], "stride": [2, 2] },
//!     { "type": "avg_pool", "kernel": [2, 2], "stride": [2, 2] },
//!     { "type": "global_avg_pool" },
//!     { "type": "flatten" },
//!     { "type": "linear", "name": "fc", "out_features": 10, "relu": false }
//!   ]
//! }
//! ```
//!
//! `padding` is `[top, left, bottom, right]` (default 0), `stride` defaults to `[1, 1]` (pools:
//! to the kernel), `dilation` to `[1, 1]`, `groups` to 1, `relu` to false. Weights are read
//! from the safetensors file as `<name>.weight` (PyTorch layout: linear `[out, in]`, conv
//! `[out, in / groups, kh, kw]`) and `<name>.bias` (`[out]`, optional). A linear layer
//! flattens its input in `[C, H, W]` order, like `torch.flatten`.
//!
//! ## Data files (safetensors)
//!
//! `x`: inputs `[N, ...input shape]` (any numeric dtype, read as f32); `y`: integer labels `[N]`
//! (evaluation data only). The model's prediction is the argmax of its output.
//!
//! ## Scheme
//!
//! int8 everywhere; activations asymmetric per tensor (range from the calibration data, min/max,
//! always including 0); weights symmetric per output channel (`max|w| / 127`); int32 biases at
//! scale `s_in * s_w`; requantization multiplier `s_in * s_w / s_out` as a Q31 multiplier and a
//! shift; ReLU is the clamp `[z_out, 127]`; pools and flatten keep the input quantization.

use std::{collections::HashMap, path::PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use tch::{Device, Kind, Tensor};
use verity_primitives::{
	validate, Conv2dParams, ModelFile, ModelHeader, Op, OpKind, PoolParams, Requant, TensorSpec,
	HEADER_VERSION,
};

use crate::{exact::TchModel, model::LoadedModel};

/// Arguments of `verity-worker quantize`.
#[derive(clap::Args, Debug, Clone)]
pub struct QuantizeArgs {
	/// The architecture file (JSON, see the module documentation).
	#[arg(long)]
	pub arch: PathBuf,
	/// The float weights (safetensors).
	#[arg(long)]
	pub weights: PathBuf,
	/// Calibration inputs (safetensors with `x`).
	#[arg(long)]
	pub calib: PathBuf,
	/// Use at most this many calibration inputs.
	#[arg(long, default_value_t = 1000)]
	pub calib_count: usize,
	/// Held-out evaluation data (safetensors with `x` and `y`).
	#[arg(long)]
	pub eval: Option<PathBuf>,
	/// The Verity model file to write.
	#[arg(long)]
	pub out: PathBuf,
	/// Also write the first evaluation input, quantized, as a raw input file here.
	#[arg(long)]
	pub sample_input: Option<PathBuf>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Arch {
	pub input: InputArch,
	pub layers: Vec<Layer>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct InputArch {
	pub shape: Vec<u32>,
}

fn one() -> u32 {
	1
}
fn ones() -> [u32; 2] {
	[1, 1]
}

#[derive(Deserialize, Debug, Clone)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Layer {
	Linear {
		name: String,
		out_features: u32,
		#[serde(default)]
		relu: bool,
	},
	Conv2d {
		name: String,
		out_channels: u32,
		kernel: [u32; 2],
		#[serde(default = "ones")]
		stride: [u32; 2],
		#[serde(default)]
		padding: [u32; 4],
		#[serde(default = "ones")]
		dilation: [u32; 2],
		#[serde(default = "one")]
		groups: u32,
		#[serde(default)]
		relu: bool,
	},
	MaxPool {
		kernel: [u32; 2],
		stride: Option<[u32; 2]>,
		#[serde(default)]
		padding: [u32; 4],
	},
	AvgPool {
		kernel: [u32; 2],
		stride: Option<[u32; 2]>,
		#[serde(default)]
		padding: [u32; 4],
	},
	GlobalAvgPool,
	Flatten,
}

/// A float model: architecture and weights.
pub struct FloatNet {
	pub arch: Arch,
	pub params: HashMap<String, Tensor>,
}

fn pool_out(size: u32, k: u32, s: u32, before: u32, after: u32) -> Result<u32> {
	let padded = size + before + after;
	if padded < k || s == 0 {
		bail!("pool/conv window {k} larger than the padded input {padded}");
	}
	Ok((padded - k) / s + 1)
}

impl FloatNet {
	pub fn load(arch: &std::path::Path, weights: &std::path::Path) -> Result<Self> {
		let text =
			std::fs::read_to_string(arch).with_context(|| format!("reading {}", arch.display()))?;
		let arch: Arch = serde_json::from_str(&text)
			.with_context(|| format!("{}: not a valid architecture", arch.display()))?;
		let params = Tensor::read_safetensors(weights)
			.with_context(|| format!("reading {}", weights.display()))?
			.into_iter()
			.map(|(k, v)| Ok((k, v.f_to_kind(Kind::Float)?)))
			.collect::<Result<HashMap<_, _>>>()?;
		Ok(FloatNet { arch, params })
	}

	fn param(&self, name: &str) -> Result<&Tensor> {
		self.params.get(name).ok_or_else(|| anyhow!("weights: no tensor `{name}`"))
	}

	/// The output of every layer for a batch `x` `[N, ...input shape]`.
	pub fn forward_all(&self, x: &Tensor) -> Result<Vec<Tensor>> {
		let _g = tch::no_grad_guard();
		let n = x.size().first().copied().unwrap_or(1);
		let mut cur = x.shallow_clone();
		let mut outs = Vec::with_capacity(self.arch.layers.len());
		for layer in &self.arch.layers {
			cur = match layer {
				Layer::Linear { name, relu, .. } => {
					let w = self.param(&format!("{name}.weight"))?;
					let b = self.params.get(&format!("{name}.bias"));
					let y = cur.f_reshape([n, -1])?.f_linear(w, b)?;
					if *relu {
						y.f_relu()?
					} else {
						y
					}
				},
				Layer::Conv2d { name, stride, padding, dilation, groups, relu, .. } => {
					let w = self.param(&format!("{name}.weight"))?;
					let b = self.params.get(&format!("{name}.bias"));
					let [t, l, bt, r] = padding.map(i64::from);
					let y = cur.f_constant_pad_nd([l, r, t, bt].as_slice())?.f_conv2d(
						w,
						b,
						stride.map(i64::from).as_slice(),
						[0i64, 0].as_slice(),
						dilation.map(i64::from).as_slice(),
						i64::from(*groups),
					)?;
					if *relu {
						y.f_relu()?
					} else {
						y
					}
				},
				Layer::MaxPool { kernel, stride, padding } => {
					let [t, l, bt, r] = padding.map(i64::from);
					cur.f_constant_pad_nd([l, r, t, bt].as_slice())?.f_max_pool2d(
						kernel.map(i64::from).as_slice(),
						stride.unwrap_or(*kernel).map(i64::from).as_slice(),
						[0i64, 0].as_slice(),
						[1i64, 1].as_slice(),
						false,
					)?
				},
				Layer::AvgPool { kernel, stride, padding } => {
					let [t, l, bt, r] = padding.map(i64::from);
					cur.f_constant_pad_nd([l, r, t, bt].as_slice())?.f_avg_pool2d(
						kernel.map(i64::from).as_slice(),
						stride.unwrap_or(*kernel).map(i64::from).as_slice(),
						[0i64, 0].as_slice(),
						false,
						true,
						None::<i64>,
					)?
				},
				Layer::GlobalAvgPool => cur.f_mean_dim([2i64, 3].as_slice(), false, Kind::Float)?,
				Layer::Flatten => cur.f_reshape([n, -1])?,
			};
			outs.push(cur.shallow_clone());
		}
		Ok(outs)
	}
}

/// A real range `(min, max)`.
pub type Range = (f64, f64);

/// One layer lowered to an op: kind, output shape, output `(scale, zero point)`, clamp, bias,
/// requantization, weight bytes.
type Lowered = (OpKind, Vec<u32>, (f64, i8), (i8, i8), Vec<i32>, Vec<Requant>, Vec<u8>);

/// Asymmetric int8 quantization of the real range `[lo, hi]` (widened to include 0).
fn qparams(lo: f64, hi: f64) -> (f64, i8) {
	let lo = lo.min(0.0);
	let hi = hi.max(0.0);
	let scale = if hi - lo > 0.0 { (hi - lo) / 255.0 } else { 1.0 };
	let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i8;
	(scale, zp)
}

/// A positive real multiplier as a Q31 multiplier and a shift (`m / 2^31 * 2^shift`).
pub fn quantize_multiplier(m: f64) -> Requant {
	if m <= 0.0 || !m.is_finite() {
		return Requant { multiplier: 0, shift: 0 };
	}
	let mut e = m.log2().floor() as i32 + 1; // m = f * 2^e, f in [0.5, 1)
	let mut q = (m / 2f64.powi(e) * 2f64.powi(31)).round() as i64;
	if q >= 1i64 << 31 {
		q /= 2;
		e += 1;
	}
	if e < -31 {
		// Too small for the shift range: scale the multiplier down instead.
		q = (m * 2f64.powi(31 + 31)).round() as i64;
		e = -31;
	}
	Requant { multiplier: q.clamp(0, i64::from(i32::MAX)) as i32, shift: e.clamp(-31, 30) as i8 }
}

fn spec(shape: Vec<u32>, (scale, zp): (f64, i8)) -> TensorSpec {
	TensorSpec::new(shape, zp, scale as f32)
}

/// Per-layer real ranges `(min, max)` over the calibration data, and the input range.
pub fn calibrate(net: &FloatNet, x: &Tensor, progress: bool) -> Result<(Range, Vec<Range>)> {
	let n = x.size().first().copied().unwrap_or(0);
	let mut ranges = vec![(f64::INFINITY, f64::NEG_INFINITY); net.arch.layers.len()];
	let bs = 64;
	let input_range = (f64::try_from(x.f_min()?)?, f64::try_from(x.f_max()?)?);
	let mut done = 0;
	while done < n {
		let len = bs.min(n - done);
		let outs = net.forward_all(&x.f_narrow(0, done, len)?)?;
		for (r, o) in ranges.iter_mut().zip(&outs) {
			r.0 = r.0.min(f64::try_from(o.f_min()?)?);
			r.1 = r.1.max(f64::try_from(o.f_max()?)?);
		}
		done += len;
		if progress {
			let k = (40 * done / n.max(1)) as usize;
			eprint!("\rcalibrating [{}{}] {done}/{n}", "#".repeat(k), " ".repeat(40 - k));
		}
	}
	if progress {
		eprintln!();
	}
	Ok((input_range, ranges))
}

/// Build the Verity model from a float net and calibration ranges.
pub fn build_model(
	net: &FloatNet,
	input_range: (f64, f64),
	ranges: &[(f64, f64)],
) -> Result<ModelFile> {
	let in_q = qparams(input_range.0, input_range.1);
	let input = spec(net.arch.input.shape.clone(), in_q);
	let mut ops: Vec<Op> = Vec::new();
	let mut weights: Vec<Vec<u8>> = Vec::new();
	let mut shape = net.arch.input.shape.clone();
	let mut q = in_q;
	for (i, layer) in net.arch.layers.iter().enumerate() {
		let prev = i as u32; // tensor index of the current activation
		let range = ranges.get(i).copied().unwrap_or((0.0, 0.0));
		let (kind, out_shape, out_q, clamp, bias, requant, w): Lowered = match layer {
			Layer::Linear { name, out_features, relu } => {
				let w = net.param(&format!("{name}.weight"))?;
				let k: u32 = shape.iter().product();
				if w.size() != [i64::from(*out_features), i64::from(k)] {
					bail!("{name}.weight: shape {:?}, expected [{out_features}, {k}]", w.size());
				}
				let oq = qparams(range.0, range.1);
				let (wq, b, rq) = quantize_layer(net, name, w, *out_features as usize, q.0, oq.0)?;
				let clamp = if *relu { (oq.1, 127) } else { (-128, 127) };
				(OpKind::FullyConnected, vec![*out_features], oq, clamp, b, rq, wq)
			},
			Layer::Conv2d {
				name,
				out_channels,
				kernel,
				stride,
				padding,
				dilation,
				groups,
				relu,
			} => {
				let [c, h, wd] = <[u32; 3]>::try_from(shape.as_slice()).map_err(|_| {
					anyhow!("{name}: conv2d needs a [C, H, W] input, got {shape:?}")
				})?;
				let w = net.param(&format!("{name}.weight"))?;
				let want = [
					i64::from(*out_channels),
					i64::from(c / (*groups).max(1)),
					i64::from(kernel[0]),
					i64::from(kernel[1]),
				];
				if w.size() != want {
					bail!("{name}.weight: shape {:?}, expected {want:?}", w.size());
				}
				let ext_h = dilation[0] * (kernel[0] - 1) + 1;
				let ext_w = dilation[1] * (kernel[1] - 1) + 1;
				let oh = pool_out(h, ext_h, stride[0], padding[0], padding[2])?;
				let ow = pool_out(wd, ext_w, stride[1], padding[1], padding[3])?;
				let oq = qparams(range.0, range.1);
				let (wq, b, rq) = quantize_layer(net, name, w, *out_channels as usize, q.0, oq.0)?;
				let clamp = if *relu { (oq.1, 127) } else { (-128, 127) };
				let p = Conv2dParams {
					kernel_h: kernel[0],
					kernel_w: kernel[1],
					stride_h: stride[0],
					stride_w: stride[1],
					dilation_h: dilation[0],
					dilation_w: dilation[1],
					pad_top: padding[0],
					pad_left: padding[1],
					pad_bottom: padding[2],
					pad_right: padding[3],
					groups: *groups,
				};
				(OpKind::Conv2d(p), vec![*out_channels, oh, ow], oq, clamp, b, rq, wq)
			},
			Layer::MaxPool { kernel, stride, padding }
			| Layer::AvgPool { kernel, stride, padding } => {
				let [c, h, wd] = <[u32; 3]>::try_from(shape.as_slice())
					.map_err(|_| anyhow!("pooling needs a [C, H, W] input, got {shape:?}"))?;
				let s = stride.unwrap_or(*kernel);
				let p = PoolParams {
					kernel_h: kernel[0],
					kernel_w: kernel[1],
					stride_h: s[0],
					stride_w: s[1],
					pad_top: padding[0],
					pad_left: padding[1],
					pad_bottom: padding[2],
					pad_right: padding[3],
				};
				let oh = pool_out(h, kernel[0], s[0], padding[0], padding[2])?;
				let ow = pool_out(wd, kernel[1], s[1], padding[1], padding[3])?;
				let kind = if matches!(layer, Layer::MaxPool { .. }) {
					OpKind::MaxPool(p)
				} else {
					OpKind::AvgPool(p)
				};
				(kind, vec![c, oh, ow], q, (-128, 127), vec![], vec![], vec![])
			},
			Layer::GlobalAvgPool => {
				let c =
					*shape.first().ok_or_else(|| anyhow!("global_avg_pool of an empty shape"))?;
				(OpKind::GlobalAvgPool, vec![c], q, (-128, 127), vec![], vec![], vec![])
			},
			Layer::Flatten => (
				OpKind::Reshape,
				vec![shape.iter().product()],
				q,
				(-128, 127),
				vec![],
				vec![],
				vec![],
			),
		};
		ops.push(Op::with_weights(
			kind,
			vec![prev],
			spec(out_shape.clone(), out_q),
			clamp,
			bias,
			requant,
			&w,
		));
		weights.push(w);
		shape = out_shape;
		q = out_q;
	}
	let header = ModelHeader { version: HEADER_VERSION, input, ops };
	validate(&header, &crate::model::worker_limits())
		.map_err(|e| anyhow!("quantized model is invalid: {e:?}"))?;
	Ok(ModelFile { header, weights })
}

/// Per-output-channel symmetric weights, int32 biases and requantization of one layer.
fn quantize_layer(
	net: &FloatNet,
	name: &str,
	w: &Tensor,
	out: usize,
	s_in: f64,
	s_out: f64,
) -> Result<(Vec<u8>, Vec<i32>, Vec<Requant>)> {
	let flat: Vec<f32> = Vec::<f32>::try_from(w.f_reshape([-1])?.f_contiguous()?)?;
	let per = flat.len() / out.max(1);
	let bias: Vec<f32> = match net.params.get(&format!("{name}.bias")) {
		Some(b) => Vec::<f32>::try_from(b.f_reshape([-1])?.f_contiguous()?)?,
		None => vec![0.0; out],
	};
	if bias.len() != out {
		bail!("{name}.bias: {} values, expected {out}", bias.len());
	}
	let mut wq = Vec::with_capacity(flat.len());
	let mut bq = Vec::with_capacity(out);
	let mut rq = Vec::with_capacity(out);
	for (c, row) in flat.chunks(per.max(1)).enumerate() {
		let maxabs = row.iter().fold(0f64, |m, &v| m.max(f64::from(v).abs()));
		let s_w = if maxabs > 0.0 { maxabs / 127.0 } else { 1.0 };
		wq.extend(
			row.iter().map(|&v| (f64::from(v) / s_w).round().clamp(-127.0, 127.0) as i8 as u8),
		);
		let b = f64::from(bias[c]) / (s_in * s_w);
		bq.push(b.round().clamp(-1e9, 1e9) as i32);
		rq.push(quantize_multiplier(s_in * s_w / s_out));
	}
	Ok((wq, bq, rq))
}

/// Quantize real inputs `[N, ...]` with the model's input spec; one byte vector per sample.
pub fn quantize_inputs(header: &ModelHeader, x: &Tensor) -> Result<Vec<Vec<u8>>> {
	let scale = f64::from(header.input.scale());
	let zp = f64::from(header.input.zero_point);
	let n = x.size().first().copied().unwrap_or(0);
	let q = x
		.f_reshape([n, -1])?
		.f_div_scalar(scale)?
		.f_round()?
		.f_add_scalar(zp)?
		.f_clamp(-128.0, 127.0)?
		.f_to_kind(Kind::Int8)?
		.f_contiguous()?;
	let per = q.size().get(1).copied().unwrap_or(0) as usize;
	let mut buf = vec![0u8; n as usize * per];
	q.f_copy_data_u8(&mut buf, n as usize * per)?;
	Ok(buf.chunks(per.max(1)).map(|c| c.to_vec()).collect())
}

fn argmax_i8(v: &[u8]) -> usize {
	let mut best = 0;
	for (i, &b) in v.iter().enumerate() {
		if (b as i8) > (v[best] as i8) {
			best = i;
		}
	}
	best
}

/// Accuracy report of a quantized model against its float original.
#[derive(Debug, Clone, Copy)]
pub struct Accuracy {
	pub samples: usize,
	pub float: f64,
	pub quantized: f64,
	/// Share of samples where both predict the same class.
	pub agreement: f64,
}

/// Float and quantized (exact backend) accuracy on `(x, y)`.
pub fn evaluate(net: &FloatNet, model: &LoadedModel, x: &Tensor, y: &Tensor) -> Result<Accuracy> {
	let n = x.size().first().copied().unwrap_or(0) as usize;
	let labels: Vec<i64> = Vec::<i64>::try_from(y.f_to_kind(Kind::Int64)?.f_reshape([-1])?)?;
	if labels.len() != n {
		bail!("{} labels for {n} inputs", labels.len());
	}
	let logits = net.forward_all(x)?.pop().ok_or_else(|| anyhow!("empty network"))?;
	let fpred: Vec<i64> =
		Vec::<i64>::try_from(logits.f_reshape([n as i64, -1])?.f_argmax(1, false)?)?;
	let inputs = quantize_inputs(&model.header, x)?;
	let tm = TchModel::new(model, Device::Cpu)?;
	let mut qpred = Vec::with_capacity(n);
	for chunk in inputs.chunks(256) {
		let (traces, _) = tm.run_batch(chunk)?;
		qpred.extend(traces.iter().map(|t| argmax_i8(t.output()) as i64));
	}
	let count =
		|f: &dyn Fn(usize) -> bool| (0..n).filter(|&i| f(i)).count() as f64 / n.max(1) as f64;
	Ok(Accuracy {
		samples: n,
		float: count(&|i| fpred[i] == labels[i]),
		quantized: count(&|i| qpred[i] == labels[i]),
		agreement: count(&|i| qpred[i] == fpred[i]),
	})
}

fn read_data(path: &std::path::Path) -> Result<HashMap<String, Tensor>> {
	Ok(Tensor::read_safetensors(path)
		.with_context(|| format!("reading {}", path.display()))?
		.into_iter()
		.collect())
}

fn inputs_of(
	data: &HashMap<String, Tensor>,
	arch: &Arch,
	path: &std::path::Path,
) -> Result<Tensor> {
	let x = data.get("x").ok_or_else(|| anyhow!("{}: no tensor `x`", path.display()))?;
	let n = x.size().first().copied().unwrap_or(0);
	let mut shape = vec![n];
	shape.extend(arch.input.shape.iter().map(|&d| i64::from(d)));
	Ok(x.f_to_kind(Kind::Float)?.f_reshape(shape.as_slice())?)
}

/// `verity-worker quantize`.
pub fn run(args: &QuantizeArgs) -> Result<()> {
	let net = FloatNet::load(&args.arch, &args.weights)?;
	let calib = read_data(&args.calib)?;
	let x = inputs_of(&calib, &net.arch, &args.calib)?;
	let n = x.size().first().copied().unwrap_or(0).min(args.calib_count as i64);
	if n == 0 {
		bail!("no calibration inputs");
	}
	let x = x.f_narrow(0, 0, n)?;
	let (input_range, ranges) = calibrate(&net, &x, true)?;
	let file = build_model(&net, input_range, &ranges)?;
	let bytes = file.encode();
	std::fs::write(&args.out, &bytes).with_context(|| format!("writing {}", args.out.display()))?;
	let model = LoadedModel::from_file(file, None)?;
	println!("model id      0x{}", hex::encode(model.id));
	println!(
		"written       {} ({} bytes, {} ops, {} MACs)",
		args.out.display(),
		bytes.len(),
		model.num_ops(),
		model.info.total_macs
	);
	if let Some(eval) = &args.eval {
		let data = read_data(eval)?;
		let ex = inputs_of(&data, &net.arch, eval)?;
		let ey = data.get("y").ok_or_else(|| anyhow!("{}: no tensor `y`", eval.display()))?;
		let acc = evaluate(&net, &model, &ex, ey)?;
		println!("held-out      {} samples", acc.samples);
		println!("float acc     {:.2} %", 100.0 * acc.float);
		println!("quantized acc {:.2} %", 100.0 * acc.quantized);
		println!("agreement     {:.2} % (same class as the float model)", 100.0 * acc.agreement);
		if let Some(p) = &args.sample_input {
			let first = quantize_inputs(&model.header, &ex.f_narrow(0, 0, 1)?)?;
			let sample = first.first().ok_or_else(|| anyhow!("no evaluation sample"))?;
			std::fs::write(p, sample).with_context(|| format!("writing {}", p.display()))?;
			println!(
				"sample input  {} (label {})",
				p.display(),
				Vec::<i64>::try_from(ey.f_to_kind(Kind::Int64)?.f_reshape([-1])?)?
					.first()
					.copied()
					.unwrap_or(-1)
			);
		}
	} else if args.sample_input.is_some() {
		bail!("--sample-input needs --eval");
	}
	Ok(())
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn multipliers() {
		for m in [0.5, 0.25, 1e-3, 0.75, 1.0, 3.5, 1e-9, 123.0] {
			let r = quantize_multiplier(m);
			let back = f64::from(r.multiplier) / 2f64.powi(31) * 2f64.powi(i32::from(r.shift));
			assert!((back - m).abs() / m < 1e-6, "{m}: {r:?} -> {back}");
		}
		assert_eq!(quantize_multiplier(0.0).multiplier, 0);
	}

	#[test]
	fn qparams_cover_the_range() {
		let (s, z) = qparams(0.0, 6.0);
		assert_eq!(z, -128);
		assert!((s - 6.0 / 255.0).abs() < 1e-12);
		let (s, z) = qparams(-1.0, 1.0);
		assert!(((-1.0 / s) + f64::from(z) + 128.0).abs() < 1.0);
	}
}
