//! # Models pallet: the registry of exact integer models
//!
//! A model publisher registers a model *header* (the SCALE-encoded
//! [`verity_primitives::ModelHeader`]: input spec, ordered ops, quantization parameters and the
//! blake2-256 hash of every op's weights). The chain
//!
//! * decodes it canonically and validates it with [`verity_primitives::validate`] against the
//!   runtime's [`Limits`] (built from this pallet's constants), so that **every step of every
//!   registered model can be re-executed on-chain** within the proof-size and MAC limits that
//!   the disputes pallet's weight accounts for;
//! * computes the model id on-chain (`blake2_256` of the header bytes);
//! * holds a storage deposit from the publisher (`DepositBase + DepositPerByte * bytes`).
//!
//! **Announce, then register** (docs/PROTOCOL.md section 8, attack 5). A publisher first sends
//! `announce(H(("verity/model", publisher, model id)))` ([`Pallet::announcement`]; `DepositBase`
//! held until it is used or withdrawn), then, in a later block, `register(header, name, uri)`.
//! A header seen in the pool can be copied, but the copier can only announce it after it saw
//! it: if the copy is registered first, the real publisher's `register` (its announcement is
//! earlier) takes the registration over during `RegistrationGrace` blocks after it — publisher,
//! deposit, name and URI, and `Active` again if the copier retired it. So a copied header
//! cannot be taken, retired or given someone else's metadata. What this cannot protect: a
//! header published elsewhere **before** its publisher announced it (announce first).
//!
//! `retire` stops new jobs for a model (jobs already submitted finish and stay disputable);
//! `reap` removes a retired model without open jobs and releases the deposit.
//!
//! The weights stay off-chain; fraud proofs carry the weights of the disputed op, checked against
//! the header's hash.
//!
//! **Weights must be obtainable** (docs/PROTOCOL.md section 8, attack 12). A publisher that
//! withholds its weights makes every job of its model unprovable, so `Final` would mean nothing.
//! Anyone who cannot get op `i`'s weights may `challenge_weights(model, i)`, bonding
//! [`Pallet::availability_bond`] (`AvailabilityBondBase + AvailabilityBondPerByte × weight
//! bytes`). Anyone may answer with `post_weights(model, i, bytes)` (an Operational transaction)
//! within `AvailabilityPeriod` blocks (the runtime: half a challenge window): the chain checks
//! the bytes against the header's length and hash, emits `WeightsPosted`, and the bytes stay in
//! that block's body for every watcher to read; the bond pays the publisher for its trouble.
//! If nobody does, anyone may `claim_withheld(model, i)`: the model is `Withheld` (no new jobs,
//! for ever unless an earlier announcement takes it over) and the publisher's whole deposit pays
//! the challenger, whose bond is released.

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
use frame_support::{
	pallet_prelude::*,
	traits::fungible::{self, Inspect},
};
use frame_system::pallet_prelude::BlockNumberFor;
use scale_info::TypeInfo;
use sp_runtime::traits::{Hash as _, Saturating, Zero};
use verity_primitives::{model::MAX_RANK, InvalidReasonCode, Limits, ModelHeader, ModelId};

/// The balance type of the currency.
pub type BalanceOf<T> =
	<<T as Config>::Currency as Inspect<<T as frame_system::Config>::AccountId>>::Balance;

/// A tensor shape as stored on-chain (rank at most [`MAX_RANK`]).
pub type Shape = BoundedVec<u32, ConstU32<{ MAX_RANK as u32 }>>;

/// A model registered at genesis: (publisher, canonical header bytes, name, uri).
pub type GenesisModel<AccountId> = (AccountId, Vec<u8>, Vec<u8>, Vec<u8>);

/// Why [`Error::InvalidModel`] refused a header: the variant of
/// [`verity_primitives::InvalidReason`] without its details (one byte; see
/// docs/MODEL_FORMAT.md for each reason).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct InvalidModelReason(pub InvalidReasonCode);

impl frame_support::traits::PalletError for InvalidModelReason {
	const MAX_ENCODED_SIZE: usize = 1;
}

/// Whether a model accepts new jobs.
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
)]
pub enum ModelStatus {
	/// New jobs are accepted.
	Active,
	/// No new jobs; jobs already submitted finish and remain disputable.
	Retired,
	/// The weights of op `op` were challenged and not posted in time (attack 12): no new jobs,
	/// and the publisher's deposit went to the challenger.
	Withheld { op: u32 },
}

/// An open availability challenge for one op's weights.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct WeightChallenge<AccountId, Balance, BlockNumber> {
	/// Who asked (and bonded).
	pub challenger: AccountId,
	/// The challenger's bond, held: it pays the publisher if the weights are posted in time.
	pub bond: Balance,
	/// The last block in which the weights may be posted.
	pub deadline: BlockNumber,
	/// The op's weight length and blake2-256 hash, from the header.
	pub weight_len: u32,
	pub weight_hash: verity_primitives::Hash,
}

/// End-of-sequence tokens of a text model as stored on-chain.
pub type EosTokens =
	BoundedVec<u32, ConstU32<{ verity_primitives::lm::header::MAX_EOS_TOKENS as u32 }>>;

/// What kind of program a model is, with what a text model's jobs are checked against.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum ModelKind {
	/// A classifier (`verity_primitives::ModelHeader`): one input tensor, one output tensor,
	/// one step hash per op.
	Classifier,
	/// A transformer language model (`verity_primitives::lm::header::LmHeader`): generation
	/// jobs, one root per position.
	Text {
		/// Vocabulary size.
		vocab: u32,
		/// Largest number of positions of a generation.
		max_context: u32,
		/// Tokens that end a generation.
		eos_tokens: EosTokens,
	},
}

