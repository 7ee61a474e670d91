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

//!
//! ## Generation disputes
//!
//! A generation job (a text model's) commits only its tokens and a job root, so it is disputed
//! in a game of bounded moves instead (docs/PROTOCOL.md 3.1; `R` =
//! [`pallet_verity_jobs::Pallet::reply_period`], a quarter of the challenge window):
//! `challenge` (bonded with `ChallengeBond`, inside the window) → the operator's `reveal_roots`
//! (before the first challenge + `R`) → the challenger's `name_position` → the operator's
//! `reveal_position` (checked against the committed token where the position selects one) →
//! the challenger's `prove_step` (one step re-executed, as `prove_fraud` does). Whoever misses
//! a move loses when anyone calls `settle`: the operator loses the job (slashed, jailed,
//! requester refunded), the challenger its bond (to the operator). The reward goes to the first
//! challenger (roots not revealed) or the first to name the position (position not revealed, or
//! a step proven), not to whoever sends the proof. Games are independent, each with its own
//! bond; the job is not final while any is open. A cheater loses within `4 R` of the challenge
//! (so within two windows of its commitment) with at most three transactions per side. The
//! residual of attack 2 applies as it does to fraud proofs: an operator that cheats on purpose
//! can challenge its own job first from another account and get the reward share back; it
//! still loses the rest of its collateral.

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
use pallet_verity_jobs::{JobId, JobStatus, NotChallengeable};
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

/// A challenger's game against a generation job's commitment (see "Generation disputes" in
/// the crate docs).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct Game<BlockNumber, Balance> {
	/// Held from the challenger ([`HoldReason::ChallengeBond`]): paid to the operator if the
	/// challenger misses a move, returned otherwise.
	pub bond: Balance,
	/// The block of the challenge.
	pub challenged_at: BlockNumber,
	/// The position the challenger named, and when.
	pub named: Option<(u32, BlockNumber)>,
}

/// Whose move a game waits for (see [`Pallet::game_stage`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stage {
	/// The operator's position roots.
	Roots,
	/// The challenger's naming of a position.
	Name,
	/// The operator's step hashes of the named position.
	Reveal(u32),
	/// The challenger's step proof at the named position.
	Prove(u32),
}

/// A generation job's dispute: what all its games share.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct Dispute<AccountId, BlockNumber> {
	/// The first challenger: paid if the operator does not reveal its position roots.
	pub first: AccountId,
	/// The operator reveals its position roots before this block (first challenge + reply
	/// period).
	pub roots_due: BlockNumber,
	/// When the roots were revealed ([`Roots`]).
	pub roots_revealed_at: Option<BlockNumber>,
	/// Games not yet settled (the job is not final while there are any).
	pub open_games: u32,
}

/// A position named by at least one game.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct NamedPosition<AccountId, BlockNumber> {
	/// The first challenger to name it: paid when fraud is proven at this position.
	pub first: AccountId,
	/// The operator reveals the position's step hashes before this block.
	pub due: BlockNumber,
	/// When they were revealed ([`Leaves`]).
	pub revealed_at: Option<BlockNumber>,
	/// Games naming it that are not settled.
	pub games: u32,
}

