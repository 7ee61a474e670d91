//! The attacks of the adversarial review, one named test each (`attack_NN_...`, NN the item of
//! the hardening issue and of the table "Attacks and what they cost" in `docs/PROTOCOL.md`).
//! Each was written first against the code it attacks and failed there (the attack succeeded);
//! the defence makes it pass. Attacks on the agent are in `agent.rs`.

use crate::mock::*;
use frame_support::{assert_noop, assert_ok, traits::Get};
use pallet_verity_operators::{Event as OperatorEvent, Servers};

/// Attack 3: with a flat collateral, a job paying more than about 1 % of the collateral made
/// cheating pay unless detection was near certain. Now the collateral is
/// `max(JobCollateral, CollateralRatio × max_fee)`; at the boundary, an operator is eligible iff
/// its free stake covers exactly that, and a proven fraud slashes all of it.
#[test]
fn attack_03_collateral_grows_with_what_the_job_pays() {
	new_test_ext().execute_with(|| {
		let case = mlp();
		let model = register(&case);
		// ALICE's free stake is MIN_BOND: exactly the collateral of a job at fee MIN_BOND / 5.
		operator(ALICE, MIN_BOND, model, 150);
		let fee = MIN_BOND / 5; // COLLATERAL_RATIO
		assert_noop!(
			Jobs::submit(origin(CHARLIE), model, case.input.clone(), fee + 1),
			pallet_verity_jobs::Error::<Test>::NoOperatorAvailable
		);
		let id = submit(CHARLIE, model, &case, fee);
		assert_eq!(job(id).collateral, MIN_BOND);
		assert_eq!(Operators::operator(ALICE).unwrap().locked, MIN_BOND);

		// Caught cheating, ALICE loses all of it (the prover gets its share).
		let step = 2;
		let (out, hashes) = corrupted(&case, step);
		assert_ok!(Jobs::commit(origin(ALICE), id, out, hashes));
		assert_ok!(Disputes::prove_fraud(origin(EVE), id, proof(&case, step)));
		assert_eq!(Operators::operator(ALICE).unwrap().active, 0);
		check_invariants();
	});
}

/// Accounts of the mock with funds and no other role.
const SQUATTERS: [AccountId; 4] = [7, 8, 9, 10];

/// Attack 4: fill every server slot of a model with operators that then unbond everything.
/// Before: `unbond` to zero kept the serving declarations, `select` skipped them, nothing
/// removed them: for the capital of `MaxServersPerModel × MinBond` during `UnbondingPeriod`,
/// the model was unusable for ever (`TooManyServers` for real operators,
/// `NoOperatorAvailable` for requesters).
#[test]
fn attack_04_server_slots_cannot_be_squatted_at_zero_stake() {
	new_test_ext().execute_with(|| {
		let case = mlp();
		let model = register(&case);
		let slots: u32 = <Test as pallet_verity_operators::Config>::MaxServersPerModel::get();
		assert_eq!(SQUATTERS.len(), slots as usize);
		for who in SQUATTERS {
			operator(who, MIN_BOND, model, 1);
			assert_ok!(Operators::unbond(origin(who), MIN_BOND));
			assert!(has_event(OperatorEvent::Unserved { operator: who, model }.into()));
		}
		run_to_block(now() + UNBONDING);
		for who in SQUATTERS {
			assert_ok!(Operators::withdraw_unbonded(origin(who)));
			assert!(Operators::operator(who).is_none(), "nothing left: the record is removed");
			assert_eq!(free(who), ENDOWMENT, "the squatter's capital is back");
		}
		assert!(Servers::<Test>::get(model).is_empty());
		// A real operator can serve the model, and gets its jobs.
		operator(DAVE, MIN_BOND, model, 1);
		let job = submit(CHARLIE, model, &case, 10);
		assert_eq!(assignee(job), DAVE);
	});
}

/// Attack 4, the other ways to become ineligible: a jailed operator, or one slashed below
/// `MinBond`, no longer holds its slots; after `unjail` it serves again by `serve`.
#[test]
fn attack_04_jailed_or_slashed_operators_free_their_slots() {
	new_test_ext().execute_with(|| {
		let case = mlp();
		let model = register(&case);
		operator(ALICE, MIN_BOND, model, 1);
		operator(BOB, 2 * MIN_BOND, model, 1);
		Operators::jail(&BOB);
		let left = Operators::slash(&ALICE, 1);
		Operators::dispose(left);
		assert!(Servers::<Test>::get(model).is_empty());
		assert!(Operators::operator(ALICE).unwrap().models.is_empty());
		assert!(Operators::operator(BOB).unwrap().models.is_empty());
		check_invariants();
		run_to_block(now() + JAIL);
		assert_ok!(Operators::unjail(origin(BOB)));
		assert_ok!(Operators::serve(origin(BOB), model, 1));
		assert_eq!(Servers::<Test>::get(model).len(), 1);
	});
}
