//! The exact libtorch backend: executes a Verity model with tch tensors and produces the same
//! bytes as the reference interpreter (`verity_primitives::execute`), for a batch of inputs.
//!
//! How exactness is obtained (see `docs/MODEL_FORMAT.md` for the semantics):
//!
//! * **Matmul and convolution in fp32, chunked.** Inputs are int8, so `x - z_x` and the weights
//!   are small integers, exactly representable in fp32. A sum of integer products is exact in
//!   fp32, in any order and with any blocking or FMA, as long as every partial sum stays below
//!   2^24. For each op the reduction dimension is cut into chunks such that
//!   `max|x - z_x| * max_n sum_{k in chunk} |w[n][k]| < 2^24` (the sum of absolute values bounds
//!   every partial sum of the chunk, whatever the order). `max|x - z_x|` comes from the clamp
//!   range of the op that produced `x`. Chunk results are converted to int64 and summed exactly.
//!   With the weights of real models one chunk is the rule. A convolution whose single input
//!   channel would already exceed the bound runs in fp64 (exact: validation bounds every
//!   accumulator by 2^31).
//! * **Requantization in closed form.** The rule's closed form
//!   (`verity_primitives::arith::multiply_by_quantized_multiplier_closed`, property-tested
//!   there against the gemmlowp form): `SRDHM(x, m)` is `(x * m + 2^30) >> 31` (an arithmetic
//!   shift is a floor), `RoundingDivideByPOT(y, e)` is `sign(y) * ((|y| + 2^(e-1)) >> e)`
//!   (round half away from zero), the saturating left shift is a multiply and a clamp. The
//!   device runs it as int64 tensor ops (per-channel parameters broadcast over the batch), the
//!   host as a SIMD-friendly loop; both are tested against `arith::requantize_to_i8`.
//! * **Elementwise functions of one int8 input are tables.** The per-input scaling of Add and
//!   the Lookup op (with its clamp) are 256-entry tables computed with the reference
//!   arithmetic and applied with `take`.
//! * **Pools.** Max pool pads with the smallest value (every window holds a real element);
//!   average pools sum in floating point (exact for these sizes) and divide by the number of
//!   real positions with integer ops, rounding half away from zero.
//!
//! A batch is a leading dimension `N` on every tensor; nothing depends on `N`, so the result
//! is the same at every batch size.
//!
//! ## Layout
//!
//! * `prepare`: a model becomes one `Step` per op (one `prepare_*` per op kind);
//! * [`placement()`]: the placement policy, where each step runs (host or device);
//! * `device`: the steps as tensor ops, the integer output stage as tensor ops;
//! * `host`: the integer output stage in Rust on the copy back, max pool and the reference op
//!   on the host bytes;
//! * `hashing`: the trace and its step hashes, inline or on a hashing thread;
//! * `raw`: every `unsafe` of the backend, with its safety argument (the rest denies it).
//!
//! Every step's output has to come back to the host anyway (it is hashed into the trace), so on
//! CPU the backend copies back the *accumulator* (or the window sums) instead of the int8
//! result and runs the output stage in Rust with the same closed forms (`host_finish`). On
//! CUDA the whole step stays on the device in integer tensor ops and only the int8 result is
//! copied back. The differential tests run every configuration against the reference.

#![deny(unsafe_code)]

mod blake2b_x8;
mod device;
mod hashing;
pub use blake2b_x8::blake2_256_many_x8;
pub use hashing::{blake2_256_many, blake2_256_many_x4};
mod host;
mod placement;
mod prepare;
#[allow(unsafe_code)]
mod raw;

use std::{
	sync::{Arc, OnceLock},
	time::{Duration, Instant},
};

use tch::{Device, Tensor};
use verity_primitives::{validate, Hash, Limits, ModelHeader, Op};

pub use placement::{placement, Placement, Side};

use self::{
	device::Input,
	hashing::{HashThread, Hasher},
	prepare::Step,
};
use crate::model::LoadedModel;

