//! The placement policy: where each step of a batch runs, host or device ([`placement`]).

use verity_primitives::OpKind;

use super::TchOptions;

/// One side of the host/device split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
	Host,
	Device,
}

/// Where one step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
	/// The reference op of verity-primitives on the host bytes, sample by sample.
	Reference,
	/// Max pool on the host bytes (a window maximum needs no arithmetic).
	HostMaxPool,
	/// The step's tensor op on the device.
	///
	/// `input`: where its first input is made ready. `Host`: `x - z_x` as floats, built on the
	/// host in one pass and moved to the device (FullyConnected and Conv2d); `Device`: the int8
	/// tensor, uploaded from the host bytes if it is not on the device yet.
	///
	/// `finish`: where the integer output stage (requantization, rounding division, clamp)
	/// runs. `Host`: in Rust, fused with the copy back that the trace needs anyway; `Device`:
	/// integer tensor ops, only the int8 result is copied back (and it stays on the device for
	/// the steps that read it).
	Tensor { input: Side, finish: Side },
}

/// Where a step of kind `kind` runs, given the backend's `options`, its cost (`macs * batch`)
/// and the number of elements of its output (whole batch). The first rule that applies wins:
///
/// 1. cost below `small_step_macs`: [`Placement::Reference`] (libtorch's per-op overhead would
///    dominate);
/// 2. the memory ops (Reshape, Concat, Lookup) with `host_finish`: [`Placement::Reference`]
///    (they only move or map bytes, which are on the host already);
/// 3. `host_finish` off, or an output above `host_max_elements`: everything on the device;
/// 4. MaxPool: [`Placement::HostMaxPool`];
/// 5. FullyConnected and Conv2d: input and output stage on the host, the matmul or
///    convolution on the device;
/// 6. the other ops (Add, average pools): the op on the device, the output stage on the host.
pub fn placement(kind: &OpKind, options: &TchOptions, cost: u64, out_elements: usize) -> Placement {
	let memory_op = matches!(kind, OpKind::Reshape | OpKind::Concat { .. } | OpKind::Lookup);
	if cost < options.small_step_macs || (memory_op && options.host_finish) {
		return Placement::Reference;
	}
	if !options.host_finish || out_elements > options.host_max_elements {
		return Placement::Tensor { input: Side::Device, finish: Side::Device };
	}
	match kind {
		OpKind::MaxPool(_) => Placement::HostMaxPool,
		OpKind::FullyConnected | OpKind::Conv2d(_) => {
			Placement::Tensor { input: Side::Host, finish: Side::Host }
		},
		_ => Placement::Tensor { input: Side::Device, finish: Side::Host },
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use tch::Device;
	use verity_primitives::{
		testing::{pool_params, same3x3},
		AddParams, Requant,
	};

	fn kinds() -> Vec<OpKind> {
		let pool = pool_params((2, 2), (2, 2), [0; 4]);
		let rq = Requant { multiplier: 1 << 30, shift: 0 };
		vec![
			OpKind::FullyConnected,
			OpKind::Conv2d(same3x3(1)),
			OpKind::Add(AddParams { left_shift: 0, lhs: rq, rhs: rq }),
			OpKind::MaxPool(pool),
			OpKind::AvgPool(pool),
			OpKind::GlobalAvgPool,
			OpKind::Reshape,
			OpKind::Concat { axis: 0 },
			OpKind::Lookup,
		]
	}

	const HOST_HOST: Placement = Placement::Tensor { input: Side::Host, finish: Side::Host };
	const DEVICE_HOST: Placement = Placement::Tensor { input: Side::Device, finish: Side::Host };
	const DEVICE: Placement = Placement::Tensor { input: Side::Device, finish: Side::Device };

	#[test]
	fn cpu_defaults() {
		let cpu = TchOptions::for_device(Device::Cpu);
		let big = cpu.small_step_macs;
		let want = [
			HOST_HOST,
			HOST_HOST,
			DEVICE_HOST,
			Placement::HostMaxPool,
			DEVICE_HOST,
			DEVICE_HOST,
			Placement::Reference,
			Placement::Reference,
			Placement::Reference,
		];
		for (kind, want) in kinds().iter().zip(want) {
			assert_eq!(placement(kind, &cpu, big, 1000), want, "{kind:?}");
			// Small steps: the reference op, whatever the kind.
			assert_eq!(placement(kind, &cpu, big - 1, 1000), Placement::Reference, "{kind:?}");
			// Outputs too large for the host stage: all on the device (memory ops stay on the host).
			let large = placement(kind, &cpu, big, cpu.host_max_elements + 1);
			assert_eq!(large, if want == Placement::Reference { want } else { DEVICE }, "{kind:?}");
		}
	}

	#[test]
	fn device_defaults_and_tensor_ops_only_keep_every_step_on_the_device() {
		for options in [TchOptions::for_device(Device::Cuda(0)), TchOptions::tensor_ops_only()] {
			for kind in kinds() {
				assert_eq!(placement(&kind, &options, 0, 0), DEVICE, "{kind:?}");
				assert_eq!(placement(&kind, &options, u64::MAX, usize::MAX), DEVICE, "{kind:?}");
			}
		}
	}
}
