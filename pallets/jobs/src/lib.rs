//! # Jobs pallet: the job lifecycle
//!
//! 1. `submit(model, input, max_fee)`: the input is checked against the model's input spec,
//!    `max_fee` is held from the requester ([`HoldReason::Fee`]) and an operator serving the
//!    model at a price `<= max_fee` is assigned (stake-weighted, see *Assignment* below); the
//!    job's collateral, `max(JobCollateral, CollateralRatio × max_fee)`, is locked from its free
//!    stake and an execution deadline is scheduled.
//! 2. `commit(job, output, step_hashes)` by the assigned operator before the deadline: the
//!    chain checks the number of step hashes (`n + 1`), `h_0` against the stored input and
//!    `h_n` against the output, computes the trace root, stores the hashes and schedules the
//!    end of the challenge window.
//! 3. At the end of the window (no fraud proven) the job is final: the operator's price is paid
//!    from the held fee, the rest is released to the requester, the collateral is unlocked, the
//!    step hashes and the input are pruned and a [`Receipt`] (output, model id, operator, trace
//!    root, final block) is kept for `ReceiptRetention` blocks, then only its 32-byte digest
//!    ([`ReceiptDigests`]; see *Receipt retention* below).
//! 4. A missed deadline costs the operator `MissedDeadlinePenalty` (slashed from its stake,
//!    handed to the operators pallet's `Slash`, burnt by default) and the job is re-assigned to
//!    another operator; after `MaxAttempts` attempts (or when no other operator is eligible) the
//!    fee is refunded and the job closes as expired.
//! 5. Fraud proofs are judged by the disputes pallet, which closes the job through
//!    [`Pallet::conclude_fraud`]: the job is marked fraudulent (receipt outcome
//!    [`Outcome::Fraud`]) and the requester refunded; it is not re-assigned (the requester may
//!    simply submit again).
//!
//! Deadlines and window ends are handled in `on_initialize` from a per-block queue
//! ([`Queue`]) of at most `MaxJobsPerBlock` job ids; an item that does not fit into its block
//! goes to the next one with room, up to `ScheduleSpread` blocks later (so windows and deadlines
//! may only get longer, never shorter). The hook never iterates over all jobs, and spends at
//! most `MaxHookWeight` per block: each due job is charged its benchmarked path plus its own
//! accounts' accesses ([`Pallet::own_accesses`]); what does not fit waits in [`Backlog`] and
//! is handled first in the next block, as at its due block (a deadline that passed still
//! refuses the commitment, a window that ended still refuses proofs).
//!
//! ## Receipt retention
//! A receipt is stored in full for `ReceiptRetention` blocks after its job closes (long enough
//! to fetch it as a receipt file, `verity-node receipt fetch`, which then verifies offline for
//! ever); then `on_initialize` replaces it by `blake2_256` of its SCALE encoding in
//! [`ReceiptDigests`]. Closed jobs wait in a first-in first-out queue ([`Closed`]) in closing
//! order, so the hook prunes from its head, at most `MaxJobsPerBlock` per block and only with
//! the budget the due jobs left. What a job
//! leaves on chain for ever is therefore 32 bytes of digest (plus its key), whatever the size of
//! its output: the storage the submitter's transaction fee pays for, instead of a receipt of up
//! to `MaxOutputBytes` kept for free.
//!
//! ## Assignment and its randomness
//! The seed is `blake2_256("verity/assign" ‖ parent hash ‖ job id ‖ attempt)`. The requester
//! cannot change it once the job is submitted, and the block author cannot change the parent
//! hash. Its limits: a requester who knows the parent hash and the next job id can predict the
//! assignment for the next block and submit only when it favours an operator of their choice
//! (a "free" re-roll costs waiting one block and the risk that another job takes the id), and a
//! block author can reorder submissions within its block. Assignment spreads load and income in
//! proportion to stake; it is not what makes results trustworthy: every committed result is
//! open to fraud proofs by any watcher, whoever the operator is.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;

#[cfg(feature = "runtime-benchmarks")]
pub mod benchmarking;
mod currency;
pub mod weights;

pub use weights::WeightInfo;

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use core::marker::PhantomData;
use frame_support::pallet_prelude::*;
use frame_system::pallet_prelude::BlockNumberFor;
use pallet_verity_models::BalanceOf;
use scale_info::TypeInfo;
use sp_runtime::traits::{Saturating, Zero};
use verity_primitives::{lm::sample::SamplingParams, Hash, ModelId};

/// A job's number, assigned in submission order.
pub type JobId = u64;

/// `MaxOps + 1`: the number of step hashes of the longest model's trace.
pub struct MaxStepHashes<T>(PhantomData<T>);
impl<T: pallet_verity_models::Config> Get<u32> for MaxStepHashes<T> {
	fn get() -> u32 {
		<T as pallet_verity_models::Config>::MaxOps::get().saturating_add(1)
	}
}

/// A chain's execution deadline and challenge window, in blocks (genesis [`ChainTiming`]).
#[derive(
	Clone,
	Copy,
	PartialEq,
	Eq,
	Debug,
	Encode,
	Decode,
	DecodeWithMemTracking,
	TypeInfo,
	MaxEncodedLen,
	serde::Serialize,
	serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub struct Timing<B> {
	/// Blocks the assigned operator has to commit.
	pub execution_deadline: B,
	/// Blocks during which a commitment can be disputed.
	pub challenge_window: B,
}

/// Where a job is in its lifecycle.
#[derive(
	CloneNoBound, PartialEqNoBound, EqNoBound, DebugNoBound, Encode, Decode, TypeInfo, MaxEncodedLen,
)]
#[scale_info(skip_type_params(T))]
pub enum JobStatus<T: Config> {
	/// Waiting for the assigned operator's commitment until `deadline` (exclusive).
	Assigned { deadline: BlockNumberFor<T> },
	/// Committed; open to fraud proofs until `window_end` (exclusive), final then.
	Committed {
		output: BoundedVec<u8, <T as pallet_verity_models::Config>::MaxOutputBytes>,
		trace_root: Hash,
		committed_at: BlockNumberFor<T>,
		window_end: BlockNumberFor<T>,
	},
}

/// An open job.
#[derive(
	CloneNoBound, PartialEqNoBound, EqNoBound, DebugNoBound, Encode, Decode, TypeInfo, MaxEncodedLen,
)]
#[scale_info(skip_type_params(T))]
pub struct Job<T: Config> {
	pub requester: T::AccountId,
	pub model: ModelId,
	/// The int8 input tensor (pruned when the job closes).
	pub input: BoundedVec<u8, <T as pallet_verity_models::Config>::MaxInputBytes>,
	/// Held from the requester; the operator's `price` is paid from it.
	pub max_fee: BalanceOf<T>,
	/// The operator of the current attempt.
	pub operator: T::AccountId,
	/// The operator's price when assigned.
	pub price: BalanceOf<T>,
	/// Locked from the operator's stake.
	pub collateral: BalanceOf<T>,
	/// Operators that missed their deadline for this job.
	pub missed: BoundedVec<T::AccountId, T::MaxAttempts>,
	pub submitted_at: BlockNumberFor<T>,
	pub status: JobStatus<T>,
}

/// What a generation job adds to its [`Job`] (whose `input` is empty): the request, and its
/// price per position. The committed output tokens are the job's `output` (`u32`
/// little-endian each) and its job root the job's `trace_root`.
#[derive(
	CloneNoBound, PartialEqNoBound, EqNoBound, DebugNoBound, Encode, Decode, TypeInfo, MaxEncodedLen,
)]
#[scale_info(skip_type_params(T))]
pub struct Generation<T: Config> {
	/// The prompt's token ids (pruned when the job closes).
	pub prompt: BoundedVec<u32, T::MaxContext>,
	/// The most tokens to generate.
	pub max_new_tokens: u32,
	/// How tokens are selected (greedy by default) and the seed.
	pub params: SamplingParams,
	/// The assigned operator's price per position (prompt and generated tokens); the job's
	/// `price` is it times the positions paid for (`prompt + max_new_tokens` when assigned,
	/// `prompt + tokens` once committed).
	pub price_per_token: BalanceOf<T>,
	/// Where the job is queued instead of its window end: games of the dispute were still
	/// open when the window ended, so finality waits for them.
	pub settles_at: Option<BlockNumberFor<T>>,
}

