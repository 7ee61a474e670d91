//! Every currency operation of the disputes pallet: the proof-commitment deposit, and the
//! prover's reward (held on the prover until the fraud's grace period ends, so that an earlier
//! commitment to the same proof can take it over).

use frame_support::{
	pallet_prelude::DispatchResult,
	traits::{
		fungible::{Balanced, MutateHold},
		tokens::{Fortitude, Precision, Restriction},
		Get, Imbalance,
	},
};

use crate::{BalanceOf, Config, Error, HoldReason};

type Currency<T> = <T as pallet_verity_models::Config>::Currency;

/// Hold a proof commitment's deposit.
pub fn hold_deposit<T: Config>(who: &T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
	Currency::<T>::hold(&HoldReason::ProofCommitment.into(), who, amount)
		.map_err(|_| Error::<T>::InsufficientBalance.into())
}

/// Release a proof commitment's deposit.
pub fn release_deposit<T: Config>(who: &T::AccountId, amount: BalanceOf<T>) {
	// Best effort: the hold always covers the stored commitments' deposits (`do_try_state`).
	let _ = Currency::<T>::release(
		&HoldReason::ProofCommitment.into(),
		who,
		amount,
		Precision::BestEffort,
	);
}

/// Pay `ProverShare` of the slashed `credit` to `prover`, **on hold** ([`HoldReason::Reward`]),
/// and hand the rest to the operators pallet's `Slash` handler. Returns (slashed, reward held).
/// If the reward cannot be deposited (below the existential deposit of a new account) it goes
/// to the handler too.
pub fn reward_and_dispose<T: Config>(
	prover: &T::AccountId,
	credit: pallet_verity_operators::CreditOf<T>,
) -> (BalanceOf<T>, BalanceOf<T>) {
	let slashed = credit.peek();
	let share = T::ProverShare::get() * slashed;
	let (reward, mut rest) = credit.split(share);
	let held = match Currency::<T>::resolve(prover, reward) {
		// The prover's account existed (it paid the commitment's deposit and fees), so holding
		// what it was just paid cannot fail; if it did, the reward would stay free (no take-over).
		Ok(()) => Currency::<T>::hold(&HoldReason::Reward.into(), prover, share)
			.map(|_| share)
			.unwrap_or_default(),
		Err(unpaid) => {
			rest = rest.merge(unpaid);
			Default::default()
		},
	};
	pallet_verity_operators::Pallet::<T>::dispose(rest);
	(slashed, held)
}

/// Move a held reward from `from` to `to` (still held). Returns the amount moved.
pub fn take_over<T: Config>(
	from: &T::AccountId,
	to: &T::AccountId,
	amount: BalanceOf<T>,
) -> BalanceOf<T> {
	Currency::<T>::transfer_on_hold(
		&HoldReason::Reward.into(),
		from,
		to,
		amount,
		Precision::BestEffort,
		Restriction::OnHold,
		Fortitude::Force,
	)
	.unwrap_or_default()
}

/// Release a held reward to its prover.
pub fn pay_reward<T: Config>(prover: &T::AccountId, amount: BalanceOf<T>) -> BalanceOf<T> {
	Currency::<T>::release(&HoldReason::Reward.into(), prover, amount, Precision::BestEffort)
		.unwrap_or_default()
}

/// Hold a challenger's bond.
pub fn hold_bond<T: Config>(who: &T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
	Currency::<T>::hold(&HoldReason::ChallengeBond.into(), who, amount)
		.map_err(|_| Error::<T>::InsufficientBalance.into())
}

/// Return a challenger's bond.
pub fn release_bond<T: Config>(who: &T::AccountId, amount: BalanceOf<T>) {
	// Best effort: the hold always covers the open games' bonds (`do_try_state`).
	let _ = Currency::<T>::release(
		&HoldReason::ChallengeBond.into(),
		who,
		amount,
		Precision::BestEffort,
	);
}

/// Pay a challenger's bond to `to` (free).
pub fn bond_to<T: Config>(from: &T::AccountId, to: &T::AccountId, amount: BalanceOf<T>) {
	let _ = Currency::<T>::transfer_on_hold(
		&HoldReason::ChallengeBond.into(),
		from,
		to,
		amount,
		Precision::BestEffort,
		Restriction::Free,
		Fortitude::Force,
	);
}

/// Pay `ProverShare` of the slashed `credit` to `winner` (free) and hand the rest to the
/// operators pallet's `Slash` handler. Returns (slashed, paid). A share that cannot be
/// deposited goes to the handler too.
pub fn pay_and_dispose<T: Config>(
	winner: &T::AccountId,
	credit: pallet_verity_operators::CreditOf<T>,
) -> (BalanceOf<T>, BalanceOf<T>) {
	let slashed = credit.peek();
	let share = T::ProverShare::get() * slashed;
	let (reward, mut rest) = credit.split(share);
	let paid = match Currency::<T>::resolve(winner, reward) {
		Ok(()) => share,
		Err(unpaid) => {
			rest = rest.merge(unpaid);
			Default::default()
		},
	};
	pallet_verity_operators::Pallet::<T>::dispose(rest);
	(slashed, paid)
}
