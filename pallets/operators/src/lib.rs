//! # Operators pallet: stake, serving declarations, per-job collateral, jailing
//!
//! An operator bonds stake (a fungible hold, [`HoldReason::Stake`]), declares which models it
//! serves and at what price per job, and is assigned jobs by the jobs pallet. Each assigned job
//! locks a collateral from the operator's *free* stake (bonded minus locked); an operator is only
//! eligible for a job while its free stake covers the collateral, and stake that secures open
//! jobs can neither be unbonded nor escape: `unbond` only moves free stake into unbonding chunks
//! that mature after `UnbondingPeriod` blocks, which `integrity_test` requires to be longer than
//! the jobs pallet's execution deadline plus challenge window.
//!
//! A proven fraud slashes the job's collateral (through [`Pallet::slash`], used by the disputes
//! and jobs pallets) and jails the operator: no new jobs until `unjail` after `JailDuration`
//! blocks, which requires the operator to have at least `MinBond` again.
//!
//! Only an eligible operator (not jailed, at least `MinBond` active stake) holds one of a model's
//! `MaxServersPerModel` server slots: jailing, a slash or an `unbond` that leaves less than
//! `MinBond` ends every serving declaration (`Unserved`), so slots cannot be squatted at zero
//! stake (`try_state` checks it). After `unjail` or `bond_extra`, `serve` again.
//!
//! Assignment ([`Pallet::select`]) is stake-weighted among the eligible operators serving the
//! model at a price within the requester's `max_fee`; see the jobs pallet for the seed.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;

#[cfg(feature = "runtime-benchmarks")]
pub mod benchmarking;
mod currency;
pub mod weights;

pub use weights::WeightInfo;

use codec::{Decode, Encode, MaxEncodedLen};
use frame_support::{
	pallet_prelude::*,
	traits::{fungible, OnUnbalanced},
};
use pallet_verity_models::BalanceOf;
use scale_info::TypeInfo;
use sp_runtime::{
	traits::{Saturating, Zero},
	SaturatedConversion,
};
use verity_primitives::ModelId;

/// Funds taken from an account (slashes) before they are paid out or burnt.
pub type CreditOf<T> = fungible::Credit<
	<T as frame_system::Config>::AccountId,
	<T as pallet_verity_models::Config>::Currency,
>;

/// Stake on its way out: `amount` can be withdrawn from block `until` on.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct UnbondChunk<Balance, BlockNumber> {
	pub amount: Balance,
	pub until: BlockNumber,
}

/// An operator chosen for a job, and its price.
pub type Selected<T> = (<T as frame_system::Config>::AccountId, BalanceOf<T>);

/// An operator's stake and obligations.
#[derive(
	CloneNoBound, PartialEqNoBound, EqNoBound, DebugNoBound, Encode, Decode, TypeInfo, MaxEncodedLen,
)]
#[scale_info(skip_type_params(T))]
pub struct Operator<T: Config> {
	/// Bonded stake that secures jobs (on hold).
	pub active: BalanceOf<T>,
	/// The part of `active` locked as collateral of open jobs (`locked <= active`).
	pub locked: BalanceOf<T>,
	/// Stake leaving (still on hold, no longer securing new jobs).
	pub unbonding: BoundedVec<UnbondChunk<BalanceOf<T>, BlockNumberFor<T>>, T::MaxUnbonding>,
	/// Jailed until this block (no new jobs; `unjail` afterwards).
	pub jailed_until: Option<BlockNumberFor<T>>,
	/// Models served.
	pub models: BoundedVec<ModelId, T::MaxModelsPerOperator>,
	/// Jobs assigned and not yet closed.
	pub open_jobs: u32,
}

impl<T: Config> Operator<T> {
	/// Stake that can secure one more job.
	pub fn free_stake(&self) -> BalanceOf<T> {
		self.active.saturating_sub(self.locked)
	}

	/// Total stake on hold (active + unbonding).
	pub fn total_held(&self) -> BalanceOf<T> {
		self.unbonding.iter().fold(self.active, |acc, c| acc.saturating_add(c.amount))
	}
}

