//! Test support (cargo feature `testing`, off by default, `no_std`-compatible).
//!
//! * [`Rng`]: a tiny deterministic PRNG (SplitMix64), so that a `u64` seed names a test case
//!   on every platform and in every crate (no `rand` dependency).
//! * [`random_case`]: a random **valid** model (every op kind; varied shapes; extreme weights,
//!   biases and multipliers; negative zero points; positive and negative shifts; residual adds;
//!   concats; grouped and depthwise convolutions with stride, dilation and asymmetric padding;
//!   pools with padding; lookups) plus weights and an input, sized by a [`Limits`](crate::Limits).
//! * [`ModelBuilder`]: appends ops, one method per op kind.
//! * [`golden`]: the hand-written models of `testdata/`.
//!
//! The generator proposes ops and keeps those that [`validate_step`](crate::validate_step)
//! accepts, so every case it returns validates against the given limits (as long as the limits
//! admit a model at all: at least one tensor element, one MAC and 257 proof bytes per step).

use alloc::{string::String, vec::Vec};

use crate::{
	file::ModelFile,
	interp::{execute, ExecError, Trace},
	model::*,
};

mod builder;
pub mod golden;
pub mod lm;
mod random;
mod rng;

pub use builder::{conv_params, pool_params, same3x3, Kernel, ModelBuilder, FULL};
pub use random::{random_case, test_limits};
pub use rng::Rng;

/// A model with weights and one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestCase {
	pub header: ModelHeader,
	/// `weights[i - 1]` = weight bytes of op `i`.
	pub weights: Vec<Vec<u8>>,
	pub input: Vec<u8>,
}

impl TestCase {
	/// The model file.
	pub fn file(&self) -> ModelFile {
		ModelFile { header: self.header.clone(), weights: self.weights.clone() }
	}

	/// The honest trace.
	pub fn trace(&self) -> Result<Trace, ExecError> {
		execute(&self.header, &self.weights, &self.input)
	}

	/// The honest step hashes `[h_0..h_n]`.
	pub fn step_hashes(&self) -> Result<Vec<Hash>, ExecError> {
		let trace = self.trace()?;
		Ok(trace.step_hashes(&self.header).unwrap_or_default())
	}
}

/// A spec with scale 2^-7 (the generator's and the golden models').
fn spec(shape: Vec<u32>, zero_point: i8) -> TensorSpec {
	TensorSpec { shape, zero_point, scale_bits: 0x3c00_0000 } // 2^-7
}

/// Human-readable one-line summary of a model (for test failure messages).
pub fn describe(header: &ModelHeader) -> String {
	use core::fmt::Write;
	let mut s = String::new();
	let _ = write!(s, "input {:?} zp {}", header.input.shape, header.input.zero_point);
	for (i, op) in header.ops.iter().enumerate() {
		let kind = match op.kind {
			OpKind::FullyConnected => "fc",
			OpKind::Conv2d(_) => "conv",
			OpKind::Add(_) => "add",
			OpKind::MaxPool(_) => "maxpool",
			OpKind::AvgPool(_) => "avgpool",
			OpKind::GlobalAvgPool => "gap",
			OpKind::Reshape => "reshape",
			OpKind::Concat { .. } => "concat",
			OpKind::Lookup => "lookup",
		};
		let _ = write!(s, "; {}:{}{:?}->{:?}", i + 1, kind, op.inputs, op.output.shape);
	}
	s
}
