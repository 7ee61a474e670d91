//! # Disputes pallet: fraud proofs checked by the chain
//!
//! During a job's challenge window anyone may call `prove_fraud(job, proof)` with a
//! SCALE-encoded [`verity_primitives::FraudProof`]: the disputed step `i`, the input tensors of
//! op `i` and its weight bytes. The chain decodes the proof canonically and judges it with
//! [`verity_primitives::check_fraud_proof`]: every input tensor must hash to the operator's
//! committed hash of the step that produced it, the weights must match the registered header,
//! and op `i` is re-executed with the reference interpreter; fraud iff the result's step hash
//! differs from the operator's `h_i`.
//!
//! On fraud the job's collateral is slashed from the operator's stake
//! (`hold::Balanced::slash`): `ProverShare` of it is paid to the prover, the rest goes to the
//! operators pallet's `Slash` handler (burnt by default); the requester's fee is refunded, the
//! job is marked fraudulent (not re-assigned) and the operator is jailed.
//!
//! A proof that is malformed, does not match the commitments, shows no fraud, or comes after
//! the window or after the job was already slashed fails with a specific error and changes
//! nothing; the sender pays the weight of what was checked (the declared weight assumes the
//! largest step of any model and is refunded down to the actual step's size).

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;

#[cfg(feature = "runtime-benchmarks")]
pub mod benchmarking;
mod currency;
pub mod weights;

pub use weights::WeightInfo;

use alloc::vec::Vec;
use frame_support::{dispatch::DispatchErrorWithPostInfo, pallet_prelude::*};
use pallet_verity_jobs::{JobId, NotChallengeable};
use pallet_verity_models::BalanceOf;
use sp_runtime::Perbill;
use verity_primitives::{FraudProof, ProofError, Verdict};

#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use frame_system::pallet_prelude::*;

	#[pallet::pallet]
	pub struct Pallet<T>(_);

	#[pallet::config]
	pub trait Config: frame_system::Config + pallet_verity_jobs::Config {
		/// Share of a slashed collateral paid to the prover; the rest goes to the operators
		/// pallet's `Slash` handler.
		#[pallet::constant]
		type ProverShare: Get<Perbill>;
		/// Weights of this pallet's call.
		type WeightInfo: WeightInfo;
	}

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// `prover` proved that step `step` of `operator`'s commitment for `job` is wrong.
		FraudProven {
			job: JobId,
			operator: T::AccountId,
			prover: T::AccountId,
			step: u32,
			slashed: BalanceOf<T>,
			reward: BalanceOf<T>,
		},
	}

	#[pallet::error]
	pub enum Error<T> {
		/// No such job.
		UnknownJob,
		/// The job has no commitment yet.
		NotCommitted,
		/// The challenge window has passed; the job is final.
		WindowClosed,
		/// Fraud was already proven for this job.
		AlreadySlashed,
		/// The job expired without a commitment.
		JobExpired,
		/// The proof is longer than any step of any admissible model needs.
		ProofTooLarge,
		/// The proof is not the canonical SCALE encoding of a `FraudProof`.
		MalformedProof,
		/// The disputed step is not an op of the model.
		StepOutOfRange,
		/// The number of input tensors differs from the op's inputs.
		WrongInputCount,
		/// An input tensor does not match the committed hash of the step that produced it.
		InputMismatch,
		/// The weights do not match the model header.
		WeightsMismatch,
		/// The step could not be re-executed.
		ExecutionFailed,
		/// Re-executing the step reproduces the operator's commitment: no fraud.
		NoFraud,
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Prove that a committed job's step is wrong (see the pallet docs).
		///
		/// The dispatch origin must be _Signed_ (any account: the prover, paid `ProverShare` of the
		/// slashed collateral).
		///
		/// Errors: `ProofTooLarge`, `UnknownJob`, `NotCommitted`, `WindowClosed`, `AlreadySlashed`,
		/// `JobExpired`, `MalformedProof`, `StepOutOfRange`, `WrongInputCount`, `InputMismatch`,
		/// `WeightsMismatch`, `ExecutionFailed`, and `NoFraud` when the step reproduces the commitment.
		/// Emits `FraudProven`.
		///
		/// Class: _Operational_, so that a fraud proof always finds room in the block's reserve
		/// (25 % of its weight and length) that Normal transactions cannot fill, and ranks in the
		/// pool by its fee too (`OperationalFeeMultiplier`): junk cannot crowd it out cheaply
		/// (docs/PROTOCOL.md, "Attacks and what they cost", row 1).
		///
		/// Complexity: `O(b + m)` in the proof's bytes and the disputed step's
		/// multiply-accumulates. The declared weight assumes `MaxStepMacs`; the actual weight
		/// is charged for the step's real MACs, also when the proof is rejected.
		#[pallet::call_index(0)]
		#[pallet::weight((Pallet::<T>::proof_weight(
			verity_primitives::len_u32(proof.len()),
			<T as pallet_verity_models::Config>::MaxStepMacs::get(),
		).saturating_add(pallet_verity_operators::Pallet::<T>::stop_serving_weight()),
			DispatchClass::Operational))]
		pub fn prove_fraud(
			origin: OriginFor<T>,
			job: JobId,
			proof: Vec<u8>,
		) -> DispatchResultWithPostInfo {
			let prover = ensure_signed(origin)?;
			let Judged { record, step, weight } =
				Self::judge(job, &proof).map_err(|(weight, error)| DispatchErrorWithPostInfo {
					post_info: Some(weight).into(),
					error: error.into(),
				})?;
			let operator = record.operator.clone();
			let collateral = record.collateral;
			pallet_verity_jobs::Pallet::<T>::conclude_fraud(job, record, prover.clone(), step);
			let credit = pallet_verity_operators::Pallet::<T>::slash(&operator, collateral);
			let (slashed, reward) = currency::reward_and_dispose::<T>(&prover, credit);
			pallet_verity_operators::Pallet::<T>::jail(&operator);
			Self::deposit_event(Event::FraudProven {
				job,
				operator,
				prover,
				step,
				slashed,
				reward,
			});
			// Jailing ended the operator's serving declarations.
			let jailed = pallet_verity_operators::Pallet::<T>::stop_serving_weight();
			Ok(Some(weight.saturating_add(jailed)).into())
		}
	}
}