/// One operator serving a model at a price.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub struct Server<AccountId, Balance> {
	pub operator: AccountId,
	/// Fee per job.
	pub price: Balance,
}

use frame_system::pallet_prelude::BlockNumberFor;

#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use frame_system::pallet_prelude::{ensure_signed, OriginFor};

	/// The layout version of this pallet's storage: a migration that changes the layout bumps it
	/// (and checks it in `pre_upgrade`/`post_upgrade`).
	const STORAGE_VERSION: StorageVersion = StorageVersion::new(0);

	#[pallet::pallet]
	#[pallet::storage_version(STORAGE_VERSION)]
	pub struct Pallet<T>(_);

	#[pallet::config]
	pub trait Config:
		frame_system::Config + pallet_verity_models::Config<RuntimeHoldReason: From<HoldReason>>
	{
		/// Smallest stake of an operator that serves models.
		#[pallet::constant]
		type MinBond: Get<BalanceOf<Self>>;
		/// Blocks between `unbond` and `withdraw_unbonded`. Must exceed the jobs pallet's
		/// execution deadline plus challenge window (checked by the jobs pallet's
		/// `integrity_test`).
		#[pallet::constant]
		type UnbondingPeriod: Get<BlockNumberFor<Self>>;
		/// Largest number of unbonding chunks per operator.
		#[pallet::constant]
		type MaxUnbonding: Get<u32>;
		/// Largest number of operators serving one model (bounds assignment work).
		#[pallet::constant]
		type MaxServersPerModel: Get<u32>;
		/// Largest number of models one operator serves.
		#[pallet::constant]
		type MaxModelsPerOperator: Get<u32>;
		/// Blocks an operator stays jailed after a proven fraud.
		#[pallet::constant]
		type JailDuration: Get<BlockNumberFor<Self>>;
		/// Where slashed funds that are not paid out go (`()` burns them).
		type Slash: OnUnbalanced<CreditOf<Self>>;
		/// Weights of this pallet's calls.
		type WeightInfo: WeightInfo;
	}

	/// Reasons for which this pallet holds funds.
	#[pallet::composite_enum]
	pub enum HoldReason {
		/// An operator's bonded and unbonding stake.
		#[codec(index = 0)]
		Stake,
	}

	/// Operators by account.
	#[pallet::storage]
	pub type Operators<T: Config> =
		StorageMap<_, Blake2_128Concat, T::AccountId, Operator<T>, OptionQuery>;

	/// The operators serving each model, with their prices.
	#[pallet::storage]
	pub type Servers<T: Config> = StorageMap<
		_,
		Identity,
		ModelId,
		BoundedVec<Server<T::AccountId, BalanceOf<T>>, T::MaxServersPerModel>,
		ValueQuery,
	>;

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// Stake was bonded (first bond or extra).
		Bonded { operator: T::AccountId, amount: BalanceOf<T> },
		/// Stake starts unbonding; withdrawable from block `until`.
		Unbonding { operator: T::AccountId, amount: BalanceOf<T>, until: BlockNumberFor<T> },
		/// Matured unbonding stake was released.
		Withdrawn { operator: T::AccountId, amount: BalanceOf<T> },
		/// The operator has no stake and no obligations left and was removed.
		Removed { operator: T::AccountId },
		/// The operator serves `model` at `price` per job.
		Serving { operator: T::AccountId, model: ModelId, price: BalanceOf<T> },
		/// The operator no longer serves `model`.
		Unserved { operator: T::AccountId, model: ModelId },
		/// Stake was slashed.
		Slashed { operator: T::AccountId, amount: BalanceOf<T> },
		/// The operator gets no new jobs until `until` and a successful `unjail`.
		Jailed { operator: T::AccountId, until: BlockNumberFor<T> },
		/// The operator is eligible for jobs again.
		Unjailed { operator: T::AccountId },
	}

	#[pallet::error]
	pub enum Error<T> {
		/// The account is already an operator; use `bond_extra`.
		AlreadyBonded,
		/// The account is not an operator.
		NotOperator,
		/// The resulting stake would be below `MinBond` (and not zero).
		BelowMinBond,
		/// The account cannot hold that much.
		InsufficientBalance,
		/// Amounts must be positive.
		ZeroAmount,
		/// That much stake is not free: it is locked as collateral of open jobs.
		StakeLocked,
		/// Too many unbonding chunks; withdraw matured ones first or wait.
		TooManyUnbondingChunks,
		/// No unbonding chunk has matured.
		NothingToWithdraw,
		/// The model is unknown or retired.
		ModelNotActive,
		/// The model already has `MaxServersPerModel` operators.
		TooManyServers,
		/// The operator already serves `MaxModelsPerOperator` models.
		TooManyModels,
		/// The operator does not serve this model.
		NotServing,
		/// The operator is jailed.
		Jailed,
		/// The operator is not jailed.
		NotJailed,
		/// The jail term has not ended yet.
		StillJailed,
	}

	/// Operators at genesis: (account, stake, [(model, price)]), bonded and serving as if by
	/// `bond` and `serve` calls (the models must be registered at genesis too).
	#[pallet::genesis_config]
	#[derive(frame_support::DefaultNoBound)]
	pub struct GenesisConfig<T: Config> {
		#[allow(clippy::type_complexity)]
		pub operators:
			alloc::vec::Vec<(T::AccountId, BalanceOf<T>, alloc::vec::Vec<(ModelId, BalanceOf<T>)>)>,
	}

	#[pallet::genesis_build]
	impl<T: Config> BuildGenesisConfig for GenesisConfig<T> {
		fn build(&self) {
			for (who, stake, models) in &self.operators {
				let origin = frame_system::RawOrigin::Signed(who.clone());
				if let Err(e) = Pallet::<T>::bond(origin.clone().into(), *stake) {
					panic!("genesis operator cannot bond: {e:?}");
				}
				for (model, price) in models {
					if let Err(e) = Pallet::<T>::serve(origin.clone().into(), *model, *price) {
						panic!("genesis operator cannot serve: {e:?}");
					}
				}
			}
		}
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		fn integrity_test() {
			assert!(!T::MinBond::get().is_zero(), "MinBond must be positive");
			assert!(T::MaxUnbonding::get() >= 1 && T::MaxServersPerModel::get() >= 1);
			assert!(T::MaxModelsPerOperator::get() >= 1);
		}

		#[cfg(feature = "try-runtime")]
		fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Become an operator by bonding `amount` (at least `MinBond`), held from the caller.
		///
		/// The dispatch origin must be _Signed_ (the operator's account).
		///
		/// Errors: `AlreadyBonded` if the caller is an operator already, `BelowMinBond` if `amount <
		/// MinBond`, a balance error if `amount` cannot be held.
		/// Emits `Bonded`.
		///
		/// Complexity: `O(1)`.
		#[pallet::call_index(0)]
		#[pallet::weight(<T as Config>::WeightInfo::bond())]
		pub fn bond(
			origin: OriginFor<T>,
			#[pallet::compact] amount: BalanceOf<T>,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			ensure!(!Operators::<T>::contains_key(&who), Error::<T>::AlreadyBonded);
			ensure!(amount >= T::MinBond::get(), Error::<T>::BelowMinBond);
			currency::hold_stake::<T>(&who, amount)?;
			Operators::<T>::insert(
				&who,
				Operator {
					active: amount,
					locked: Zero::zero(),
					unbonding: Default::default(),
					jailed_until: None,
					models: Default::default(),
					open_jobs: 0,
				},
			);
			Self::deposit_event(Event::Bonded { operator: who, amount });
			Ok(())
		}

		/// Add `amount` to an operator's active stake.
		///
		/// The dispatch origin must be _Signed_ by an operator.
		///
		/// Errors: `ZeroAmount`, `NotOperator`, a balance error if `amount` cannot be held.
		/// Emits `Bonded`.
		///
		/// Complexity: `O(1)`.
		#[pallet::call_index(1)]
		#[pallet::weight(<T as Config>::WeightInfo::bond_extra())]
		pub fn bond_extra(
			origin: OriginFor<T>,
			#[pallet::compact] amount: BalanceOf<T>,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			ensure!(!amount.is_zero(), Error::<T>::ZeroAmount);
			Operators::<T>::try_mutate(&who, |op| {
				let op = op.as_mut().ok_or(Error::<T>::NotOperator)?;
				currency::hold_stake::<T>(&who, amount)?;
				op.active = op.active.saturating_add(amount);
				Ok::<_, DispatchError>(())
			})?;
			Self::deposit_event(Event::Bonded { operator: who, amount });
			Ok(())
		}

		/// Start unbonding `amount` of free (not locked) active stake; it can be withdrawn
		/// `UnbondingPeriod` blocks from now. The remaining active stake must be at least
		/// `MinBond` or exactly the locked collateral (an operator winding down: below `MinBond`
		/// it gets no new jobs and stops serving every model, freeing their server slots).
		///
		/// The dispatch origin must be _Signed_ by an operator.
		///
		/// Errors: `ZeroAmount`, `NotOperator`, `StakeLocked` if `amount` exceeds the free stake,
		/// `BelowMinBond` if the rest would be neither `>= MinBond` nor the locked collateral,
		/// `TooManyUnbondingChunks` if `MaxUnbonding` chunks are pending.
		/// Emits `Unbonding`, and `Unserved` per model when the rest is below `MinBond`.
		///
		/// Complexity: `O(c + m × s)` in the unbonding chunks, served models and their servers
		/// (bounded by `MaxUnbonding`, `MaxModelsPerOperator`, `MaxServersPerModel`).
		#[pallet::call_index(2)]
		#[pallet::weight(
			<T as Config>::WeightInfo::unbond().saturating_add(Pallet::<T>::stop_serving_weight())
		)]
		pub fn unbond(
			origin: OriginFor<T>,
			#[pallet::compact] amount: BalanceOf<T>,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			ensure!(!amount.is_zero(), Error::<T>::ZeroAmount);
			let until =
				frame_system::Pallet::<T>::block_number().saturating_add(T::UnbondingPeriod::get());
			Operators::<T>::try_mutate(&who, |op| {
				let op = op.as_mut().ok_or(Error::<T>::NotOperator)?;
				ensure!(amount <= op.free_stake(), Error::<T>::StakeLocked);
				let remaining = op.active.saturating_sub(amount);
				// Either a serving-sized stake stays, or everything that is not locked goes
				// (the locked rest is unbonded once its jobs close).
				ensure!(
					remaining >= T::MinBond::get() || remaining == op.locked,
					Error::<T>::BelowMinBond
				);
				if let Some(chunk) = op.unbonding.iter_mut().find(|c| c.until == until) {
					chunk.amount = chunk.amount.saturating_add(amount);
				} else {
					op.unbonding
						.try_push(UnbondChunk { amount, until })
						.map_err(|_| Error::<T>::TooManyUnbondingChunks)?;
				}
				op.active = remaining;
				// Winding down: no longer eligible, so no longer holding a server slot.
				if op.active < T::MinBond::get() {
					Self::stop_serving(&who, op);
				}
				Ok::<_, Error<T>>(())
			})?;
			Self::deposit_event(Event::Unbonding { operator: who, amount, until });
			Ok(())
		}

		/// Release every matured unbonding chunk. An operator left with no stake, no open jobs
		/// and no served models is removed.
		///
		/// The dispatch origin must be _Signed_ by an operator.
		///
		/// Errors: `NotOperator`, `NothingToWithdraw` if no chunk has matured.
		/// Emits `Withdrawn`, and `Removed` when the operator record is deleted.
		///
		/// Complexity: `O(c)` in the number of unbonding chunks.
		#[pallet::call_index(3)]
		#[pallet::weight(<T as Config>::WeightInfo::withdraw_unbonded())]
		pub fn withdraw_unbonded(origin: OriginFor<T>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let now = frame_system::Pallet::<T>::block_number();
			let mut op = Operators::<T>::get(&who).ok_or(Error::<T>::NotOperator)?;
			let mut amount: BalanceOf<T> = Zero::zero();
			op.unbonding.retain(|c| {
				if c.until <= now {
					amount = amount.saturating_add(c.amount);
					false
				} else {
					true
				}
			});
			ensure!(!amount.is_zero(), Error::<T>::NothingToWithdraw);
			currency::release_stake::<T>(&who, amount)?;
			let removable = op.active.is_zero()
				&& op.unbonding.is_empty()
				&& op.open_jobs == 0
				&& op.models.is_empty();
			if removable {
				Operators::<T>::remove(&who);
			} else {
				Operators::<T>::insert(&who, op);
			}
			Self::deposit_event(Event::Withdrawn { operator: who.clone(), amount });
			if removable {
				Self::deposit_event(Event::Removed { operator: who });
			}
			Ok(())
		}

		/// Serve `model` at `price` per job (or change the price). Requires an active model,
		/// at least `MinBond` active stake and no jail.
		///
		/// The dispatch origin must be _Signed_ by an operator.
		///
		/// Errors: `NotOperator`, `Jailed`, `BelowMinBond`, `ModelNotActive` (unknown or retired),
		/// `TooManyServers` if the model has `MaxServersPerModel` servers, `TooManyModels` if the
		/// operator serves `MaxModelsPerOperator` models.
		/// Emits `Serving`.
		///
		/// Complexity: `O(s + m)` in the model's servers and the operator's models (bounded).
		#[pallet::call_index(4)]
		#[pallet::weight(<T as Config>::WeightInfo::serve())]
		pub fn serve(
			origin: OriginFor<T>,
			model: ModelId,
			#[pallet::compact] price: BalanceOf<T>,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let mut op = Operators::<T>::get(&who).ok_or(Error::<T>::NotOperator)?;
			ensure!(op.jailed_until.is_none(), Error::<T>::Jailed);
			ensure!(op.active >= T::MinBond::get(), Error::<T>::BelowMinBond);
			ensure!(
				pallet_verity_models::Pallet::<T>::active_model(&model).is_some(),
				Error::<T>::ModelNotActive
			);
			Servers::<T>::try_mutate(model, |servers| {
				if let Some(s) = servers.iter_mut().find(|s| s.operator == who) {
					s.price = price;
					return Ok(());
				}
				servers
					.try_push(Server { operator: who.clone(), price })
					.map_err(|_| Error::<T>::TooManyServers)?;
				op.models.try_push(model).map_err(|_| Error::<T>::TooManyModels)?;
				Operators::<T>::insert(&who, &op);
				Ok::<_, Error<T>>(())
			})?;
			Self::deposit_event(Event::Serving { operator: who, model, price });
			Ok(())
		}

		/// Stop serving `model` (jobs already assigned stay assigned).
		///
		/// The dispatch origin must be _Signed_ by an operator.
		///
		/// Errors: `NotOperator`, `NotServing` if the operator does not serve `model`.
		/// Emits `Unserved`.
		///
		/// Complexity: `O(s + m)`.
		#[pallet::call_index(5)]
		#[pallet::weight(<T as Config>::WeightInfo::unserve())]
		pub fn unserve(origin: OriginFor<T>, model: ModelId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let mut op = Operators::<T>::get(&who).ok_or(Error::<T>::NotOperator)?;
			let before = op.models.len();
			op.models.retain(|m| *m != model);
			ensure!(op.models.len() != before, Error::<T>::NotServing);
			Self::remove_server(&model, &who);
			Operators::<T>::insert(&who, op);
			Self::deposit_event(Event::Unserved { operator: who, model });
			Ok(())
		}

		/// Leave jail once the term is over; requires at least `MinBond` active stake (bond
		/// extra first if a slash took the stake below it).
		///
		/// The dispatch origin must be _Signed_ by an operator.
		///
		/// Errors: `NotOperator`, `NotJailed`, `StillJailed` before the term ends, `BelowMinBond`.
		/// Emits `Unjailed`.
		///
		/// Complexity: `O(1)`.
		#[pallet::call_index(6)]
		#[pallet::weight(<T as Config>::WeightInfo::unjail())]
		pub fn unjail(origin: OriginFor<T>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let now = frame_system::Pallet::<T>::block_number();
			Operators::<T>::try_mutate(&who, |op| {
				let op = op.as_mut().ok_or(Error::<T>::NotOperator)?;
				let until = op.jailed_until.ok_or(Error::<T>::NotJailed)?;
				ensure!(now >= until, Error::<T>::StillJailed);
				ensure!(op.active >= T::MinBond::get(), Error::<T>::BelowMinBond);
				op.jailed_until = None;
				Ok::<_, Error<T>>(())
			})?;
			Self::deposit_event(Event::Unjailed { operator: who });
			Ok(())
		}
	}

	#[pallet::view_functions]
	impl<T: Config> Pallet<T> {
		/// An operator's stake and obligations.
		pub fn operator(who: T::AccountId) -> Option<Operator<T>> {
			Operators::<T>::get(who)
		}

		/// The operators serving `model` and their prices.
		pub fn servers(model: ModelId) -> alloc::vec::Vec<Server<T::AccountId, BalanceOf<T>>> {
			Servers::<T>::get(model).into_inner()
		}
	}
}

