//! Jobs pallet: submit and commit, happy paths and every error; the deadline queue.

use crate::mock::*;
use frame_support::{assert_noop, assert_ok};
use pallet_verity_jobs::{Error, Event, JobStatus, Queue};

fn setup() -> (verity_primitives::testing::TestCase, verity_primitives::ModelId) {
	let case = mlp();
	let id = register(&case);
	operator(ALICE, 40 * COLLATERAL, id, 10);
	(case, id)
}

#[test]
fn submit_holds_fee_assigns_and_locks_collateral() {
	new_test_ext().execute_with(|| {
		let (case, model) = setup();
		let job = submit(CHARLIE, model, &case, 100);
		assert_eq!(job, 0);
		assert_eq!(fee_held(CHARLIE), 100);
		assert_eq!(free(CHARLIE), ENDOWMENT - 100);
		let j = pallet_verity_jobs::Jobs::<Test>::get(job).unwrap();
		assert_eq!(j.operator, ALICE);
		assert_eq!(j.price, 10);
		assert_eq!(j.status, JobStatus::Assigned { deadline: 1 + DEADLINE });
		assert_eq!(
			pallet_verity_operators::Operators::<Test>::get(ALICE).unwrap().locked,
			COLLATERAL
		);
		assert_eq!(Queue::<Test>::get(1 + DEADLINE).to_vec(), vec![job]);
		assert!(has_event(
			Event::Submitted { job, requester: CHARLIE, model, max_fee: 100 }.into()
		));
		assert_eq!(
			last_event(),
			Event::Assigned { job, operator: ALICE, price: 10, deadline: 1 + DEADLINE }.into()
		);
		check_invariants();
	});
}

#[test]
fn submit_errors() {
	new_test_ext().execute_with(|| {
		let (case, model) = setup();
		assert_noop!(
			Jobs::submit(origin(CHARLIE), [3; 32], case.input.clone(), 100),
			Error::<Test>::ModelNotActive
		);
		assert_noop!(
			Jobs::submit(origin(CHARLIE), model, vec![0; 15], 100),
			Error::<Test>::InputSizeMismatch
		);
		assert_noop!(
			Jobs::submit(origin(CHARLIE), model, vec![0; 17], 100),
			Error::<Test>::InputSizeMismatch
		);
		assert_noop!(
			Jobs::submit(origin(NOBODY), model, case.input.clone(), 100),
			Error::<Test>::InsufficientBalance
		);
		// Price above max_fee.
		assert_noop!(
			Jobs::submit(origin(CHARLIE), model, case.input.clone(), 9),
			Error::<Test>::NoOperatorAvailable
		);
		// MaxJobsPerBlock = 4 per queue, spread over SPREAD + 1 blocks.
		for _ in 0..(JOBS_PER_BLOCK * (SPREAD + 1)) {
			submit(CHARLIE, model, &case, 100);
		}
		assert_eq!(Queue::<Test>::get(1 + DEADLINE + SPREAD as u64).len() as u32, JOBS_PER_BLOCK);
		assert_noop!(
			Jobs::submit(origin(CHARLIE), model, case.input.clone(), 100),
			Error::<Test>::QueueFull
		);
		check_invariants();
	});
}

#[test]
fn no_operator_without_free_stake() {
	new_test_ext().execute_with(|| {
		let case = mlp();
		let model = register(&case);
		// Exactly two collaterals of stake: two jobs, not three.
		operator(ALICE, 2 * COLLATERAL.max(MIN_BOND / 2), model, 1);
		let slots = 2 * COLLATERAL.max(MIN_BOND / 2) / COLLATERAL;
		for _ in 0..slots {
			submit(CHARLIE, model, &case, 10);
		}
		assert_noop!(
			Jobs::submit(origin(CHARLIE), model, case.input.clone(), 10),
			Error::<Test>::NoOperatorAvailable
		);
	});
}

#[test]
fn commit_checks_and_opens_window() {
	new_test_ext().execute_with(|| {
		let (case, model) = setup();
		let _ = model;
		let job = submit(CHARLIE, model, &case, 100);
		let (out, hashes) = honest(&case);
		let n = hashes.len();
		assert_noop!(
			Jobs::commit(origin(ALICE), 77, out.clone(), hashes.clone()),
			Error::<Test>::UnknownJob
		);
		assert_noop!(
			Jobs::commit(origin(BOB), job, out.clone(), hashes.clone()),
			Error::<Test>::NotAssignedOperator
		);
		assert_noop!(
			Jobs::commit(origin(ALICE), job, out[1..].to_vec(), hashes.clone()),
			Error::<Test>::OutputSizeMismatch
		);
		assert_noop!(
			Jobs::commit(origin(ALICE), job, out.clone(), hashes[1..].to_vec()),
			Error::<Test>::WrongStepCount
		);
		let mut wrong_h0 = hashes.clone();
		wrong_h0[0][0] ^= 1;
		assert_noop!(
			Jobs::commit(origin(ALICE), job, out.clone(), wrong_h0),
			Error::<Test>::InputHashMismatch
		);
		let mut wrong_out = out.clone();
		wrong_out[0] ^= 1;
		assert_noop!(
			Jobs::commit(origin(ALICE), job, wrong_out, hashes.clone()),
			Error::<Test>::OutputHashMismatch
		);

		assert_ok!(Jobs::commit(origin(ALICE), job, out.clone(), hashes.clone()));
		let root = verity_primitives::trace_root(&hashes);
		assert_eq!(
			last_event(),
			Event::Committed { job, operator: ALICE, trace_root: root, window_end: 1 + WINDOW }
				.into()
		);
		assert_eq!(Jobs::step_hashes(job).len(), n);
		assert_noop!(
			Jobs::commit(origin(ALICE), job, out, hashes),
			Error::<Test>::AlreadyCommitted
		);
		check_invariants();
	});
}

