//! Every currency operation of the disputes pallet: splitting a slash between the prover and
//! the `Slash` handler.

use frame_support::traits::{fungible::Balanced, Get, Imbalance};

use crate::{BalanceOf, Config};

/// Pay `ProverShare` of the slashed `credit` to `prover` and hand the rest to the operators
/// pallet's `Slash` handler. Returns (slashed, paid to the prover). If the reward cannot be
/// deposited (below the existential deposit of a new account) it goes to the handler too.
pub fn reward_and_dispose<T: Config>(
	prover: &T::AccountId,
	credit: pallet_verity_operators::CreditOf<T>,
) -> (BalanceOf<T>, BalanceOf<T>) {
	let slashed = credit.peek();
	let share = T::ProverShare::get() * slashed;
	let (reward, mut rest) = credit.split(share);
	let paid = match <T as pallet_verity_models::Config>::Currency::resolve(prover, reward) {
		Ok(()) => share,
		Err(unpaid) => {
			rest = rest.merge(unpaid);
			Default::default()
		},
	};
	pallet_verity_operators::Pallet::<T>::dispose(rest);
	(slashed, paid)
}