impl<T: Config> Pallet<T> {
	/// Pick an operator for a job: among the operators serving `model` at a price `<= max_fee`,
	/// not jailed, not in `exclude`, with at least `MinBond` active stake whose free part
	/// covers `collateral`, one chosen with
	/// probability proportional to its active stake, using the first 16 bytes of `seed`.
	/// Returns the operator, its price, and the number of servers examined (for weight).
	pub fn select(
		model: &ModelId,
		max_fee: BalanceOf<T>,
		collateral: BalanceOf<T>,
		seed: &[u8; 32],
		exclude: &[T::AccountId],
	) -> (Option<Selected<T>>, u32) {
		let servers = Servers::<T>::get(model);
		let examined = verity_primitives::len_u32(servers.len());
		let mut candidates: alloc::vec::Vec<(T::AccountId, BalanceOf<T>, u128)> =
			alloc::vec::Vec::with_capacity(servers.len());
		let mut total: u128 = 0;
		for s in servers.into_iter() {
			if s.price > max_fee || exclude.contains(&s.operator) {
				continue;
			}
			let Some(op) = Operators::<T>::get(&s.operator) else { continue };
			if op.jailed_until.is_some()
				|| op.active < T::MinBond::get()
				|| op.free_stake() < collateral
			{
				continue;
			}
			let weight: u128 = op.active.saturated_into::<u128>().max(1);
			total = total.saturating_add(weight);
			candidates.push((s.operator, s.price, weight));
		}
		if total == 0 {
			return (None, examined);
		}
		let mut r_bytes = [0u8; 16];
		r_bytes.copy_from_slice(seed.get(..16).unwrap_or(&[0u8; 16]));
		let mut r = u128::from_le_bytes(r_bytes) % total;
		for (who, price, weight) in candidates {
			if r < weight {
				return (Some((who, price)), examined);
			}
			r = r.saturating_sub(weight);
		}
		(None, examined)
	}

