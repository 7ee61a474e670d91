//! Every `unsafe` of the exact backend, with its safety argument beside it (the rest of
//! `exact` denies `unsafe_code`):
//!
//! * [`cpu_slice`], [`cpu_slice_mut`]: a CPU tensor's elements as a Rust slice, without a copy
//!   (the accumulator read by the host output stage, the centred input written in place);
//! * [`requant`]: the host output stage built for AVX2 where the CPU has it.

use tch::{Device, Tensor};

use super::{
	host::{requant_loop, AccValue, HostRequant},
	Result, TchBackendError,
};

/// The data pointer of `t` if it is a contiguous CPU tensor of `numel` elements of type `T`.
fn checked_data<T: tch::kind::Element>(t: &Tensor, numel: usize) -> Result<*mut T> {
	let ptr = t.data_ptr();
	if t.device() != Device::Cpu
		|| t.f_kind()? != T::KIND
		|| !t.is_contiguous()
		|| t.numel() != numel
		|| ptr.is_null()
	{
		return Err(TchBackendError::Invalid("not a contiguous CPU tensor of that kind".into()));
	}
	Ok(ptr.cast())
}

/// The elements of a contiguous CPU tensor, borrowed without a copy.
pub(super) fn cpu_slice<T: tch::kind::Element>(t: &Tensor, numel: usize) -> Result<&[T]> {
	let ptr = checked_data::<T>(t, numel)?;
	// SAFETY: `t` is a contiguous CPU tensor of `numel` elements of type `T` (checked by
	// `checked_data`), so its non-null data pointer is valid and aligned for `numel` reads of
	// `T`; the slice borrows `t`, which keeps the storage alive, and nothing writes to the
	// tensor while it is borrowed.
	Ok(unsafe { std::slice::from_raw_parts(ptr, numel) })
}

/// The elements of a freshly allocated, contiguous CPU tensor, to fill in place.
pub(super) fn cpu_slice_mut<T: tch::kind::Element>(
	t: &mut Tensor,
	numel: usize,
) -> Result<&mut [T]> {
	let ptr = checked_data::<T>(t, numel)?;
	// SAFETY: as in `cpu_slice`; in addition the tensor is borrowed mutably and was just
	// created by the caller (no other handle shares its storage), so nothing else reads or
	// writes it while the slice lives.
	Ok(unsafe { std::slice::from_raw_parts_mut(ptr, numel) })
}

/// [`requant_loop`], built for AVX2 where the CPU has it (runtime detection), else portable.
/// Both builds compute the same integers; the tests run both against the reference.
pub(super) fn requant<T: AccValue>(vals: &[T], host: &HostRequant, out: &mut Vec<u8>) {
	#[cfg(target_arch = "x86_64")]
	if std::arch::is_x86_feature_detected!("avx2") {
		// SAFETY: the only requirement of `requant_avx2` is a CPU with AVX2, checked just above.
		unsafe { requant_avx2(vals, host, out) };
		return;
	}
	requant_loop(vals, host, out)
}

/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn requant_avx2<T: AccValue>(vals: &[T], host: &HostRequant, out: &mut Vec<u8>) {
	requant_loop(vals, host, out)
}
