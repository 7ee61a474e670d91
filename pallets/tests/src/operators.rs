//! Operators pallet: every call, happy path and every error.

use crate::mock::*;
use frame_support::{assert_noop, assert_ok};
use pallet_verity_operators::{Error, Event, Operators as OperatorStore, Servers};

#[test]
fn bond_and_bond_extra() {
	new_test_ext().execute_with(|| {
		assert_noop!(Operators::bond(origin(ALICE), MIN_BOND - 1), Error::<Test>::BelowMinBond);
		assert_noop!(
			Operators::bond(origin(ALICE), ENDOWMENT + 1),
			Error::<Test>::InsufficientBalance
		);
		assert_noop!(Operators::bond_extra(origin(ALICE), 5), Error::<Test>::NotOperator);
		assert_ok!(Operators::bond(origin(ALICE), MIN_BOND));
		assert_eq!(last_event(), Event::Bonded { operator: ALICE, amount: MIN_BOND }.into());
		assert_noop!(Operators::bond(origin(ALICE), MIN_BOND), Error::<Test>::AlreadyBonded);
		assert_noop!(Operators::bond_extra(origin(ALICE), 0), Error::<Test>::ZeroAmount);
		assert_noop!(
			Operators::bond_extra(origin(ALICE), ENDOWMENT),
			Error::<Test>::InsufficientBalance
		);
		assert_ok!(Operators::bond_extra(origin(ALICE), 500));
		assert_eq!(stake_of(ALICE), MIN_BOND + 500);
		assert_eq!(OperatorStore::<Test>::get(ALICE).unwrap().active, MIN_BOND + 500);
		assert_eq!(free(ALICE), ENDOWMENT - MIN_BOND - 500);
		check_invariants();
	});
}

#[test]
fn unbond_and_withdraw() {
	new_test_ext().execute_with(|| {
		assert_noop!(Operators::unbond(origin(ALICE), 1), Error::<Test>::NotOperator);
		assert_noop!(Operators::withdraw_unbonded(origin(ALICE)), Error::<Test>::NotOperator);
		assert_ok!(Operators::bond(origin(ALICE), 3 * MIN_BOND));
		assert_noop!(Operators::unbond(origin(ALICE), 0), Error::<Test>::ZeroAmount);
		assert_noop!(
			Operators::unbond(origin(ALICE), 3 * MIN_BOND + 1),
			Error::<Test>::StakeLocked
		);
		// Leaving less than MinBond (but not zero) is refused.
		assert_noop!(
			Operators::unbond(origin(ALICE), 2 * MIN_BOND + 1),
			Error::<Test>::BelowMinBond
		);
		assert_noop!(Operators::withdraw_unbonded(origin(ALICE)), Error::<Test>::NothingToWithdraw);
		assert_ok!(Operators::unbond(origin(ALICE), 100));
		assert_eq!(
			last_event(),
			Event::Unbonding { operator: ALICE, amount: 100, until: 1 + UNBONDING }.into()
		);
		// Same block: merged into one chunk.
		assert_ok!(Operators::unbond(origin(ALICE), 100));
		run_to_block(2);
		assert_ok!(Operators::unbond(origin(ALICE), 100));
		run_to_block(3);
		assert_ok!(Operators::unbond(origin(ALICE), 100));
		run_to_block(4);
		assert_noop!(Operators::unbond(origin(ALICE), 100), Error::<Test>::TooManyUnbondingChunks);
		// Still on hold until the period has passed.
		assert_eq!(stake_of(ALICE), 3 * MIN_BOND);
		assert_noop!(Operators::withdraw_unbonded(origin(ALICE)), Error::<Test>::NothingToWithdraw);
		run_to_block(2 + UNBONDING);
		let before = free(ALICE);
		assert_ok!(Operators::withdraw_unbonded(origin(ALICE)));
		assert_eq!(free(ALICE), before + 300);
		assert_eq!(stake_of(ALICE), 3 * MIN_BOND - 300);
		// Unbond everything, withdraw: the operator is removed.
		run_to_block(3 + UNBONDING);
		assert_ok!(Operators::withdraw_unbonded(origin(ALICE)));
		assert_ok!(Operators::unbond(origin(ALICE), 3 * MIN_BOND - 400));
		run_to_block(now() + UNBONDING);
		assert_ok!(Operators::withdraw_unbonded(origin(ALICE)));
		assert_eq!(last_event(), Event::Removed { operator: ALICE }.into());
		assert!(OperatorStore::<Test>::get(ALICE).is_none());
		assert_eq!(free(ALICE), ENDOWMENT);
	});
}