/// What the jobs pallet asks of the pallet that runs generation disputes (the disputes pallet;
/// `()` for none).
pub trait GenerationDisputes {
	/// Games against the job's commitment that are not settled: a job does not become final
	/// while there are any.
	fn open_games(job: JobId) -> u32;
	/// The job closed: drop what the disputes kept only for it (its revealed roots).
	fn job_closed(job: JobId);
}

impl GenerationDisputes for () {
	fn open_games(_: JobId) -> u32 {
		0
	}
	fn job_closed(_: JobId) {}
}

/// How a job closed.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum Outcome<AccountId> {
	/// The challenge window passed without a fraud proof; the operator was paid.
	Final,
	/// `prover` proved that step `step` of the committed trace is wrong; the requester was
	/// refunded and the operator slashed.
	Fraud { prover: AccountId, step: u32 },
	/// No operator committed in time on the last attempt; the requester was refunded.
	Expired,
	/// A generation's commitment lost its dispute game to `prover` (the requester was refunded
	/// and the operator slashed): at step `op` of `position` (a one-step proof), at
	/// `position` without `op` (the operator did not reveal the position, or revealed a
	/// `Select` step that is not its committed token), or, without a position, because the
	/// operator did not reveal its position roots.
	GenerationFraud { prover: AccountId, position: Option<u32>, op: Option<u32> },
}

/// What stays on-chain after a job closes.
#[derive(
	CloneNoBound, PartialEqNoBound, EqNoBound, DebugNoBound, Encode, Decode, TypeInfo, MaxEncodedLen,
)]
#[scale_info(skip_type_params(T))]
pub struct Receipt<T: Config> {
	pub requester: T::AccountId,
	pub model: ModelId,
	/// The operator of the last attempt.
	pub operator: T::AccountId,
	/// The output (empty unless final).
	pub output: BoundedVec<u8, <T as pallet_verity_models::Config>::MaxOutputBytes>,
	/// The committed trace root (`None` unless final).
	pub trace_root: Option<Hash>,
	/// Paid to the operator (zero unless final).
	pub fee: BalanceOf<T>,
	/// The block in which the job closed.
	pub closed_at: BlockNumberFor<T>,
	pub outcome: Outcome<T::AccountId>,
}

/// Why a job cannot be challenged (see [`Pallet::challengeable`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NotChallengeable {
	/// No such job.
	Unknown,
	/// The job has no commitment yet.
	NotCommitted,
	/// The challenge window has passed (the job is final).
	WindowClosed,
	/// Fraud was already proven for this job.
	AlreadySlashed,
	/// A generation job: disputed with the dispute game, not a one-step fraud proof (or the
	/// reverse).
	WrongKind,
	/// The job expired without a commitment.
	Expired,
	/// The job closed so long ago that only its receipt's digest is left.
	Pruned,
}

