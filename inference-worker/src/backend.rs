//! Backends: the exact tch backend and the reference interpreter, behind one interface.

use std::{collections::HashMap, str::FromStr, sync::Arc, time::Instant};

use tch::Device;
use verity_primitives::{execute, ModelId};

use crate::{
	exact::{BatchTimings, SampleTrace, TchModel},
	model::LoadedModel,
};

/// Which implementation executes models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
	/// libtorch tensors, bit-exact with the reference (the default).
	Tch,
	/// The reference interpreter of verity-primitives (slow, the definition).
	Reference,
}

impl FromStr for BackendKind {
	type Err = String;
	fn from_str(s: &str) -> Result<Self, String> {
		match s {
			"tch" => Ok(BackendKind::Tch),
			"reference" => Ok(BackendKind::Reference),
			other => Err(format!("unknown backend `{other}` (expected tch or reference)")),
		}
	}
}

impl std::fmt::Display for BackendKind {
	fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
		f.write_str(match self {
			BackendKind::Tch => "tch",
			BackendKind::Reference => "reference",
		})
	}
}

/// Parse a device name: `cpu`, `cuda` (device 0) or `cuda:N`.
pub fn parse_device(s: &str) -> Result<Device, String> {
	match s {
		"cpu" => Ok(Device::Cpu),
		"cuda" => Ok(Device::Cuda(0)),
		other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
			Some(Ok(n)) => Ok(Device::Cuda(n)),
			_ => Err(format!("unknown device `{other}` (expected cpu, cuda or cuda:N)")),
		},
	}
}

/// Settings that keep libtorch exact on a CUDA device: no TF32 (its 10-bit mantissa breaks
/// exactness) and no cuDNN autotuning (it may pick FFT/Winograd convolutions).
pub fn configure_device(device: Device) {
	if let Device::Cuda(_) = device {
		tch::Cuda::cudnn_set_benchmark(false);
		tch::Cuda::set_user_enabled_cudnn(false);
	}
}

/// Executes models; owns the per-model prepared state of the tch backend. Not shared between
/// threads: the worker has one executor thread.
pub struct Executor {
	kind: BackendKind,
	device: Device,
	prepared: HashMap<ModelId, TchModel>,
}

impl Executor {
	pub fn new(kind: BackendKind, device: Device) -> Self {
		configure_device(device);
		Executor { kind, device, prepared: HashMap::new() }
	}

	pub fn kind(&self) -> BackendKind {
		self.kind
	}

	pub fn device(&self) -> Device {
		self.device
	}

	/// Execute a batch of inputs of one model; one trace per input, in order.
	pub fn run<I: AsRef<[u8]>>(
		&mut self,
		model: &Arc<LoadedModel>,
		inputs: &[I],
	) -> Result<(Vec<SampleTrace>, BatchTimings), String> {
		match self.kind {
			BackendKind::Tch => {
				if !self.prepared.contains_key(&model.id) {
					let m = TchModel::new(model, self.device).map_err(|e| e.to_string())?;
					self.prepared.insert(model.id, m);
				}
				let m = self.prepared.get(&model.id).ok_or("model not prepared")?;
				m.run_batch(inputs).map_err(|e| e.to_string())
			},
			BackendKind::Reference => run_reference(model, inputs),
		}
	}

	/// Forget prepared models that are not in `keep`.
	pub fn retain(&mut self, keep: impl Fn(&ModelId) -> bool) {
		self.prepared.retain(|id, _| keep(id));
	}
}

/// The reference interpreter on each input.
pub fn run_reference<I: AsRef<[u8]>>(
	model: &LoadedModel,
	inputs: &[I],
) -> Result<(Vec<SampleTrace>, BatchTimings), String> {
	let mut timings = BatchTimings::default();
	let mut out = Vec::with_capacity(inputs.len());
	for x in inputs {
		let t0 = Instant::now();
		let trace =
			execute(&model.header, &model.weights, x.as_ref()).map_err(|e| format!("{e:?}"))?;
		let t1 = Instant::now();
		let hashes =
			trace.step_hashes(&model.header).ok_or("trace length differs from the model")?;
		let t2 = Instant::now();
		timings.exec += t1 - t0;
		timings.hash += t2 - t1;
		out.push(SampleTrace { tensors: trace.tensors, step_hashes: hashes });
	}
	Ok((out, timings))
}
