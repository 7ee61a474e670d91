//! Whole job lifecycles through the four pallets.

use crate::mock::*;
use frame_support::{assert_noop, assert_ok};
use pallet_verity_jobs::{Event as JobEvent, JobStatus, Outcome};

type Case = verity_primitives::testing::TestCase;

fn setup(case: &Case) -> verity_primitives::ModelId {
	let model = register(case);
	operator(ALICE, 4 * MIN_BOND, model, 30);
	model
}

#[test]
fn honest_job_becomes_final() {
	new_test_ext().execute_with(|| {
		let case = cnn();
		let model = setup(&case);
		let issuance = total_issuance();
		let (alice, charlie) = (free(ALICE), free(CHARLIE));
		let job = submit(CHARLIE, model, &case, 100);
		run_to_block(3);
		let (out, hashes) = honest(&case);
		assert_ok!(Jobs::commit(origin(ALICE), job, out.clone(), hashes.clone()));
		// One block before the window ends: still open, still disputable.
		run_to_block(3 + WINDOW - 1);
		assert!(matches!(job_status(job), JobStatus::Committed { .. }));
		run_to_block(3 + WINDOW);
		let r = receipt(job);
		assert_eq!(r.outcome, Outcome::Final);
		assert_eq!(r.output.to_vec(), out);
		assert_eq!(r.trace_root, Some(verity_primitives::trace_root(&hashes)));
		assert_eq!(r.model, model);
		assert_eq!(r.operator, ALICE);
		assert_eq!(r.fee, 30);
		assert_eq!(r.closed_at, 3 + WINDOW);
		assert_eq!(free(ALICE), alice + 30);
		assert_eq!(free(CHARLIE), charlie - 30);
		assert_eq!(fee_held(CHARLIE), 0);
		assert_eq!(pallet_verity_operators::Operators::<Test>::get(ALICE).unwrap().locked, 0);
		assert!(Jobs::step_hashes(job).is_empty());
		assert!(pallet_verity_jobs::Jobs::<Test>::get(job).is_none());
		assert!(has_event(JobEvent::Finalized { job, operator: ALICE, fee: 30 }.into()));
		assert_eq!(total_issuance(), issuance);
	});
}

fn job_status(job: JobId) -> JobStatus<Test> {
	crate::mock::job(job).status
}

fn fraud_at(step_of: impl Fn(&Case) -> u32) {
	new_test_ext().execute_with(|| {
		let case = cnn();
		let model = setup(&case);
		let step = step_of(&case);
		let job = submit(CHARLIE, model, &case, 100);
		let (out, hashes) = corrupted(&case, step);
		assert_ok!(Jobs::commit(origin(ALICE), job, out, hashes));
		run_to_block(1 + WINDOW - 1);
		let charlie = free(CHARLIE);
		let issuance = total_issuance();
		// Proving an honest step of this trace fails; the corrupted one succeeds.
		if step > 1 {
			assert!(reveal(BOB, job, proof(&case, step - 1)).is_err());
		}
		assert_ok!(reveal(BOB, job, proof(&case, step)));
		assert_eq!(receipt(job).outcome, Outcome::Fraud { prover: BOB, step });
		assert_eq!(free(CHARLIE), charlie + 100);
		assert_eq!(total_issuance(), issuance - COLLATERAL / 2);
		run_to_block(1 + WINDOW + 1);
		assert_eq!(receipt(job).outcome, Outcome::Fraud { prover: BOB, step });
	});
}

#[test]
fn fraud_at_first_step() {
	fraud_at(|_| 1);
}

#[test]
fn fraud_at_middle_step() {
	fraud_at(|c| c.header.num_ops() / 2 + 1);
}

#[test]
fn fraud_at_last_step() {
	fraud_at(|c| c.header.num_ops());
}

#[test]
fn invalid_proof_and_late_proof_are_rejected() {
	new_test_ext().execute_with(|| {
		let case = cnn();
		let model = setup(&case);
		let job = submit(CHARLIE, model, &case, 100);
		let (out, hashes) = corrupted(&case, 1);
		assert_ok!(Jobs::commit(origin(ALICE), job, out, hashes));
		let mut bad = proof(&case, 1);
		let last = bad.len() - 1;
		bad[last] ^= 1; // a weight byte of the conv
		refused(BOB, job, bad, pallet_verity_disputes::Error::<Test>::WeightsMismatch);
		run_to_block(1 + WINDOW);
		refused(BOB, job, proof(&case, 1), pallet_verity_disputes::Error::<Test>::WindowClosed);
		// The fraudulent operator got away with it: that is what watchers are for.
		assert_eq!(receipt(job).outcome, Outcome::Final);
	});
}

