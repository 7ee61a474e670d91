//! Model validation, limits and per-step costs.
//!
//! A header is valid iff [`validate`] accepts it. Validation depends on the header alone
//! (weights are arbitrary bytes of the declared length), so a model that validates can be
//! executed on every input with every weight blob of the right length: the interpreter can
//! never fail, overflow or exceed the declared sizes on it.

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

use crate::model::*;

/// Resource limits chosen by the caller (the chain's are runtime constants). A model is
/// rejected if any of its steps exceeds them, so that every step can be re-executed on-chain.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct Limits {
	/// Largest SCALE-encoded header, in bytes.
	pub max_header_bytes: u32,
	/// Largest number of ops `n` (a trace has `n + 1` step hashes).
	pub max_ops: u32,
	/// Largest number of elements of any tensor (model input and every op output).
	pub max_tensor_elements: u32,
	/// Largest number of inputs of one op (only Concat has more than two).
	pub max_op_inputs: u32,
	/// Largest fraud-proof payload of one step: the sum of its input tensors' bytes (each
	/// reference counted, even when the same tensor is used twice) plus its weight bytes.
	pub max_step_proof_bytes: u64,
	/// Largest re-execution cost of one step, see [`StepInfo::macs`].
	pub max_step_macs: u64,
}

impl Limits {
	/// No limit beyond what the format can express (for tools; not for the chain).
	pub const UNLIMITED: Limits = Limits {
		max_header_bytes: u32::MAX,
		max_ops: u32::MAX,
		max_tensor_elements: u32::MAX,
		max_op_inputs: u32::MAX,
		max_step_proof_bytes: u64::MAX,
		max_step_macs: u64::MAX,
	};
}

impl Default for Limits {
	/// Generous limits for off-chain tools: 1 MiB header, 1024 ops, 16 Mi elements per tensor,
	/// 64 inputs per op, 64 MiB per step proof, 2^32 MACs per step. The runtime chooses its own.
	fn default() -> Self {
		Limits {
			max_header_bytes: 1 << 20,
			max_ops: 1024,
			max_tensor_elements: 1 << 24,
			max_op_inputs: 64,
			max_step_proof_bytes: 1 << 26,
			max_step_macs: 1 << 32,
		}
	}
}