/// Errors of the tch backend.
#[derive(Debug, thiserror::Error)]
pub enum TchBackendError {
	#[error("libtorch: {0}")]
	Torch(#[from] tch::TchError),
	#[error("invalid model: {0}")]
	Invalid(String),
	#[error("input {index} has {got} bytes, the model takes {expected}")]
	InputSize { index: usize, expected: usize, got: usize },
}

type Result<T> = std::result::Result<T, TchBackendError>;

/// Largest magnitude below which every integer is exact in fp32.
const F32_EXACT: i64 = 1 << 24;

/// One executed sample: every tensor of the trace (`tensors[0]` = input, `tensors[i]` =
/// output of op `i`) and the step hashes `h_0..h_n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleTrace {
	pub tensors: Vec<Vec<u8>>,
	pub step_hashes: Vec<Hash>,
}

impl SampleTrace {
	pub fn output(&self) -> &[u8] {
		self.tensors.last().map(|t| t.as_slice()).unwrap_or(&[])
	}
}

/// Time spent in a batch: executing (tensor ops and copies back) and hashing the trace.
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchTimings {
	pub exec: Duration,
	pub hash: Duration,
}

/// How the tch backend runs. [`placement()`] turns these options into where each step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TchOptions {
	/// Run the integer output stage of each step (requantization, rounding division, clamp)
	/// on the host in Rust with the reference arithmetic, fused with the copy back that the
	/// trace needs anyway (the default on CPU). Off: integer tensor ops on the device (the
	/// default on CUDA), only the int8 result is copied back.
	pub host_finish: bool,
	/// Steps whose cost (`macs * batch`) is below this run with the reference op on the host
	/// (libtorch's per-op overhead dominates there). 0: every step in libtorch.
	pub small_step_macs: u64,
	/// Hash the trace on a second thread, overlapped with the execution of later steps.
	pub hash_thread: bool,
	/// Compute the step hashes (off only to measure the cost of hashing).
	pub hash_trace: bool,
	/// `host_finish` only for step outputs of at most this many elements (whole batch); larger
	/// ones use the device tensor ops.
	pub host_max_elements: usize,
	/// Use the hashing thread only for batches whose trace has at least this many bytes
	/// (handing small traces to another thread costs more than hashing them).
	pub hash_thread_min_bytes: usize,
}

impl TchOptions {
	/// The defaults for a device.
	pub fn for_device(device: Device) -> Self {
		match device {
			Device::Cpu => TchOptions {
				host_finish: true,
				small_step_macs: 16_384,
				hash_thread: true,
				hash_trace: true,
				host_max_elements: 1 << 26,
				hash_thread_min_bytes: 1 << 18,
			},
			_ => TchOptions {
				host_finish: false,
				small_step_macs: 0,
				hash_thread: true,
				hash_trace: true,
				host_max_elements: 1 << 26,
				hash_thread_min_bytes: 1 << 18,
			},
		}
	}

	/// Everything in libtorch tensor ops, inline hashing (the plainest configuration).
	pub fn tensor_ops_only() -> Self {
		TchOptions {
			host_finish: false,
			small_step_macs: 0,
			hash_thread: false,
			hash_trace: true,
			host_max_elements: 0,
			hash_thread_min_bytes: 0,
		}
	}
}

/// A model prepared for the tch backend on one device: weights as tensors, tables, chunking.
pub struct TchModel {
	header: ModelHeader,
	weights: Vec<Vec<u8>>,
	macs: Vec<u64>,
	options: TchOptions,
	/// Declared shape of every tensor (for the step hashes).
	tensor_shapes: Arc<Vec<Vec<u32>>>,
	/// Started on the first batch that uses it.
	hash_thread: OnceLock<Option<HashThread>>,
	steps: Vec<Step>,
	/// Per tensor: its shape as `i64` (without the batch dimension) and element count.
	shapes: Vec<(Vec<i64>, usize)>,
	device: Device,
}

/// Receives the output of each step (all samples, back to back).
type Emit<'a> = dyn FnMut(u32, &Arc<Vec<u8>>) -> Result<()> + 'a;

impl TchModel {
	/// Prepare a verified model for `device`. The header is validated (any failure is an
	/// error, never a panic later).
	pub fn new(model: &LoadedModel, device: Device) -> Result<Self> {
		Self::with_options(model, device, TchOptions::for_device(device))
	}