	/// Lock `amount` of `who`'s free stake as a job's collateral.
	pub fn lock_collateral(who: &T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
		Operators::<T>::try_mutate(who, |op| {
			let op = op.as_mut().ok_or(Error::<T>::NotOperator)?;
			ensure!(op.free_stake() >= amount, Error::<T>::StakeLocked);
			op.locked = op.locked.saturating_add(amount);
			op.open_jobs = op.open_jobs.saturating_add(1);
			Ok(())
		})
	}

	/// Unlock a closed job's collateral.
	pub fn release_collateral(who: &T::AccountId, amount: BalanceOf<T>) {
		Operators::<T>::mutate(who, |op| {
			if let Some(op) = op {
				op.locked = op.locked.saturating_sub(amount);
				op.open_jobs = op.open_jobs.saturating_sub(1);
			}
		});
	}

	/// Slash up to `amount` of `who`'s active stake; returns the funds taken (to be paid out
	/// or handed to [`Config::Slash`]). Locked collateral shrinks with the stake, so that
	/// `locked <= active` keeps holding.
	pub fn slash(who: &T::AccountId, amount: BalanceOf<T>) -> CreditOf<T> {
		use frame_support::traits::Imbalance;
		let Some(mut op) = Operators::<T>::get(who) else {
			return Default::default();
		};
		let amount = amount.min(op.active);
		let credit = currency::slash_stake::<T>(who, amount);
		let taken = credit.peek();
		op.active = op.active.saturating_sub(taken);
		op.locked = op.locked.min(op.active);
		if op.active < T::MinBond::get() {
			Self::stop_serving(who, &mut op);
		}
		Operators::<T>::insert(who, op);
		if !taken.is_zero() {
			Self::deposit_event(Event::Slashed { operator: who.clone(), amount: taken });
		}
		credit
	}