#[test]
fn commit_after_deadline_is_refused() {
	new_test_ext().execute_with(|| {
		let (case, model) = setup();
		let job = submit(CHARLIE, model, &case, 100);
		let (out, hashes) = honest(&case);
		// The deadline block without its hook (the hook would have re-assigned the job).
		System::set_block_number(1 + DEADLINE);
		assert_noop!(Jobs::commit(origin(ALICE), job, out, hashes), Error::<Test>::DeadlinePassed);
	});
}

#[test]
fn full_queue_moves_window_end_later() {
	new_test_ext().execute_with(|| {
		let (case, model) = setup();
		let (out, hashes) = honest(&case);
		let jobs: Vec<_> =
			(0..=JOBS_PER_BLOCK).map(|_| submit(CHARLIE, model, &case, 100)).collect();
		// Deadlines: JOBS_PER_BLOCK at 1 + DEADLINE, the last one spilled to the next block.
		assert_eq!(Queue::<Test>::get(1 + DEADLINE).len() as u32, JOBS_PER_BLOCK);
		assert_eq!(Queue::<Test>::get(2 + DEADLINE).to_vec(), vec![jobs[JOBS_PER_BLOCK as usize]]);
		for &j in &jobs {
			assert_ok!(Jobs::commit(origin(ALICE), j, out.clone(), hashes.clone()));
		}
		let last = *jobs.last().unwrap();
		match pallet_verity_jobs::Jobs::<Test>::get(last).unwrap().status {
			JobStatus::Committed { window_end, .. } => assert_eq!(window_end, 2 + WINDOW),
			s => panic!("{s:?}"),
		}
		// Every job is still finalized, the spilled one a block later.
		run_to_block(1 + WINDOW);
		assert!(pallet_verity_jobs::Jobs::<Test>::get(last).is_some());
		run_to_block(2 + WINDOW);
		for j in jobs {
			assert_eq!(receipt(j).outcome, pallet_verity_jobs::Outcome::Final);
		}
	});
}

#[test]
fn collateral_is_the_floor_or_the_ratio_times_max_fee() {
	new_test_ext().execute_with(|| {
		let floor_fee = COLLATERAL / COLLATERAL_RATIO as u64;
		assert_eq!(Jobs::collateral_for(0), COLLATERAL);
		assert_eq!(Jobs::collateral_for(floor_fee), COLLATERAL);
		assert_eq!(Jobs::collateral_for(floor_fee + 1), COLLATERAL + COLLATERAL_RATIO as u64);
		assert_eq!(Jobs::collateral_for(u64::MAX), u64::MAX, "saturates");
	});
}

/// A chain's timing comes from genesis when it sets one (every preset but `--dev`), and
/// applies to deadlines and window ends; genesis refuses timings that cannot work.
#[test]
fn genesis_timing_replaces_the_constants_and_bad_timings_are_refused() {
	use frame_support::traits::Get;
	use pallet_verity_jobs::{ChainTiming, GenesisConfig, Timing};
	use sp_runtime::BuildStorage;
	let timing = Timing { execution_deadline: 7, challenge_window: 20 };
	let mut storage = genesis_storage();
	GenesisConfig::<Test> { timing: Some(timing) }.assimilate_storage(&mut storage).unwrap();
	let mut ext = sp_io::TestExternalities::new(storage);
	ext.execute_with(|| {
		System::set_block_number(1);
		assert_eq!(ChainTiming::<Test>::get(), Some(timing));
		assert_eq!((Jobs::execution_deadline(), Jobs::challenge_window()), (7, 20));
		let (case, model) = setup();
		let job = submit(CHARLIE, model, &case, 100);
		assert_eq!(
			pallet_verity_jobs::Jobs::<Test>::get(job).unwrap().status,
			JobStatus::Assigned { deadline: 1 + 7 }
		);
		let (out, hashes) = honest(&case);
		assert_ok!(Jobs::commit(origin(ALICE), job, out, hashes));
		let JobStatus::Committed { window_end, .. } =
			pallet_verity_jobs::Jobs::<Test>::get(job).unwrap().status
		else {
			panic!("committed")
		};
		assert_eq!(window_end, 1 + 20);
		check_invariants();
	});
	new_test_ext().execute_with(|| {
		assert_eq!(ChainTiming::<Test>::get(), None);
		assert_eq!((Jobs::execution_deadline(), Jobs::challenge_window()), (DEADLINE, WINDOW));
		let unbonding: u64 = <Test as pallet_verity_operators::Config>::UnbondingPeriod::get();
		for (deadline, window) in [(1, 50), (7, 0), (7, unbonding), (unbonding, 1)] {
			let bad = Timing { execution_deadline: deadline, challenge_window: window };
			assert!(Jobs::check_timing(&bad).is_err(), "{bad:?}");
			let built = std::panic::catch_unwind(|| {
				let mut s = sp_runtime::Storage::default();
				GenesisConfig::<Test> { timing: Some(bad) }.assimilate_storage(&mut s)
			});
			assert!(built.is_err(), "genesis refuses {bad:?}");
		}
		assert_eq!(Jobs::check_timing(&timing), Ok(()));
	});
}
