//! A plain fp32 libtorch forward pass of a Verity model's architecture: the same layers and
//! shapes with the weights as floats, conv/linear with bias, clamps as ReLU-style clamps, no
//! exactness machinery, no hashing. It is the baseline of the benchmark ("the price of
//! exactness"); its outputs are not meant to match anything.

use tch::{Device, Kind, Tensor};
use verity_primitives::OpKind;

use crate::model::LoadedModel;

enum FStep {
	Linear {
		w: Tensor,
		b: Tensor,
		lo: f64,
		hi: f64,
	},
	Conv {
		w: Tensor,
		b: Tensor,
		stride: [i64; 2],
		pad: [i64; 4],
		dil: [i64; 2],
		groups: i64,
		lo: f64,
		hi: f64,
	},
	Add {
		lo: f64,
		hi: f64,
	},
	MaxPool {
		k: [i64; 2],
		s: [i64; 2],
		pad: [i64; 4],
	},
	AvgPool {
		k: [i64; 2],
		s: [i64; 2],
		pad: [i64; 4],
	},
	Gap,
	Reshape(Vec<i64>),
	Concat(i64),
	Lookup,
}

/// The fp32 model.
pub struct FloatModel {
	steps: Vec<(FStep, Vec<u32>)>,
	input_shape: Vec<i64>,
	device: Device,
}

fn clamp_range(op: &verity_primitives::Op) -> (f64, f64) {
	let z = f64::from(op.output.zero_point);
	let s = f64::from(op.output.scale());
	((f64::from(op.act_min) - z) * s, (f64::from(op.act_max) - z) * s)
}

impl FloatModel {
	pub fn new(model: &LoadedModel, device: Device) -> Result<Self, tch::TchError> {
		let h = &model.header;
		let mut steps = Vec::new();
		for (op, wts) in h.ops.iter().zip(&model.weights) {
			let wf: Vec<f32> = wts.iter().map(|&b| f32::from(b as i8) / 64.0).collect();
			let bf: Vec<f32> = op.bias.iter().map(|&b| b as f32 / 4096.0).collect();
			let (lo, hi) = clamp_range(op);
			let step = match &op.kind {
				OpKind::FullyConnected => {
					let n = op.bias.len() as i64;
					let w = Tensor::f_from_slice(&wf)?.f_reshape([n, -1])?.f_to_device(device)?;
					let b = Tensor::f_from_slice(&bf)?.f_to_device(device)?;
					FStep::Linear { w, b, lo, hi }
				},
				OpKind::Conv2d(p) => {
					let co = op.bias.len() as i64;
					let w = Tensor::f_from_slice(&wf)?
						.f_reshape([co, -1, i64::from(p.kernel_h), i64::from(p.kernel_w)])?
						.f_to_device(device)?;
					let b = Tensor::f_from_slice(&bf)?.f_to_device(device)?;
					FStep::Conv {
						w,
						b,
						stride: [i64::from(p.stride_h), i64::from(p.stride_w)],
						pad: [
							i64::from(p.pad_left),
							i64::from(p.pad_right),
							i64::from(p.pad_top),
							i64::from(p.pad_bottom),
						],
						dil: [i64::from(p.dilation_h), i64::from(p.dilation_w)],
						groups: i64::from(p.groups),
						lo,
						hi,
					}
				},
				OpKind::Add(_) => FStep::Add { lo, hi },
				OpKind::MaxPool(p) | OpKind::AvgPool(p) => {
					let k = [i64::from(p.kernel_h), i64::from(p.kernel_w)];
					let s = [i64::from(p.stride_h), i64::from(p.stride_w)];
					let pad = [
						i64::from(p.pad_left),
						i64::from(p.pad_right),
						i64::from(p.pad_top),
						i64::from(p.pad_bottom),
					];
					if matches!(op.kind, OpKind::MaxPool(_)) {
						FStep::MaxPool { k, s, pad }
					} else {
						FStep::AvgPool { k, s, pad }
					}
				},
				OpKind::GlobalAvgPool => FStep::Gap,
				OpKind::Reshape => {
					FStep::Reshape(op.output.shape.iter().map(|&d| i64::from(d)).collect())
				},
				OpKind::Concat { axis } => FStep::Concat(i64::from(*axis) + 1),
				OpKind::Lookup => FStep::Lookup,
			};
			steps.push((step, op.inputs.clone()));
		}
		Ok(FloatModel {
			steps,
			input_shape: h.input.shape.iter().map(|&d| i64::from(d)).collect(),
			device,
		})
	}

	/// A random input batch `[n, input shape]` on the model's device.
	pub fn random_input(&self, n: usize) -> Result<Tensor, tch::TchError> {
		let mut shape = vec![n as i64];
		shape.extend(&self.input_shape);
		Tensor::f_rand(shape.as_slice(), (Kind::Float, self.device))
	}

	/// Forward pass; returns the output `[n, ...]`.
	pub fn forward(&self, x: &Tensor) -> Result<Tensor, tch::TchError> {
		let _guard = tch::no_grad_guard();
		let n = x.size().first().copied().unwrap_or(1);
		let mut ts: Vec<Tensor> = vec![x.shallow_clone()];
		for (step, inputs) in &self.steps {
			let get = |i: usize| -> &Tensor { &ts[inputs.get(i).copied().unwrap_or(0) as usize] };
			let y = match step {
				FStep::Linear { w, b, lo, hi } => {
					get(0).f_reshape([n, -1])?.f_linear(w, Some(b))?.f_clamp(*lo, *hi)?
				},
				FStep::Conv { w, b, stride, pad, dil, groups, lo, hi } => {
					let x = if pad[0] == pad[1] && pad[2] == pad[3] {
						get(0).f_conv2d(
							w,
							Some(b),
							stride.as_slice(),
							[pad[2], pad[0]].as_slice(),
							dil.as_slice(),
							*groups,
						)?
					} else {
						get(0).f_constant_pad_nd(pad.as_slice())?.f_conv2d(
							w,
							Some(b),
							stride.as_slice(),
							[0i64, 0].as_slice(),
							dil.as_slice(),
							*groups,
						)?
					};
					x.f_clamp(*lo, *hi)?
				},
				FStep::Add { lo, hi } => get(0).f_add(get(1))?.f_clamp(*lo, *hi)?,
				FStep::MaxPool { k, s, pad } => {
					get(0).f_constant_pad_nd(pad.as_slice())?.f_max_pool2d(
						k.as_slice(),
						s.as_slice(),
						[0i64, 0].as_slice(),
						[1i64, 1].as_slice(),
						false,
					)?
				},
				FStep::AvgPool { k, s, pad } => {
					get(0).f_constant_pad_nd(pad.as_slice())?.f_avg_pool2d(
						k.as_slice(),
						s.as_slice(),
						[0i64, 0].as_slice(),
						false,
						true,
						None::<i64>,
					)?
				},
				FStep::Gap => get(0).f_mean_dim([2i64, 3].as_slice(), false, Kind::Float)?,
				FStep::Reshape(shape) => {
					let mut s = vec![n];
					s.extend(shape);
					get(0).f_reshape(s.as_slice())?
				},
				FStep::Concat(axis) => {
					let parts: Vec<&Tensor> = (0..inputs.len()).map(get).collect();
					Tensor::f_cat(&parts, *axis)?
				},
				FStep::Lookup => get(0).f_sigmoid()?,
			};
			ts.push(y);
		}
		Ok(ts.pop().unwrap_or_else(|| x.shallow_clone()))
	}
}