#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use frame_system::pallet_prelude::*;

	/// The layout version of this pallet's storage: a migration that changes the layout bumps it
	/// (and checks it in `pre_upgrade`/`post_upgrade`).
	const STORAGE_VERSION: StorageVersion = StorageVersion::new(0);

	#[pallet::pallet]
	#[pallet::storage_version(STORAGE_VERSION)]
	pub struct Pallet<T>(_);

	#[pallet::config]
	pub trait Config:
		frame_system::Config
		+ pallet_verity_operators::Config
		+ pallet_verity_models::Config<RuntimeHoldReason: From<HoldReason>>
	{
		/// Blocks the assigned operator has to commit, unless genesis chose [`ChainTiming`]
		/// (see [`Pallet::execution_deadline`]).
		#[pallet::constant]
		type ExecutionDeadline: Get<BlockNumberFor<Self>>;
		/// Blocks during which a commitment can be disputed, unless genesis chose
		/// [`ChainTiming`] (see [`Pallet::challenge_window`]).
		#[pallet::constant]
		type ChallengeWindow: Get<BlockNumberFor<Self>>;
		/// Operators tried per job before the fee is refunded.
		#[pallet::constant]
		type MaxAttempts: Get<u32>;
		/// The least collateral locked from the operator's stake per job (slashed on proven
		/// fraud); see [`Pallet::collateral_for`].
		#[pallet::constant]
		type JobCollateral: Get<BalanceOf<Self>>;
		/// A job's collateral is at least `CollateralRatio × max_fee`, so that it grows with
		/// what the job is worth (the fee an operator can gain is at most `max_fee`); see
		/// "Attacks and what they cost" in `docs/PROTOCOL.md` for the deterrence inequality.
		#[pallet::constant]
		type CollateralRatio: Get<u32>;
		/// Slashed from an operator that misses a deadline (at most `JobCollateral`).
		#[pallet::constant]
		type MissedDeadlinePenalty: Get<BalanceOf<Self>>;
		/// Deadlines plus window ends queued per block, and receipts pruned per block at most.
		#[pallet::constant]
		type MaxJobsPerBlock: Get<u32>;
		/// The most weight `on_initialize` spends per block on due jobs and receipt pruning;
		/// what does not fit waits in the [`Backlog`] (attack 10: a block's due jobs, each
		/// charged with its own accounts, may weigh more than a block).
		#[pallet::constant]
		type MaxHookWeight: Get<Weight>;
		/// Blocks a closed job's full [`Receipt`] is kept; then only its digest
		/// ([`ReceiptDigests`]).
		#[pallet::constant]
		type ReceiptRetention: Get<BlockNumberFor<Self>>;
		/// How many blocks later a deadline or window end may be moved when its block's queue
		/// is full.
		#[pallet::constant]
		type ScheduleSpread: Get<u32>;
		/// Largest number of positions of a generation job (prompt and generated tokens
		/// together): bounds the stored prompt and the position roots of a dispute. A job's
		/// new tokens are also bounded by `MaxOutputBytes / 4` (they are its output).
		#[pallet::constant]
		type MaxContext: Get<u32>;
		/// The dispute game of generation jobs.
		type Disputes: GenerationDisputes;
		/// Weights of this pallet's calls and hook.
		type WeightInfo: WeightInfo;
	}

	/// Reasons for which this pallet holds funds.
	#[pallet::composite_enum]
	pub enum HoldReason {
		/// A requester's `max_fee` for an open job.
		#[codec(index = 0)]
		Fee,
	}

	/// The id of the next job.
	#[pallet::storage]
	pub type NextJobId<T> = StorageValue<_, JobId, ValueQuery>;

	/// Open jobs.
	#[pallet::storage]
	pub type Jobs<T: Config> = StorageMap<_, Twox64Concat, JobId, Job<T>, OptionQuery>;

	/// The committed step hashes `[h_0, ..., h_n]` of committed jobs (pruned when they close).
	#[pallet::storage]
	pub type StepHashes<T: Config> =
		StorageMap<_, Twox64Concat, JobId, BoundedVec<Hash, MaxStepHashes<T>>, OptionQuery>;

	/// The request of each open generation job.
	#[pallet::storage]
	pub type Generations<T: Config> =
		StorageMap<_, Twox64Concat, JobId, Generation<T>, OptionQuery>;

	/// The open jobs assigned to each operator, with their deadlines: what an operator's agent
	/// reads instead of every open job (attack 11). An entry stays from the assignment until the
	/// job closes or misses its deadline (not removed at the commit, which stays as cheap as it
	/// was: a committed job's deadline has passed or is near, and the agent skips entries whose
	/// deadline has passed without reading the job).
	#[pallet::storage]
	pub type Assignments<T: Config> = StorageDoubleMap<
		_,
		Blake2_128Concat,
		T::AccountId,
		Twox64Concat,
		JobId,
		BlockNumberFor<T>,
		OptionQuery,
	>;

	/// Jobs with a deadline or window end at a block.
	#[pallet::storage]
	pub type Queue<T: Config> = StorageMap<
		_,
		Twox64Concat,
		BlockNumberFor<T>,
		BoundedVec<JobId, T::MaxJobsPerBlock>,
		ValueQuery,
	>;

	/// Where handling the due queues stopped when a block's [`Config::MaxHookWeight`] ran out:
	/// the first block whose queue is not fully handled and how many of its entries are.
	/// Absent: every queue up to the current block is handled.
	#[pallet::storage]
	pub type Backlog<T: Config> = StorageValue<_, (BlockNumberFor<T>, u32), OptionQuery>;

	/// Receipts of jobs closed less than `ReceiptRetention` blocks ago.
	#[pallet::storage]
	pub type Receipts<T: Config> = StorageMap<_, Twox64Concat, JobId, Receipt<T>, OptionQuery>;

	/// `blake2_256` of the SCALE encoding of each pruned receipt (what stays for ever).
	#[pallet::storage]
	pub type ReceiptDigests<T: Config> = StorageMap<_, Twox64Concat, JobId, Hash, OptionQuery>;

	/// Jobs whose receipts are still stored, in closing order: position → job (a queue whose
	/// bounds are [`ClosedBounds`]).
	#[pallet::storage]
	pub type Closed<T: Config> = StorageMap<_, Twox64Concat, u64, JobId, OptionQuery>;

	/// `(head, tail)` of [`Closed`]: its entries are at positions `head..tail`.
	#[pallet::storage]
	pub type ClosedBounds<T: Config> = StorageValue<_, (u64, u64), ValueQuery>;

	/// This chain's execution deadline and challenge window, chosen at genesis; absent: the
	/// `ExecutionDeadline` and `ChallengeWindow` constants. A window long enough that keeping a
	/// valid fraud proof out of every block of it costs more than cheating can gain is what
	/// makes censorship unprofitable (docs/PROTOCOL.md, "Attacks and what they cost"): the
	/// presets keep the constants' short times for `--dev` only.
	#[pallet::storage]
	pub type ChainTiming<T: Config> = StorageValue<_, Timing<BlockNumberFor<T>>, OptionQuery>;

	/// Genesis: the chain's [`Timing`] (`None`: the constants).
	#[pallet::genesis_config]
	#[derive(frame_support::DefaultNoBound)]
	pub struct GenesisConfig<T: Config> {
		pub timing: Option<Timing<BlockNumberFor<T>>>,
	}

	#[pallet::genesis_build]
	impl<T: Config> BuildGenesisConfig for GenesisConfig<T> {
		fn build(&self) {
			if let Some(timing) = &self.timing {
				if let Err(e) = Pallet::<T>::check_timing(timing) {
					panic!("genesis timing {timing:?}: {e}");
				}
				ChainTiming::<T>::put(timing);
			}
		}
	}

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// A job was submitted.
		Submitted { job: JobId, requester: T::AccountId, model: ModelId, max_fee: BalanceOf<T> },
		/// A job was assigned to an operator (on submission or after a missed deadline).
		Assigned {
			job: JobId,
			operator: T::AccountId,
			price: BalanceOf<T>,
			deadline: BlockNumberFor<T>,
		},
		/// The operator committed its result; disputable until `window_end`.
		Committed {
			job: JobId,
			operator: T::AccountId,
			trace_root: Hash,
			window_end: BlockNumberFor<T>,
		},
		/// The operator missed the deadline and was penalised.
		DeadlineMissed { job: JobId, operator: T::AccountId, penalty: BalanceOf<T> },
		/// The job is final; the operator was paid `fee`.
		Finalized { job: JobId, operator: T::AccountId, fee: BalanceOf<T> },
		/// The job expired without a commitment; the requester got `refund` back.
		Expired { job: JobId, requester: T::AccountId, refund: BalanceOf<T> },
		/// Fraud was proven; the requester got `refund` back.
		Fraudulent { job: JobId, requester: T::AccountId, refund: BalanceOf<T> },
	}

	#[pallet::error]
	pub enum Error<T> {
		/// The model is unknown or retired.
		ModelNotActive,
		/// The input does not have the model's input element count.
		InputSizeMismatch,
		/// The requester cannot hold `max_fee`.
		InsufficientBalance,
		/// No operator serves the model at a price within `max_fee` with enough free stake.
		NoOperatorAvailable,
		/// The deadline queues of the next `ScheduleSpread` blocks are full; try again later.
		QueueFull,
		/// No such open job.
		UnknownJob,
		/// Only the assigned operator can commit.
		NotAssignedOperator,
		/// The job is already committed.
		AlreadyCommitted,
		/// The execution deadline has passed.
		DeadlinePassed,
		/// The output does not have the model's output element count.
		OutputSizeMismatch,
		/// The number of step hashes is not the model's op count + 1.
		WrongStepCount,
		/// `h_0` is not the hash of the job's input.
		InputHashMismatch,
		/// The last step hash is not the hash of the output.
		OutputHashMismatch,
		/// The model is a text model: submit a generation (`submit_generation`).
		NotAClassifier,
		/// The model is a classifier: submit an input tensor (`submit`).
		NotATextModel,
		/// A classifier job's commitment for a generation job, or the reverse.
		WrongJobKind,
		/// The prompt has no token.
		EmptyPrompt,
		/// The prompt has more than `MaxContext` tokens.
		PromptTooLong,
		/// A prompt or output token is not below the model's vocabulary size.
		TokenOutOfVocab,
		/// `max_new_tokens` is 0, or more than [`Pallet::max_new_tokens`].
		BadMaxNewTokens,
		/// The prompt and `max_new_tokens` need more positions than the model's context.
		ContextExceeded,
		/// No output token, or more than the job's `max_new_tokens`.
		WrongTokenCount,
		/// An end-of-sequence token before the last output token.
		EarlyStop,
		/// Fewer than `max_new_tokens` output tokens and the last is not an end-of-sequence
		/// token.
		NotStopped,
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		fn on_initialize(n: BlockNumberFor<T>) -> Weight {
			Self::hook(n, T::MaxHookWeight::get())
		}

		fn integrity_test() {
			let constants = Timing {
				execution_deadline: T::ExecutionDeadline::get(),
				challenge_window: T::ChallengeWindow::get(),
			};
			if let Err(e) = Pallet::<T>::check_timing(&constants) {
				panic!("ExecutionDeadline and ChallengeWindow: {e}");
			}
			assert!(T::MaxAttempts::get() >= 1 && T::MaxJobsPerBlock::get() >= 1);
			// The hook must make progress: room for one job of each kind after a second queue.
			assert!(
				Pallet::<T>::admits_next(
					&DueWork { queues: 1, ..Default::default() },
					T::MaxHookWeight::get()
				),
				"MaxHookWeight must admit one job of each kind"
			);
			assert!(
				T::ReceiptRetention::get() >= 1u32.into(),
				"a receipt must be kept long enough to be fetched"
			);
			assert!(T::CollateralRatio::get() >= 1, "collateral must exceed the fee at stake");
			assert!(
				T::MissedDeadlinePenalty::get() <= T::JobCollateral::get(),
				"the missed-deadline penalty must be covered by the job's collateral"
			);
			assert!(
				<T as pallet_verity_operators::Config>::MinBond::get() >= T::JobCollateral::get(),
				"a minimally bonded operator must be able to take a job"
			);
		}

		#[cfg(feature = "try-runtime")]
		fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Submit a job: run `model` on `input` (int8 bytes, the model's input element count)
		/// for at most `max_fee`, which is held until the job closes.
		///
		/// The dispatch origin must be _Signed_ (the requester).
		///
		/// Errors: `ModelNotActive` (unknown or retired), `NotAClassifier`, `InputSizeMismatch`,
		/// `NoOperatorAvailable`
		/// (no unjailed server at a price `<= max_fee` with free stake for the job's collateral,
		/// [`Pallet::collateral_for`]`(max_fee)`),
		/// `InsufficientBalance` for `max_fee`, `QueueFull` if no block within `ScheduleSpread` of the
		/// deadline has room. Emits `Submitted` and `Assigned`.
		///
		/// Complexity: `O(i + s)` in the input length and the model's servers (bounded by
		/// `MaxServersPerModel`; the weight is refunded to the servers actually examined).
		#[pallet::call_index(0)]
		#[pallet::weight(<T as Config>::WeightInfo::submit(
			verity_primitives::len_u32(input.len()),
			<T as pallet_verity_operators::Config>::MaxServersPerModel::get(),
		))]
		pub fn submit(
			origin: OriginFor<T>,
			model: ModelId,
			input: Vec<u8>,
			#[pallet::compact] max_fee: BalanceOf<T>,
		) -> DispatchResultWithPostInfo {
			let requester = ensure_signed(origin)?;
			let record = pallet_verity_models::Pallet::<T>::active_model(&model)
				.ok_or(Error::<T>::ModelNotActive)?;
			ensure!(
				record.kind == pallet_verity_models::ModelKind::Classifier,
				Error::<T>::NotAClassifier
			);
			let input_len = verity_primitives::len_u32(input.len());
			ensure!(input_len == record.input_elements, Error::<T>::InputSizeMismatch);
			let input: BoundedVec<_, _> =
				input.try_into().map_err(|_| Error::<T>::InputSizeMismatch)?;
			let (_, examined) = Self::open(requester, model, input, max_fee, None)?;
			Ok(Some(<T as Config>::WeightInfo::submit(input_len, examined)).into())
		}

		/// Submit a generation job: `model` (a text model) continues `prompt` (token ids) by at
		/// most `max_new_tokens` tokens selected with `params` (greedy:
		/// `SamplingParams::GREEDY`), for at most `max_fee`, which is held until the job
		/// closes. An operator serving the model at a price per position `<= max_fee /
		/// (prompt + max_new_tokens)` is assigned; it is paid its price times `prompt +` the
		/// tokens it generated.
		///
		/// The dispatch origin must be _Signed_ (the requester).
		///
		/// Errors: `ModelNotActive`, `NotATextModel`, `EmptyPrompt`, `PromptTooLong`
		/// (`MaxContext`), `BadMaxNewTokens` (0 or more than [`Pallet::max_new_tokens`]),
		/// `TokenOutOfVocab`, `ContextExceeded` (prompt + max_new_tokens - 1 positions beyond
		/// the model's context), `NoOperatorAvailable`, `InsufficientBalance`, `QueueFull`.
		/// Emits `Submitted` and `Assigned`.
		///
		/// Complexity: `O(p + s)` in the prompt's tokens and the model's servers.
		#[pallet::call_index(2)]
		#[pallet::weight(<T as Config>::WeightInfo::submit_generation(
			verity_primitives::len_u32(prompt.len()),
			<T as pallet_verity_operators::Config>::MaxServersPerModel::get(),
		))]
		pub fn submit_generation(
			origin: OriginFor<T>,
			model: ModelId,
			prompt: Vec<u32>,
			max_new_tokens: u32,
			params: SamplingParams,
			#[pallet::compact] max_fee: BalanceOf<T>,
		) -> DispatchResultWithPostInfo {
			let requester = ensure_signed(origin)?;
			let record = pallet_verity_models::Pallet::<T>::active_model(&model)
				.ok_or(Error::<T>::ModelNotActive)?;
			let limits = record.kind.text_limits().ok_or(Error::<T>::NotATextModel)?;
			let prompt_len = verity_primitives::len_u32(prompt.len());
			ensure!(max_new_tokens <= Self::max_new_tokens(), Error::<T>::BadMaxNewTokens);
			let prompt: BoundedVec<u32, T::MaxContext> =
				prompt.try_into().map_err(|_| Error::<T>::PromptTooLong)?;
			use verity_primitives::lm::job::{check_request, RequestError};
			check_request(&limits, &prompt, max_new_tokens).map_err(|e| match e {
				RequestError::EmptyPrompt => Error::<T>::EmptyPrompt,
				RequestError::NoNewTokens => Error::<T>::BadMaxNewTokens,
				RequestError::TokenOutOfVocab => Error::<T>::TokenOutOfVocab,
				RequestError::ContextExceeded => Error::<T>::ContextExceeded,
			})?;
			let units = prompt_len.saturating_add(max_new_tokens);
			let ((id, price_per_token), examined) =
				Self::open(requester, model, Default::default(), max_fee, Some(units))?;
			Generations::<T>::insert(
				id,
				Generation { prompt, max_new_tokens, params, price_per_token, settles_at: None },
			);
			Ok(Some(<T as Config>::WeightInfo::submit_generation(prompt_len, examined)).into())
		}

		/// Commit a generation: the output tokens and the job root (the Merkle root over the
		/// position roots, `verity_primitives::lm::trace::job_root`). Opens the challenge window
		/// (and its dispute game, in the disputes pallet); the position roots stay off-chain
		/// unless a challenge asks for them. 4 bytes of chain data per token plus a constant.
		///
		/// The dispatch origin must be _Signed_ by the job's assigned operator.
		///
		/// Errors: `UnknownJob`, `WrongJobKind`, `NotAssignedOperator`, `AlreadyCommitted`,
		/// `DeadlinePassed`, `ModelNotActive`, `WrongTokenCount` (none, or more than
		/// `max_new_tokens`), `TokenOutOfVocab`, `EarlyStop` (an end-of-sequence token before
		/// the last), `NotStopped` (fewer than `max_new_tokens` and no end-of-sequence token
		/// last), `QueueFull`. Emits `Committed`.
		///
		/// Class: _Operational_, like `commit`.
		///
		/// Complexity: `O(n)` in the tokens.
		#[pallet::call_index(3)]
		#[pallet::weight((
			<T as Config>::WeightInfo::commit_generation(verity_primitives::len_u32(tokens.len())),
			DispatchClass::Operational,
		))]
		pub fn commit_generation(
			origin: OriginFor<T>,
			job: JobId,
			tokens: Vec<u32>,
			job_root: Hash,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let mut record = Jobs::<T>::get(job).ok_or(Error::<T>::UnknownJob)?;
			let generation = Generations::<T>::get(job).ok_or(Error::<T>::WrongJobKind)?;
			ensure!(record.operator == who, Error::<T>::NotAssignedOperator);
			let JobStatus::Assigned { deadline } = record.status else {
				return Err(Error::<T>::AlreadyCommitted.into());
			};
			let now = frame_system::Pallet::<T>::block_number();
			ensure!(now < deadline, Error::<T>::DeadlinePassed);
			let limits = pallet_verity_models::Models::<T>::get(record.model)
				.and_then(|m| m.kind.text_limits())
				.ok_or(Error::<T>::ModelNotActive)?;
			use verity_primitives::lm::job::{check_output, OutputError};
			check_output(&limits, generation.max_new_tokens, &tokens).map_err(|e| match e {
				OutputError::WrongTokenCount => Error::<T>::WrongTokenCount,
				OutputError::TokenOutOfVocab => Error::<T>::TokenOutOfVocab,
				OutputError::EarlyStop => Error::<T>::EarlyStop,
				OutputError::NotStopped => Error::<T>::NotStopped,
			})?;
			let bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
			let output: BoundedVec<_, _> =
				bytes.try_into().map_err(|_| Error::<T>::WrongTokenCount)?;
			let window_end = Self::schedule(now.saturating_add(Self::challenge_window()), job)?;
			let units = verity_primitives::len_u32(generation.prompt.len())
				.saturating_add(verity_primitives::len_u32(tokens.len()));
			record.price = generation.price_per_token.saturating_mul(units.into());
			record.status = JobStatus::Committed {
				output,
				trace_root: job_root,
				committed_at: now,
				window_end,
			};
			Jobs::<T>::insert(job, record);
			Self::deposit_event(Event::Committed {
				job,
				operator: who,
				trace_root: job_root,
				window_end,
			});
			Ok(())
		}

		/// Commit the result of an assigned job: the output tensor and the step hashes
		/// `[h_0, ..., h_n]`. Opens the challenge window.
		///
		/// The dispatch origin must be _Signed_ by the job's assigned operator.
		///
		/// Errors: `UnknownJob`, `WrongJobKind` (a generation job), `NotAssignedOperator`,
		/// `AlreadyCommitted`, `DeadlinePassed`, `ModelNotActive`, `OutputSizeMismatch`,
		/// `WrongStepCount` (not `n + 1` hashes), `InputHashMismatch` (`h_0`),
		/// `OutputHashMismatch` (`h_n`), `QueueFull`. Emits `Committed`.
		///
		/// Class: _Operational_ (the block's reserve): junk transactions cannot keep a commit out
		/// until its deadline passes (docs/PROTOCOL.md, "Attacks and what they cost", row 1).
		///
		/// Complexity: `O(o + h)` in the output length and the number of step hashes (the
		/// trace root is computed on-chain).
		#[pallet::call_index(1)]
		#[pallet::weight((<T as Config>::WeightInfo::commit(
			verity_primitives::len_u32(output.len()),
			verity_primitives::len_u32(step_hashes.len()),
		), DispatchClass::Operational))]
		pub fn commit(
			origin: OriginFor<T>,
			job: JobId,
			output: Vec<u8>,
			step_hashes: Vec<Hash>,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let mut record = Jobs::<T>::get(job).ok_or(Error::<T>::UnknownJob)?;
			ensure!(!Generations::<T>::contains_key(job), Error::<T>::WrongJobKind);
			ensure!(record.operator == who, Error::<T>::NotAssignedOperator);
			let JobStatus::Assigned { deadline } = record.status else {
				return Err(Error::<T>::AlreadyCommitted.into());
			};
			let now = frame_system::Pallet::<T>::block_number();
			ensure!(now < deadline, Error::<T>::DeadlinePassed);
			let model = pallet_verity_models::Models::<T>::get(record.model)
				.ok_or(Error::<T>::ModelNotActive)?;
			ensure!(
				u32::try_from(output.len()).ok() == Some(model.output_elements),
				Error::<T>::OutputSizeMismatch
			);
			ensure!(
				u32::try_from(step_hashes.len()).ok() == Some(model.num_ops.saturating_add(1)),
				Error::<T>::WrongStepCount
			);
			let h0 = verity_primitives::step_hash(0, &model.input_shape, &record.input);
			ensure!(step_hashes.first() == Some(&h0), Error::<T>::InputHashMismatch);
			let hn = verity_primitives::step_hash(model.num_ops, &model.output_shape, &output);
			ensure!(step_hashes.last() == Some(&hn), Error::<T>::OutputHashMismatch);
			let trace_root = verity_primitives::trace_root(&step_hashes);
			let hashes: BoundedVec<Hash, MaxStepHashes<T>> =
				step_hashes.try_into().map_err(|_| Error::<T>::WrongStepCount)?;
			let output: BoundedVec<_, _> =
				output.try_into().map_err(|_| Error::<T>::OutputSizeMismatch)?;
			let window_end = Self::schedule(now.saturating_add(Self::challenge_window()), job)?;
			StepHashes::<T>::insert(job, hashes);
			record.status =
				JobStatus::Committed { output, trace_root, committed_at: now, window_end };
			Jobs::<T>::insert(job, record);
			Self::deposit_event(Event::Committed { job, operator: who, trace_root, window_end });
			Ok(())
		}
	}

	#[pallet::view_functions]
	impl<T: Config> Pallet<T> {
		/// An open job.
		pub fn job(job: JobId) -> Option<Job<T>> {
			Jobs::<T>::get(job)
		}

		/// A closed job's receipt (`None` once pruned, see [`ReceiptDigests`]).
		pub fn receipt(job: JobId) -> Option<Receipt<T>> {
			Receipts::<T>::get(job)
		}

		/// The digest of a closed job's receipt, stored or pruned:
		/// `blake2_256(SCALE(receipt))`.
		pub fn receipt_digest(job: JobId) -> Option<Hash> {
			Receipts::<T>::get(job)
				.map(|r| Pallet::<T>::digest(&r))
				.or_else(|| ReceiptDigests::<T>::get(job))
		}

		/// The committed step hashes of a job inside its challenge window (empty otherwise).
		pub fn step_hashes(job: JobId) -> Vec<Hash> {
			StepHashes::<T>::get(job).map(|h| h.into_inner()).unwrap_or_default()
		}
	}
}