	/// Hand slashed funds that are not paid out to [`Config::Slash`] (burnt by default).
	pub fn dispose(credit: CreditOf<T>) {
		T::Slash::on_unbalanced(credit);
	}

	/// Jail `who` for `JailDuration` blocks: no new jobs, and it stops serving every model (after
	/// `unjail` it serves again with `serve`).
	pub fn jail(who: &T::AccountId) {
		let until =
			frame_system::Pallet::<T>::block_number().saturating_add(T::JailDuration::get());
		Operators::<T>::mutate(who, |op| {
			if let Some(op) = op {
				op.jailed_until = Some(until);
				Self::stop_serving(who, op);
			}
		});
		Self::deposit_event(Event::Jailed { operator: who.clone(), until });
	}

	/// An upper bound of the weight of [`Pallet::stop_serving`] (run by `unbond` below
	/// `MinBond`, by a slash below it and by jailing): the `unserve` benchmark (one model with a
	/// full server list) times the models an operator can serve.
	pub fn stop_serving_weight() -> Weight {
		<T as Config>::WeightInfo::unserve().saturating_mul(T::MaxModelsPerOperator::get().into())
	}

	/// Remove `who` from `model`'s servers.
	fn remove_server(model: &ModelId, who: &T::AccountId) {
		Servers::<T>::mutate_exists(model, |servers| {
			if let Some(list) = servers {
				list.retain(|s| s.operator != *who);
				if list.is_empty() {
					*servers = None;
				}
			}
		});
	}