/// Defines [`InvalidReason`] and its one-byte [`InvalidReasonCode`] from one list, so that the
/// two cannot drift apart: same variants, same order, hence the same SCALE variant index.
macro_rules! invalid_reasons {
	($($(#[$doc:meta])* $name:ident $({ $($field:ident: $ty:ty),* })?,)*) => {
		/// Why a header is invalid.
		#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
		pub enum InvalidReason {
			$($(#[$doc])* $name $({ $($field: $ty),* })?,)*
		}

		/// [`InvalidReason`] without its details (`ForwardReference::input`): one byte with the
		/// same SCALE variant index, for error types that must stay small (a FRAME pallet error
		/// has at most 4 bytes).
		#[derive(
			Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo,
			MaxEncodedLen,
		)]
		pub enum InvalidReasonCode {
			$($(#[$doc])* $name,)*
		}

		impl InvalidReason {
			/// This reason without its details.
			pub fn code(&self) -> InvalidReasonCode {
				match self {
					$(Self::$name { .. } => InvalidReasonCode::$name,)*
				}
			}
		}
	};
}

invalid_reasons! {
	/// `version != HEADER_VERSION`.
	UnsupportedVersion,
	/// The encoded header is longer than `max_header_bytes`.
	HeaderTooLarge,
	/// A model needs at least one op.
	NoOps,
	/// More than `max_ops` ops.
	TooManyOps,
	/// `step` is not in `1..=n`.
	StepOutOfRange,
	/// A tensor rank is 0 or above `MAX_RANK`.
	BadRank,
	/// A tensor dimension is 0.
	ZeroDimension,
	/// A tensor has more than `max_tensor_elements` (or `u32::MAX`) elements.
	TooManyElements,
	/// The op has the wrong number of inputs for its kind.
	WrongInputCount,
	/// More inputs than `max_op_inputs`.
	TooManyInputs,
	/// Input reference number `input` (position in `Op::inputs`) does not point to an earlier
	/// tensor.
	ForwardReference { input: u32 },
	/// An input rank does not suit the op (e.g. Conv2d needs `[C, H, W]`).
	InputRankMismatch,
	/// The declared output shape differs from the computed one, or input shapes disagree.
	ShapeMismatch,
	/// A zero point that must equal another one does not (pools, reshape, concat).
	ZeroPointMismatch,
	/// `act_min > act_max`.
	BadClamp,
	/// `bias` does not have the length the kind requires.
	BadBiasLength,
	/// `requant` does not have the length the kind requires.
	BadRequantLength,
	/// A requantization multiplier is negative.
	NegativeMultiplier,
	/// A requantization shift is outside `MIN_SHIFT..=MAX_SHIFT` (or, for the input sides of
	/// Add, above 0).
	ShiftOutOfRange,
	/// `left_shift > MAX_ADD_LEFT_SHIFT`.
	LeftShiftTooLarge,
	/// `weight_len` differs from what the kind and shapes require.
	BadWeightLength,
	/// An op without weights does not declare `EMPTY_WEIGHT_HASH`.
	BadEmptyWeightHash,
	/// Some input could drive an accumulator out of the i32 range:
	/// `|bias| + K * 255 * 128 > i32::MAX`.
	AccumulatorOverflow,
	/// A kernel size, stride, dilation or group count is 0.
	ZeroParameter,
	/// The (dilated) kernel is larger than the padded input.
	KernelTooLarge,
	/// A padding is not smaller than the (dilated) kernel extent.
	PaddingTooLarge,
	/// Channels are not divisible by `groups`.
	BadGroups,
	/// Concat axis is not below the rank.
	BadAxis,
	/// The step's fraud proof would exceed `max_step_proof_bytes`.
	StepProofTooLarge,
	/// The step's cost exceeds `max_step_macs`.
	TooManyMacs,
	/// A size computation overflowed.
	SizeOverflow,
}

/// A typed validation error: `op` is the 1-based op index (0 = the header itself or the
/// model input spec).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct ValidationError {
	pub op: u32,
	pub reason: InvalidReason,
}

impl core::fmt::Display for ValidationError {
	fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
		write!(f, "invalid model: op {}: {:?}", self.op, self.reason)
	}
}

#[cfg(feature = "std")]
impl std::error::Error for ValidationError {}

/// Sizes and cost of one step, from the header alone.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct StepInfo {
	/// 1-based op index.
	pub step: u32,
	/// The op's output shape.
	pub output_shape: Vec<u32>,
	/// Elements (= bytes) of the output.
	pub output_elements: u32,
	/// Number of input tensors.
	pub num_inputs: u32,
	/// Sum of the input tensors' bytes (each reference counted).
	pub input_bytes: u64,
	/// The op's weight bytes.
	pub weight_bytes: u32,
	/// `input_bytes + weight_bytes`: the payload of a fraud proof at this step.
	pub proof_bytes: u64,
	/// Re-execution cost: multiply-accumulates for FullyConnected (`N * K`) and Conv2d
	/// (`C_out * OH * OW * C_in/groups * kh * kw`, padded positions included); window reads
	/// for MaxPool/AvgPool (`C * OH * OW * kh * kw`, padded positions included); input
	/// elements for GlobalAvgPool; output elements for Add, Reshape, Concat and Lookup.
	/// Always at least the number of output elements.
	pub macs: u64,
}

/// What validation learned about a model (per-step sizes and their maxima) for pricing.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct ModelInfo {
	/// The model id.
	pub id: ModelId,
	/// Length of the SCALE-encoded header.
	pub header_bytes: u32,
	/// Number of ops `n`.
	pub num_ops: u32,
	/// Elements (= bytes) of the model input.
	pub input_elements: u32,
	/// Elements (= bytes) of the model output (last op's output).
	pub output_elements: u32,
	/// Per-step information; `steps[i - 1]` is op `i`.
	pub steps: Vec<StepInfo>,
	/// Largest `proof_bytes` over the steps.
	pub max_step_proof_bytes: u64,
	/// Largest `macs` over the steps.
	pub max_step_macs: u64,
	/// Largest tensor (elements), the input included.
	pub max_tensor_elements: u32,
	/// Sum of `macs` over the steps (cost of a full execution).
	pub total_macs: u64,
	/// Sum of the weight bytes over the ops.
	pub total_weight_bytes: u64,
}