/// What the jobs hook has handled in a block so far (see [`Pallet::due_weight`]).
#[derive(Clone, Copy, Default, Debug)]
pub struct DueWork {
	/// Window ends: jobs finalized.
	pub finalized: u32,
	/// Missed deadlines.
	pub missed: u32,
	/// Operators a missed deadline's penalty made stop serving.
	pub stopped: u32,
	/// Queue entries of jobs that had moved on (one read each).
	pub stale: u64,
	/// Queues read and removed beyond the first (which [`Pallet::hook_weight`] counts).
	pub queues: u64,
	/// Generations whose finality waits for open games (each: the job, its generation, the
	/// games count and up to `ScheduleSpread + 1` queues read, the generation and a queue
	/// written).
	pub postponed: u64,
}

/// What `on_initialize` did with one queued job id.
enum Due {
	Finalized,
	/// The deadline passed; whether the penalty ended the operator's serving declarations.
	Missed {
		stopped_serving: bool,
	},
	/// A generation's window ended with games open: queued again a reply period later.
	Postponed,
	Stale,
}

impl<T: Config> Pallet<T> {
	/// Open a job: hold `max_fee`, assign an operator (its price `<= max_fee`, or per position
	/// `<= max_fee / units` for a generation of `units` positions), lock the collateral,
	/// schedule the deadline, store the job. Returns the job id and the operator's price (per
	/// position for a generation), and the servers examined.
	fn open(
		requester: T::AccountId,
		model: ModelId,
		input: BoundedVec<u8, <T as pallet_verity_models::Config>::MaxInputBytes>,
		max_fee: BalanceOf<T>,
		units: Option<u32>,
	) -> Result<((JobId, BalanceOf<T>), u32), DispatchError> {
		let id = NextJobId::<T>::get();
		let now = frame_system::Pallet::<T>::block_number();
		let collateral = Self::collateral_for(max_fee);
		let (chosen, examined) = pallet_verity_operators::Pallet::<T>::select(
			&model,
			Self::price_bound(max_fee, units),
			collateral,
			&Self::seed(id, 0),
			&[],
		);
		let (operator, price) = chosen.ok_or(Error::<T>::NoOperatorAvailable)?;
		currency::hold_fee::<T>(&requester, max_fee)?;
		pallet_verity_operators::Pallet::<T>::lock_collateral(&operator, collateral)?;
		let deadline = Self::schedule(now.saturating_add(Self::execution_deadline()), id)?;
		let total = price.saturating_mul(units.unwrap_or(1).into());
		Jobs::<T>::insert(
			id,
			Job {
				requester: requester.clone(),
				model,
				input,
				max_fee,
				operator: operator.clone(),
				price: total,
				collateral,
				missed: Default::default(),
				submitted_at: now,
				status: JobStatus::Assigned { deadline },
			},
		);
		Assignments::<T>::insert(&operator, id, deadline);
		NextJobId::<T>::put(id.saturating_add(1));
		pallet_verity_models::Pallet::<T>::job_opened(&model);
		Self::deposit_event(Event::Submitted { job: id, requester, model, max_fee });
		Self::deposit_event(Event::Assigned { job: id, operator, price: total, deadline });
		Ok(((id, price), examined))
	}

