//! [`ModelBuilder`]: appends ops to a model, one method per op kind, each taking only what
//! that kind needs; plus shorthands for [`Conv2dParams`] and [`PoolParams`].

use alloc::{vec, vec::Vec};

use super::TestCase;
use crate::model::*;

/// The clamp `(act_min, act_max)` that clamps nothing.
pub const FULL: (i8, i8) = (-128, 127);

/// The data of a FullyConnected or Conv2d op: per output channel an int32 bias and a
/// requantization, and the int8 weights.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kernel {
	/// One per output channel.
	pub bias: Vec<i32>,
	/// One per output channel.
	pub requant: Vec<Requant>,
	/// FullyConnected `[N][K]`, Conv2d `[C_out][C_in / groups][kernel_h][kernel_w]`.
	pub weights: Vec<u8>,
}

/// Incrementally builds a model (used by the generator and the golden models). Every op
/// method appends one op reading the given tensors (`0` = the model input), declaring
/// `out` and ending with the clamp `(act_min, act_max)`, and returns the index of the
/// tensor it produces. The builder does not validate: see [`crate::validate()`].
#[derive(Clone, Debug)]
pub struct ModelBuilder {
	pub header: ModelHeader,
	pub weights: Vec<Vec<u8>>,
}

impl ModelBuilder {
	pub fn new(input: TensorSpec) -> Self {
		ModelBuilder {
			header: ModelHeader { version: HEADER_VERSION, input, ops: Vec::new() },
			weights: Vec::new(),
		}
	}

	/// Spec of tensor `index`.
	pub fn spec(&self, index: u32) -> Option<&TensorSpec> {
		self.header.tensor_spec(index)
	}

	/// Number of tensors so far (input + ops).
	pub fn num_tensors(&self) -> u32 {
		self.header.num_ops().saturating_add(1)
	}

	/// [`OpKind::FullyConnected`] of `x`.
	pub fn fully_connected(&mut self, x: u32, out: TensorSpec, clamp: (i8, i8), k: Kernel) -> u32 {
		self.push(OpKind::FullyConnected, vec![x], out, clamp, k)
	}

	/// [`OpKind::Conv2d`] of `x`.
	pub fn conv2d(
		&mut self,
		x: u32,
		p: Conv2dParams,
		out: TensorSpec,
		clamp: (i8, i8),
		k: Kernel,
	) -> u32 {
		self.push(OpKind::Conv2d(p), vec![x], out, clamp, k)
	}

	/// [`OpKind::Add`] of `x` and `y`; `out_requant` is the op's output requantization.
	pub fn add(
		&mut self,
		[x, y]: [u32; 2],
		p: AddParams,
		out: TensorSpec,
		clamp: (i8, i8),
		out_requant: Requant,
	) -> u32 {
		let data = Kernel { requant: vec![out_requant], ..Kernel::default() };
		self.push(OpKind::Add(p), vec![x, y], out, clamp, data)
	}

	/// [`OpKind::MaxPool`] of `x`.
	pub fn max_pool(&mut self, x: u32, p: PoolParams, out: TensorSpec, clamp: (i8, i8)) -> u32 {
		self.push(OpKind::MaxPool(p), vec![x], out, clamp, Kernel::default())
	}

	/// [`OpKind::AvgPool`] of `x`.
	pub fn avg_pool(&mut self, x: u32, p: PoolParams, out: TensorSpec, clamp: (i8, i8)) -> u32 {
		self.push(OpKind::AvgPool(p), vec![x], out, clamp, Kernel::default())
	}

	/// [`OpKind::GlobalAvgPool`] of `x`.
	pub fn global_avg_pool(&mut self, x: u32, out: TensorSpec, clamp: (i8, i8)) -> u32 {
		self.push(OpKind::GlobalAvgPool, vec![x], out, clamp, Kernel::default())
	}

	/// [`OpKind::Reshape`] of `x`.
	pub fn reshape(&mut self, x: u32, out: TensorSpec, clamp: (i8, i8)) -> u32 {
		self.push(OpKind::Reshape, vec![x], out, clamp, Kernel::default())
	}

	/// [`OpKind::Concat`] of `inputs` along `axis`.
	pub fn concat(&mut self, inputs: Vec<u32>, axis: u32, out: TensorSpec, clamp: (i8, i8)) -> u32 {
		self.push(OpKind::Concat { axis }, inputs, out, clamp, Kernel::default())
	}

	/// [`OpKind::Lookup`] of `x` through the 256-byte `table`.
	pub fn lookup(&mut self, x: u32, out: TensorSpec, clamp: (i8, i8), table: Vec<u8>) -> u32 {
		let data = Kernel { weights: table, ..Kernel::default() };
		self.push(OpKind::Lookup, vec![x], out, clamp, data)
	}

	/// Append an op whose bias, requantizations and weights are `data`'s.
	fn push(
		&mut self,
		kind: OpKind,
		inputs: Vec<u32>,
		out: TensorSpec,
		clamp: (i8, i8),
		data: Kernel,
	) -> u32 {
		let Kernel { bias, requant, weights } = data;
		self.header.ops.push(Op::with_weights(kind, inputs, out, clamp, bias, requant, &weights));
		self.weights.push(weights);
		self.header.num_ops()
	}

	/// Remove the last op.
	pub fn pop(&mut self) {
		self.header.ops.pop();
		self.weights.pop();
	}

	pub fn finish(self, input: Vec<u8>) -> TestCase {
		TestCase { header: self.header, weights: self.weights, input }
	}
}

/// Conv2d parameters from (kernel, stride, dilation, `[top, left, bottom, right]` padding,
/// groups), in the order of [`Conv2dParams`]' fields.
pub fn conv_params(
	kernel: (u32, u32),
	stride: (u32, u32),
	dilation: (u32, u32),
	pads: [u32; 4],
	groups: u32,
) -> Conv2dParams {
	let [pad_top, pad_left, pad_bottom, pad_right] = pads;
	Conv2dParams {
		kernel_h: kernel.0,
		kernel_w: kernel.1,
		stride_h: stride.0,
		stride_w: stride.1,
		dilation_h: dilation.0,
		dilation_w: dilation.1,
		pad_top,
		pad_left,
		pad_bottom,
		pad_right,
		groups,
	}
}

/// A 3x3 convolution, stride 1, padding 1 on every side (output size = input size).
pub fn same3x3(groups: u32) -> Conv2dParams {
	conv_params((3, 3), (1, 1), (1, 1), [1; 4], groups)
}

/// Pool parameters from (kernel, stride, `[top, left, bottom, right]` padding).
pub fn pool_params(kernel: (u32, u32), stride: (u32, u32), pads: [u32; 4]) -> PoolParams {
	let [pad_top, pad_left, pad_bottom, pad_right] = pads;
	PoolParams {
		kernel_h: kernel.0,
		kernel_w: kernel.1,
		stride_h: stride.0,
		stride_w: stride.1,
		pad_top,
		pad_left,
		pad_bottom,
		pad_right,
	}
}