impl ModelKind {
	/// A text model's limits for `verity_primitives::lm::job` (`None` for a classifier).
	pub fn text_limits(&self) -> Option<verity_primitives::lm::job::TextLimits> {
		match self {
			ModelKind::Classifier => None,
			ModelKind::Text { vocab, max_context, eos_tokens } => {
				Some(verity_primitives::lm::job::TextLimits {
					vocab: *vocab,
					max_context: *max_context,
					eos_tokens: eos_tokens.to_vec(),
				})
			},
		}
	}
}

/// Why [`Error::InvalidTextModel`] refused a transformer header: the index of the
/// `verity_primitives::lm::validate::LmInvalid` variant (one byte; docs/MODEL_FORMAT.md 12).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct InvalidTextModelReason(pub u8);

impl frame_support::traits::PalletError for InvalidTextModelReason {
	const MAX_ENCODED_SIZE: usize = 1;
}

/// Everything the other pallets need to know about a model without decoding its header.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct ModelRecord<AccountId, Balance, BlockNumber> {
	/// Who registered the model (and pays its deposit).
	pub publisher: AccountId,
	/// The block of the publisher's announcement (0 at genesis): a registration announced
	/// earlier takes this one over during `RegistrationGrace` blocks after `registered_at`.
	pub announced_at: BlockNumber,
	/// The deposit held from the publisher.
	pub deposit: Balance,
	pub status: ModelStatus,
	pub registered_at: BlockNumber,
	/// Number of ops `n`; a trace has `n + 1` step hashes.
	pub num_ops: u32,
	/// Shape of the model input (tensor 0).
	pub input_shape: Shape,
	/// Shape of the model output (tensor `n`).
	pub output_shape: Shape,
	/// Elements (= bytes, int8) of the input.
	pub input_elements: u32,
	/// Elements (= bytes, int8) of the output.
	pub output_elements: u32,
	/// Largest MAC count of one step (bounds a fraud proof's re-execution).
	pub max_step_macs: u64,
	/// Largest fraud-proof payload of one step, in bytes.
	pub max_step_proof_bytes: u64,
	/// MACs of a whole inference.
	pub total_macs: u64,
	/// Jobs submitted and not yet closed (final, fraudulent or expired).
	pub open_jobs: u32,
	/// Classifier or text model. For a text model the classifier fields above describe its
	/// largest position: `num_ops` its ops, no input or output tensor (shapes empty, 0
	/// elements), `total_macs` the re-execution cost of all its steps.
	pub kind: ModelKind,
}

/// Human-readable metadata of a model.
#[derive(
	CloneNoBound, PartialEqNoBound, EqNoBound, DebugNoBound, Encode, Decode, TypeInfo, MaxEncodedLen,
)]
#[scale_info(skip_type_params(NameLen, UriLen))]
pub struct ModelMetadata<NameLen: Get<u32>, UriLen: Get<u32>> {
	/// A short name, e.g. `digits-cnn`.
	pub name: BoundedVec<u8, NameLen>,
	/// Where the model file (header + weights) can be fetched.
	pub uri: BoundedVec<u8, UriLen>,
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

	/// Configuration. The limits bound every registered model; the disputes pallet's weights
	/// assume them.
	#[pallet::config]
	pub trait Config: frame_system::Config {
		/// The currency; deposits, stake and fees are fungible holds.
		type Currency: fungible::Inspect<Self::AccountId>
			+ fungible::Mutate<Self::AccountId>
			+ fungible::MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>
			+ fungible::hold::Balanced<Self::AccountId>;

		/// The overarching hold reason (this pallet's [`HoldReason`] and those of the other
		/// Verity pallets).
		type RuntimeHoldReason: From<HoldReason>;

		/// Largest SCALE-encoded header, in bytes.
		#[pallet::constant]
		type MaxHeaderBytes: Get<u32>;
		/// Largest number of ops of a model.
		#[pallet::constant]
		type MaxOps: Get<u32>;
		/// Largest number of ops of one position of a transformer language model (a position
		/// that selects a token: docs/MODEL_FORMAT.md 12.7); it takes [`Config::MaxOps`]'s
		/// place in [`Pallet::lm_limits`]. A generation commits one root per position, not a
		/// hash per op, so it bounds a position tree's depth and what an operator reveals of one
		/// position, not storage.
		#[pallet::constant]
		type MaxLmOps: Get<u32>;
		/// Largest number of elements of any tensor of a model.
		#[pallet::constant]
		type MaxTensorElements: Get<u32>;
		/// Largest number of inputs of one op.
		#[pallet::constant]
		type MaxOpInputs: Get<u32>;
		/// Largest fraud-proof payload (input tensors + weights) of one step, in bytes.
		#[pallet::constant]
		type MaxStepProofBytes: Get<u32>;
		/// Largest re-execution cost of one step, in multiply-accumulates.
		#[pallet::constant]
		type MaxStepMacs: Get<u32>;
		/// Largest model input, in bytes (jobs store their input until final).
		#[pallet::constant]
		type MaxInputBytes: Get<u32>;
		/// Largest model output, in bytes (receipts keep the output).
		#[pallet::constant]
		type MaxOutputBytes: Get<u32>;
		/// Longest model name.
		#[pallet::constant]
		type MaxNameLen: Get<u32>;
		/// Longest model URI.
		#[pallet::constant]
		type MaxUriLen: Get<u32>;
		/// Deposit per registered model.
		#[pallet::constant]
		type DepositBase: Get<BalanceOf<Self>>;
		/// Deposit per stored byte (header + name + URI).
		#[pallet::constant]
		type DepositPerByte: Get<BalanceOf<Self>>;
		/// Blocks after a registration during which a registration of the same header announced
		/// earlier takes it over.
		#[pallet::constant]
		type RegistrationGrace: Get<BlockNumberFor<Self>>;
		/// The fixed part of an availability challenge's bond.
		#[pallet::constant]
		type AvailabilityBondBase: Get<BalanceOf<Self>>;
		/// The part of an availability challenge's bond per weight byte of the challenged op (at
		/// least what posting a byte costs in fees, so that the bond pays for the answer).
		#[pallet::constant]
		type AvailabilityBondPerByte: Get<BalanceOf<Self>>;
		/// Blocks in which challenged weights must be posted (the runtime: half the challenge
		/// window, so that weights posted at the last moment still leave half a window for a
		/// fraud proof).
		type AvailabilityPeriod: Get<BlockNumberFor<Self>>;