	/// The highest price an operator may ask for a job: `max_fee`, or per position `max_fee /
	/// units` (rounded down, so that the price times `units` is at most `max_fee`).
	fn price_bound(max_fee: BalanceOf<T>, units: Option<u32>) -> BalanceOf<T> {
		match units {
			Some(u) => max_fee.checked_div(&u.max(1).into()).unwrap_or_default(),
			None => max_fee,
		}
	}

	/// The most tokens a generation job may ask for: `MaxOutputBytes / 4` (its output), and
	/// no more than `MaxContext`.
	pub fn max_new_tokens() -> u32 {
		(<T as pallet_verity_models::Config>::MaxOutputBytes::get() / 4).min(T::MaxContext::get())
	}

	/// The assignment seed of `job`'s attempt `attempt` (see the crate docs for its limits).
	pub fn seed(job: JobId, attempt: u32) -> [u8; 32] {
		let parent = frame_system::Pallet::<T>::parent_hash();
		sp_runtime::traits::BlakeTwo256::hash_of(&(b"verity/assign", parent, job, attempt)).into()
	}

	/// Put `job` into the queue of block `at`, or of the next block with room (at most
	/// `ScheduleSpread` blocks later). Returns the block.
	fn schedule(at: BlockNumberFor<T>, job: JobId) -> Result<BlockNumberFor<T>, Error<T>> {
		let mut block = at;
		for _ in 0..=T::ScheduleSpread::get() {
			if Queue::<T>::try_append(block, job).is_ok() {
				return Ok(block);
			}
			block = block.saturating_add(1u32.into());
		}
		Err(Error::<T>::QueueFull)
	}

	/// Storage accesses `(reads, writes)` one due job makes to keys of its own that the
	/// `on_initialize_*` benchmarks count once for all their jobs (they share one requester,
	/// one model and its servers): charged per job on top of the benchmark (attack 10 (b);
	/// `attack_10_the_hook_charges_each_jobs_own_accounts` measures the writes).
	/// - A finalization (`missed == false`): the requester's fee hold and account (payment and
	///   refund), the operator's account (paid) and record (collateral released), the model's
	///   record (its open jobs), one spare: 6 reads and 6 writes.
	/// - A missed deadline, the worse of re-assignment and expiry: the operator's record, stake
	///   hold and account and the total issuance (the penalty); the model's servers and every
	///   server's record (`select`), up to `ScheduleSpread + 1` queues and the next operator's
	///   record; or, on expiry, the requester's hold and account, the model's record, the
	///   receipt, its pruning-queue entry and bounds, the step hashes:
	///   `MaxServersPerModel + ScheduleSpread + 10` reads and 12 writes.
	pub fn own_accesses(missed: bool) -> (u64, u64) {
		if missed {
			let servers = <T as pallet_verity_operators::Config>::MaxServersPerModel::get();
			let reads = u64::from(servers)
				.saturating_add(T::ScheduleSpread::get().into())
				.saturating_add(10);
			(reads, 12)
		} else {
			(6, 6)
		}
	}