	/// Prepare with explicit options.
	pub fn with_options(model: &LoadedModel, device: Device, options: TchOptions) -> Result<Self> {
		let header = &model.header;
		validate(header, &Limits::UNLIMITED)
			.map_err(|e| TchBackendError::Invalid(format!("{e:?}")))?;
		let mut shapes = Vec::with_capacity(header.ops.len() + 1);
		let mut tensor_shapes = Vec::with_capacity(header.ops.len() + 1);
		for i in 0..=header.num_ops() {
			let spec = header
				.tensor_spec(i)
				.ok_or_else(|| TchBackendError::Invalid(format!("no tensor {i}")))?;
			let numel = spec.num_elements().unwrap_or(0) as usize;
			shapes.push((prepare::i64s(&spec.shape), numel));
			tensor_shapes.push(spec.shape.clone());
		}
		Ok(TchModel {
			steps: prepare::prepare_steps(model, device)?,
			tensor_shapes: Arc::new(tensor_shapes),
			hash_thread: OnceLock::new(),
			header: header.clone(),
			weights: model.weights.clone(),
			macs: model.info.steps.iter().map(|s| s.macs).collect(),
			options,
			shapes,
			device,
		})
	}

	pub fn header(&self) -> &ModelHeader {
		&self.header
	}

	pub fn device(&self) -> Device {
		self.device
	}

	/// The options in use.
	pub fn options(&self) -> TchOptions {
		self.options
	}

	/// Run a batch of inputs; returns one trace per input (in order) and the timings.
	pub fn run_batch<I: AsRef<[u8]>>(
		&self,
		inputs: &[I],
	) -> Result<(Vec<SampleTrace>, BatchTimings)> {
		let t0 = Instant::now();
		let n = inputs.len();
		let in_len = self.shapes.first().map(|s| s.1).unwrap_or(0);
		let mut flat: Vec<u8> = Vec::with_capacity(n * in_len);
		for (index, x) in inputs.iter().enumerate() {
			let x = x.as_ref();
			if x.len() != in_len {
				return Err(TchBackendError::InputSize { index, expected: in_len, got: x.len() });
			}
			flat.extend_from_slice(x);
		}
		if n == 0 {
			return Ok((Vec::new(), BatchTimings::default()));
		}
		let input = Arc::new(flat);
		let hash = self.options.hash_trace;
		let trace_bytes = n * self.shapes.iter().map(|s| s.1).sum::<usize>();
		let thread = if self.options.hash_thread
			&& hash && trace_bytes >= self.options.hash_thread_min_bytes
		{
			self.hash_thread.get_or_init(|| HashThread::spawn(self.tensor_shapes.clone())).as_ref()
		} else {
			None
		};
		let Some(thread) = thread else {
			// Inline: keep the step outputs and hash them all at the end in one `hash_many`
			// (SIMD lanes filled across samples and steps).
			let mut hasher = Hasher::new(self.tensor_shapes.clone(), n, false);
			let mut outputs: Vec<(u32, Arc<Vec<u8>>)> = Vec::with_capacity(self.steps.len() + 1);
			hasher.add(0, &input);
			outputs.push((0, input.clone()));
			self.execute(n, input, &mut |i, buf| {
				hasher.add(i, buf);
				outputs.push((i, buf.clone()));
				Ok(())
			})?;
			if hash {
				hasher.hash_all(&outputs);
			}
			let hash_time = hasher.busy;
			let total = t0.elapsed();
			let timings = BatchTimings { exec: total.saturating_sub(hash_time), hash: hash_time };
			return Ok((hasher.traces, timings));
		};
		// Hash on the model's hashing thread, overlapped with the execution of later steps.
		let stopped = || TchBackendError::Invalid("hashing thread stopped".into());
		let stream = thread.start(n).ok_or_else(stopped)?;
		stream.send(0, &input).ok_or_else(stopped)?;
		let ran = self.execute(n, input, &mut |i, buf| stream.send(i, buf).ok_or_else(stopped));
		// `exec`: until the last step was computed; `hash`: the hashing thread's busy time
		// (overlapped with execution; the caller only waits for its tail).
		let t_exec = t0.elapsed();
		let hasher = stream.finish().ok_or_else(stopped)?;
		ran?;
		Ok((hasher.traces, BatchTimings { exec: t_exec, hash: hasher.busy }))
	}

