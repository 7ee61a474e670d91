//! Every currency operation of the models pallet: the model deposit and announcement holds.

use frame_support::{
	pallet_prelude::DispatchResult,
	traits::{fungible::MutateHold, tokens::Precision},
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