		/// Weights of this pallet's calls.
		type WeightInfo: WeightInfo;
	}

	/// Reasons for which this pallet holds funds.
	#[pallet::composite_enum]
	pub enum HoldReason {
		/// The storage deposit of a registered model.
		#[codec(index = 0)]
		ModelDeposit,
		/// The deposit of a stored announcement (`DepositBase`).
		#[codec(index = 1)]
		Announcement,
		/// The bond of an availability challenge.
		#[codec(index = 2)]
		AvailabilityBond,
	}

	/// Announcements of registrations to come: publisher → [`Pallet::announcement`] → the
	/// block it was made in and its deposit.
	#[pallet::storage]
	pub type Announcements<T: Config> = StorageDoubleMap<
		_,
		Blake2_128Concat,
		T::AccountId,
		Identity,
		[u8; 32],
		(BlockNumberFor<T>, BalanceOf<T>),
		OptionQuery,
	>;

	/// Registered models by id.
	#[pallet::storage]
	pub type Models<T: Config> = StorageMap<
		_,
		Identity,
		ModelId,
		ModelRecord<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>,
		OptionQuery,
	>;

	/// The canonical header bytes of each registered model (the fraud-proof check decodes them).
	#[pallet::storage]
	pub type Headers<T: Config> =
		StorageMap<_, Identity, ModelId, BoundedVec<u8, T::MaxHeaderBytes>, OptionQuery>;

	/// Open availability challenges: model → op (1-based) → challenge.
	#[pallet::storage]
	pub type WeightChallenges<T: Config> = StorageDoubleMap<
		_,
		Identity,
		ModelId,
		Twox64Concat,
		u32,
		WeightChallenge<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>,
		OptionQuery,
	>;