	/// Weight of handling `finalized` window ends and `missed` deadlines: each path
	/// benchmarked alone at its worst case and charged only when it ran (with its fixed part),
	/// plus each job's own accesses ([`Self::own_accesses`]), plus reading the backlog and
	/// reading and removing one queue (a block with nothing due pays only that). Stale queue
	/// entries, further queues and operators that stop serving are added by the caller.
	pub fn hook_weight(finalized: u32, missed: u32) -> Weight {
		let part = |n: u32, weight: fn(u32) -> Weight, missed: bool| {
			if n == 0 {
				return Weight::zero();
			}
			let (reads, writes) = Self::own_accesses(missed);
			weight(n).saturating_add(
				T::DbWeight::get()
					.reads_writes(reads.saturating_mul(n.into()), writes.saturating_mul(n.into())),
			)
		};
		T::DbWeight::get()
			.reads_writes(2, 1)
			.saturating_add(part(
				finalized,
				<T as Config>::WeightInfo::on_initialize_finalized,
				false,
			))
			.saturating_add(part(missed, <T as Config>::WeightInfo::on_initialize_missed, true))
	}

	/// The whole hook at block `n` within `budget`: due jobs first, then receipt pruning with
	/// what is left. Returns the weight spent, at most `budget` (the due jobs stop with room
	/// for the backlog's write and the pruning's fixed part, see [`Self::admits_next`]).
	pub fn hook(n: BlockNumberFor<T>, budget: Weight) -> Weight {
		let due = Self::process_queue(n, budget);
		let pruned = Self::prune_receipts(n, Self::prunable_within(budget.saturating_sub(due)));
		due.saturating_add(<T as Config>::WeightInfo::prune_receipts(pruned))
	}

	/// How many receipts `prune_receipts` may prune within `room` (at most `MaxJobsPerBlock`).
	fn prunable_within(room: Weight) -> u32 {
		let base = <T as Config>::WeightInfo::prune_receipts(0);
		let each = <T as Config>::WeightInfo::prune_receipts(1).saturating_sub(base);
		let left = room.saturating_sub(base);
		let fits = |left: u64, each: u64| left.checked_div(each).unwrap_or(u64::MAX);
		let n =
			fits(left.ref_time(), each.ref_time()).min(fits(left.proof_size(), each.proof_size()));
		if base.all_lte(room) {
			u32::try_from(n).unwrap_or(u32::MAX).min(T::MaxJobsPerBlock::get())
		} else {
			0
		}
	}

	/// The weight of the due jobs handled so far (see [`DueWork`]).
	pub fn due_weight(w: &DueWork) -> Weight {
		let db = T::DbWeight::get();
		let spread = u64::from(T::ScheduleSpread::get());
		Self::hook_weight(w.finalized, w.missed)
			.saturating_add(db.reads(w.stale))
			.saturating_add(db.reads_writes(
				w.postponed.saturating_mul(spread.saturating_add(4)),
				w.postponed.saturating_mul(2),
			))
			.saturating_add(db.reads_writes(w.queues, w.queues))
			.saturating_add(
				pallet_verity_operators::Pallet::<T>::stop_serving_weight()
					.saturating_mul(w.stopped.into()),
			)
	}

	/// Whether the hook, having done `w`, may handle one more due job within `budget`: room
	/// for the costliest one (one more of each path, with its fixed part, and its operator
	/// stopping service), plus what follows every run (the backlog's write and the pruning's
	/// fixed part). The one rule for how much a block handles.
	pub fn admits_next(w: &DueWork, budget: Weight) -> bool {
		let next = DueWork {
			finalized: w.finalized.saturating_add(1),
			missed: w.missed.saturating_add(1),
			stopped: w.stopped.saturating_add(1),
			postponed: w.postponed.saturating_add(1),
			..*w
		};
		Self::due_weight(&next)
			.saturating_add(T::DbWeight::get().writes(1))
			.saturating_add(<T as Config>::WeightInfo::prune_receipts(0))
			.all_lte(budget)
	}