/// [`Game`] with the runtime's types.
pub type GameOf<T> = Game<BlockNumberFor<T>, BalanceOf<T>>;
/// [`Dispute`] with the runtime's types.
pub type DisputeOf<T> = Dispute<<T as frame_system::Config>::AccountId, BlockNumberFor<T>>;
/// [`NamedPosition`] with the runtime's types.
pub type NamedPositionOf<T> =
	NamedPosition<<T as frame_system::Config>::AccountId, BlockNumberFor<T>>;

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
		/// Held from a challenger for each game against a generation (pays an honest operator
		/// for its reveals if the challenger misses a move).
		#[pallet::constant]
		type ChallengeBond: Get<BalanceOf<Self>>;
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
		/// A challenger's bond for a game against a generation.
		#[codec(index = 2)]
		ChallengeBond,
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

	/// Games against generation commitments, by job and challenger.
	#[pallet::storage]
	pub type Games<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		JobId,
		Blake2_128Concat,
		T::AccountId,
		GameOf<T>,
		OptionQuery,
	>;

	/// The dispute of each challenged generation (kept until its last game settles).
	#[pallet::storage]
	pub type Disputes<T: Config> = StorageMap<_, Twox64Concat, JobId, DisputeOf<T>, OptionQuery>;

	/// The operator's revealed position roots of a disputed generation (until the job closes).
	#[pallet::storage]
	pub type Roots<T: Config> = StorageMap<
		_,
		Twox64Concat,
		JobId,
		BoundedVec<Hash, <T as pallet_verity_jobs::Config>::MaxContext>,
		OptionQuery,
	>;

	/// Positions named by games, by job and position.
	#[pallet::storage]
	pub type Positions<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		JobId,
		Twox64Concat,
		u32,
		NamedPositionOf<T>,
		OptionQuery,
	>;

	/// The operator's revealed step hashes of a named position (until its last game settles).
	#[pallet::storage]
	pub type Leaves<T: Config> = StorageDoubleMap<
		_,
		Twox64Concat,
		JobId,
		Twox64Concat,
		u32,
		BoundedVec<Hash, <T as pallet_verity_models::Config>::MaxLmOps>,
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
		/// `challenger` opened a game against generation `job`; the operator reveals its
		/// position roots before `roots_due` (unless it already did).
		Challenged { job: JobId, challenger: T::AccountId, roots_due: BlockNumberFor<T> },
		/// The operator revealed the position roots of `job` (storage `Roots`).
		RootsRevealed { job: JobId },
		/// `challenger` named `position`; the operator reveals its step hashes before `due`.
		PositionNamed {
			job: JobId,
			challenger: T::AccountId,
			position: u32,
			due: BlockNumberFor<T>,
		},
		/// The operator revealed the step hashes of `position` (storage `Leaves`).
		PositionRevealed { job: JobId, position: u32 },
		/// `operator` lost the dispute of generation `job` (see `Outcome::GenerationFraud` for
		/// `position` and `op`); `winner` (the first to challenge, or to name the position) was
		/// paid `reward` of the `slashed` collateral.
		GenerationFraudProven {
			job: JobId,
			operator: T::AccountId,
			winner: T::AccountId,
			position: Option<u32>,
			op: Option<u32>,
			slashed: BalanceOf<T>,
			reward: BalanceOf<T>,
		},
		/// `challenger`'s game ended; its `bond` went to `to` (the operator when the challenger
		/// missed a move, else back to the challenger).
		GameEnded { job: JobId, challenger: T::AccountId, to: T::AccountId, bond: BalanceOf<T> },
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
		/// A generation job: it is disputed with `challenge` and the dispute game.
		GenerationJob,
		/// Not a generation job (or no longer open).
		NotAGeneration,
		/// The sender already has a game against this job.
		AlreadyChallenged,
		/// The sender has no game against this job.
		NoGame,
		/// Only the job's operator makes this move.
		NotOperator,
		/// Nobody challenged the job.
		NotChallenged,
		/// The position roots were already revealed.
		RootsAlreadyRevealed,
		/// The position roots were not revealed yet.
		RootsNotRevealed,
		/// The roots are not `prompt + tokens - 1` roots whose Merkle root is the job root.
		WrongRoots,
		/// The move's time has passed.
		ReplyTooLate,
		/// The game already named a position.
		AlreadyNamed,
		/// The position is not a position of the generation, or no game named it.
		NoSuchPosition,
		/// The position's step hashes were already revealed.
		PositionAlreadyRevealed,
		/// The number of step hashes is not the position's op count.
		WrongLeafCount,
		/// The step hashes do not hash to the position's revealed root.
		LeavesMismatch,
		/// The position's `Select` step hash is not the hash of the committed token.
		TokenMismatch,
		/// The game's position was not named, or its step hashes not revealed yet.
		PositionNotRevealed,
		/// The step proof is not at the game's position.
		WrongPosition,
		/// Nobody missed a move yet: the game cannot be ended now.
		GameNotDecided,
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
		#[pallet::weight((
			Pallet::<T>::declared_proof_weight(verity_primitives::len_u32(proof.len())),
			DispatchClass::Operational,
		))]
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

		/// Open a game against a committed generation `job` inside its challenge window
		/// ("Generation disputes" in the crate docs). Holds `ChallengeBond`. The first game of
		/// a job gives the operator a reply period to reveal its position roots.
		///
		/// The dispatch origin must be _Signed_ (the challenger).
		///
		/// Errors: `NotAGeneration`, `NotCommitted`, `WindowClosed`, `AlreadyChallenged`,
		/// `InsufficientBalance`. Emits `Challenged`.
		///
		/// Class: _Operational_ (a censored challenge is a censored proof).
		///
		/// Complexity: `O(1)`.
		#[pallet::call_index(4)]
		#[pallet::weight((<T as Config>::WeightInfo::challenge(), DispatchClass::Operational))]
		pub fn challenge(origin: OriginFor<T>, job: JobId) -> DispatchResult {
			let challenger = ensure_signed(origin)?;
			let (record, _) = pallet_verity_jobs::Pallet::<T>::generation(job)
				.ok_or(Error::<T>::NotAGeneration)?;
			let now = frame_system::Pallet::<T>::block_number();
			match record.status {
				JobStatus::Committed { window_end, .. } if now < window_end => {},
				JobStatus::Committed { .. } => return Err(Error::<T>::WindowClosed.into()),
				JobStatus::Assigned { .. } => return Err(Error::<T>::NotCommitted.into()),
			}
			ensure!(!Games::<T>::contains_key(job, &challenger), Error::<T>::AlreadyChallenged);
			let bond = T::ChallengeBond::get();
			currency::hold_bond::<T>(&challenger, bond)?;
			let reply = pallet_verity_jobs::Pallet::<T>::reply_period();
			let dispute = match Disputes::<T>::get(job) {
				Some(d) => Dispute { open_games: d.open_games.saturating_add(1), ..d },
				None => Dispute {
					first: challenger.clone(),
					roots_due: now.saturating_add(reply),
					roots_revealed_at: None,
					open_games: 1,
				},
			};
			let roots_due = dispute.roots_due;
			Disputes::<T>::insert(job, dispute);
			Games::<T>::insert(job, &challenger, Game { bond, challenged_at: now, named: None });
			Self::deposit_event(Event::Challenged { job, challenger, roots_due });
			Ok(())
		}

		/// Reveal the position roots of a challenged generation: `prompt + tokens - 1` roots
		/// whose Merkle root is the committed job root, before the dispute's `roots_due`.
		///
		/// The dispatch origin must be _Signed_ by the job's operator.
		///
		/// Errors: `NotAGeneration`, `NotOperator`, `NotChallenged`, `RootsAlreadyRevealed`,
		/// `ReplyTooLate`, `WrongRoots`. Emits `RootsRevealed`.
		///
		/// Class: _Operational_.
		///
		/// Complexity: `O(r)` in the roots (hashed into the job root).
		#[pallet::call_index(5)]
		#[pallet::weight((
			<T as Config>::WeightInfo::reveal_roots(verity_primitives::len_u32(roots.len())),
			DispatchClass::Operational,
		))]
		pub fn reveal_roots(origin: OriginFor<T>, job: JobId, roots: Vec<Hash>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let (record, generation) = pallet_verity_jobs::Pallet::<T>::generation(job)
				.ok_or(Error::<T>::NotAGeneration)?;
			ensure!(record.operator == who, Error::<T>::NotOperator);
			let mut dispute = Disputes::<T>::get(job).ok_or(Error::<T>::NotChallenged)?;
			ensure!(dispute.roots_revealed_at.is_none(), Error::<T>::RootsAlreadyRevealed);
			let now = frame_system::Pallet::<T>::block_number();
			ensure!(now < dispute.roots_due, Error::<T>::ReplyTooLate);
			let JobStatus::Committed { output, trace_root, .. } = &record.status else {
				return Err(Error::<T>::NotChallenged.into());
			};
			let tokens = verity_primitives::len_u32(output.len() / 4);
			let prompt_len = verity_primitives::len_u32(generation.prompt.len());
			ensure!(
				verity_primitives::lm::job::roots_open(trace_root, prompt_len, tokens, &roots),
				Error::<T>::WrongRoots
			);
			let roots: BoundedVec<_, _> = roots.try_into().map_err(|_| Error::<T>::WrongRoots)?;
			Roots::<T>::insert(job, roots);
			dispute.roots_revealed_at = Some(now);
			Disputes::<T>::insert(job, dispute);
			Self::deposit_event(Event::RootsRevealed { job });
			Ok(())
		}

		/// Name the position of the generation whose root differs from the challenger's own
		/// re-generation (the first such position): the operator must reveal its step hashes.
		/// Within a reply period of the later of the challenge and the roots' reveal.
		///
		/// The dispatch origin must be _Signed_ (the game's challenger).
		///
		/// Errors: `NoGame`, `NotAGeneration`, `RootsNotRevealed`, `AlreadyNamed`,
		/// `ReplyTooLate`, `NoSuchPosition`. Emits `PositionNamed`.
		///
		/// Class: _Operational_.
		///
		/// Complexity: `O(1)`.
		#[pallet::call_index(6)]
		#[pallet::weight((<T as Config>::WeightInfo::name_position(), DispatchClass::Operational))]
		pub fn name_position(origin: OriginFor<T>, job: JobId, position: u32) -> DispatchResult {
			let challenger = ensure_signed(origin)?;
			let mut game = Games::<T>::get(job, &challenger).ok_or(Error::<T>::NoGame)?;
			let (record, generation) = pallet_verity_jobs::Pallet::<T>::generation(job)
				.ok_or(Error::<T>::NotAGeneration)?;
			let (stage, due) = Self::game_stage(job, &challenger).ok_or(Error::<T>::NoGame)?;
			match stage {
				Stage::Roots => return Err(Error::<T>::RootsNotRevealed.into()),
				Stage::Name => {},
				Stage::Reveal(_) | Stage::Prove(_) => return Err(Error::<T>::AlreadyNamed.into()),
			}
			let now = frame_system::Pallet::<T>::block_number();
			let reply = pallet_verity_jobs::Pallet::<T>::reply_period();
			ensure!(now < due, Error::<T>::ReplyTooLate);
			let JobStatus::Committed { output, .. } = &record.status else {
				return Err(Error::<T>::NotAGeneration.into());
			};
			let positions = verity_primitives::lm::job::positions(
				verity_primitives::len_u32(generation.prompt.len()),
				verity_primitives::len_u32(output.len() / 4),
			);
			ensure!(position < positions, Error::<T>::NoSuchPosition);
			let named = match Positions::<T>::get(job, position) {
				Some(n) => NamedPosition { games: n.games.saturating_add(1), ..n },
				None => NamedPosition {
					first: challenger.clone(),
					due: now.saturating_add(reply),
					revealed_at: None,
					games: 1,
				},
			};
			let due = named.due;
			Positions::<T>::insert(job, position, named);
			game.named = Some((position, now));
			Games::<T>::insert(job, &challenger, game);
			Self::deposit_event(Event::PositionNamed { job, challenger, position, due });
			Ok(())
		}

		/// Reveal the step hashes of a named position, before its due block: one per op of the
		/// position, hashing to its revealed root; at a position that selects a token, the
		/// `Select` step hash must be that of the committed token
		/// (`verity_primitives::lm::job::check_reveal`). An operator that cannot reveal loses
		/// when the due block passes.
		///
		/// The dispatch origin must be _Signed_ by the job's operator.
		///
		/// Errors: `NotAGeneration`, `NotOperator`, `NoSuchPosition` (not named),
		/// `PositionAlreadyRevealed`, `ReplyTooLate`, `RootsNotRevealed`, `WrongLeafCount`,
		/// `LeavesMismatch`, `TokenMismatch`. Emits `PositionRevealed`.
		///
		/// Class: _Operational_.
		///
		/// Complexity: `O(l + h)` in the step hashes and the model header.
		#[pallet::call_index(7)]
		#[pallet::weight((
			<T as Config>::WeightInfo::reveal_position(verity_primitives::len_u32(leaves.len()))
				.saturating_add(Pallet::<T>::header_weight(
					<T as pallet_verity_models::Config>::MaxHeaderBytes::get(),
				)),
			DispatchClass::Operational,
		))]
		pub fn reveal_position(
			origin: OriginFor<T>,
			job: JobId,
			position: u32,
			leaves: Vec<Hash>,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let (record, generation) = pallet_verity_jobs::Pallet::<T>::generation(job)
				.ok_or(Error::<T>::NotAGeneration)?;
			ensure!(record.operator == who, Error::<T>::NotOperator);
			let mut named = Positions::<T>::get(job, position).ok_or(Error::<T>::NoSuchPosition)?;
			ensure!(named.revealed_at.is_none(), Error::<T>::PositionAlreadyRevealed);
			let now = frame_system::Pallet::<T>::block_number();
			ensure!(now < named.due, Error::<T>::ReplyTooLate);
			let roots = Roots::<T>::get(job).ok_or(Error::<T>::RootsNotRevealed)?;
			let header = pallet_verity_models::Pallet::<T>::lm_header(&record.model)
				.ok_or(Error::<T>::NotAGeneration)?;
			let tokens = Self::tokens(&record);
			use verity_primitives::lm::job::{check_reveal, RevealError};
			let prompt_len = verity_primitives::len_u32(generation.prompt.len());
			check_reveal(&header, prompt_len, &tokens, &roots, position, &leaves).map_err(|e| {
				match e {
					RevealError::NoSuchPosition => Error::<T>::NoSuchPosition,
					RevealError::WrongLeafCount => Error::<T>::WrongLeafCount,
					RevealError::RootMismatch => Error::<T>::LeavesMismatch,
					RevealError::TokenMismatch => Error::<T>::TokenMismatch,
				}
			})?;
			let leaves: BoundedVec<_, _> =
				leaves.try_into().map_err(|_| Error::<T>::WrongLeafCount)?;
			Leaves::<T>::insert(job, position, leaves);
			named.revealed_at = Some(now);
			Positions::<T>::insert(job, position, named);
			Self::deposit_event(Event::PositionRevealed { job, position });
			Ok(())
		}

		/// Prove that one step of the game's named position is wrong: a SCALE-encoded
		/// `verity_primitives::lm::trace::LmStepProof` at that position, judged with
		/// `check_step_proof` against the revealed roots (inputs from earlier positions
		/// included). Within a reply period of the later of the naming and the position's
		/// reveal. On fraud the operator's collateral is slashed (`ProverShare` of it paid to
		/// the first challenger that named the position), the requester refunded, the operator
		/// jailed, and the sender's bond returned.
		///
		/// The dispatch origin must be _Signed_ (the game's challenger).
		///
		/// Errors: `ProofTooLarge`, `NoGame`, `NotAGeneration`, `PositionNotRevealed`,
		/// `ReplyTooLate`, `MalformedProof`, `WrongPosition`, `StepOutOfRange`,
		/// `WrongInputCount`, `InputMismatch`, `WeightsMismatch`, `ExecutionFailed`, `NoFraud`.
		/// Emits `GenerationFraudProven` and `GameEnded`.
		///
		/// Class: _Operational_.
		///
		/// Complexity: the declared weight is `prove_fraud`'s (a step at `MaxStepMacs` with
		/// `MaxStepProofBytes` of proof and the largest header), which bounds every transformer
		/// step the language-model limits admit (docs/MODEL_FORMAT.md 12.10: at most about 10 ms
		/// in wasm for SmolLM2-135M).
		#[pallet::call_index(8)]
		#[pallet::weight((
			Pallet::<T>::declared_proof_weight(verity_primitives::len_u32(proof.len())),
			DispatchClass::Operational,
		))]
		pub fn prove_step(origin: OriginFor<T>, job: JobId, proof: Vec<u8>) -> DispatchResult {
			let challenger = ensure_signed(origin)?;
			let bytes = verity_primitives::len_u32(proof.len());
			ensure!(bytes <= Self::max_proof_len(), Error::<T>::ProofTooLarge);
			ensure!(Games::<T>::contains_key(job, &challenger), Error::<T>::NoGame);
			let (record, generation) = pallet_verity_jobs::Pallet::<T>::generation(job)
				.ok_or(Error::<T>::NotAGeneration)?;
			let (Stage::Prove(position), due) =
				Self::game_stage(job, &challenger).ok_or(Error::<T>::NoGame)?
			else {
				return Err(Error::<T>::PositionNotRevealed.into());
			};
			let named =
				Positions::<T>::get(job, position).ok_or(Error::<T>::PositionNotRevealed)?;
			ensure!(frame_system::Pallet::<T>::block_number() < due, Error::<T>::ReplyTooLate);
			let step: verity_primitives::lm::trace::LmStepProof =
				verity_primitives::decode_canonical(&proof, bytes)
					.map_err(|_| Error::<T>::MalformedProof)?;
			ensure!(step.position == position, Error::<T>::WrongPosition);
			let header = pallet_verity_models::Pallet::<T>::lm_header(&record.model)
				.ok_or(Error::<T>::NotAGeneration)?;
			let roots = Roots::<T>::get(job).ok_or(Error::<T>::RootsNotRevealed)?;
			let lm_job = verity_primitives::lm::interp::LmJob {
				prompt: generation.prompt.to_vec(),
				params: generation.params,
				max_new_tokens: generation.max_new_tokens,
			};
			use verity_primitives::lm::trace::{check_step_proof, LmProofError};
			let verdict =
				check_step_proof(&header, &lm_job, &roots, &step).map_err(|e| match e {
					LmProofError::BadJob | LmProofError::NoSuchStep => Error::<T>::StepOutOfRange,
					LmProofError::CommittedMismatch | LmProofError::InputMismatch { .. } => {
						Error::<T>::InputMismatch
					},
					LmProofError::WrongInputCount => Error::<T>::WrongInputCount,
					LmProofError::WrongWeightCount | LmProofError::WeightMismatch { .. } => {
						Error::<T>::WeightsMismatch
					},
					LmProofError::Execution(_) => Error::<T>::ExecutionFailed,
				})?;
			ensure!(verdict == Verdict::Fraud, Error::<T>::NoFraud);
			Self::generation_fraud(job, record, named.first, Some(position), Some(step.op));
			Self::end_game(job, &challenger, None);
			Ok(())
		}

		/// End a game in which someone missed a move (or whose job closed): an operator that
		/// did not reveal its roots or a named position in time loses the job (as if fraud was
		/// proven: the first challenger, or the first to name the position, is paid); a
		/// challenger that did not name a position or prove in time loses its bond to the
		/// operator; a game of a job that closed (another game proved fraud) returns its bond.
		///
		/// The dispatch origin must be _Signed_ (any account).
		///
		/// Errors: `NoGame`, `GameNotDecided` (nobody missed a move yet). Emits `GameEnded` and,
		/// when the operator missed a move, `GenerationFraudProven`.
		///
		/// Complexity: `O(1)`.
		#[pallet::call_index(9)]
		#[pallet::weight(<T as Config>::WeightInfo::settle()
			.saturating_add(pallet_verity_operators::Pallet::<T>::stop_serving_weight()))]
		pub fn settle(
			origin: OriginFor<T>,
			job: JobId,
			challenger: T::AccountId,
		) -> DispatchResult {
			ensure_signed(origin)?;
			let Some((record, _)) = pallet_verity_jobs::Pallet::<T>::generation(job) else {
				ensure!(Games::<T>::contains_key(job, &challenger), Error::<T>::NoGame);
				Self::end_game(job, &challenger, None);
				return Ok(());
			};
			let (stage, due) = Self::game_stage(job, &challenger).ok_or(Error::<T>::NoGame)?;
			ensure!(frame_system::Pallet::<T>::block_number() >= due, Error::<T>::GameNotDecided);
			let operator = record.operator.clone();
			match stage {
				Stage::Roots => {
					let first =
						Disputes::<T>::get(job).map(|d| d.first).ok_or(Error::<T>::NoGame)?;
					Self::generation_fraud(job, record, first, None, None);
					Self::end_game(job, &challenger, None);
				},
				Stage::Reveal(position) => {
					let first = Positions::<T>::get(job, position)
						.map(|n| n.first)
						.ok_or(Error::<T>::NoGame)?;
					Self::generation_fraud(job, record, first, Some(position), None);
					Self::end_game(job, &challenger, None);
				},
				Stage::Name | Stage::Prove(_) => Self::end_game(job, &challenger, Some(&operator)),
			}
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

impl<T: Config> pallet_verity_jobs::GenerationDisputes for Pallet<T> {
	fn open_games(job: JobId) -> u32 {
		Disputes::<T>::get(job).map_or(0, |d| d.open_games)
	}

	fn job_closed(job: JobId) {
		Roots::<T>::remove(job);
		if Disputes::<T>::get(job).is_some_and(|d| d.open_games == 0) {
			Disputes::<T>::remove(job);
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

	/// Where `challenger`'s game against `job` stands: whose move it is and the block from
	/// which it is missed (`settle` then ends the game against that side). `None` without such
	/// a game. The one rule for every move's deadline.
	pub fn game_stage(job: JobId, challenger: &T::AccountId) -> Option<(Stage, BlockNumberFor<T>)> {
		let game = Games::<T>::get(job, challenger)?;
		let dispute = Disputes::<T>::get(job)?;
		let reply = pallet_verity_jobs::Pallet::<T>::reply_period();
		let Some(revealed) = dispute.roots_revealed_at else {
			return Some((Stage::Roots, dispute.roots_due));
		};
		let Some((position, named_at)) = game.named else {
			return Some((Stage::Name, game.challenged_at.max(revealed).saturating_add(reply)));
		};
		let named = Positions::<T>::get(job, position)?;
		Some(match named.revealed_at {
			None => (Stage::Reveal(position), named.due),
			Some(at) => (Stage::Prove(position), named_at.max(at).saturating_add(reply)),
		})
	}

	/// The committed output tokens of a generation job (empty before the commitment).
	pub fn tokens(record: &pallet_verity_jobs::Job<T>) -> Vec<u32> {
		match &record.status {
			JobStatus::Committed { output, .. } => output
				.chunks_exact(4)
				.map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
				.collect(),
			JobStatus::Assigned { .. } => Vec::new(),
		}
	}

	/// The operator lost generation `job`'s dispute: slash its collateral, pay `ProverShare` of
	/// it to `winner` (free), jail it, close the job (refunding the requester).
	fn generation_fraud(
		job: JobId,
		record: pallet_verity_jobs::Job<T>,
		winner: T::AccountId,
		position: Option<u32>,
		op: Option<u32>,
	) {
		let operator = record.operator.clone();
		let collateral = record.collateral;
		pallet_verity_jobs::Pallet::<T>::conclude_generation_fraud(
			job,
			record,
			winner.clone(),
			position,
			op,
		);
		let credit = pallet_verity_operators::Pallet::<T>::slash(&operator, collateral);
		let (slashed, reward) = currency::pay_and_dispose::<T>(&winner, credit);
		pallet_verity_operators::Pallet::<T>::jail(&operator);
		Self::deposit_event(Event::GenerationFraudProven {
			job,
			operator,
			winner,
			position,
			op,
			slashed,
			reward,
		});
	}

	/// Remove `challenger`'s game: its bond goes to `to` (the operator) or back to the
	/// challenger; the dispute's and the named position's counts go down, and what no game
	/// needs any more (a closed job's dispute, a position without games) is removed.
	fn end_game(job: JobId, challenger: &T::AccountId, to: Option<&T::AccountId>) {
		let Some(game) = Games::<T>::take(job, challenger) else { return };
		let paid_to = match to {
			Some(operator) => {
				currency::bond_to::<T>(challenger, operator, game.bond);
				operator.clone()
			},
			None => {
				currency::release_bond::<T>(challenger, game.bond);
				challenger.clone()
			},
		};
		if let Some((position, _)) = game.named {
			match Positions::<T>::get(job, position) {
				Some(n) if n.games > 1 => {
					Positions::<T>::insert(job, position, NamedPosition { games: n.games - 1, ..n })
				},
				_ => {
					Positions::<T>::remove(job, position);
					Leaves::<T>::remove(job, position);
				},
			}
		}
		let open = pallet_verity_jobs::Pallet::<T>::generation(job).is_some();
		match Disputes::<T>::get(job) {
			Some(d) if d.open_games > 1 || open => Disputes::<T>::insert(
				job,
				Dispute { open_games: d.open_games.saturating_sub(1), ..d },
			),
			_ => Disputes::<T>::remove(job),
		}
		Self::deposit_event(Event::GameEnded {
			job,
			challenger: challenger.clone(),
			to: paid_to,
			bond: game.bond,
		});
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

	/// The declared weight of a proof of `bytes` bytes (`prove_fraud`, `prove_step`): the
	/// bytes, the largest header, the costliest kind of step at `MaxStepMacs` and the operator
	/// stopping service (jailing).
	pub fn declared_proof_weight(bytes: u32) -> Weight {
		Self::proof_weight(bytes)
			.saturating_add(Self::header_weight(
				<T as pallet_verity_models::Config>::MaxHeaderBytes::get(),
			))
			.saturating_add(Self::step_weight(
				None,
				<T as pallet_verity_models::Config>::MaxStepMacs::get(),
			))
			.saturating_add(pallet_verity_operators::Pallet::<T>::stop_serving_weight())
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
			NotChallengeable::WrongKind => Error::<T>::GenerationJob,
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
		// Generation disputes: bonds held, counts kept, nothing left behind.
		let mut bonds: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
		let mut games: BTreeMap<JobId, u32> = BTreeMap::new();
		let mut naming: BTreeMap<(JobId, u32), u32> = BTreeMap::new();
		for (job, who, g) in Games::<T>::iter() {
			ensure!(g.challenged_at <= now, "game from the future");
			let b = bonds.entry(who).or_default();
			*b = b.saturating_add(g.bond);
			games.entry(job).or_default().saturating_inc();
			if let Some((p, _)) = g.named {
				naming.entry((job, p)).or_default().saturating_inc();
				ensure!(Positions::<T>::contains_key(job, p), "game names an unknown position");
			}
		}
		for (job, d) in Disputes::<T>::iter() {
			let open = pallet_verity_jobs::Pallet::<T>::generation(job).is_some();
			ensure!(open || d.open_games > 0, "dispute of a closed job without games");
			ensure!(
				games.remove(&job).unwrap_or_default() == d.open_games,
				"dispute's open games differ from its games"
			);
			ensure!(
				Roots::<T>::contains_key(job) == (open && d.roots_revealed_at.is_some()),
				"roots stored without a reveal, or of a closed job"
			);
		}
		ensure!(games.is_empty(), "game without a dispute");
		for (job, p, n) in Positions::<T>::iter() {
			ensure!(
				naming.remove(&(job, p)).unwrap_or_default() == n.games,
				"position's games differ from the games naming it"
			);
			ensure!(
				Leaves::<T>::contains_key(job, p) == n.revealed_at.is_some(),
				"leaves stored without a reveal"
			);
		}
		ensure!(
			Leaves::<T>::iter_keys().all(|(job, p)| Positions::<T>::contains_key(job, p)),
			"leaves of a position no game names"
		);
		for (who, total) in bonds {
			ensure!(
				Currency::<T>::balance_on_hold(&HoldReason::ChallengeBond.into(), &who) == total,
				"bond hold differs from the open games' bonds"
			);
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