	/// Name and URI of each registered model.
	#[pallet::storage]
	pub type Metadata<T: Config> =
		StorageMap<_, Identity, ModelId, ModelMetadata<T::MaxNameLen, T::MaxUriLen>, OptionQuery>;

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// A model was registered.
		Registered { model: ModelId, publisher: T::AccountId, deposit: BalanceOf<T> },
		/// `publisher` announced a registration.
		Announced { publisher: T::AccountId, announcement: [u8; 32] },
		/// A registration announced earlier took the model over from `from` (attack 5).
		PublisherReplaced { model: ModelId, from: T::AccountId, to: T::AccountId },
		/// `publisher` withdrew an unused announcement; its deposit was released.
		AnnouncementWithdrawn { publisher: T::AccountId, announcement: [u8; 32] },
		/// A model accepts no new jobs.
		Retired { model: ModelId },
		/// A retired model without open jobs was removed and its deposit released.
		Reaped { model: ModelId, publisher: T::AccountId, deposit: BalanceOf<T> },
		/// `challenger` asks for op `op`'s weights, to be posted by block `deadline`.
		WeightsChallenged {
			model: ModelId,
			op: u32,
			challenger: T::AccountId,
			bond: BalanceOf<T>,
			deadline: BlockNumberFor<T>,
		},
		/// `by` posted op `op`'s weights (they are in this block's body, in that call); the
		/// challenger's bond went to the publisher.
		WeightsPosted { model: ModelId, op: u32, by: T::AccountId, bond: BalanceOf<T> },
		/// Op `op`'s weights were not posted in time: the model is `Withheld` and `paid` of the
		/// publisher's deposit went to the challenger.
		WeightsWithheld { model: ModelId, op: u32, challenger: T::AccountId, paid: BalanceOf<T> },
	}

	#[pallet::error]
	pub enum Error<T> {
		/// The header is longer than `MaxHeaderBytes`.
		HeaderTooLarge,
		/// The header bytes are not the canonical SCALE encoding of a model header.
		MalformedHeader,
		/// The header is invalid or exceeds the chain's limits: `op` is the 1-based op index
		/// (0 = header or input), `reason` why (e.g. `StepProofTooLarge`, `TooManyMacs`).
		InvalidModel { op: u16, reason: InvalidModelReason },
		/// The transformer header is invalid or exceeds the chain's language-model limits
		/// ([`Pallet::lm_limits`]); `reason` is the `LmInvalid` variant's index.
		InvalidTextModel { reason: InvalidTextModelReason },
		/// The model input has more than `MaxInputBytes` elements.
		InputTooLarge,
		/// The model output has more than `MaxOutputBytes` elements.
		OutputTooLarge,
		/// A model with this id is already registered.
		AlreadyRegistered,
		/// The name is longer than `MaxNameLen`.
		NameTooLong,
		/// The URI is longer than `MaxUriLen`.
		UriTooLong,
		/// The publisher cannot pay the deposit.
		InsufficientBalance,
		/// No model with this id.
		UnknownModel,
		/// Only the publisher may do this.
		NotPublisher,
		/// The model is already retired.
		AlreadyRetired,
		/// Only a retired model can be reaped.
		NotRetired,
		/// The model still has open jobs.
		JobsOpen,
		/// No announcement of this registration by the sender (`announce` first).
		NotAnnounced,
		/// The announcement was made in this block; register in a later one.
		AnnouncedTooRecently,
		/// The sender already made this announcement.
		AlreadyAnnounced,
		/// No such announcement by the sender.
		UnknownAnnouncement,
		/// The model has no op with this index (ops are numbered from 1).
		NoSuchOp,
		/// The op has no weights to ask for.
		NoWeights,
		/// The model's weights were already found withheld.
		ModelWithheld,
		/// The op's weights are already challenged.
		AlreadyChallenged,
		/// No open challenge for the op's weights.
		NotChallenged,
		/// The challenge's deadline has passed: `claim_withheld`.
		ChallengeExpired,
		/// The challenge's deadline has not passed yet.
		ChallengeOpen,
		/// The posted bytes do not have the op's weight length and hash.
		WeightsMismatch,
		/// The model's weights are challenged; it cannot be reaped before the challenges end.
		ChallengesOpen,
	}

	/// Models registered at genesis: (publisher, canonical header bytes, name, uri). Each is
	/// validated and pays its deposit like a `register` call.
	#[pallet::genesis_config]
	#[derive(frame_support::DefaultNoBound)]
	pub struct GenesisConfig<T: Config> {
		pub models: Vec<GenesisModel<T::AccountId>>,
	}

	#[pallet::genesis_build]
	impl<T: Config> BuildGenesisConfig for GenesisConfig<T> {
		fn build(&self) {
			for (publisher, header, name, uri) in &self.models {
				if let Err(e) = Pallet::<T>::do_register(
					publisher.clone(),
					header.clone(),
					name.clone(),
					uri.clone(),
					Zero::zero(),
				) {
					panic!("genesis model cannot be registered: {e:?}");
				}
			}
		}
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		fn integrity_test() {
			assert!(T::MaxOps::get() >= 1, "MaxOps must admit at least one op");
			assert!(T::MaxInputBytes::get() >= 1 && T::MaxOutputBytes::get() >= 1);
			assert!(
				T::MaxInputBytes::get() <= T::MaxTensorElements::get()
					&& T::MaxOutputBytes::get() <= T::MaxTensorElements::get(),
				"input/output bounds cannot exceed the tensor bound"
			);
			assert!(T::MaxOpInputs::get() >= 2, "Add needs two inputs");
			assert!(
				u64::from(T::MaxStepProofBytes::get()) >= 256,
				"a Lookup step (256 table bytes) must be provable"
			);
		}

		#[cfg(feature = "try-runtime")]
		fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Register a model from its canonical SCALE-encoded header, announced by the sender in
		/// an earlier block ([`Pallet::announce`]).
		///
		/// The header is validated against the chain's limits; the model id is
		/// `blake2_256(header)`. A deposit of `DepositBase + DepositPerByte * (header + name +
		/// uri bytes)` is held from the caller; the announcement's deposit is released. If the
		/// model is registered already, less than `RegistrationGrace` blocks ago, from a later
		/// announcement, the sender takes the registration over (publisher, deposit, name, URI;
		/// `Active` again).
		///
		/// The dispatch origin must be _Signed_ (the publisher).
		///
		/// Errors: `HeaderTooLarge`, `NotAnnounced`, `AnnouncedTooRecently`, `NameTooLong`,
		/// `UriTooLong`, `MalformedHeader` (not the canonical encoding), `InvalidModel { op,
		/// reason }` (validation against the chain's limits), `InputTooLarge`, `OutputTooLarge`,
		/// `AlreadyRegistered` (also: registered from an earlier announcement, or longer than
		/// `RegistrationGrace` ago), `InsufficientBalance` for the deposit.
		/// Emits `Registered` or `PublisherReplaced`.
		///
		/// Complexity: `O(h)` in the header length (decoding, validation and hashing are linear
		/// in the header; validation does a constant amount of work per op).
		#[pallet::call_index(0)]
		#[pallet::weight(T::WeightInfo::register(
			verity_primitives::len_u32(header.len()),
			verity_primitives::len_u32(name.len().saturating_add(uri.len())),
		))]
		pub fn register(
			origin: OriginFor<T>,
			header: Vec<u8>,
			name: Vec<u8>,
			uri: Vec<u8>,
		) -> DispatchResult {
			let publisher = ensure_signed(origin)?;
			ensure!(header.len() <= T::MaxHeaderBytes::get() as usize, Error::<T>::HeaderTooLarge);
			let id: ModelId = sp_runtime::traits::BlakeTwo256::hash(&header).into();
			let announcement = Self::announcement(&publisher, &id);
			let (announced_at, deposit) = Announcements::<T>::get(&publisher, announcement)
				.ok_or(Error::<T>::NotAnnounced)?;
			ensure!(
				announced_at < frame_system::Pallet::<T>::block_number(),
				Error::<T>::AnnouncedTooRecently
			);
			match Models::<T>::get(id) {
				Some(record) => {
					Self::take_over(id, record, publisher.clone(), announced_at, name, uri)?
				},
				None => {
					Self::do_register(publisher.clone(), header, name, uri, announced_at)?;
				},
			}
			Announcements::<T>::remove(&publisher, announcement);
			currency::release_announcement::<T>(&publisher, deposit);
			Ok(())
		}

		/// Announce a registration to come: `announcement` = [`Pallet::announcement`]`(sender,
		/// model id)`. Holds `DepositBase` until the registration uses it or
		/// [`Pallet::withdraw_announcement`].
		///
		/// The dispatch origin must be _Signed_ (the publisher).
		///
		/// Errors: `AlreadyAnnounced`, `InsufficientBalance`. Emits `Announced`.
		///
		/// Complexity: `O(1)`.
		#[pallet::call_index(3)]
		#[pallet::weight(T::WeightInfo::announce())]
		pub fn announce(origin: OriginFor<T>, announcement: [u8; 32]) -> DispatchResult {
			let publisher = ensure_signed(origin)?;
			ensure!(
				!Announcements::<T>::contains_key(&publisher, announcement),
				Error::<T>::AlreadyAnnounced
			);
			let deposit = T::DepositBase::get();
			currency::hold_announcement::<T>(&publisher, deposit)?;
			let now = frame_system::Pallet::<T>::block_number();
			Announcements::<T>::insert(&publisher, announcement, (now, deposit));
			Self::deposit_event(Event::Announced { publisher, announcement });
			Ok(())
		}

		/// Withdraw an unused announcement and release its deposit.
		///
		/// The dispatch origin must be _Signed_ (the announcement's publisher).
		///
		/// Errors: `UnknownAnnouncement`. Emits `AnnouncementWithdrawn`.
		///
		/// Complexity: `O(1)`.
		#[pallet::call_index(4)]
		#[pallet::weight(T::WeightInfo::withdraw_announcement())]
		pub fn withdraw_announcement(
			origin: OriginFor<T>,
			announcement: [u8; 32],
		) -> DispatchResult {
			let publisher = ensure_signed(origin)?;
			let (_, deposit) = Announcements::<T>::take(&publisher, announcement)
				.ok_or(Error::<T>::UnknownAnnouncement)?;
			currency::release_announcement::<T>(&publisher, deposit);
			Self::deposit_event(Event::AnnouncementWithdrawn { publisher, announcement });
			Ok(())
		}

		/// Stop accepting jobs for a model (publisher only). Open jobs finish and remain
		/// disputable; the header stays until [`Pallet::reap`].
		///
		/// The dispatch origin must be _Signed_ by the model's publisher.
		///
		/// Errors: `UnknownModel`, `NotPublisher`, `AlreadyRetired`.
		/// Emits `Retired`.
		///
		/// Complexity: `O(1)`.
		#[pallet::call_index(1)]
		#[pallet::weight(T::WeightInfo::retire())]
		pub fn retire(origin: OriginFor<T>, model: ModelId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Models::<T>::try_mutate(model, |record| {
				let record = record.as_mut().ok_or(Error::<T>::UnknownModel)?;
				ensure!(record.publisher == who, Error::<T>::NotPublisher);
				ensure!(record.status == ModelStatus::Active, Error::<T>::AlreadyRetired);
				record.status = ModelStatus::Retired;
				Ok::<_, Error<T>>(())
			})?;
			Self::deposit_event(Event::Retired { model });
			Ok(())
		}

		/// Remove a retired (or withheld) model that has no open jobs and no open availability
		/// challenge, and release its deposit to the publisher. Anyone may call it.
		///
		/// The dispatch origin must be _Signed_ (any account).
		///
		/// Errors: `UnknownModel`, `NotRetired` (still `Active`), `JobsOpen` while jobs of the
		/// model are open, `ChallengesOpen` while its weights are challenged.
		/// Emits `Reaped`.
		///
		/// Complexity: `O(1)`.
		#[pallet::call_index(2)]
		#[pallet::weight(T::WeightInfo::reap())]
		pub fn reap(origin: OriginFor<T>, model: ModelId) -> DispatchResult {
			ensure_signed(origin)?;
			let record = Models::<T>::get(model).ok_or(Error::<T>::UnknownModel)?;
			ensure!(record.status != ModelStatus::Active, Error::<T>::NotRetired);
			ensure!(record.open_jobs == 0, Error::<T>::JobsOpen);
			ensure!(
				WeightChallenges::<T>::iter_prefix(model).next().is_none(),
				Error::<T>::ChallengesOpen
			);
			currency::release_deposit::<T>(&record.publisher, record.deposit)?;
			Models::<T>::remove(model);
			Headers::<T>::remove(model);
			Metadata::<T>::remove(model);
			Self::deposit_event(Event::Reaped {
				model,
				publisher: record.publisher,
				deposit: record.deposit,
			});
			Ok(())
		}

		/// Ask for the weights of op `op` (1-based) of `model`: unless they are posted within
		/// `AvailabilityPeriod` blocks ([`Pallet::post_weights`]), the model is withheld and the
		/// publisher's deposit pays the sender ([`Pallet::claim_withheld`]). Holds
		/// [`Pallet::availability_bond`] of the op from the sender; it pays the publisher if the
		/// weights are posted in time.
		///
		/// The dispatch origin must be _Signed_ (any account; typically a watcher that cannot
		/// get the weights from the model's URI).
		///
		/// Errors: `UnknownModel`, `ModelWithheld`, `NoSuchOp`, `NoWeights` (the op has none),
		/// `AlreadyChallenged`, `InsufficientBalance` for the bond. Emits `WeightsChallenged`.
		///
		/// Complexity: `O(h)` in the header length (the header is decoded to find the op).
		#[pallet::call_index(5)]
		#[pallet::weight(T::WeightInfo::challenge_weights(T::MaxHeaderBytes::get()))]
		pub fn challenge_weights(origin: OriginFor<T>, model: ModelId, op: u32) -> DispatchResult {
			let challenger = ensure_signed(origin)?;
			let record = Models::<T>::get(model).ok_or(Error::<T>::UnknownModel)?;
			ensure!(
				!matches!(record.status, ModelStatus::Withheld { .. }),
				Error::<T>::ModelWithheld
			);
			let (weight_len, weight_hash) = Self::weights_of(&model, op)?;
			ensure!(weight_len > 0, Error::<T>::NoWeights);
			ensure!(!WeightChallenges::<T>::contains_key(model, op), Error::<T>::AlreadyChallenged);
			let bond = Self::availability_bond(weight_len);
			currency::hold_bond::<T>(&challenger, bond)?;
			let deadline = frame_system::Pallet::<T>::block_number()
				.saturating_add(T::AvailabilityPeriod::get());
			WeightChallenges::<T>::insert(
				model,
				op,
				WeightChallenge {
					challenger: challenger.clone(),
					bond,
					deadline,
					weight_len,
					weight_hash,
				},
			);
			Self::deposit_event(Event::WeightsChallenged { model, op, challenger, bond, deadline });
			Ok(())
		}

		/// Answer an availability challenge with op `op`'s weight bytes, by its deadline. The
		/// bytes must have the length and blake2-256 hash the header declares; they stay in this
		/// block's body (the `WeightsPosted` event says where). The challenger's bond goes to the
		/// model's publisher, whoever posts (so a copy of the publisher's post gains nothing).
		///
		/// The dispatch origin must be _Signed_ (any account). Operational, like fraud proofs:
		/// keeping it out of the chain costs what keeping a proof out does.
		///
		/// Errors: `UnknownModel`, `NotChallenged`, `ChallengeExpired`, `WeightsMismatch`.
		/// Emits `WeightsPosted`.
		///
		/// Complexity: `O(w)`: the `w` posted bytes are hashed (the challenge keeps the op's
		/// length and hash).
		#[pallet::call_index(6)]
		#[pallet::weight((
			T::WeightInfo::post_weights(verity_primitives::len_u32(weights.len())),
			DispatchClass::Operational
		))]
		pub fn post_weights(
			origin: OriginFor<T>,
			model: ModelId,
			op: u32,
			weights: Vec<u8>,
		) -> DispatchResult {
			let by = ensure_signed(origin)?;
			let record = Models::<T>::get(model).ok_or(Error::<T>::UnknownModel)?;
			let challenge =
				WeightChallenges::<T>::get(model, op).ok_or(Error::<T>::NotChallenged)?;
			ensure!(
				frame_system::Pallet::<T>::block_number() <= challenge.deadline,
				Error::<T>::ChallengeExpired
			);
			ensure!(
				u64::try_from(weights.len()).ok() == Some(u64::from(challenge.weight_len))
					&& verity_primitives::weight_hash(&weights) == challenge.weight_hash,
				Error::<T>::WeightsMismatch
			);
			WeightChallenges::<T>::remove(model, op);
			let bond =
				currency::pay_bond::<T>(&challenge.challenger, &record.publisher, challenge.bond);
			Self::deposit_event(Event::WeightsPosted { model, op, by, bond });
			Ok(())
		}

		/// After an availability challenge's deadline passed without the weights: the model is
		/// `Withheld` (no new jobs) and the publisher's deposit goes to the challenger, whose
		/// bond is released. Anyone may call it. (On a model already withheld by another
		/// challenge, only the bond is released.)
		///
		/// The dispatch origin must be _Signed_ (any account).
		///
		/// Errors: `NotChallenged`, `ChallengeOpen` (the deadline has not passed),
		/// `UnknownModel`. Emits `WeightsWithheld`.
		///
		/// Complexity: `O(1)`.
		#[pallet::call_index(7)]
		#[pallet::weight(T::WeightInfo::claim_withheld())]
		pub fn claim_withheld(origin: OriginFor<T>, model: ModelId, op: u32) -> DispatchResult {
			ensure_signed(origin)?;
			let challenge =
				WeightChallenges::<T>::get(model, op).ok_or(Error::<T>::NotChallenged)?;
			ensure!(
				frame_system::Pallet::<T>::block_number() > challenge.deadline,
				Error::<T>::ChallengeOpen
			);
			let mut record = Models::<T>::get(model).ok_or(Error::<T>::UnknownModel)?;
			WeightChallenges::<T>::remove(model, op);
			currency::release_bond::<T>(&challenge.challenger, challenge.bond);
			let paid = currency::pay_deposit::<T>(
				&record.publisher,
				&challenge.challenger,
				record.deposit,
			);
			record.deposit = record.deposit.saturating_sub(paid);
			if !matches!(record.status, ModelStatus::Withheld { .. }) {
				record.status = ModelStatus::Withheld { op };
			}
			Models::<T>::insert(model, record);
			Self::deposit_event(Event::WeightsWithheld {
				model,
				op,
				challenger: challenge.challenger,
				paid,
			});
			Ok(())
		}
	}

	#[pallet::view_functions]
	impl<T: Config> Pallet<T> {
		/// A registered model's record.
		pub fn model(
			model: ModelId,
		) -> Option<ModelRecord<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>> {
			Models::<T>::get(model)
		}

		/// The chain's model limits.
		pub fn model_limits() -> Limits {
			Self::limits()
		}
	}
}

