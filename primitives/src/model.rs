//! The model header: the small, on-chain part of a model that determines its validity and
//! meaning. See the crate documentation and `docs/MODEL_FORMAT.md` for the semantics.

use alloc::vec::Vec;
use codec::{Decode, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

/// A 32-byte blake2-256 digest.
pub type Hash = [u8; 32];

/// A model id: `blake2_256(SCALE(header))`, see [`model_id`].
pub type ModelId = Hash;

/// The only header version this crate understands. It is part of the encoded header, so a
/// future change of semantics changes every model id.
pub const HEADER_VERSION: u32 = 1;

/// Largest tensor rank (number of dimensions). Tensors have no batch dimension.
pub const MAX_RANK: usize = 4;

/// Number of weight bytes of a [`OpKind::Lookup`] op: the 256-entry table.
pub const LOOKUP_TABLE_LEN: u32 = 256;

/// Largest `left_shift` of an [`OpKind::Add`] op (TFLite uses 20 for int8).
pub const MAX_ADD_LEFT_SHIFT: u8 = 20;

/// Smallest requantization shift (a right shift by 31).
pub const MIN_SHIFT: i8 = -31;

/// Largest requantization shift (a saturating left shift by 30).
pub const MAX_SHIFT: i8 = 30;

/// Largest magnitude of one product `(x - zero_point) * w` for any int8 `x`, zero point and
/// weight: `255 * 128`. The accumulator bound of validation is
/// `|bias| + K * MAX_PRODUCT <= i32::MAX` for a reduction length `K`.
pub const MAX_PRODUCT: i64 = 255 * 128;

/// `blake2_256(b"")`: the weight hash every op without weights must declare.
pub const EMPTY_WEIGHT_HASH: Hash = [
	0x0e, 0x57, 0x51, 0xc0, 0x26, 0xe5, 0x43, 0xb2, 0xe8, 0xab, 0x2e, 0xb0, 0x60, 0x99, 0xda, 0xa1,
	0xd1, 0xe5, 0xdf, 0x47, 0x77, 0x8f, 0x77, 0x87, 0xfa, 0xab, 0x45, 0xcd, 0xf1, 0x2f, 0xe3, 0xa8,
];

/// Shape and quantization of one int8 tensor.
///
/// Tensors are stored row-major as bytes (each `i8` as its two's-complement `u8`). Images are
/// `[C, H, W]` (channel-major, like PyTorch), vectors `[K]`; there is no batch dimension.
/// The real value of a stored `q` is `scale * (q - zero_point)`; the interpreter never uses
/// `scale`, only `zero_point`.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct TensorSpec {
	/// Dimensions, outermost first; `1..=MAX_RANK` of them, each at least 1.
	pub shape: Vec<u32>,
	/// Quantization zero point.
	pub zero_point: i8,
	/// Quantization scale as IEEE-754 binary32 bits, for the user's convenience only (any
	/// value is valid; it never influences execution).
	pub scale_bits: u32,
}

impl TensorSpec {
	/// A spec from a shape, a zero point and a scale.
	pub fn new(shape: Vec<u32>, zero_point: i8, scale: f32) -> Self {
		TensorSpec { shape, zero_point, scale_bits: scale.to_bits() }
	}

	/// The number of elements (product of the dimensions), `None` if it does not fit a `u32`.
	/// An empty shape gives 1 (validation rejects empty shapes anyway).
	pub fn num_elements(&self) -> Option<u32> {
		num_elements(&self.shape)
	}

	/// The scale as an `f32` (informational).
	pub fn scale(&self) -> f32 {
		f32::from_bits(self.scale_bits)
	}
}

/// Product of `shape`, `None` if it overflows `u32`.
pub fn num_elements(shape: &[u32]) -> Option<u32> {
	shape.iter().try_fold(1u32, |acc, &d| acc.checked_mul(d))
}

/// A fixed-point requantization factor: the real factor is
/// `multiplier / 2^31 * 2^shift`, see [`crate::arith::multiply_by_quantized_multiplier`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct Requant {
	/// Q31 multiplier, `0 ..= i32::MAX` (negative values are invalid).
	pub multiplier: i32,
	/// Power-of-two exponent, `MIN_SHIFT ..= MAX_SHIFT`: positive = saturating left shift
	/// before the high multiply, negative = rounding right shift after it.
	pub shift: i8,
}

/// Parameters of [`OpKind::Conv2d`].
///
/// Output size per spatial axis: `out = (in + pad_before + pad_after - extent) / stride + 1`
/// with `extent = dilation * (kernel - 1) + 1`; valid only if `in + pads >= extent` and each
/// padding is `< extent`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct Conv2dParams {
	pub kernel_h: u32,
	pub kernel_w: u32,
	pub stride_h: u32,
	pub stride_w: u32,
	pub dilation_h: u32,
	pub dilation_w: u32,
	pub pad_top: u32,
	pub pad_left: u32,
	pub pad_bottom: u32,
	pub pad_right: u32,
	/// Number of groups: input and output channels are split into `groups` equal parts;
	/// `groups == C_in` with `C_out = m * C_in` is a depthwise convolution.
	pub groups: u32,
}

/// Parameters of [`OpKind::MaxPool`] and [`OpKind::AvgPool`].
///
/// Same output-size rule as convolution with dilation 1; each padding must be `< kernel`, so
/// that every window holds at least one real element.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct PoolParams {
	pub kernel_h: u32,
	pub kernel_w: u32,
	pub stride_h: u32,
	pub stride_w: u32,
	pub pad_top: u32,
	pub pad_left: u32,
	pub pad_bottom: u32,
	pub pad_right: u32,
}

