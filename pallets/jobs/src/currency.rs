//! Every currency operation of the jobs pallet: the requester's fee hold.

use frame_support::{
	pallet_prelude::DispatchResult,
	traits::{
		fungible::MutateHold,
		tokens::{Fortitude, Precision, Restriction},
	},
};

use crate::{BalanceOf, Config, Error, HoldReason};

type Currency<T> = <T as pallet_verity_models::Config>::Currency;

/// Hold a job's `max_fee` from its requester.
pub fn hold_fee<T: Config>(who: &T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
	Currency::<T>::hold(&HoldReason::Fee.into(), who, amount)
		.map_err(|_| Error::<T>::InsufficientBalance.into())
}

/// Pay the operator `price` from the requester's held fee (into the operator's free balance).
/// Returns the amount paid (the full price: the hold always covers it).
pub fn pay_fee<T: Config>(
	requester: &T::AccountId,
	operator: &T::AccountId,
	price: BalanceOf<T>,
) -> BalanceOf<T> {
	Currency::<T>::transfer_on_hold(
		&HoldReason::Fee.into(),
		requester,
		operator,
		price,
		Precision::BestEffort,
		Restriction::Free,
		Fortitude::Force,
	)
	.unwrap_or_default()
}

/// Release `amount` of the requester's held fee back to it.
pub fn refund_fee<T: Config>(requester: &T::AccountId, amount: BalanceOf<T>) {
	// Best effort: the hold always covers the job's max fee (checked by `do_try_state`).
	let _ =
		Currency::<T>::release(&HoldReason::Fee.into(), requester, amount, Precision::BestEffort);
}