/// What validation learned about a header: a [`ModelRecord`] without its registration.
struct Facts {
	num_ops: u32,
	input_shape: Shape,
	output_shape: Shape,
	input_elements: u32,
	output_elements: u32,
	max_step_macs: u64,
	max_step_proof_bytes: u64,
	total_macs: u64,
	kind: ModelKind,
}

fn shape(dims: &[u32]) -> Shape {
	// Validated headers have rank <= MAX_RANK, so nothing is truncated.
	BoundedVec::truncate_from(dims.to_vec())
}

impl<T: Config> Pallet<T> {
	/// Register a model (the body of [`Pallet::register`], also used at genesis).
	pub fn do_register(
		publisher: T::AccountId,
		header: Vec<u8>,
		name: Vec<u8>,
		uri: Vec<u8>,
		announced_at: BlockNumberFor<T>,
	) -> Result<ModelId, DispatchError> {
		let max = T::MaxHeaderBytes::get();
		let stored: BoundedVec<u8, T::MaxHeaderBytes> =
			header.try_into().map_err(|_| Error::<T>::HeaderTooLarge)?;
		let name: BoundedVec<u8, T::MaxNameLen> =
			name.try_into().map_err(|_| Error::<T>::NameTooLong)?;
		let uri: BoundedVec<u8, T::MaxUriLen> =
			uri.try_into().map_err(|_| Error::<T>::UriTooLong)?;
		let classifier = verity_primitives::decode_header(&stored, max).ok();
		let text = verity_primitives::lm::header::decode_lm_header(&stored, max).ok();
		let facts = match (classifier, text) {
			(Some(decoded), None) => Self::classifier_facts(&decoded)?,
			(None, Some(decoded)) => Self::text_facts(&decoded)?,
			// Neither, or (never seen, but not excluded by the formats) both: refused.
			_ => return Err(Error::<T>::MalformedHeader.into()),
		};
		let id: ModelId = sp_runtime::traits::BlakeTwo256::hash(&stored).into();
		ensure!(!Models::<T>::contains_key(id), Error::<T>::AlreadyRegistered);

		let bytes = stored.len().saturating_add(name.len()).saturating_add(uri.len());
		let deposit = Self::deposit_for(bytes);
		currency::hold_deposit::<T>(&publisher, deposit)?;

		let record = ModelRecord {
			publisher: publisher.clone(),
			announced_at,
			deposit,
			status: ModelStatus::Active,
			registered_at: frame_system::Pallet::<T>::block_number(),
			num_ops: facts.num_ops,
			input_shape: facts.input_shape,
			output_shape: facts.output_shape,
			input_elements: facts.input_elements,
			output_elements: facts.output_elements,
			max_step_macs: facts.max_step_macs,
			max_step_proof_bytes: facts.max_step_proof_bytes,
			total_macs: facts.total_macs,
			open_jobs: 0,
			kind: facts.kind,
		};
		Models::<T>::insert(id, record);
		Headers::<T>::insert(id, stored);
		Metadata::<T>::insert(id, ModelMetadata { name, uri });
		Self::deposit_event(Event::Registered { model: id, publisher, deposit });
		Ok(id)
	}