fn err(op: u32, reason: InvalidReason) -> ValidationError {
	ValidationError { op, reason }
}

/// Check a tensor spec's shape: rank `1..=MAX_RANK`, every dimension `>= 1`, element count
/// within `u32`. Returns the element count.
pub fn check_shape(shape: &[u32]) -> Result<u32, InvalidReason> {
	if shape.is_empty() || shape.len() > MAX_RANK {
		return Err(InvalidReason::BadRank);
	}
	if shape.contains(&0) {
		return Err(InvalidReason::ZeroDimension);
	}
	num_elements(shape).ok_or(InvalidReason::TooManyElements)
}

/// Output size along one axis of a windowed op (convolution or pool):
/// `(size + pad_before + pad_after - extent) / stride + 1` with
/// `extent = dilation * (kernel - 1) + 1`. Requires every parameter `>= 1`, each padding
/// `< extent` and `size + pads >= extent`.
pub fn window_output_size(
	size: u32,
	kernel: u32,
	stride: u32,
	dilation: u32,
	pad_before: u32,
	pad_after: u32,
) -> Result<u32, InvalidReason> {
	if kernel == 0 || stride == 0 || dilation == 0 {
		return Err(InvalidReason::ZeroParameter);
	}
	let extent = u64::from(dilation) * u64::from(kernel - 1) + 1;
	if u64::from(pad_before) >= extent || u64::from(pad_after) >= extent {
		return Err(InvalidReason::PaddingTooLarge);
	}
	let padded = u64::from(size) + u64::from(pad_before) + u64::from(pad_after);
	if padded < extent {
		return Err(InvalidReason::KernelTooLarge);
	}
	let out = (padded - extent) / u64::from(stride) + 1;
	u32::try_from(out).map_err(|_| InvalidReason::TooManyElements)
}

fn check_requant(rq: &Requant, max_shift: i8) -> Result<(), InvalidReason> {
	if rq.multiplier < 0 {
		return Err(InvalidReason::NegativeMultiplier);
	}
	if rq.shift < MIN_SHIFT || rq.shift > max_shift {
		return Err(InvalidReason::ShiftOutOfRange);
	}
	Ok(())
}

/// `|bias| + k * MAX_PRODUCT <= i32::MAX` for every bias.
fn check_accumulator(bias: &[i32], k: u64) -> Result<(), InvalidReason> {
	let worst = k.checked_mul(MAX_PRODUCT as u64).ok_or(InvalidReason::AccumulatorOverflow)?;
	for b in bias {
		let total = worst
			.checked_add(u64::from(b.unsigned_abs()))
			.ok_or(InvalidReason::AccumulatorOverflow)?;
		if total > i32::MAX as u64 {
			return Err(InvalidReason::AccumulatorOverflow);
		}
	}
	Ok(())
}

fn mul(a: u64, b: u64) -> Result<u64, InvalidReason> {
	a.checked_mul(b).ok_or(InvalidReason::SizeOverflow)
}

fn dim(shape: &[u32], i: usize) -> u32 {
	shape.get(i).copied().unwrap_or(0)
}

/// Geometry of a Conv2d step derived from its header entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConvGeometry {
	pub in_channels: u32,
	pub in_h: u32,
	pub in_w: u32,
	pub out_channels: u32,
	pub out_h: u32,
	pub out_w: u32,
	/// Input channels per group.
	pub in_per_group: u32,
	/// Output channels per group.
	pub out_per_group: u32,
}