	/// Execute every step on a batch whose input bytes are `input` (`n` samples back to back);
	/// `emit(i, bytes)` receives the output of step `i` (all samples, back to back). Each step
	/// runs where [`placement()`] says.
	fn execute(&self, n: usize, input: Arc<Vec<u8>>, emit: &mut Emit<'_>) -> Result<()> {
		let mut batch = Batch::new(n, self.steps.len() + 1, input);
		for (i, (step, op)) in self.steps.iter().zip(&self.header.ops).enumerate() {
			let index = i + 1;
			let id = index as u32;
			let len = self.shapes.get(index).map(|s| s.1).unwrap_or(0);
			let cost = self.macs.get(i).copied().unwrap_or(u64::MAX).saturating_mul(n as u64);
			let (bytes, tensor) = match placement(&op.kind, &self.options, cost, n * len) {
				Placement::Reference => (self.reference_step(id, op, &batch)?, None),
				Placement::HostMaxPool => {
					let r = *op.inputs.first().unwrap_or(&0);
					let shape = self.tensor_shapes.get(r as usize).map(|s| s.as_slice());
					(host::max_pool(batch.bytes(r, id)?, n, shape.unwrap_or(&[]), op)?, None)
				},
				Placement::Tensor { input, finish } => {
					self.tensor_step(id, step, op, (input, finish), n * len, &mut batch)?
				},
			};
			if bytes.len() != n * len {
				return Err(TchBackendError::Invalid(format!("op {index}: output size")));
			}
			let bytes = Arc::new(bytes);
			emit(id, &bytes)?;
			batch.store(index, bytes, tensor);
		}
		Ok(())
	}

	/// Step `id` as a tensor op on the device, its input made ready and its output stage run
	/// on the `(input, finish)` sides ([`Placement::Tensor`]); `numel` output elements. Returns
	/// the output bytes and, if finished on the device, the int8 result there.
	fn tensor_step(
		&self,
		id: u32,
		step: &Step,
		op: &Op,
		(input, finish): (Side, Side),
		numel: usize,
		batch: &mut Batch,
	) -> Result<(Vec<u8>, Option<Tensor>)> {
		let x = match (input, step.linear_kind()) {
			(Side::Host, Some(kind)) => Input::Centered(self.centered_input(id, op, kind, batch)?),
			_ => {
				for &r in &op.inputs {
					if batch.device.get(r as usize).is_some_and(|t| t.is_none()) {
						let shape = self.shapes.get(r as usize).map(|s| s.0.as_slice());
						let bytes = batch.bytes(r, id)?;
						let t = device::upload(bytes, batch.n, shape.unwrap_or(&[]), self.device)?;
						batch.store_device(r as usize, t);
					}
				}
				Input::Stored(batch.on_device(*op.inputs.first().unwrap_or(&0), id)?)
			},
		};
		let pre = device::run_step(step, op, x, &|r| batch.on_device(r, id), batch.n)?;
		Ok(match finish {
			Side::Host => (host::finish_host(pre, numel)?, None),
			Side::Device => {
				let (bytes, y) = device::copy_back(device::finish_device(pre)?, numel)?;
				(bytes, Some(y))
			},
		})
	}
}

/// The tensors of a batch being executed (`n` samples back to back): every tensor computed so
/// far on the host, and on the device those computed or uploaded there.
struct Batch {
	n: usize,
	host: Vec<Option<Arc<Vec<u8>>>>,
	device: Vec<Option<Tensor>>,
}

impl Batch {
	/// A batch of `n` samples of a model of `count` tensors, the input bytes known.
	fn new(n: usize, count: usize, input: Arc<Vec<u8>>) -> Self {
		let mut host = vec![None; count.max(1)];
		if let Some(first) = host.first_mut() {
			*first = Some(input);
		}
		Batch { n, host, device: (0..count).map(|_| None).collect() }
	}

	/// The bytes of tensor `r`, an input of step `step`.
	fn bytes(&self, r: u32, step: u32) -> Result<&Arc<Vec<u8>>> {
		self.host
			.get(r as usize)
			.and_then(|b| b.as_ref())
			.ok_or_else(|| TchBackendError::Invalid(format!("op {step}: input {r} not computed")))
	}