	/// What validation learned about a classifier.
	fn classifier_facts(decoded: &ModelHeader) -> Result<Facts, DispatchError> {
		let info = verity_primitives::validate(decoded, &Self::limits()).map_err(|e| {
			Error::<T>::InvalidModel {
				op: u16::try_from(e.op).unwrap_or(u16::MAX),
				reason: InvalidModelReason(e.reason.code()),
			}
		})?;
		ensure!(info.input_elements <= T::MaxInputBytes::get(), Error::<T>::InputTooLarge);
		ensure!(info.output_elements <= T::MaxOutputBytes::get(), Error::<T>::OutputTooLarge);
		Ok(Facts {
			num_ops: info.num_ops,
			input_shape: shape(&decoded.input.shape),
			output_shape: shape(&decoded.output_spec().shape),
			input_elements: info.input_elements,
			output_elements: info.output_elements,
			max_step_macs: info.max_step_macs,
			max_step_proof_bytes: info.max_step_proof_bytes,
			total_macs: info.total_macs,
			kind: ModelKind::Classifier,
		})
	}

	/// What validation against [`Pallet::lm_limits`] learned about a transformer.
	fn text_facts(
		decoded: &verity_primitives::lm::header::LmHeader,
	) -> Result<Facts, DispatchError> {
		let invalid =
			|code: u8| Error::<T>::InvalidTextModel { reason: InvalidTextModelReason(code) };
		let info = verity_primitives::lm::validate::validate_lm(decoded, &Self::lm_limits())
			.map_err(|e| invalid(e.encode().first().copied().unwrap_or(u8::MAX)))?;
		// Validation bounds the end-of-sequence tokens by the stored bound.
		let eos_tokens: EosTokens =
			decoded.eos_tokens.clone().try_into().map_err(|_| invalid(u8::MAX))?;
		Ok(Facts {
			num_ops: u32::try_from(info.ops_per_sampling_position).unwrap_or(u32::MAX),
			input_shape: Shape::default(),
			output_shape: Shape::default(),
			input_elements: 0,
			output_elements: 0,
			max_step_macs: info.max_step_macs,
			max_step_proof_bytes: info.max_step_proof_bytes,
			total_macs: info.steps.iter().fold(0u64, |a, s| a.saturating_add(s.macs)),
			kind: ModelKind::Text {
				vocab: decoded.vocab,
				max_context: decoded.max_context,
				eos_tokens,
			},
		})
	}