	/// `who` (record `op`, written back by the caller) stops serving every model: it became
	/// ineligible (jailed, or active stake below `MinBond`), and an ineligible operator must not
	/// hold one of a model's `MaxServersPerModel` slots (squatting them at no stake would make
	/// the model unusable). Jobs already assigned stay assigned. Emits `Unserved` per model.
	///
	/// Complexity: `O(m × s)`, bounded by `MaxModelsPerOperator × MaxServersPerModel`.
	fn stop_serving(who: &T::AccountId, op: &mut Operator<T>) {
		for model in core::mem::take(&mut op.models) {
			Self::remove_server(&model, who);
			Self::deposit_event(Event::Unserved { operator: who.clone(), model });
		}
	}

	/// Invariants: each operator's `Stake` hold equals active + unbonding stake, `locked <=
	/// active`, the served-model lists agree with `Servers`, and every server is eligible (not
	/// jailed, at least `MinBond` active stake).
	#[cfg(any(feature = "std", feature = "try-runtime"))]
	pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
		use frame_support::traits::fungible::InspectHold;
		for (who, op) in Operators::<T>::iter() {
			ensure!(
				<T as pallet_verity_models::Config>::Currency::balance_on_hold(
					&HoldReason::Stake.into(),
					&who
				) == op.total_held(),
				"stake hold differs from active + unbonding stake"
			);
			ensure!(op.locked <= op.active, "locked collateral exceeds active stake");
			for m in op.models.iter() {
				ensure!(
					Servers::<T>::get(m).iter().any(|s| s.operator == who),
					"served model missing from Servers"
				);
			}
		}
		for (model, servers) in Servers::<T>::iter() {
			for s in servers {
				let op = Operators::<T>::get(&s.operator).ok_or("server is not an operator")?;
				ensure!(op.models.contains(&model), "Servers entry missing from operator");
				ensure!(op.jailed_until.is_none(), "a jailed operator holds a server slot");
				ensure!(op.active >= T::MinBond::get(), "a server slot held below MinBond");
			}
		}
		Ok(())
	}
}