	/// Handle the deadlines and window ends due by block `n`, oldest queue first (from the
	/// [`Backlog`], if any), while [`Self::admits_next`]; what does not fit waits in the
	/// backlog for the next block. A job handled late is handled as if at its due block in what
	/// the chain allows: its operator could not commit after the deadline, nor anyone dispute
	/// after the window end; but the payment, refund or re-assignment happens at the block that
	/// handles it (a re-assignment is seeded by that block's parent and gets a deadline from it).
	pub(crate) fn process_queue(n: BlockNumberFor<T>, budget: Weight) -> Weight {
		let backlog = Backlog::<T>::get();
		let (mut block, mut skip) = backlog.unwrap_or((n, 0));
		let mut done = DueWork::default();
		let mut left = None;
		'queues: while block <= n {
			let due = Queue::<T>::get(block);
			for (i, id) in due.iter().enumerate().skip(skip as usize) {
				if !Self::admits_next(&done, budget) {
					left = Some((block, verity_primitives::len_u32(i)));
					break 'queues;
				}
				match Self::handle_due(*id, n) {
					Due::Finalized => done.finalized.saturating_inc(),
					Due::Missed { stopped_serving } => {
						done.missed.saturating_inc();
						done.stopped.saturating_accrue(u32::from(stopped_serving));
					},
					Due::Stale => done.stale.saturating_inc(),
					Due::Postponed => done.postponed.saturating_inc(),
				}
			}
			Queue::<T>::remove(block);
			block = block.saturating_add(1u32.into());
			skip = 0;
			done.queues.saturating_inc();
			let next_queue = DueWork { queues: done.queues.saturating_add(1), ..done };
			if block <= n && !Self::admits_next(&next_queue, budget) {
				left = Some((block, 0));
				break;
			}
		}
		let moved = left != backlog;
		if moved {
			match left {
				Some(at) => Backlog::<T>::put(at),
				None => Backlog::<T>::kill(),
			}
		}
		Self::due_weight(&done).saturating_add(T::DbWeight::get().writes(u64::from(moved)))
	}

	fn handle_due(id: JobId, n: BlockNumberFor<T>) -> Due {
		let Some(job) = Jobs::<T>::get(id) else { return Due::Stale };
		match job.status {
			JobStatus::Assigned { deadline } if deadline <= n => {
				let serves = |who: &T::AccountId| {
					pallet_verity_operators::Operators::<T>::get(who)
						.is_some_and(|op| !op.models.is_empty())
				};
				let operator = job.operator.clone();
				let serving = serves(&operator);
				Self::miss(id, job, n);
				Due::Missed { stopped_serving: serving && !serves(&operator) }
			},
			JobStatus::Committed { window_end, .. } if window_end <= n => {
				let generation = Generations::<T>::get(id);
				let due = generation.as_ref().and_then(|g| g.settles_at).unwrap_or(window_end);
				if due > n {
					// A queue entry of the window end, left when the job was postponed.
					return Due::Stale;
				}
				if let Some(mut g) = generation.filter(|_| T::Disputes::open_games(id) > 0) {
					// Games are open: finality waits a reply period for them to settle. (If the
					// next `ScheduleSpread + 1` queues are all full, 34,816 due jobs on the
					// runtime, the job is final now and its open games end with their bonds
					// returned: filling them costs as many jobs' fees and collateral.)
					let at = n.saturating_add(Self::reply_period());
					if let Ok(at) = Self::schedule(at, id) {
						g.settles_at = Some(at);
						Generations::<T>::insert(id, g);
						return Due::Postponed;
					}
				}
				Self::finalize(id, job, n);
				Due::Finalized
			},
			_ => Due::Stale,
		}
	}

	/// Blocks an assigned operator has to commit: [`ChainTiming`]'s, else `ExecutionDeadline`.
	pub fn execution_deadline() -> BlockNumberFor<T> {
		ChainTiming::<T>::get().map_or_else(T::ExecutionDeadline::get, |t| t.execution_deadline)
	}

	/// Blocks a commitment can be disputed: [`ChainTiming`]'s, else `ChallengeWindow`.
	pub fn challenge_window() -> BlockNumberFor<T> {
		ChainTiming::<T>::get().map_or_else(T::ChallengeWindow::get, |t| t.challenge_window)
	}

	/// Blocks each side of a generation dispute has for each of its moves: a quarter of the
	/// challenge window (at least 1), so that the four moves after a challenge take at most one
	/// window (docs/PROTOCOL.md, "Generation disputes").
	pub fn reply_period() -> BlockNumberFor<T> {
		let w = Self::challenge_window();
		(w / 4u32.into()).max(1u32.into())
	}

	/// Whether `timing` is usable: a deadline that leaves a block to commit, a window, and both
	/// (with the schedule's spread twice) shorter than the unbonding period, so that collateral
	/// cannot leave before its job closes.
	pub fn check_timing(timing: &Timing<BlockNumberFor<T>>) -> Result<(), &'static str> {
		let spread: BlockNumberFor<T> = T::ScheduleSpread::get().into();
		if timing.execution_deadline < 2u32.into() {
			return Err("the execution deadline must leave a block to commit (at least 2)");
		}
		if timing.challenge_window.is_zero() {
			return Err("the challenge window must be positive");
		}
		let span = timing
			.execution_deadline
			.saturating_add(timing.challenge_window)
			.saturating_add(spread)
			.saturating_add(spread);
		if <T as pallet_verity_operators::Config>::UnbondingPeriod::get() <= span {
			return Err("the unbonding period must exceed deadline + window + 2 x spread");
		}
		Ok(())
	}

	/// The collateral of a job with this `max_fee`: `max(JobCollateral, CollateralRatio ×
	/// max_fee)` (saturating). An operator whose free stake does not cover it is not eligible.
	pub fn collateral_for(max_fee: BalanceOf<T>) -> BalanceOf<T> {
		T::JobCollateral::get().max(max_fee.saturating_mul(T::CollateralRatio::get().into()))
	}

	/// The window passed: pay the operator, refund the rest, unlock, prune, keep a receipt.
	fn finalize(id: JobId, job: Job<T>, n: BlockNumberFor<T>) {
		let JobStatus::Committed { output, trace_root, .. } = job.status else { return };
		let fee = currency::pay_fee::<T>(&job.requester, &job.operator, job.price);
		currency::refund_fee::<T>(&job.requester, job.max_fee.saturating_sub(fee));
		pallet_verity_operators::Pallet::<T>::release_collateral(&job.operator, job.collateral);
		StepHashes::<T>::remove(id);
		Self::forget_generation(id);
		Jobs::<T>::remove(id);
		Assignments::<T>::remove(&job.operator, id);
		pallet_verity_models::Pallet::<T>::job_closed(&job.model);
		Self::keep_receipt(
			id,
			Receipt {
				requester: job.requester,
				model: job.model,
				operator: job.operator.clone(),
				output,
				trace_root: Some(trace_root),
				fee,
				closed_at: n,
				outcome: Outcome::Final,
			},
		);
		Self::deposit_event(Event::Finalized { job: id, operator: job.operator, fee });
	}

	/// The deadline passed without a commitment: penalise, then re-assign or expire.
	fn miss(id: JobId, mut job: Job<T>, n: BlockNumberFor<T>) {
		Assignments::<T>::remove(&job.operator, id);
		pallet_verity_operators::Pallet::<T>::release_collateral(&job.operator, job.collateral);
		let penalty = T::MissedDeadlinePenalty::get().min(job.collateral);
		let credit = pallet_verity_operators::Pallet::<T>::slash(&job.operator, penalty);
		let taken = frame_support::traits::Imbalance::peek(&credit);
		pallet_verity_operators::Pallet::<T>::dispose(credit);
		Self::deposit_event(Event::DeadlineMissed {
			job: id,
			operator: job.operator.clone(),
			penalty: taken,
		});
		// `missed` has room for MaxAttempts entries; a full list means the last attempt.
		let attempts_left = job.missed.try_push(job.operator.clone()).is_ok()
			&& verity_primitives::len_u32(job.missed.len()) < T::MaxAttempts::get();
		if attempts_left {
			let attempt = verity_primitives::len_u32(job.missed.len());
			let mut generation = Generations::<T>::get(id);
			let units = generation.as_ref().map(|g| {
				verity_primitives::len_u32(g.prompt.len()).saturating_add(g.max_new_tokens)
			});
			let (chosen, _) = pallet_verity_operators::Pallet::<T>::select(
				&job.model,
				Self::price_bound(job.max_fee, units),
				job.collateral,
				&Self::seed(id, attempt),
				&job.missed,
			);
			if let Some((operator, price)) = chosen {
				let deadline = n.saturating_add(Self::execution_deadline());
				if pallet_verity_operators::Pallet::<T>::lock_collateral(&operator, job.collateral)
					.is_ok()
				{
					match Self::schedule(deadline, id) {
						Ok(deadline) => {
							Assignments::<T>::insert(&operator, id, deadline);
							if let Some(g) = generation.as_mut() {
								g.price_per_token = price;
								Generations::<T>::insert(id, g.clone());
							}
							let price = price.saturating_mul(units.unwrap_or(1).into());
							job.operator = operator.clone();
							job.price = price;
							job.status = JobStatus::Assigned { deadline };
							Jobs::<T>::insert(id, job);
							Self::deposit_event(Event::Assigned {
								job: id,
								operator,
								price,
								deadline,
							});
							return;
						},
						Err(_) => pallet_verity_operators::Pallet::<T>::release_collateral(
							&operator,
							job.collateral,
						),
					}
				}
			}
		}
		Self::expire(id, job, n);
	}

	/// The last attempt failed: refund and close.
	fn expire(id: JobId, job: Job<T>, n: BlockNumberFor<T>) {
		Self::close_refunded(id, job, n, Outcome::Expired);
	}

	/// Close a job without paying the operator: refund the whole `max_fee`, prune, keep a
	/// receipt with `outcome` (expired or fraudulent), emit the matching event.
	fn close_refunded(
		id: JobId,
		job: Job<T>,
		n: BlockNumberFor<T>,
		outcome: Outcome<T::AccountId>,
	) {
		currency::refund_fee::<T>(&job.requester, job.max_fee);
		Jobs::<T>::remove(id);
		Assignments::<T>::remove(&job.operator, id);
		StepHashes::<T>::remove(id);
		Self::forget_generation(id);
		pallet_verity_models::Pallet::<T>::job_closed(&job.model);
		let (requester, refund) = (job.requester.clone(), job.max_fee);
		let event = match outcome {
			Outcome::Fraud { .. } | Outcome::GenerationFraud { .. } => {
				Event::Fraudulent { job: id, requester, refund }
			},
			_ => Event::Expired { job: id, requester, refund },
		};
		Self::keep_receipt(
			id,
			Receipt {
				requester: job.requester,
				model: job.model,
				operator: job.operator,
				output: Default::default(),
				trace_root: None,
				fee: Zero::zero(),
				closed_at: n,
				outcome,
			},
		);
		Self::deposit_event(event);
	}

	/// A closed job's generation request and what its disputes kept for it.
	fn forget_generation(id: JobId) {
		if Generations::<T>::take(id).is_some() {
			T::Disputes::job_closed(id);
		}
	}

	/// Store a closed job's receipt and queue it for pruning.
	fn keep_receipt(id: JobId, receipt: Receipt<T>) {
		Receipts::<T>::insert(id, receipt);
		ClosedBounds::<T>::mutate(|(_, tail)| {
			Closed::<T>::insert(*tail, id);
			*tail = tail.saturating_add(1);
		});
	}

	/// `blake2_256` of a receipt's SCALE encoding.
	pub fn digest(receipt: &Receipt<T>) -> Hash {
		sp_runtime::traits::BlakeTwo256::hash_of(receipt).into()
	}

	/// Replace the receipts whose retention ended by block `n` with their digests, oldest first,
	/// at most `limit` (see [`Self::hook`]). Returns the number of queue entries handled.
	pub(crate) fn prune_receipts(n: BlockNumberFor<T>, limit: u32) -> u32 {
		let (mut head, tail) = ClosedBounds::<T>::get();
		let retention = T::ReceiptRetention::get();
		let mut handled = 0u32;
		while head < tail && handled < limit {
			if let Some(id) = Closed::<T>::get(head) {
				if let Some(receipt) = Receipts::<T>::get(id) {
					if receipt.closed_at.saturating_add(retention) > n {
						break;
					}
					ReceiptDigests::<T>::insert(id, Self::digest(&receipt));
					Receipts::<T>::remove(id);
				}
				Closed::<T>::remove(head);
			}
			head = head.saturating_add(1);
			handled.saturating_inc();
		}
		if handled > 0 {
			ClosedBounds::<T>::put((head, tail));
		}
		handled
	}

	/// A job that can be disputed now, with its committed step hashes.
	pub fn challengeable(id: JobId) -> Result<(Job<T>, Vec<Hash>), NotChallengeable> {
		let Some(job) = Jobs::<T>::get(id) else {
			return Err(match Receipts::<T>::get(id).map(|r| r.outcome) {
				Some(Outcome::Final) => NotChallengeable::WindowClosed,
				Some(Outcome::Fraud { .. } | Outcome::GenerationFraud { .. }) => {
					NotChallengeable::AlreadySlashed
				},
				Some(Outcome::Expired) => NotChallengeable::Expired,
				None if ReceiptDigests::<T>::contains_key(id) => NotChallengeable::Pruned,
				None => NotChallengeable::Unknown,
			});
		};
		if Generations::<T>::contains_key(id) {
			return Err(NotChallengeable::WrongKind);
		}
		match job.status {
			JobStatus::Committed { window_end, .. }
				if frame_system::Pallet::<T>::block_number() < window_end =>
			{
				let hashes = StepHashes::<T>::get(id).ok_or(NotChallengeable::NotCommitted)?;
				Ok((job, hashes.into_inner()))
			},
			JobStatus::Committed { .. } => Err(NotChallengeable::WindowClosed),
			JobStatus::Assigned { .. } => Err(NotChallengeable::NotCommitted),
		}
	}

	/// An open generation job with its request and, once committed, its output tokens and
	/// job root (`None` before the commitment). For the dispute game.
	pub fn generation(id: JobId) -> Option<(Job<T>, Generation<T>)> {
		Some((Jobs::<T>::get(id)?, Generations::<T>::get(id)?))
	}

	/// Close a job whose fraud the disputes pallet proved: unlock the collateral (the disputes
	/// pallet slashes it next), refund the requester, prune, keep a receipt.
	pub fn conclude_fraud(id: JobId, job: Job<T>, prover: T::AccountId, step: u32) {
		let n = frame_system::Pallet::<T>::block_number();
		pallet_verity_operators::Pallet::<T>::release_collateral(&job.operator, job.collateral);
		Self::close_refunded(id, job, n, Outcome::Fraud { prover, step });
	}

	/// Close a generation job whose dispute game the disputes pallet decided against the
	/// operator (see [`Outcome::GenerationFraud`]).
	pub fn conclude_generation_fraud(
		id: JobId,
		job: Job<T>,
		prover: T::AccountId,
		position: Option<u32>,
		op: Option<u32>,
	) {
		let n = frame_system::Pallet::<T>::block_number();
		pallet_verity_operators::Pallet::<T>::release_collateral(&job.operator, job.collateral);
		Self::close_refunded(id, job, n, Outcome::GenerationFraud { prover, position, op });
	}

	/// A fraud's reward was taken over by `prover` (an earlier commitment to the same proof,
	/// see the disputes pallet): the receipt names it.
	pub fn set_fraud_prover(id: JobId, prover: T::AccountId) {
		Receipts::<T>::mutate(id, |r| {
			if let Some(Receipt { outcome: Outcome::Fraud { prover: p, .. }, .. }) = r {
				*p = prover;
			}
		});
	}

	/// Invariants: each requester's `Fee` hold equals the `max_fee` of its open jobs; each
	/// operator's locked stake and open-job count equal the collateral and number of the jobs
	/// assigned to it; each model's open-job count is right; every open job is queued at its
	/// deadline or window end; the operators' assignments are exactly the open jobs (with the
	/// deadline of their current attempt); step hashes exist exactly for committed jobs; every
	/// stored receipt
	/// is queued for pruning in closing order, and pruned ones left only their digest.
	#[cfg(any(feature = "std", feature = "try-runtime"))]
	pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
		use alloc::collections::btree_map::BTreeMap;
		use frame_support::traits::fungible::InspectHold;
		let mut fees: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
		let mut locked: BTreeMap<T::AccountId, (BalanceOf<T>, u32)> = BTreeMap::new();
		let mut per_model: BTreeMap<ModelId, u32> = BTreeMap::new();
		let mut assigned = 0usize;
		for (id, job) in Jobs::<T>::iter() {
			let fee = fees.entry(job.requester.clone()).or_default();
			*fee = fee.saturating_add(job.max_fee);
			let l = locked.entry(job.operator.clone()).or_default();
			l.0 = l.0.saturating_add(job.collateral);
			l.1.saturating_inc();
			per_model.entry(job.model).or_default().saturating_inc();
			let due = match &job.status {
				JobStatus::Assigned { deadline } => {
					ensure!(!StepHashes::<T>::contains_key(id), "assigned job with step hashes");
					ensure!(
						Assignments::<T>::get(&job.operator, id) == Some(*deadline),
						"assigned job missing from its operator's assignments"
					);
					*deadline
				},
				JobStatus::Committed { window_end, committed_at, .. } => {
					let generation = Generations::<T>::get(id);
					ensure!(
						StepHashes::<T>::contains_key(id) == generation.is_none(),
						"committed classifier job without hashes, or generation with hashes"
					);
					ensure!(
						Assignments::<T>::get(&job.operator, id)
							.is_some_and(|deadline| deadline > *committed_at),
						"committed job missing from its operator's assignments"
					);
					match generation.and_then(|g| g.settles_at) {
						Some(at) => {
							ensure!(at > *window_end, "generation settles before its window ends");
							at
						},
						None => *window_end,
					}
				},
			};
			assigned.saturating_inc();
			ensure!(Queue::<T>::get(due).contains(&id), "open job not queued at its due block");
			ensure!(
				Backlog::<T>::get().is_none_or(|(first, _)| due >= first),
				"open job due before the backlog"
			);
		}
		if let Some((first, handled)) = Backlog::<T>::get() {
			ensure!(
				first <= frame_system::Pallet::<T>::block_number()
					&& (handled == 0
						|| verity_primitives::len_u32(Queue::<T>::get(first).len()) > handled),
				"backlog beyond the current block or its queue"
			);
		}
		ensure!(
			StepHashes::<T>::iter_keys().all(Jobs::<T>::contains_key),
			"step hashes of a closed job"
		);
		ensure!(
			Generations::<T>::iter_keys().all(Jobs::<T>::contains_key),
			"generation request of a closed job"
		);
		ensure!(Assignments::<T>::iter_keys().count() == assigned, "assignment of a closed job");
		// Every stored receipt is queued for pruning exactly once, oldest first; pruned ones
		// left only a digest; no job is open and closed.
		let (head, tail) = ClosedBounds::<T>::get();
		let mut queued = 0u64;
		let mut last_closed = None;
		for position in head..tail {
			let id = Closed::<T>::get(position).ok_or("hole in the closed-jobs queue")?;
			let receipt = Receipts::<T>::get(id).ok_or("queued job without a receipt")?;
			ensure!(last_closed <= Some(receipt.closed_at), "closed-jobs queue out of order");
			last_closed = Some(receipt.closed_at);
			queued.saturating_inc();
		}
		ensure!(
			Closed::<T>::iter_keys().all(|p| (head..tail).contains(&p)),
			"closed-jobs entry outside its bounds"
		);
		ensure!(Receipts::<T>::iter_keys().count() as u64 == queued, "receipt not queued");
		ensure!(
			ReceiptDigests::<T>::iter_keys()
				.all(|id| !Receipts::<T>::contains_key(id) && !Jobs::<T>::contains_key(id)),
			"a pruned receipt is also stored or open"
		);
		ensure!(
			Receipts::<T>::iter_keys().all(|id| !Jobs::<T>::contains_key(id)),
			"a job is both open and closed"
		);
		for (who, total) in fees {
			ensure!(
				<T as pallet_verity_models::Config>::Currency::balance_on_hold(
					&HoldReason::Fee.into(),
					&who
				) == total,
				"fee hold differs from the open jobs' max fees"
			);
		}
		for (who, op) in pallet_verity_operators::Operators::<T>::iter() {
			let (sum, count) = locked.remove(&who).unwrap_or_default();
			ensure!(op.locked == sum, "locked stake differs from the open jobs' collateral");
			ensure!(op.open_jobs == count, "operator open-job count is wrong");
		}
		ensure!(locked.is_empty(), "job assigned to a non-operator");
		for (model, record) in pallet_verity_models::Models::<T>::iter() {
			ensure!(
				record.open_jobs == per_model.remove(&model).unwrap_or_default(),
				"model open-job count is wrong"
			);
		}
		ensure!(per_model.is_empty(), "open job of an unknown model");
		Ok(())
	}
}

use sp_runtime::traits::Hash as _;