	/// The decoded transformer header of a registered text model (`None` if unknown or a
	/// classifier).
	pub fn lm_header(model: &ModelId) -> Option<verity_primitives::lm::header::LmHeader> {
		let bytes = Headers::<T>::get(model)?;
		verity_primitives::lm::header::decode_lm_header(&bytes, T::MaxHeaderBytes::get()).ok()
	}

	/// The chain's model limits, from the pallet's constants.
	pub fn limits() -> Limits {
		Limits {
			max_header_bytes: T::MaxHeaderBytes::get(),
			max_ops: T::MaxOps::get(),
			max_tensor_elements: T::MaxTensorElements::get(),
			max_op_inputs: T::MaxOpInputs::get(),
			max_step_proof_bytes: u64::from(T::MaxStepProofBytes::get()),
			max_step_macs: u64::from(T::MaxStepMacs::get()),
		}
	}

	/// The chain's limits for transformer language models (`verity_primitives::lm::validate::
	/// validate_lm`): [`Pallet::limits`] with `max_ops` = [`Config::MaxLmOps`] ops per
	/// position. Every other bound is the classifiers': the largest step of an admitted model,
	/// at its maximum context, fits one fraud proof (`MaxStepProofBytes`, `MaxStepMacs`).
	pub fn lm_limits() -> Limits {
		Limits { max_ops: T::MaxLmOps::get(), ..Self::limits() }
	}

	/// The announcement of `model`'s registration by `publisher`:
	/// `blake2_256(SCALE(("verity/model", publisher, model)))`.
	pub fn announcement(publisher: &T::AccountId, model: &ModelId) -> [u8; 32] {
		sp_runtime::traits::BlakeTwo256::hash_of(&(b"verity/model", publisher, model)).into()
	}