/// A proof that [`Pallet::judge`] found to show fraud.
pub struct Judged<T: Config> {
	/// The job's commitment record.
	pub record: pallet_verity_jobs::Job<T>,
	/// The wrong step.
	pub step: u32,
	/// The weight of judging it.
	pub weight: Weight,
}

impl<T: Config> Pallet<T> {
	/// Judge `proof` (SCALE-encoded [`FraudProof`]) against `job`'s commitment as `prove_fraud`
	/// does, changing nothing: `Ok` iff it proves fraud now. The error comes with the weight of
	/// what was checked. The agent calls it before it spends a fee on a proof.
	pub fn judge(job: JobId, proof: &[u8]) -> Result<Judged<T>, (Weight, Error<T>)> {
		let bytes = verity_primitives::len_u32(proof.len());
		let checked = Self::proof_weight(bytes, 0);
		ensure!(bytes <= Self::max_proof_len(), (checked, Error::<T>::ProofTooLarge));
		let (record, hashes) = pallet_verity_jobs::Pallet::<T>::challengeable(job)
			.map_err(|e| (checked, Self::challenge_error(e)))?;
		let proof: FraudProof = verity_primitives::decode_canonical(proof, bytes)
			.map_err(|_| (checked, Error::<T>::MalformedProof))?;
		let header = pallet_verity_models::Pallet::<T>::header(&record.model)
			.ok_or((checked, Error::<T>::UnknownJob))?;
		let macs = verity_primitives::step_macs(&header, proof.step)
			.map_err(|_| (checked, Error::<T>::StepOutOfRange))?;
		let weight = Self::proof_weight(bytes, u32::try_from(macs).unwrap_or(u32::MAX));
		let verdict = verity_primitives::check_fraud_proof(&header, &hashes, &proof)
			.map_err(|e| (weight, Self::proof_error(e)))?;
		ensure!(verdict == Verdict::Fraud, (weight, Error::<T>::NoFraud));
		Ok(Judged { record, step: proof.step, weight })
	}

	/// Weight of judging a proof of `bytes` bytes whose step costs `macs` MACs: the two
	/// benchmarks each include the fixed part, so their sum is an upper bound.
	pub fn proof_weight(bytes: u32, macs: u32) -> Weight {
		<T as Config>::WeightInfo::prove_fraud_bytes(bytes)
			.saturating_add(<T as Config>::WeightInfo::prove_fraud_macs(macs))
	}

	/// The longest encoded proof any admissible step needs: `MaxStepProofBytes` payload plus
	/// the step number and SCALE length prefixes (5 bytes each at most) of up to
	/// `MaxOpInputs` tensors and the weights.
	pub fn max_proof_len() -> u32 {
		let inputs = <T as pallet_verity_models::Config>::MaxOpInputs::get();
		<T as pallet_verity_models::Config>::MaxStepProofBytes::get()
			.saturating_add(4)
			.saturating_add(5u32.saturating_mul(inputs.saturating_add(2)))
	}

	fn challenge_error(e: NotChallengeable) -> Error<T> {
		match e {
			NotChallengeable::Unknown => Error::<T>::UnknownJob,
			NotChallengeable::NotCommitted => Error::<T>::NotCommitted,
			NotChallengeable::WindowClosed => Error::<T>::WindowClosed,
			NotChallengeable::AlreadySlashed => Error::<T>::AlreadySlashed,
			NotChallengeable::Expired => Error::<T>::JobExpired,
		}
	}

	fn proof_error(e: ProofError) -> Error<T> {
		match e {
			ProofError::WrongHashCount { .. } | ProofError::StepOutOfRange => {
				Error::<T>::StepOutOfRange
			},
			ProofError::WrongInputCount => Error::<T>::WrongInputCount,
			ProofError::InputMismatch { .. } => Error::<T>::InputMismatch,
			ProofError::WeightsMismatch => Error::<T>::WeightsMismatch,
			ProofError::Execution(_) => Error::<T>::ExecutionFailed,
		}
	}
}