#[test]
fn serve_and_unserve() {
	new_test_ext().execute_with(|| {
		let case = mlp();
		let id = register(&case);
		assert_noop!(Operators::serve(origin(ALICE), id, 1), Error::<Test>::NotOperator);
		assert_noop!(Operators::unserve(origin(ALICE), id), Error::<Test>::NotOperator);
		assert_ok!(Operators::bond(origin(ALICE), 2 * MIN_BOND));
		assert_noop!(Operators::serve(origin(ALICE), [9; 32], 1), Error::<Test>::ModelNotActive);
		assert_noop!(Operators::unserve(origin(ALICE), id), Error::<Test>::NotServing);
		assert_ok!(Operators::serve(origin(ALICE), id, 7));
		assert_eq!(last_event(), Event::Serving { operator: ALICE, model: id, price: 7 }.into());
		// Changing the price keeps one entry.
		assert_ok!(Operators::serve(origin(ALICE), id, 9));
		assert_eq!(Servers::<Test>::get(id).len(), 1);
		assert_eq!(Servers::<Test>::get(id)[0].price, 9);
		// MaxServersPerModel = 4.
		for who in [BOB, CHARLIE, DAVE] {
			operator(who, MIN_BOND, id, 1);
		}
		assert_ok!(Operators::bond(origin(EVE), MIN_BOND));
		assert_noop!(Operators::serve(origin(EVE), id, 1), Error::<Test>::TooManyServers);
		// MaxModelsPerOperator = 3.
		let mut others = vec![];
		for i in 0..3u8 {
			let mut c = cnn();
			c.header.input.zero_point = i as i8;
			let m = register(&c);
			others.push(m);
		}
		assert_ok!(Operators::serve(origin(ALICE), others[0], 1));
		assert_ok!(Operators::serve(origin(ALICE), others[1], 1));
		assert_noop!(Operators::serve(origin(ALICE), others[2], 1), Error::<Test>::TooManyModels);
		// Below MinBond after an unbond: no new serving.
		assert_ok!(Operators::unbond(origin(EVE), MIN_BOND));
		assert_noop!(Operators::serve(origin(EVE), others[2], 1), Error::<Test>::BelowMinBond);
		// Retired models cannot be served.
		assert_ok!(Models::retire(origin(PUBLISHER), others[2]));
		assert_noop!(Operators::serve(origin(BOB), others[2], 1), Error::<Test>::ModelNotActive);

		assert_ok!(Operators::unserve(origin(ALICE), id));
		assert_eq!(last_event(), Event::Unserved { operator: ALICE, model: id }.into());
		assert!(Servers::<Test>::get(id).iter().all(|s| s.operator != ALICE));
		check_invariants();
	});
}

#[test]
fn jail_and_unjail() {
	new_test_ext().execute_with(|| {
		let id = register(&mlp());
		assert_noop!(Operators::unjail(origin(ALICE)), Error::<Test>::NotOperator);
		operator(ALICE, MIN_BOND + COLLATERAL, id, 1);
		assert_noop!(Operators::unjail(origin(ALICE)), Error::<Test>::NotJailed);
		Operators::jail(&ALICE);
		assert_eq!(last_event(), Event::Jailed { operator: ALICE, until: 1 + JAIL }.into());
		assert_noop!(Operators::serve(origin(ALICE), id, 1), Error::<Test>::Jailed);
		assert_noop!(Operators::unjail(origin(ALICE)), Error::<Test>::StillJailed);
		// A slash below MinBond: unjail needs a top-up.
		let credit = Operators::slash(&ALICE, COLLATERAL + 1);
		Operators::dispose(credit);
		run_to_block(1 + JAIL);
		assert_noop!(Operators::unjail(origin(ALICE)), Error::<Test>::BelowMinBond);
		assert_ok!(Operators::bond_extra(origin(ALICE), 1));
		assert_ok!(Operators::unjail(origin(ALICE)));
		assert_eq!(last_event(), Event::Unjailed { operator: ALICE }.into());
		check_invariants();
	});
}