/// Parameters of [`OpKind::Add`] (the TFLite int8 add). The output requantization is the op's
/// single `requant` entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct AddParams {
	/// Both sides are shifted left by this (`0 ..= MAX_ADD_LEFT_SHIFT`) before scaling.
	pub left_shift: u8,
	/// Scaling of the first input; its shift must be `<= 0`.
	pub lhs: Requant,
	/// Scaling of the second input; its shift must be `<= 0`.
	pub rhs: Requant,
}

/// The kind of an op and its kind-specific parameters. SCALE variant indices are fixed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum OpKind {
	/// `y[n] = requant(bias[n] + sum_k (x[k] - z_x) * W[n][k])`; the input (any shape) is
	/// flattened to `K` elements; output `[N]`; weights `[N][K]`.
	#[codec(index = 0)]
	FullyConnected,
	/// 2-D convolution of `[C_in, H, W]` into `[C_out, OH, OW]`; weights
	/// `[C_out][C_in / groups][kernel_h][kernel_w]`; padded positions contribute nothing.
	#[codec(index = 1)]
	Conv2d(Conv2dParams),
	/// Elementwise sum of two tensors of the same shape, each side requantized.
	#[codec(index = 2)]
	Add(AddParams),
	/// Maximum over each window (padded positions ignored).
	#[codec(index = 3)]
	MaxPool(PoolParams),
	/// Rounded mean over each window (padded positions not counted).
	#[codec(index = 4)]
	AvgPool(PoolParams),
	/// Rounded mean over `H x W` per channel: `[C, H, W] -> [C]`.
	#[codec(index = 5)]
	GlobalAvgPool,
	/// Same bytes, another shape with the same element count.
	#[codec(index = 6)]
	Reshape,
	/// Concatenation of two or more inputs along `axis`.
	#[codec(index = 7)]
	Concat {
		/// The axis (`< rank`) along which the inputs are joined.
		axis: u32,
	},
	/// `y = table[x + 128]`, the table being the op's 256 weight bytes.
	#[codec(index = 8)]
	Lookup,
}

/// One step of a model. Op `i` (1-based) produces tensor `i`; tensor 0 is the model input.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct Op {
	/// What the op computes.
	pub kind: OpKind,
	/// Input tensors: `0` = the model input, `j` = the output of op `j`; always `j < i`.
	pub inputs: Vec<u32>,
	/// Declared output shape and quantization (validation checks the shape).
	pub output: TensorSpec,
	/// Lower output clamp, applied last by every op (ReLU: `act_min = output.zero_point`).
	pub act_min: i8,
	/// Upper output clamp, applied last by every op; `act_min <= act_max`.
	pub act_max: i8,
	/// Per-output-channel int32 bias (FullyConnected, Conv2d), empty otherwise.
	pub bias: Vec<i32>,
	/// Per-output-channel requantization (FullyConnected, Conv2d), the single output
	/// requantization of Add, empty otherwise.
	pub requant: Vec<Requant>,
	/// `blake2_256` of the op's weight bytes ([`EMPTY_WEIGHT_HASH`] when it has none).
	pub weight_hash: Hash,
	/// Length of the op's weight bytes.
	pub weight_len: u32,
}

impl Op {
	/// An op whose `weight_hash` and `weight_len` are computed from `weights` (a convenience
	/// for model builders such as quantizers).
	#[allow(clippy::too_many_arguments)]
	pub fn with_weights(
		kind: OpKind,
		inputs: Vec<u32>,
		output: TensorSpec,
		(act_min, act_max): (i8, i8),
		bias: Vec<i32>,
		requant: Vec<Requant>,
		weights: &[u8],
	) -> Op {
		Op {
			kind,
			inputs,
			output,
			act_min,
			act_max,
			bias,
			requant,
			weight_hash: weight_hash(weights),
			weight_len: crate::len_u32(weights.len()),
		}
	}
}

/// The model header (on-chain): input spec and ordered ops.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct ModelHeader {
	/// Must be [`HEADER_VERSION`].
	pub version: u32,
	/// Spec of the model input (tensor 0).
	pub input: TensorSpec,
	/// The ops; op `i` (1-based) is `ops[i - 1]`.
	pub ops: Vec<Op>,
}

impl ModelHeader {
	/// The model id, `blake2_256` of the SCALE encoding of the header.
	pub fn id(&self) -> ModelId {
		model_id(self)
	}

	/// Number of ops `n`; a trace has `n + 1` tensors and step hashes.
	pub fn num_ops(&self) -> u32 {
		crate::len_u32(self.ops.len())
	}

	/// Op `step` (1-based).
	pub fn op(&self, step: u32) -> Option<&Op> {
		let index = usize::try_from(step).ok()?.checked_sub(1)?;
		self.ops.get(index)
	}

	/// Spec of tensor `index` (0 = model input, `i` = output of op `i`).
	pub fn tensor_spec(&self, index: u32) -> Option<&TensorSpec> {
		if index == 0 {
			Some(&self.input)
		} else {
			self.op(index).map(|op| &op.output)
		}
	}

	/// Spec of the model output (the last op's output, or the input if there is no op).
	pub fn output_spec(&self) -> &TensorSpec {
		self.ops.last().map(|op| &op.output).unwrap_or(&self.input)
	}
}

/// `blake2_256(SCALE(header))`.
pub fn model_id(header: &ModelHeader) -> ModelId {
	sp_crypto_hashing::blake2_256(&header.encode())
}

/// `blake2_256(weights)`: the value of [`Op::weight_hash`].
pub fn weight_hash(weights: &[u8]) -> Hash {
	sp_crypto_hashing::blake2_256(weights)
}
