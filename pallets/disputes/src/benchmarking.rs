//! Benchmarks of `prove_fraud` (frame-benchmarking v2), each on the successful (slashing) path:
//! `prove_fraud_bytes` over the proof size (an FC step, whose weights make up the bytes) and
//! `prove_fraud_macs` over the step's multiply-accumulates (a 3x3 convolution with a small
//! proof). The call is charged the sum of both.

use super::*;
use alloc::vec::Vec;
use codec::Encode;
use frame_benchmarking::v2::*;
use frame_system::RawOrigin;
use pallet_verity_jobs::benchmarking::{requester, serving, submitted};
use pallet_verity_models::benchmarking::{conv_model, fc_model, register_case};
use verity_primitives::testing::TestCase;

/// Register `case`, submit it, commit a trace whose hash of `step` is wrong (the output and
/// h_n stay honest when `step` < n, so the commitment is accepted) and return (job, proof).
fn fraudulent<T: Config>(case: &TestCase, step: u32) -> (JobId, Vec<u8>) {
	let publisher: T::AccountId = account("publisher", 0, 0);
	let model = register_case::<T>(&publisher, case);
	let operator: T::AccountId = account("operator", 0, 0);
	serving::<T>(&operator, model, 1);
	let who: T::AccountId = account("requester", 0, 0);
	requester::<T>(&who, 1);
	let job = submitted::<T>(&who, model, case.input.clone());
	let trace = case.trace().expect("benchmark model executes");
	let mut output = trace.output().to_vec();
	let mut hashes = trace.step_hashes(&case.header).unwrap_or_default();
	let n = case.header.num_ops();
	if step == n {
		if let Some(b) = output.first_mut() {
			*b = b.wrapping_add(1);
		}
	}
	if let Some(h) = hashes.get_mut(step as usize) {
		h[0] ^= 1;
	}
	if let (true, Some(last), Some(h)) =
		(step == n, hashes.last_mut(), verity_primitives::tensor_hash(&case.header, n, &output))
	{
		*last = h;
	}
	assert!(pallet_verity_jobs::Pallet::<T>::commit(
		RawOrigin::Signed(operator).into(),
		job,
		output,
		hashes
	)
	.is_ok());
	let proof = verity_primitives::build_fraud_proof(&case.header, &trace, &case.weights, step)
		.expect("proof");
	(job, proof.encode())
}

#[benchmarks]
mod benchmarks {
	use super::*;

	#[benchmark]
	fn prove_fraud_bytes(
		b: Linear<2048, { <T as pallet_verity_models::Config>::MaxStepProofBytes::get() }>,
	) {
		let n = (b / 1024).saturating_sub(1).max(1);
		let case = fc_model(1024, n, 0);
		let (job, proof) = fraudulent::<T>(&case, 1);
		let caller: T::AccountId = whitelisted_caller();

		#[extrinsic_call]
		prove_fraud(RawOrigin::Signed(caller), job, proof);

		assert!(pallet_verity_jobs::Jobs::<T>::get(job).is_none());
	}

	#[benchmark]
	fn prove_fraud_macs(
		m: Linear<36864, { <T as pallet_verity_models::Config>::MaxStepMacs::get() }>,
	) {
		let c = (m / 36864).max(1);
		// The convolution (step 1) is the one proven wrong.
		let (job, proof) = fraudulent::<T>(&conv_model(c, 0), 1);
		let caller: T::AccountId = whitelisted_caller();

		#[extrinsic_call]
		prove_fraud(RawOrigin::Signed(caller), job, proof);

		assert!(pallet_verity_jobs::Jobs::<T>::get(job).is_none());
	}
}
