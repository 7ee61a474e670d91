//! Every currency operation of the models pallet: the model deposit, announcement and
//! availability-bond holds.

use frame_support::{
	pallet_prelude::DispatchResult,
	traits::{
		fungible::MutateHold,
		tokens::{Fortitude, Precision, Restriction},
	},
};

use crate::{BalanceOf, Config, Error, HoldReason};

/// Hold a model's storage deposit from its publisher.
pub fn hold_deposit<T: Config>(who: &T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
	T::Currency::hold(&HoldReason::ModelDeposit.into(), who, amount)
		.map_err(|_| Error::<T>::InsufficientBalance.into())
}

/// Release a reaped model's deposit to its publisher.
pub fn release_deposit<T: Config>(who: &T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
	T::Currency::release(&HoldReason::ModelDeposit.into(), who, amount, Precision::Exact)
		.map(|_| ())
}

/// Hold an announcement's deposit.
pub fn hold_announcement<T: Config>(who: &T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
	T::Currency::hold(&HoldReason::Announcement.into(), who, amount)
		.map_err(|_| Error::<T>::InsufficientBalance.into())
}

/// Release an announcement's deposit (used, or withdrawn).
pub fn release_announcement<T: Config>(who: &T::AccountId, amount: BalanceOf<T>) {
	// Best effort: the hold always covers the stored announcements (`do_try_state`).
	let _ =
		T::Currency::release(&HoldReason::Announcement.into(), who, amount, Precision::BestEffort);
}

/// Hold an availability challenge's bond.
pub fn hold_bond<T: Config>(who: &T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
	T::Currency::hold(&HoldReason::AvailabilityBond.into(), who, amount)
		.map_err(|_| Error::<T>::InsufficientBalance.into())
}

/// Release a challenger's bond (its challenge was upheld).
pub fn release_bond<T: Config>(who: &T::AccountId, amount: BalanceOf<T>) {
	// Best effort: the hold always covers the stored challenges' bonds (`do_try_state`).
	let _ = T::Currency::release(
		&HoldReason::AvailabilityBond.into(),
		who,
		amount,
		Precision::BestEffort,
	);
}

/// Pay a challenger's held bond to the publisher (free): the weights were posted. Returns the
/// amount paid.
pub fn pay_bond<T: Config>(
	challenger: &T::AccountId,
	publisher: &T::AccountId,
	amount: BalanceOf<T>,
) -> BalanceOf<T> {
	T::Currency::transfer_on_hold(
		&HoldReason::AvailabilityBond.into(),
		challenger,
		publisher,
		amount,
		Precision::BestEffort,
		Restriction::Free,
		Fortitude::Force,
	)
	.unwrap_or_default()
}

/// Pay a publisher's held model deposit to a challenger (free): the weights were withheld.
/// Returns the amount paid.
pub fn pay_deposit<T: Config>(
	publisher: &T::AccountId,
	challenger: &T::AccountId,
	amount: BalanceOf<T>,
) -> BalanceOf<T> {
	T::Currency::transfer_on_hold(
		&HoldReason::ModelDeposit.into(),
		publisher,
		challenger,
		amount,
		Precision::BestEffort,
		Restriction::Free,
		Fortitude::Force,
	)
	.unwrap_or_default()
}