#[test]
fn missed_deadline_reassigns_then_completes() {
	new_test_ext().execute_with(|| {
		let case = mlp();
		let model = register(&case);
		operator(ALICE, 4 * MIN_BOND, model, 30);
		// Bob: much smaller stake, but the only other candidate.
		operator(BOB, MIN_BOND, model, 20);
		let job = submit(CHARLIE, model, &case, 100);
		let first = assignee(job);
		let second = if first == ALICE { BOB } else { ALICE };
		let stake = stake_of(first);
		let issuance = total_issuance();
		run_to_block(1 + DEADLINE);
		assert!(has_event(
			JobEvent::DeadlineMissed { job, operator: first, penalty: PENALTY }.into()
		));
		assert_eq!(stake_of(first), stake - PENALTY);
		assert_eq!(total_issuance(), issuance - PENALTY);
		assert_eq!(assignee(job), second);
		assert_eq!(crate::mock::job(job).missed.to_vec(), vec![first]);
		let (out, hashes) = honest(&case);
		assert_noop!(
			Jobs::commit(origin(first), job, out.clone(), hashes.clone()),
			pallet_verity_jobs::Error::<Test>::NotAssignedOperator
		);
		assert_ok!(Jobs::commit(origin(second), job, out, hashes));
		run_to_block(now() + WINDOW);
		let r = receipt(job);
		assert_eq!(r.outcome, Outcome::Final);
		assert_eq!(r.operator, second);
	});
}

#[test]
fn last_attempt_missed_refunds() {
	new_test_ext().execute_with(|| {
		let case = mlp();
		let model = register(&case);
		for who in [ALICE, BOB, DAVE, EVE] {
			operator(who, MIN_BOND, model, 10);
		}
		let charlie = free(CHARLIE);
		let job = submit(CHARLIE, model, &case, 100);
		let mut seen = vec![];
		for _ in 0..MAX_ATTEMPTS {
			seen.push(assignee(job));
			let deadline = match job_status(job) {
				JobStatus::Assigned { deadline } => deadline,
				s => panic!("{s:?}"),
			};
			run_to_block(deadline);
		}
		// Three different operators tried (one of the four never did), each penalised.
		seen.sort();
		seen.dedup();
		assert_eq!(seen.len() as u32, MAX_ATTEMPTS);
		let r = receipt(job);
		assert_eq!(r.outcome, Outcome::Expired);
		assert_eq!(free(CHARLIE), charlie);
		assert_eq!(fee_held(CHARLIE), 0);
		for who in seen {
			assert_eq!(stake_of(who), MIN_BOND - PENALTY);
		}
	});
}

#[test]
fn unbond_while_jobs_are_open() {
	new_test_ext().execute_with(|| {
		let case = mlp();
		let model = register(&case);
		operator(ALICE, MIN_BOND + COLLATERAL, model, 10);
		let job = submit(CHARLIE, model, &case, 100);
		// The collateral is locked: only the free part can go.
		assert_noop!(
			Operators::unbond(origin(ALICE), MIN_BOND + 1),
			pallet_verity_operators::Error::<Test>::StakeLocked
		);
		assert_ok!(Operators::unbond(origin(ALICE), MIN_BOND));
		// No free stake left for a second job.
		assert_noop!(
			Jobs::submit(origin(CHARLIE), model, case.input.clone(), 100),
			pallet_verity_jobs::Error::<Test>::NoOperatorAvailable
		);
		let (out, hashes) = corrupted(&case, 1);
		assert_ok!(Jobs::commit(origin(ALICE), job, out, hashes));
		// Fraud is still slashable: the collateral never left the hold.
		assert_ok!(reveal(BOB, job, proof(&case, 1)));
		assert_eq!(stake_of(ALICE), MIN_BOND);
		run_to_block(1 + UNBONDING);
		assert_ok!(Operators::withdraw_unbonded(origin(ALICE)));
		assert_eq!(stake_of(ALICE), 0);
	});
}

#[test]
fn jailed_operator_gets_no_jobs() {
	new_test_ext().execute_with(|| {
		let case = mlp();
		let model = register(&case);
		operator(ALICE, 10 * MIN_BOND, model, 10);
		operator(BOB, 10 * MIN_BOND, model, 10);
		let job = submit(CHARLIE, model, &case, 100);
		let liar = assignee(job);
		let (out, hashes) = corrupted(&case, 1);
		assert_ok!(Jobs::commit(origin(liar), job, out, hashes));
		assert_ok!(reveal(DAVE, job, proof(&case, 1)));
		for _ in 0..10 {
			let j = submit(CHARLIE, model, &case, 100);
			assert_ne!(assignee(j), liar);
			run_to_block(now() + 1);
		}
		// Jailing ended its serving declaration; after the term it unjails and serves again.
		assert!(Operators::operator(liar).unwrap().models.is_empty());
		run_to_block(1 + JAIL);
		assert_ok!(Operators::unjail(origin(liar)));
		assert_ok!(Operators::serve(origin(liar), model, 10));
		let mut got = false;
		for _ in 0..20 {
			let j = submit(CHARLIE, model, &case, 100);
			got |= assignee(j) == liar;
			run_to_block(now() + 1);
		}
		assert!(got, "an unjailed operator is assigned again");
	});
}
