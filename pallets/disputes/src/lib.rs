//! # Disputes pallet: fraud proofs checked by the chain, committed before they are revealed
//!
//! During a job's challenge window anyone may prove that the operator's commitment is wrong,
//! in two transactions:
//!
//! 1. `commit_proof(job, commitment)` with `commitment` = [`Pallet::commitment`]`(job, prover,
//!    proof)` = `blake2_256(SCALE(("verity/proof", job, prover, blake2_256(proof))))`: it binds
//!    the proof to the prover without showing it. `ProofCommitmentDeposit` is held until the
//!    commitment is revealed or withdrawn.
//! 2. In a later block, `prove_fraud(job, proof)` with a SCALE-encoded
//!    [`verity_primitives::FraudProof`] (the disputed step `i`, the input tensors of op `i`, its
//!    weight bytes) that opens the sender's commitment. The chain decodes the proof canonically
//!    and judges it with [`verity_primitives::check_fraud_proof`]: every input tensor must hash
//!    to the operator's committed hash of the step that produced it, the weights must match the
//!    registered header, and op `i` is re-executed with the reference interpreter; fraud iff the
//!    result's step hash differs from the operator's `h_i`.
//!
//! On fraud the job's collateral is slashed from the operator's stake
//! (`hold::Balanced::slash`): `ProverShare` of it is paid to the prover **on hold**
//! ([`HoldReason::Reward`]), the rest goes to the operators pallet's `Slash` handler (burnt by
//! default); the requester's fee is refunded, the job is marked fraudulent (not re-assigned) and
//! the operator is jailed.
//!
//! **Why commit first (front-running, docs/PROTOCOL.md section 8, attack 2).** A proof seen in
//! the pool could be re-signed by a copier. A copier can only commit after it saw the proof, so
//! its commitment is later than the original prover's. For a grace period after the fraud is
//! proven (the chain's challenge window, [`pallet_verity_jobs::Pallet::challenge_window`]),
//! `prove_fraud` with the **same proof** from an account whose commitment is **earlier** than
//! the current prover's takes the held reward over (and the receipt's prover). When the grace
//! period has passed, `claim_reward(job)` (anyone) releases the reward to whoever holds it.
//! A copy therefore earns nothing: the earliest commitment to the proof is paid, and keeping
//! the original prover's reveal out of the chain for the whole grace period costs what
//! censoring a window costs (attack 1).
//!
//! A proof that is malformed, does not match the commitments, shows no fraud, or comes after
//! the window or after the job was already slashed fails with a specific error and changes
//! nothing; the sender pays the weight of what was checked (the declared weight assumes the
//! largest step of any model and is refunded down to the actual step's size). A commitment
//! that was not revealed (another prover was earlier) is withdrawn with
//! `withdraw_commitment(job)` once the job can no longer be proven, which releases its deposit.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;

#[cfg(feature = "runtime-benchmarks")]
pub mod benchmarking;
mod currency;
pub mod weights;

pub use weights::WeightInfo;

use alloc::vec::Vec;
use codec::{Decode, Encode, MaxEncodedLen};
use frame_support::{dispatch::DispatchErrorWithPostInfo, pallet_prelude::*};
use frame_system::pallet_prelude::BlockNumberFor;
use pallet_verity_jobs::{JobId, NotChallengeable};
use pallet_verity_models::BalanceOf;
use scale_info::TypeInfo;
use sp_runtime::{
	traits::{Hash as _, Saturating},
	Perbill,
};
use verity_primitives::{FraudProof, Hash, ProofError, Verdict};

/// A prover's commitment to a fraud proof for one job (see the crate docs).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct Commitment<BlockNumber, Balance> {
	/// [`Pallet::commitment`] of the job, the prover and the proof.
	pub hash: Hash,
	/// The block it was included in; it opens from the next one.
	pub at: BlockNumber,
	/// Held from the prover until the commitment is revealed or withdrawn.
	pub deposit: Balance,
}

/// A proven fraud's reward, held on `prover` until `until`.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct PendingReward<AccountId, BlockNumber, Balance> {
	/// Who holds the reward now: the prover whose commitment to the proof is the earliest
	/// revealed so far.
	pub prover: AccountId,
	/// The block of `prover`'s commitment.
	pub committed_at: BlockNumber,
	/// `blake2_256` of the proof that proved the fraud.
	pub proof_hash: Hash,
	/// Held on `prover` ([`HoldReason::Reward`]).
	pub amount: Balance,
	/// From this block on, no take-over; `claim_reward` pays `prover`.
	pub until: BlockNumber,
}