	/// Tensor `r` on the device, an input of step `step`.
	fn on_device(&self, r: u32, step: u32) -> Result<&Tensor> {
		self.device
			.get(r as usize)
			.and_then(|t| t.as_ref())
			.ok_or_else(|| TchBackendError::Invalid(format!("op {step}: missing input {r}")))
	}

	/// Record tensor `index`: its bytes, and its device tensor if it has one.
	fn store(&mut self, index: usize, bytes: Arc<Vec<u8>>, tensor: Option<Tensor>) {
		if let Some(slot) = self.host.get_mut(index) {
			*slot = Some(bytes);
		}
		if let Some(t) = tensor {
			self.store_device(index, t);
		}
	}

	/// Record the device tensor of tensor `index`.
	fn store_device(&mut self, index: usize, tensor: Tensor) {
		if let Some(slot) = self.device.get_mut(index) {
			*slot = Some(tensor);
		}
	}
}

/// Edge values and the check shared by the tests of the two requantization fast paths (device
/// tensor ops and host loop) against the primitives' plain definition.
#[cfg(test)]
mod edge_values {
	use verity_primitives::{
		arith::requantize_to_i8,
		model::{MAX_SHIFT, MIN_SHIFT},
		Requant,
	};

	/// Accumulator edge values in the i32 range: extremes, zero, ±1 and powers of two with
	/// their neighbours and multiples of three (exact ties of both roundings), both signs.
	fn accumulators() -> Vec<i64> {
		let mut xs: Vec<i64> =
			vec![0, 1, -1, 2, -2, 3, -3, i64::from(i32::MAX), i64::from(i32::MIN)];
		for k in 0..31 {
			let p = 1i64 << k;
			xs.extend([p, -p, p + 1, -p - 1, p - 1, 1 - p, 3 * p, -3 * p]);
		}
		xs.retain(|&x| x >= i64::from(i32::MIN) && x <= i64::from(i32::MAX));
		xs
	}

	/// Multipliers: the valid range's edges and interior, and negative ones (invalid models,
	/// still defined) down to `i32::MIN`, where SRDHM saturates.
	const MULTIPLIERS: [i32; 13] = [
		0,
		1,
		3,
		1 << 15,
		1 << 30,
		(1 << 30) + 1,
		3 << 28,
		i32::MAX,
		1_518_500_250,
		1_073_741_823,
		-1,
		-(1 << 30),
		i32::MIN,
	];

	/// `(zero point, clamp)` of the output stages tried.
	const OUTPUT_STAGES: [(i8, (i8, i8)); 3] =
		[(0, (-128, 127)), (-7, (-100, 90)), (127, (-128, 127))];

	/// Checks `run(acc, rqs, zero_point, clamp)`, a requantizing output stage over accumulators
	/// `acc` of shape `[X, rqs.len()]` (column `j` with `rqs[j]`), against `requantize_to_i8`
	/// for every edge accumulator, every multiplier with every valid shift, and a few output
	/// stages. Returns the number of values checked.
	pub(super) fn check_requant(
		mut run: impl FnMut(&[i64], &[Requant], i8, (i8, i8)) -> Vec<u8>,
	) -> usize {
		let xs = accumulators();
		let mut checked = 0;
		for &m in &MULTIPLIERS {
			let rqs: Vec<Requant> =
				(MIN_SHIFT..=MAX_SHIFT).map(|shift| Requant { multiplier: m, shift }).collect();
			let acc: Vec<i64> =
				xs.iter().flat_map(|&x| std::iter::repeat_n(x, rqs.len())).collect();
			for (zp, (lo, hi)) in OUTPUT_STAGES {
				let got = run(&acc, &rqs, zp, (lo, hi));
				assert_eq!(got.len(), acc.len());
				for (k, (&x, &g)) in acc.iter().zip(&got).enumerate() {
					let rq = rqs[k % rqs.len()];
					let want = requantize_to_i8(x as i32, rq, zp, lo, hi);
					assert_eq!(g, want, "x {x} {rq:?} zero point {zp} clamp {lo}..={hi}");
				}
				checked += got.len();
			}
		}
		checked
	}
}