/// Check the Conv2d geometry of `[C_in, H, W] -> out_shape`.
pub fn conv_geometry(
	p: &Conv2dParams,
	in_shape: &[u32],
	out_shape: &[u32],
) -> Result<ConvGeometry, InvalidReason> {
	if in_shape.len() != 3 {
		return Err(InvalidReason::InputRankMismatch);
	}
	let (cin, h, w) = (dim(in_shape, 0), dim(in_shape, 1), dim(in_shape, 2));
	if p.groups == 0 {
		return Err(InvalidReason::ZeroParameter);
	}
	let out_h =
		window_output_size(h, p.kernel_h, p.stride_h, p.dilation_h, p.pad_top, p.pad_bottom)?;
	let out_w =
		window_output_size(w, p.kernel_w, p.stride_w, p.dilation_w, p.pad_left, p.pad_right)?;
	if out_shape.len() != 3 {
		return Err(InvalidReason::ShapeMismatch);
	}
	let cout = dim(out_shape, 0);
	if dim(out_shape, 1) != out_h || dim(out_shape, 2) != out_w {
		return Err(InvalidReason::ShapeMismatch);
	}
	if !cin.is_multiple_of(p.groups) || !cout.is_multiple_of(p.groups) {
		return Err(InvalidReason::BadGroups);
	}
	Ok(ConvGeometry {
		in_channels: cin,
		in_h: h,
		in_w: w,
		out_channels: cout,
		out_h,
		out_w,
		in_per_group: cin / p.groups,
		out_per_group: cout / p.groups,
	})
}

/// Check the pool geometry of `[C, H, W] -> out_shape`; returns `(OH, OW)`.
pub fn pool_geometry(
	p: &PoolParams,
	in_shape: &[u32],
	out_shape: &[u32],
) -> Result<(u32, u32), InvalidReason> {
	if in_shape.len() != 3 {
		return Err(InvalidReason::InputRankMismatch);
	}
	let out_h =
		window_output_size(dim(in_shape, 1), p.kernel_h, p.stride_h, 1, p.pad_top, p.pad_bottom)?;
	let out_w =
		window_output_size(dim(in_shape, 2), p.kernel_w, p.stride_w, 1, p.pad_left, p.pad_right)?;
	if out_shape != [dim(in_shape, 0), out_h, out_w] {
		return Err(InvalidReason::ShapeMismatch);
	}
	Ok((out_h, out_w))
}

/// Check the structure of op `step` (1-based) against the header, without resource limits:
/// input references, shapes, zero points, parameter ranges, weight length, accumulator bound.
/// Returns its sizes and cost. This is exactly the per-op part of [`validate`]; the
/// interpreter runs it before executing a step.
pub fn step_info(header: &ModelHeader, step: u32) -> Result<StepInfo, ValidationError> {
	let op = header.op(step).ok_or(err(step, InvalidReason::StepOutOfRange))?;
	check_op(header, step, op).map_err(|reason| err(step, reason))
}

/// The re-execution cost of step `step` (see [`StepInfo::macs`]).
pub fn step_macs(header: &ModelHeader, step: u32) -> Result<u64, ValidationError> {
	step_info(header, step).map(|s| s.macs)
}

/// The fraud-proof payload of step `step`: input tensor bytes plus weight bytes.
pub fn step_proof_bytes(header: &ModelHeader, step: u32) -> Result<u64, ValidationError> {
	step_info(header, step).map(|s| s.proof_bytes)
}

