//! Every currency operation of the operators pallet: the stake hold.

use frame_support::{
	pallet_prelude::DispatchResult,
	traits::{
		fungible::{hold::Balanced, MutateHold},
		tokens::Precision,
	},
};

use crate::{BalanceOf, Config, CreditOf, Error, HoldReason};

type Currency<T> = <T as pallet_verity_models::Config>::Currency;

/// Put `amount` of `who`'s free balance on hold as stake.
pub fn hold_stake<T: Config>(who: &T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
	Currency::<T>::hold(&HoldReason::Stake.into(), who, amount)
		.map_err(|_| Error::<T>::InsufficientBalance.into())
}

/// Release matured unbonding stake.
pub fn release_stake<T: Config>(who: &T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
	Currency::<T>::release(&HoldReason::Stake.into(), who, amount, Precision::Exact).map(|_| ())
}

/// Take up to `amount` from `who`'s stake hold.
pub fn slash_stake<T: Config>(who: &T::AccountId, amount: BalanceOf<T>) -> CreditOf<T> {
	Currency::<T>::slash(&HoldReason::Stake.into(), who, amount).0
}