/// [`Commitment`] with the runtime's types.
pub type CommitmentOf<T> = Commitment<BlockNumberFor<T>, BalanceOf<T>>;
/// [`PendingReward`] with the runtime's types.
pub type PendingRewardOf<T> =
	PendingReward<<T as frame_system::Config>::AccountId, BlockNumberFor<T>, BalanceOf<T>>;

#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use frame_system::pallet_prelude::*;

	#[pallet::pallet]
	pub struct Pallet<T>(_);

	#[pallet::config]
	pub trait Config:
		frame_system::Config
		+ pallet_verity_jobs::Config
		+ pallet_verity_models::Config<RuntimeHoldReason: From<HoldReason>>
	{
		/// Share of a slashed collateral paid to the prover; the rest goes to the operators
		/// pallet's `Slash` handler.
		#[pallet::constant]
		type ProverShare: Get<Perbill>;
		/// Held from a prover for each stored proof commitment (pays for its storage); released
		/// when it is revealed or withdrawn.
		#[pallet::constant]
		type ProofCommitmentDeposit: Get<BalanceOf<Self>>;
		/// Weights of this pallet's calls.
		type WeightInfo: WeightInfo;
	}

	/// Reasons for which this pallet holds funds.
	#[pallet::composite_enum]
	pub enum HoldReason {
		/// The deposit of a stored proof commitment.
		#[codec(index = 0)]
		ProofCommitment,
		/// A prover's reward during the grace period in which an earlier commitment to the same
		/// proof can take it over.
		#[codec(index = 1)]
		Reward,
	}

	/// Proof commitments, by prover and job.
	#[pallet::storage]
	pub type ProofCommitments<T: Config> = StorageDoubleMap<
		_,
		Blake2_128Concat,
		T::AccountId,
		Twox64Concat,
		JobId,
		CommitmentOf<T>,
		OptionQuery,
	>;

	/// Rewards of proven frauds not yet paid out, by job.
	#[pallet::storage]
	pub type Rewards<T: Config> =
		StorageMap<_, Twox64Concat, JobId, PendingRewardOf<T>, OptionQuery>;

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// `prover` committed to a fraud proof for `job`.
		ProofCommitted { job: JobId, prover: T::AccountId },
		/// `prover` proved that step `step` of `operator`'s commitment for `job` is wrong; its
		/// `reward` is held until `until`.
		FraudProven {
			job: JobId,
			operator: T::AccountId,
			prover: T::AccountId,
			step: u32,
			slashed: BalanceOf<T>,
			reward: BalanceOf<T>,
			until: BlockNumberFor<T>,
		},
		/// `to` revealed the same proof with an earlier commitment than `from`: the held reward
		/// moved to `to`.
		RewardTakenOver { job: JobId, from: T::AccountId, to: T::AccountId, amount: BalanceOf<T> },
		/// The grace period passed; `prover` was paid `amount`.
		RewardPaid { job: JobId, prover: T::AccountId, amount: BalanceOf<T> },
		/// `prover` withdrew its unrevealed commitment for `job`; its deposit was released.
		CommitmentWithdrawn { job: JobId, prover: T::AccountId },
	}

	#[pallet::error]
	pub enum Error<T> {
		/// No such job.
		UnknownJob,
		/// The job has no commitment yet.
		NotCommitted,
		/// The challenge window has passed; the job is final.
		WindowClosed,
		/// Fraud was already proven for this job (and its grace period has passed, or the proof
		/// or commitment cannot take the reward over).
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
		/// The job closed more than `ReceiptRetention` blocks ago: only its receipt's digest is
		/// left.
		JobPruned,
		/// The sender has no proof commitment for this job (`commit_proof` first).
		NoCommitment,
		/// The proof does not open the sender's commitment.
		CommitmentMismatch,
		/// The commitment was included in this block; reveal it in a later one.
		CommitmentTooRecent,
		/// The sender already has a commitment for this job.
		AlreadyCommitted,
		/// The sender cannot pay the commitment's deposit.
		InsufficientBalance,
		/// The fraud was proven with another proof; only the same proof can take the reward
		/// over.
		NotTheProvenProof,
		/// The reward's holder committed first (or at the same block): no take-over.
		NotEarlier,
		/// The grace period has not passed yet.
		RewardPending,
		/// No reward to pay for this job.
		NoReward,
		/// The job can still be proven or its reward taken over: reveal, do not withdraw.
		CommitmentInUse,
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		#[cfg(feature = "try-runtime")]
		fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Prove that a committed job's step is wrong (see the pallet docs), revealing the proof
		/// the sender committed to with `commit_proof` in an earlier block. If the fraud was
		/// already proven with the same proof within its grace period and the sender's
		/// commitment is earlier than the current prover's, the sender takes the held reward
		/// over instead.
		///
		/// The dispatch origin must be _Signed_ (the prover, paid `ProverShare` of the slashed
		/// collateral at the end of the grace period).
		///
		/// Errors: `ProofTooLarge`, `NoCommitment`, `CommitmentMismatch`, `CommitmentTooRecent`,
		/// `UnknownJob`, `NotCommitted`, `WindowClosed`, `AlreadySlashed`, `JobExpired`,
		/// `JobPruned`, `MalformedProof`, `StepOutOfRange`, `WrongInputCount`, `InputMismatch`,
		/// `WeightsMismatch`, `ExecutionFailed`, `NoFraud` when the step reproduces the
		/// commitment; for a take-over `NotTheProvenProof`, `NotEarlier`.
		/// Emits `FraudProven` or `RewardTakenOver`.
		///
		/// Class: _Operational_, so that a fraud proof always finds room in the block's reserve
		/// (25 % of its weight and length) that Normal transactions cannot fill, and ranks in the
		/// pool by its fee too (`OperationalFeeMultiplier`): junk cannot crowd it out cheaply
		/// (docs/PROTOCOL.md, "Attacks and what they cost", row 1).
		///
		/// Complexity: `O(b + h + u)` in the proof's bytes, the model header's bytes and the
		/// disputed step's units. The declared weight assumes the largest header, the costliest
		/// kind of step at `MaxStepMacs` and the operator stopping service (jailing); the actual
		/// weight is charged for what was checked: the bytes when the proof is rejected early,
		/// then the real header, then the step's real kind and units.
		#[pallet::call_index(0)]
		#[pallet::weight((Pallet::<T>::proof_weight(verity_primitives::len_u32(proof.len()))
			.saturating_add(Pallet::<T>::header_weight(
				<T as pallet_verity_models::Config>::MaxHeaderBytes::get(),
			))
			.saturating_add(Pallet::<T>::step_weight(
				None,
				<T as pallet_verity_models::Config>::MaxStepMacs::get(),
			))
			.saturating_add(pallet_verity_operators::Pallet::<T>::stop_serving_weight()),
			DispatchClass::Operational))]
		pub fn prove_fraud(
			origin: OriginFor<T>,
			job: JobId,
			proof: Vec<u8>,
		) -> DispatchResultWithPostInfo {
			let prover = ensure_signed(origin)?;
			let with = |weight: Weight, error: Error<T>| DispatchErrorWithPostInfo {
				post_info: Some(weight).into(),
				error: error.into(),
			};
			let checked = Self::proof_weight(verity_primitives::len_u32(proof.len()));
			ensure!(
				verity_primitives::len_u32(proof.len()) <= Self::max_proof_len(),
				with(checked, Error::<T>::ProofTooLarge)
			);
			let proof_hash = Self::hash(&proof);
			let commitment =
				Self::opened(job, &prover, &proof_hash).map_err(|e| with(checked, e))?;
			if let Some(pending) = Rewards::<T>::get(job) {
				Self::take_over(job, prover, commitment, proof_hash, pending)
					.map_err(|e| with(checked, e))?;
				return Ok(Some(checked).into());
			}
			let Judged { record, step, weight } =
				Self::judge(job, &proof).map_err(|(weight, error)| with(weight, error))?;
			let operator = record.operator.clone();
			let collateral = record.collateral;
			ProofCommitments::<T>::remove(&prover, job);
			currency::release_deposit::<T>(&prover, commitment.deposit);
			pallet_verity_jobs::Pallet::<T>::conclude_fraud(job, record, prover.clone(), step);
			let credit = pallet_verity_operators::Pallet::<T>::slash(&operator, collateral);
			let (slashed, reward) = currency::reward_and_dispose::<T>(&prover, credit);
			pallet_verity_operators::Pallet::<T>::jail(&operator);
			let until = frame_system::Pallet::<T>::block_number()
				.saturating_add(pallet_verity_jobs::Pallet::<T>::challenge_window());
			Rewards::<T>::insert(
				job,
				PendingReward {
					prover: prover.clone(),
					committed_at: commitment.at,
					proof_hash,
					amount: reward,
					until,
				},
			);
			Self::deposit_event(Event::FraudProven {
				job,
				operator,
				prover,
				step,
				slashed,
				reward,
				until,
			});
			// Jailing ended the operator's serving declarations.
			let jailed = pallet_verity_operators::Pallet::<T>::stop_serving_weight();
			Ok(Some(weight.saturating_add(jailed)).into())
		}

		/// Commit to a fraud proof for `job` without showing it: `commitment` =
		/// [`Pallet::commitment`]`(job, sender, proof)`. Reveal it with `prove_fraud` in a later
		/// block. Holds `ProofCommitmentDeposit` until then (or until `withdraw_commitment`).
		///
		/// The dispatch origin must be _Signed_ (the prover).
		///
		/// Errors: `UnknownJob`, `NotCommitted`, `WindowClosed`, `AlreadySlashed`, `JobExpired`,
		/// `JobPruned` (the job cannot be proven now), `AlreadyCommitted`,
		/// `InsufficientBalance`. Emits `ProofCommitted`.
		///
		/// Class: _Operational_, like `prove_fraud` (a censored commitment is a censored proof).
		///
		/// Complexity: `O(1)`.
		#[pallet::call_index(1)]
		#[pallet::weight((<T as Config>::WeightInfo::commit_proof(), DispatchClass::Operational))]
		pub fn commit_proof(origin: OriginFor<T>, job: JobId, commitment: Hash) -> DispatchResult {
			let prover = ensure_signed(origin)?;
			pallet_verity_jobs::Pallet::<T>::challengeable(job).map_err(Self::challenge_error)?;
			ensure!(
				!ProofCommitments::<T>::contains_key(&prover, job),
				Error::<T>::AlreadyCommitted
			);
			let deposit = T::ProofCommitmentDeposit::get();
			currency::hold_deposit::<T>(&prover, deposit)?;
			let at = frame_system::Pallet::<T>::block_number();
			ProofCommitments::<T>::insert(
				&prover,
				job,
				Commitment { hash: commitment, at, deposit },
			);
			Self::deposit_event(Event::ProofCommitted { job, prover });
			Ok(())
		}

		/// Pay a proven fraud's held reward to its prover once the grace period has passed.
		///
		/// The dispatch origin must be _Signed_ (any account).
		///
		/// Errors: `NoReward`, `RewardPending` (before the grace period's end). Emits
		/// `RewardPaid`.
		///
		/// Complexity: `O(1)`.
		#[pallet::call_index(2)]
		#[pallet::weight(<T as Config>::WeightInfo::claim_reward())]
		pub fn claim_reward(origin: OriginFor<T>, job: JobId) -> DispatchResult {
			ensure_signed(origin)?;
			let pending = Rewards::<T>::get(job).ok_or(Error::<T>::NoReward)?;
			ensure!(
				frame_system::Pallet::<T>::block_number() >= pending.until,
				Error::<T>::RewardPending
			);
			Rewards::<T>::remove(job);
			let amount = currency::pay_reward::<T>(&pending.prover, pending.amount);
			Self::deposit_event(Event::RewardPaid { job, prover: pending.prover, amount });
			Ok(())
		}

		/// Remove the sender's unrevealed commitment for `job` and release its deposit, once it
		/// can no longer be revealed usefully: the job is not open to proofs and no reward of
		/// it is in its grace period.
		///
		/// The dispatch origin must be _Signed_ (the commitment's prover).
		///
		/// Errors: `NoCommitment`, `CommitmentInUse`. Emits `CommitmentWithdrawn`.
		///
		/// Complexity: `O(1)`.
		#[pallet::call_index(3)]
		#[pallet::weight(<T as Config>::WeightInfo::withdraw_commitment())]
		pub fn withdraw_commitment(origin: OriginFor<T>, job: JobId) -> DispatchResult {
			let prover = ensure_signed(origin)?;
			let commitment =
				ProofCommitments::<T>::get(&prover, job).ok_or(Error::<T>::NoCommitment)?;
			ensure!(!Self::in_use(job), Error::<T>::CommitmentInUse);
			ProofCommitments::<T>::remove(&prover, job);
			currency::release_deposit::<T>(&prover, commitment.deposit);
			Self::deposit_event(Event::CommitmentWithdrawn { job, prover });
			Ok(())
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
	/// The commitment to `proof` for `job` by `prover`:
	/// `blake2_256(SCALE(("verity/proof", job, prover, blake2_256(proof))))`.
	pub fn commitment(job: JobId, prover: &T::AccountId, proof: &[u8]) -> Hash {
		Self::commitment_of(job, prover, &Self::hash(proof))
	}

	fn commitment_of(job: JobId, prover: &T::AccountId, proof_hash: &Hash) -> Hash {
		sp_runtime::traits::BlakeTwo256::hash_of(&(b"verity/proof", job, prover, proof_hash)).into()
	}

	fn hash(bytes: &[u8]) -> Hash {
		sp_runtime::traits::BlakeTwo256::hash(bytes).into()
	}

	/// The sender's commitment for `job`, if `proof_hash` opens it and it is from an earlier
	/// block.
	fn opened(
		job: JobId,
		prover: &T::AccountId,
		proof_hash: &Hash,
	) -> Result<CommitmentOf<T>, Error<T>> {
		let c = ProofCommitments::<T>::get(prover, job).ok_or(Error::<T>::NoCommitment)?;
		ensure!(
			c.hash == Self::commitment_of(job, prover, proof_hash),
			Error::<T>::CommitmentMismatch
		);
		ensure!(c.at < frame_system::Pallet::<T>::block_number(), Error::<T>::CommitmentTooRecent);
		Ok(c)
	}

	/// Whether a commitment for `job` may still matter: the job is open to proofs, or its
	/// reward is in its grace period.
	pub fn in_use(job: JobId) -> bool {
		let now = frame_system::Pallet::<T>::block_number();
		pallet_verity_jobs::Pallet::<T>::challengeable(job).is_ok()
			|| Rewards::<T>::get(job).is_some_and(|r| now < r.until)
	}

	/// The same proof, revealed with an earlier commitment during the grace period, takes the
	/// held reward over.
	fn take_over(
		job: JobId,
		prover: T::AccountId,
		commitment: CommitmentOf<T>,
		proof_hash: Hash,
		pending: PendingRewardOf<T>,
	) -> Result<(), Error<T>> {
		ensure!(
			frame_system::Pallet::<T>::block_number() < pending.until,
			Error::<T>::AlreadySlashed
		);
		ensure!(proof_hash == pending.proof_hash, Error::<T>::NotTheProvenProof);
		ensure!(commitment.at < pending.committed_at, Error::<T>::NotEarlier);
		ProofCommitments::<T>::remove(&prover, job);
		currency::release_deposit::<T>(&prover, commitment.deposit);
		let amount = currency::take_over::<T>(&pending.prover, &prover, pending.amount);
		pallet_verity_jobs::Pallet::<T>::set_fraud_prover(job, prover.clone());
		Rewards::<T>::insert(
			job,
			PendingReward {
				prover: prover.clone(),
				committed_at: commitment.at,
				amount,
				..pending.clone()
			},
		);
		Self::deposit_event(Event::RewardTakenOver {
			job,
			from: pending.prover,
			to: prover,
			amount,
		});
		Ok(())
	}

	/// Judge `proof` (SCALE-encoded [`FraudProof`]) against `job`'s commitment as `prove_fraud`
	/// does, changing nothing: `Ok` iff it proves fraud now. The error comes with the weight of
	/// what was checked. The agent calls it before it spends a fee on a proof.
	pub fn judge(job: JobId, proof: &[u8]) -> Result<Judged<T>, (Weight, Error<T>)> {
		let bytes = verity_primitives::len_u32(proof.len());
		let checked = Self::proof_weight(bytes);
		ensure!(bytes <= Self::max_proof_len(), (checked, Error::<T>::ProofTooLarge));
		let (record, hashes) = pallet_verity_jobs::Pallet::<T>::challengeable(job)
			.map_err(|e| (checked, Self::challenge_error(e)))?;
		let proof: FraudProof = verity_primitives::decode_canonical(proof, bytes)
			.map_err(|_| (checked, Error::<T>::MalformedProof))?;
		let header_len = pallet_verity_models::Headers::<T>::decode_len(record.model)
			.map(verity_primitives::len_u32)
			.unwrap_or_default();
		let read = checked.saturating_add(Self::header_weight(header_len));
		let header = pallet_verity_models::Pallet::<T>::header(&record.model)
			.ok_or((read, Error::<T>::UnknownJob))?;
		let macs = verity_primitives::step_macs(&header, proof.step)
			.map_err(|_| (read, Error::<T>::StepOutOfRange))?;
		let kind = proof
			.step
			.checked_sub(1)
			.and_then(|i| header.ops.get(usize::try_from(i).ok()?))
			.map(|op| op.kind);
		let weight = read.saturating_add(Self::step_weight(
			kind.as_ref(),
			u32::try_from(macs).unwrap_or(u32::MAX),
		));
		let verdict = verity_primitives::check_fraud_proof(&header, &hashes, &proof)
			.map_err(|e| (weight, Self::proof_error(e)))?;
		ensure!(verdict == Verdict::Fraud, (weight, Error::<T>::NoFraud));
		Ok(Judged { record, step: proof.step, weight })
	}

	/// Weight of reading and hashing a proof of `bytes` bytes (and everything a proof does
	/// whatever its step). The bytes, header and step parts are benchmarks that each include
	/// the fixed part, so their sum is an upper bound.
	pub fn proof_weight(bytes: u32) -> Weight {
		<T as Config>::WeightInfo::prove_fraud_bytes(bytes)
	}

	/// Weight of decoding a header of `bytes` bytes (every proof decodes its model's header).
	pub fn header_weight(bytes: u32) -> Weight {
		<T as Config>::WeightInfo::prove_fraud_header(bytes)
	}

	/// Weight of re-executing a step of kind `kind` with `units` step units
	/// (`verity_primitives::step_macs`); `None`: the most any kind can cost with at most
	/// `units` (the declared weight, before the proof is decoded). Convolutions and fully
	/// connected layers are charged at the convolution's rate per MAC (a fully connected
	/// layer's weights are also in the bytes part). A step of an elementwise kind (Add, global
	/// average pool, reshape, concatenation, lookup) has at most `MaxTensorElements` units (its
	/// output or input elements); pools and convolutions up to `MaxStepMacs`.
	pub fn step_weight(kind: Option<&verity_primitives::OpKind>, units: u32) -> Weight {
		use verity_primitives::OpKind::*;
		type W<T> = <T as Config>::WeightInfo;
		let elements = units.min(<T as pallet_verity_models::Config>::MaxTensorElements::get());
		match kind {
			Some(FullyConnected | Conv2d(_)) => W::<T>::prove_fraud_macs(units),
			Some(Add(_)) => W::<T>::prove_fraud_add(units),
			Some(MaxPool(_)) => W::<T>::prove_fraud_max_pool(units),
			Some(AvgPool(_)) => W::<T>::prove_fraud_avg_pool(units),
			Some(GlobalAvgPool) => W::<T>::prove_fraud_global_avg_pool(units),
			Some(Reshape) => W::<T>::prove_fraud_reshape(units),
			Some(Concat { .. }) => W::<T>::prove_fraud_concat(units),
			Some(Lookup) => W::<T>::prove_fraud_lookup(units),
			None => W::<T>::prove_fraud_macs(units)
				.max(W::<T>::prove_fraud_max_pool(units))
				.max(W::<T>::prove_fraud_avg_pool(units))
				.max(W::<T>::prove_fraud_add(elements))
				.max(W::<T>::prove_fraud_global_avg_pool(elements))
				.max(W::<T>::prove_fraud_reshape(elements))
				.max(W::<T>::prove_fraud_concat(elements))
				.max(W::<T>::prove_fraud_lookup(elements)),
		}
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
			NotChallengeable::Pruned => Error::<T>::JobPruned,
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

	/// Invariants: each account's `ProofCommitment` hold equals its stored commitments'
	/// deposits and its `Reward` hold its pending rewards; no commitment is from the future.
	#[cfg(any(feature = "std", feature = "try-runtime"))]
	pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
		use alloc::collections::btree_map::BTreeMap;
		use frame_support::traits::fungible::InspectHold;
		type Currency<T> = <T as pallet_verity_models::Config>::Currency;
		let now = frame_system::Pallet::<T>::block_number();
		let mut deposits: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
		for (who, _, c) in ProofCommitments::<T>::iter() {
			ensure!(c.at <= now, "commitment from the future");
			let d = deposits.entry(who).or_default();
			*d = d.saturating_add(c.deposit);
		}
		let mut rewards: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
		for (_, r) in Rewards::<T>::iter() {
			let d = rewards.entry(r.prover).or_default();
			*d = d.saturating_add(r.amount);
		}
		for (who, total) in deposits {
			ensure!(
				Currency::<T>::balance_on_hold(&HoldReason::ProofCommitment.into(), &who) == total,
				"commitment hold differs from the stored deposits"
			);
		}
		for (who, total) in rewards {
			ensure!(
				Currency::<T>::balance_on_hold(&HoldReason::Reward.into(), &who) == total,
				"reward hold differs from the pending rewards"
			);
		}
		Ok(())
	}
}