fn check_op(header: &ModelHeader, step: u32, op: &Op) -> Result<StepInfo, InvalidReason> {
	use InvalidReason::*;

	// Inputs: count by kind, backward references, valid shapes.
	let n_inputs = op.inputs.len();
	let count_ok = match op.kind {
		OpKind::Add(_) => n_inputs == 2,
		OpKind::Concat { .. } => n_inputs >= 2,
		_ => n_inputs == 1,
	};
	if !count_ok {
		return Err(WrongInputCount);
	}
	let mut in_specs: Vec<&TensorSpec> = Vec::with_capacity(n_inputs);
	let mut input_bytes: u64 = 0;
	for (j, &r) in op.inputs.iter().enumerate() {
		let j = u32::try_from(j).map_err(|_| SizeOverflow)?;
		if r >= step {
			return Err(ForwardReference { input: j });
		}
		let spec = header.tensor_spec(r).ok_or(ForwardReference { input: j })?;
		let elems = check_shape(&spec.shape)?;
		input_bytes = input_bytes.checked_add(u64::from(elems)).ok_or(SizeOverflow)?;
		in_specs.push(spec);
	}
	let first = *in_specs.first().ok_or(WrongInputCount)?;
	let in_elems = u64::from(check_shape(&first.shape)?);

	let out = &op.output;
	let out_elems = check_shape(&out.shape)?;
	if op.act_min > op.act_max {
		return Err(BadClamp);
	}

	// Kind-specific rules: (expected bias/requant length, weight length, macs).
	let (n_bias, n_requant, weight_len, macs): (usize, usize, u64, u64) = match &op.kind {
		OpKind::FullyConnected => {
			if out.shape.len() != 1 {
				return Err(ShapeMismatch);
			}
			let n = u64::from(out_elems);
			check_accumulator(&op.bias, in_elems)?;
			let n_us = usize::try_from(n).map_err(|_| SizeOverflow)?;
			(n_us, n_us, mul(n, in_elems)?, mul(n, in_elems)?)
		},
		OpKind::Conv2d(p) => {
			let g = conv_geometry(p, &first.shape, &out.shape)?;
			let k =
				mul(mul(u64::from(g.in_per_group), u64::from(p.kernel_h))?, u64::from(p.kernel_w))?;
			check_accumulator(&op.bias, k)?;
			let cout = usize::try_from(g.out_channels).map_err(|_| SizeOverflow)?;
			(cout, cout, mul(u64::from(g.out_channels), k)?, mul(u64::from(out_elems), k)?)
		},
		OpKind::Add(p) => {
			let second = in_specs.get(1).ok_or(WrongInputCount)?;
			if first.shape != second.shape || out.shape != first.shape {
				return Err(ShapeMismatch);
			}
			if p.left_shift > MAX_ADD_LEFT_SHIFT {
				return Err(LeftShiftTooLarge);
			}
			check_requant(&p.lhs, 0)?;
			check_requant(&p.rhs, 0)?;
			(0, 1, 0, u64::from(out_elems))
		},
		OpKind::MaxPool(p) | OpKind::AvgPool(p) => {
			pool_geometry(p, &first.shape, &out.shape)?;
			if out.zero_point != first.zero_point {
				return Err(ZeroPointMismatch);
			}
			let window = mul(u64::from(p.kernel_h), u64::from(p.kernel_w))?;
			(0, 0, 0, mul(u64::from(out_elems), window)?)
		},
		OpKind::GlobalAvgPool => {
			if first.shape.len() != 3 {
				return Err(InputRankMismatch);
			}
			if out.shape != [dim(&first.shape, 0)] {
				return Err(ShapeMismatch);
			}
			if out.zero_point != first.zero_point {
				return Err(ZeroPointMismatch);
			}
			(0, 0, 0, in_elems)
		},
		OpKind::Reshape => {
			if u64::from(out_elems) != in_elems {
				return Err(ShapeMismatch);
			}
			if out.zero_point != first.zero_point {
				return Err(ZeroPointMismatch);
			}
			(0, 0, 0, in_elems)
		},
		OpKind::Concat { axis } => {
			let rank = out.shape.len();
			let axis = usize::try_from(*axis).map_err(|_| BadAxis)?;
			if axis >= rank {
				return Err(BadAxis);
			}
			let mut along: u64 = 0;
			for spec in &in_specs {
				if spec.shape.len() != rank {
					return Err(ShapeMismatch);
				}
				for (d, (a, b)) in spec.shape.iter().zip(out.shape.iter()).enumerate() {
					if d != axis && a != b {
						return Err(ShapeMismatch);
					}
				}
				along = along.checked_add(u64::from(dim(&spec.shape, axis))).ok_or(SizeOverflow)?;
				if spec.zero_point != out.zero_point {
					return Err(ZeroPointMismatch);
				}
			}
			if along != u64::from(dim(&out.shape, axis)) {
				return Err(ShapeMismatch);
			}
			(0, 0, 0, u64::from(out_elems))
		},
		OpKind::Lookup => {
			if out.shape != first.shape {
				return Err(ShapeMismatch);
			}
			(0, 0, u64::from(LOOKUP_TABLE_LEN), u64::from(out_elems))
		},
	};

	if op.bias.len() != n_bias {
		return Err(BadBiasLength);
	}
	if op.requant.len() != n_requant {
		return Err(BadRequantLength);
	}
	for rq in &op.requant {
		check_requant(rq, MAX_SHIFT)?;
	}
	if u64::from(op.weight_len) != weight_len {
		return Err(BadWeightLength);
	}
	if op.weight_len == 0 && op.weight_hash != EMPTY_WEIGHT_HASH {
		return Err(BadEmptyWeightHash);
	}
	let proof_bytes = input_bytes.checked_add(u64::from(op.weight_len)).ok_or(SizeOverflow)?;
	Ok(StepInfo {
		step,
		output_shape: out.shape.clone(),
		output_elements: out_elems,
		num_inputs: u32::try_from(n_inputs).map_err(|_| SizeOverflow)?,
		input_bytes,
		weight_bytes: op.weight_len,
		proof_bytes,
		macs: macs.max(u64::from(out_elems)),
	})
}

