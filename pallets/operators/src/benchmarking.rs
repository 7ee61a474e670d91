//! Benchmarks of the operators pallet (frame-benchmarking v2), worst cases: full unbonding
//! lists, full server lists, full served-model lists (`unbond` below `MinBond` leaves all of
//! them).

use super::*;
use alloc::vec::Vec;
use frame_benchmarking::v2::*;
use frame_system::RawOrigin;
use pallet_verity_models::benchmarking::{fund, header_of_size, register_case};

fn stake<T: Config>(times: u32) -> BalanceOf<T> {
	T::MinBond::get().saturating_mul(times.into())
}

/// A bonded operator with `MinBond * times` stake.
pub fn bonded<T: Config>(who: &T::AccountId, times: u32) {
	fund::<T>(who, stake::<T>(times).saturating_mul(2u32.into()));
	assert!(Pallet::<T>::bond(RawOrigin::Signed(who.clone()).into(), stake::<T>(times)).is_ok());
}

/// `count` distinct registered models.
fn models<T: Config>(count: u32) -> Vec<ModelId> {
	let publisher: T::AccountId = account("publisher", 0, 0);
	(0..count).map(|i| register_case::<T>(&publisher, &header_of_size(300 + i, i as u8))).collect()
}

/// Fill the server list of each of `models` up to one free slot (other operators, each serving
/// all of them).
fn other_servers<T: Config>(models: &[ModelId]) {
	for i in 1..T::MaxServersPerModel::get() {
		let who: T::AccountId = account("server", i, 0);
		bonded::<T>(&who, 1);
		for m in models {
			assert!(
				Pallet::<T>::serve(RawOrigin::Signed(who.clone()).into(), *m, 1u32.into()).is_ok()
			);
		}
	}
}

#[benchmarks]
mod benchmarks {
	use super::*;

	#[benchmark]
	fn bond() {
		let caller: T::AccountId = whitelisted_caller();
		fund::<T>(&caller, stake::<T>(2));

		#[extrinsic_call]
		_(RawOrigin::Signed(caller.clone()), T::MinBond::get());

		assert!(Operators::<T>::contains_key(&caller));
	}

	#[benchmark]
	fn bond_extra() {
		let caller: T::AccountId = whitelisted_caller();
		bonded::<T>(&caller, 1);
		fund::<T>(&caller, stake::<T>(4));

		#[extrinsic_call]
		_(RawOrigin::Signed(caller.clone()), T::MinBond::get());

		assert_eq!(Operators::<T>::get(&caller).map(|o| o.active), Some(stake::<T>(2)));
	}

	#[benchmark]
	fn unbond() {
		// Worst case: the last free unbonding chunk, and the rest falls below `MinBond`, so the
		// caller stops serving its `MaxModelsPerOperator` models, each with a full server list.
		let caller: T::AccountId = whitelisted_caller();
		let chunks = T::MaxUnbonding::get();
		bonded::<T>(&caller, 2);
		let ids = models::<T>(T::MaxModelsPerOperator::get());
		for m in &ids {
			assert!(Pallet::<T>::serve(RawOrigin::Signed(caller.clone()).into(), *m, 1u32.into())
				.is_ok());
		}
		other_servers::<T>(&ids);
		for b in 1..chunks {
			frame_system::Pallet::<T>::set_block_number(b.into());
			assert!(
				Pallet::<T>::unbond(RawOrigin::Signed(caller.clone()).into(), 1u32.into()).is_ok()
			);
		}
		frame_system::Pallet::<T>::set_block_number(chunks.into());
		let rest = Operators::<T>::get(&caller).map(|o| o.active).unwrap_or_default();

		#[extrinsic_call]
		_(RawOrigin::Signed(caller.clone()), rest);

		let op = Operators::<T>::get(&caller).expect("still an operator (unbonding)");
		assert_eq!(op.unbonding.len() as u32, chunks);
		assert!(op.models.is_empty());
		assert!(ids.iter().all(|m| Servers::<T>::get(m).iter().all(|s| s.operator != caller)));
	}

	#[benchmark]
	fn withdraw_unbonded() {
		let caller: T::AccountId = whitelisted_caller();
		let chunks = T::MaxUnbonding::get();
		bonded::<T>(&caller, chunks + 1);
		for b in 1..=chunks {
			frame_system::Pallet::<T>::set_block_number(b.into());
			assert!(
				Pallet::<T>::unbond(RawOrigin::Signed(caller.clone()).into(), 1u32.into()).is_ok()
			);
		}
		let later = T::UnbondingPeriod::get().saturating_add(chunks.into());
		frame_system::Pallet::<T>::set_block_number(later);

		#[extrinsic_call]
		_(RawOrigin::Signed(caller.clone()));

		assert_eq!(Operators::<T>::get(&caller).map(|o| o.unbonding.len()), Some(0));
	}

	#[benchmark]
	fn serve() {
		let caller: T::AccountId = whitelisted_caller();
		let ids = models::<T>(T::MaxModelsPerOperator::get());
		bonded::<T>(&caller, 1);
		let (last, rest) = ids.split_last().expect("at least one model");
		for m in rest {
			assert!(Pallet::<T>::serve(RawOrigin::Signed(caller.clone()).into(), *m, 1u32.into())
				.is_ok());
		}
		other_servers::<T>(&[*last]);

		#[extrinsic_call]
		_(RawOrigin::Signed(caller.clone()), *last, 1u32.into());

		assert!(Servers::<T>::get(last).iter().any(|s| s.operator == caller));
	}

	#[benchmark]
	fn unserve() {
		let caller: T::AccountId = whitelisted_caller();
		let ids = models::<T>(T::MaxModelsPerOperator::get());
		bonded::<T>(&caller, 1);
		for m in &ids {
			assert!(Pallet::<T>::serve(RawOrigin::Signed(caller.clone()).into(), *m, 1u32.into())
				.is_ok());
		}
		let last = *ids.last().expect("at least one model");
		other_servers::<T>(&[last]);

		#[extrinsic_call]
		_(RawOrigin::Signed(caller.clone()), last);

		assert!(Servers::<T>::get(last).iter().all(|s| s.operator != caller));
	}

	#[benchmark]
	fn unjail() {
		let caller: T::AccountId = whitelisted_caller();
		bonded::<T>(&caller, 1);
		Pallet::<T>::jail(&caller);
		frame_system::Pallet::<T>::set_block_number(
			T::JailDuration::get().saturating_add(1u32.into()),
		);

		#[extrinsic_call]
		_(RawOrigin::Signed(caller.clone()));

		assert_eq!(Operators::<T>::get(&caller).and_then(|o| o.jailed_until), None);
	}
}