	/// A registration of the same header announced earlier (at `announced_at`, by `publisher`)
	/// takes `record` over, within `RegistrationGrace` blocks of its registration.
	fn take_over(
		id: ModelId,
		mut record: ModelRecord<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>,
		publisher: T::AccountId,
		announced_at: BlockNumberFor<T>,
		name: Vec<u8>,
		uri: Vec<u8>,
	) -> DispatchResult {
		let now = frame_system::Pallet::<T>::block_number();
		ensure!(
			now < record.registered_at.saturating_add(T::RegistrationGrace::get())
				&& announced_at < record.announced_at,
			Error::<T>::AlreadyRegistered
		);
		let name: BoundedVec<u8, T::MaxNameLen> =
			name.try_into().map_err(|_| Error::<T>::NameTooLong)?;
		let uri: BoundedVec<u8, T::MaxUriLen> =
			uri.try_into().map_err(|_| Error::<T>::UriTooLong)?;
		let header_len = Headers::<T>::decode_len(id).unwrap_or_default();
		let deposit =
			Self::deposit_for(header_len.saturating_add(name.len()).saturating_add(uri.len()));
		currency::hold_deposit::<T>(&publisher, deposit)?;
		currency::release_deposit::<T>(&record.publisher, record.deposit)?;
		let from = core::mem::replace(&mut record.publisher, publisher.clone());
		record.deposit = deposit;
		record.announced_at = announced_at;
		record.status = ModelStatus::Active;
		Models::<T>::insert(id, record);
		Metadata::<T>::insert(id, ModelMetadata { name, uri });
		Self::deposit_event(Event::PublisherReplaced { model: id, from, to: publisher });
		Ok(())
	}

	/// The bond of an availability challenge for an op with `weight_len` weight bytes:
	/// `AvailabilityBondBase + AvailabilityBondPerByte × weight_len`.
	pub fn availability_bond(weight_len: u32) -> BalanceOf<T> {
		T::AvailabilityBondBase::get()
			.saturating_add(T::AvailabilityBondPerByte::get().saturating_mul(weight_len.into()))
	}

	/// Op `op`'s (1-based) weight length and hash, from the model's header.
	fn weights_of(model: &ModelId, op: u32) -> Result<(u32, verity_primitives::Hash), Error<T>> {
		let header = Self::header(model).ok_or(Error::<T>::UnknownModel)?;
		let index = usize::try_from(op.checked_sub(1).ok_or(Error::<T>::NoSuchOp)?)
			.map_err(|_| Error::<T>::NoSuchOp)?;
		let op = header.ops.get(index).ok_or(Error::<T>::NoSuchOp)?;
		Ok((op.weight_len, op.weight_hash))
	}

	/// The deposit for `bytes` stored bytes.
	pub fn deposit_for(bytes: usize) -> BalanceOf<T> {
		let bytes: BalanceOf<T> = verity_primitives::len_u32(bytes).into();
		T::DepositBase::get().saturating_add(T::DepositPerByte::get().saturating_mul(bytes))
	}

	/// The record of a model that accepts new jobs.
	pub fn active_model(
		model: &ModelId,
	) -> Option<
		ModelRecord<T::AccountId, BalanceOf<T>, frame_system::pallet_prelude::BlockNumberFor<T>>,
	> {
		Models::<T>::get(model).filter(|r| r.status == ModelStatus::Active)
	}

	/// The decoded header of a registered model (`None` if unknown; stored headers always
	/// decode because they were validated at registration).
	pub fn header(model: &ModelId) -> Option<ModelHeader> {
		let bytes = Headers::<T>::get(model)?;
		verity_primitives::decode_header(&bytes, T::MaxHeaderBytes::get()).ok()
	}

	/// Count a job opened for `model` (called by the jobs pallet).
	pub fn job_opened(model: &ModelId) {
		Models::<T>::mutate(model, |r| {
			if let Some(r) = r {
				r.open_jobs = r.open_jobs.saturating_add(1);
			}
		});
	}

	/// Count a job of `model` closed (called by the jobs pallet).
	pub fn job_closed(model: &ModelId) {
		Models::<T>::mutate(model, |r| {
			if let Some(r) = r {
				r.open_jobs = r.open_jobs.saturating_sub(1);
			}
		});
	}

	/// Invariants: every model has its header and metadata, each publisher's `ModelDeposit`
	/// hold equals the sum of the deposits of its models, and the announcement and
	/// availability-bond holds equal what the stored announcements and challenges say.
	#[cfg(any(feature = "std", feature = "try-runtime"))]
	pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
		use alloc::collections::btree_map::BTreeMap;
		use frame_support::traits::fungible::InspectHold;
		let mut deposits: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
		for (id, record) in Models::<T>::iter() {
			ensure!(Headers::<T>::contains_key(id), "model without header");
			ensure!(Metadata::<T>::contains_key(id), "model without metadata");
			let entry = deposits.entry(record.publisher).or_default();
			*entry = entry.saturating_add(record.deposit);
		}
		ensure!(Headers::<T>::iter_keys().all(Models::<T>::contains_key), "header without model");
		let mut announced: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
		for (who, _, (_, deposit)) in Announcements::<T>::iter() {
			let entry = announced.entry(who).or_default();
			*entry = entry.saturating_add(deposit);
		}
		for (who, total) in announced {
			ensure!(
				T::Currency::balance_on_hold(&HoldReason::Announcement.into(), &who) == total,
				"announcement hold differs from the stored announcements"
			);
		}
		let mut bonds: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
		for (model, _, challenge) in WeightChallenges::<T>::iter() {
			ensure!(Models::<T>::contains_key(model), "challenge of an unknown model");
			let entry = bonds.entry(challenge.challenger).or_default();
			*entry = entry.saturating_add(challenge.bond);
		}
		for (who, total) in bonds {
			ensure!(
				T::Currency::balance_on_hold(&HoldReason::AvailabilityBond.into(), &who) == total,
				"availability bond hold differs from the stored challenges"
			);
		}
		for (who, total) in deposits {
			ensure!(
				T::Currency::balance_on_hold(&HoldReason::ModelDeposit.into(), &who) == total,
				"model deposit hold differs from the sum of the publisher's deposits"
			);
		}
		Ok(())
	}
}