/// [`step_info`] plus the per-step limits (inputs, output elements, proof bytes, MACs).
pub fn validate_step(
	header: &ModelHeader,
	step: u32,
	limits: &Limits,
) -> Result<StepInfo, ValidationError> {
	let info = step_info(header, step)?;
	let e = |reason| err(step, reason);
	if info.num_inputs > limits.max_op_inputs {
		return Err(e(InvalidReason::TooManyInputs));
	}
	if info.output_elements > limits.max_tensor_elements {
		return Err(e(InvalidReason::TooManyElements));
	}
	if info.proof_bytes > limits.max_step_proof_bytes {
		return Err(e(InvalidReason::StepProofTooLarge));
	}
	if info.macs > limits.max_step_macs {
		return Err(e(InvalidReason::TooManyMacs));
	}
	Ok(info)
}

/// Validate a header against `limits`. `Ok` means: every step can be executed on every input
/// and weight blob of the declared sizes without error, every accumulator stays within i32,
/// and every step's proof and cost are within the limits.
pub fn validate(header: &ModelHeader, limits: &Limits) -> Result<ModelInfo, ValidationError> {
	let e0 = |reason| err(0, reason);
	if header.version != HEADER_VERSION {
		return Err(e0(InvalidReason::UnsupportedVersion));
	}
	let header_bytes =
		u32::try_from(header.encoded_size()).map_err(|_| e0(InvalidReason::HeaderTooLarge))?;
	if header_bytes > limits.max_header_bytes {
		return Err(e0(InvalidReason::HeaderTooLarge));
	}
	if header.ops.is_empty() {
		return Err(e0(InvalidReason::NoOps));
	}
	let num_ops = u32::try_from(header.ops.len()).map_err(|_| e0(InvalidReason::TooManyOps))?;
	if num_ops > limits.max_ops {
		return Err(e0(InvalidReason::TooManyOps));
	}
	let input_elements = check_shape(&header.input.shape).map_err(e0)?;
	if input_elements > limits.max_tensor_elements {
		return Err(e0(InvalidReason::TooManyElements));
	}

	let mut steps = Vec::with_capacity(header.ops.len());
	let (mut max_proof, mut max_macs, mut max_elems) = (0u64, 0u64, input_elements);
	let (mut total_macs, mut total_weights) = (0u64, 0u64);
	for step in 1..=num_ops {
		let info = validate_step(header, step, limits)?;
		max_proof = max_proof.max(info.proof_bytes);
		max_macs = max_macs.max(info.macs);
		max_elems = max_elems.max(info.output_elements);
		total_macs = total_macs.saturating_add(info.macs);
		total_weights = total_weights.saturating_add(u64::from(info.weight_bytes));
		steps.push(info);
	}
	let output_elements = steps.last().map(|s| s.output_elements).unwrap_or(input_elements);
	Ok(ModelInfo {
		id: header.id(),
		header_bytes,
		num_ops,
		input_elements,
		output_elements,
		steps,
		max_step_proof_bytes: max_proof,
		max_step_macs: max_macs,
		max_tensor_elements: max_elems,
		total_macs,
		total_weight_bytes: total_weights,
	})
}
