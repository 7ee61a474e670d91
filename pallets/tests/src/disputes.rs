//! Disputes pallet: `prove_fraud`, its happy path and every error (state unchanged, weight
//! charged).

use crate::mock::*;
use frame_support::{assert_noop, assert_ok, dispatch::Pays};
use pallet_verity_disputes::{Error, Event};
use pallet_verity_jobs::Outcome;
use verity_primitives::FraudProof;

type Case = verity_primitives::testing::TestCase;

/// CNN model, Alice serving, Charlie's job committed with tensor `bad_step` corrupted (or
/// honestly if `None`).
fn committed(bad_step: Option<u32>) -> (Case, JobId) {
	let case = cnn();
	let model = register(&case);
	operator(ALICE, 4 * COLLATERAL.max(MIN_BOND), model, 10);
	let job = submit(CHARLIE, model, &case, 100);
	let (out, hashes) = match bad_step {
		Some(s) => corrupted(&case, s),
		None => honest(&case),
	};
	assert_ok!(Jobs::commit(origin(ALICE), job, out, hashes));
	(case, job)
}

#[test]
fn fraud_slashes_rewards_refunds_and_jails() {
	new_test_ext().execute_with(|| {
		let (case, job) = committed(Some(2));
		let issuance = total_issuance();
		let bob = free(BOB);
		let stake = stake_of(ALICE);
		let charlie = free(CHARLIE);
		let info = reveal(BOB, job, proof(&case, 2)).unwrap();
		assert_eq!(info.pays_fee, Pays::Yes);
		let reward = COLLATERAL / 2;
		// The reward is BOB's, held until the grace period (the challenge window) has passed.
		assert_eq!(free(BOB), bob);
		assert_eq!(held(BOB), reward);
		assert_eq!(stake_of(ALICE), stake - COLLATERAL);
		assert_eq!(free(CHARLIE), charlie + 100);
		assert_eq!(fee_held(CHARLIE), 0);
		// The half not paid to the prover is burnt.
		assert_eq!(total_issuance(), issuance - (COLLATERAL - reward));
		assert_eq!(
			last_event(),
			Event::FraudProven {
				job,
				operator: ALICE,
				prover: BOB,
				step: 2,
				slashed: COLLATERAL,
				reward,
				until: now() + WINDOW,
			}
			.into()
		);
		assert_eq!(receipt(job).outcome, Outcome::Fraud { prover: BOB, step: 2 });
		assert!(pallet_verity_operators::Operators::<Test>::get(ALICE)
			.unwrap()
			.jailed_until
			.is_some());
		assert!(Jobs::step_hashes(job).is_empty());
		// The same proof again, committed no earlier: BOB keeps the reward; another proof
		// cannot take it over.
		refused(DAVE, job, proof(&case, 2), Error::<Test>::NotEarlier);
		refused(DAVE, job, proof(&case, 1), Error::<Test>::NotTheProvenProof);
		assert_noop!(Disputes::claim_reward(origin(NOBODY), job), Error::<Test>::RewardPending);
		run_to_block(now() + WINDOW);
		refused(EVE, job, proof(&case, 2), Error::<Test>::AlreadySlashed);
		assert_ok!(Disputes::claim_reward(origin(NOBODY), job));
		assert_eq!((free(BOB), held(BOB)), (bob + reward, 0));
		assert_noop!(Disputes::claim_reward(origin(NOBODY), job), Error::<Test>::NoReward);
		for who in [DAVE, EVE] {
			assert_ok!(Disputes::withdraw_commitment(origin(who), job));
		}
		check_invariants();
	});
}

#[test]
fn proofs_against_honest_or_mismatched_commitments_are_rejected() {
	new_test_ext().execute_with(|| {
		let (case, job) = committed(None);
		// Honest trace: every step reproduces.
		for step in 1..=case.header.num_ops() {
			refused(BOB, job, proof(&case, step), Error::<Test>::NoFraud);
		}
		let good: FraudProof = codec::Decode::decode(&mut &proof(&case, 1)[..]).unwrap();
		let enc = |p: &FraudProof| codec::Encode::encode(p);
		let mut p = good.clone();
		p.step = case.header.num_ops() + 1;
		refused(BOB, job, enc(&p), Error::<Test>::StepOutOfRange);
		let mut p = good.clone();
		p.input_tensors.push(vec![]);
		refused(BOB, job, enc(&p), Error::<Test>::WrongInputCount);
		let mut p = good.clone();
		p.input_tensors[0][0] ^= 1;
		refused(BOB, job, enc(&p), Error::<Test>::InputMismatch);
		let mut p = good.clone();
		p.weights[0] ^= 1;
		refused(BOB, job, enc(&p), Error::<Test>::WeightsMismatch);
		refused(BOB, job, vec![1, 2, 3], Error::<Test>::MalformedProof);
		let mut trailing = enc(&good);
		trailing.push(0);
		refused(BOB, job, trailing, Error::<Test>::MalformedProof);
		let too_long = vec![0u8; Disputes::max_proof_len() as usize + 1];
		refused(BOB, job, too_long, Error::<Test>::ProofTooLarge);
		refused(BOB, 99, enc(&good), Error::<Test>::UnknownJob);
	});
}

#[test]
fn rejected_proof_pays_for_what_was_checked() {
	new_test_ext().execute_with(|| {
		let (case, job) = committed(None);
		let err = reveal(BOB, job, proof(&case, 1)).unwrap_err();
		let macs = verity_primitives::step_macs(&case.header, 1).unwrap() as u32;
		let len = proof(&case, 1).len() as u32;
		let header = header_bytes(&case).len() as u32;
		let kind = case.header.ops[0].kind;
		let checked = Disputes::proof_weight(len)
			.saturating_add(Disputes::header_weight(header))
			.saturating_add(Disputes::step_weight(Some(&kind), macs));
		assert_eq!(err.post_info.actual_weight, Some(checked));
		// Charged for its own kind, never above the declared worst case.
		assert!(Disputes::step_weight(Some(&kind), macs).all_lte(Disputes::step_weight(None, macs)));
		assert_eq!(err.post_info.pays_fee, Pays::Yes);
	});
}

#[test]
fn window_and_state_errors() {
	new_test_ext().execute_with(|| {
		let case = cnn();
		let model = register(&case);
		operator(ALICE, 4 * MIN_BOND, model, 10);
		let job = submit(CHARLIE, model, &case, 100);
		refused(BOB, job, proof(&case, 1), Error::<Test>::NotCommitted);
		let (out, hashes) = corrupted(&case, 1);
		assert_ok!(Jobs::commit(origin(ALICE), job, out, hashes));
		run_to_block(1 + WINDOW);
		assert_eq!(receipt(job).outcome, Outcome::Final);
		refused(BOB, job, proof(&case, 1), Error::<Test>::WindowClosed);

		// A job that expired.
		let other = submit(CHARLIE, model, &case, 100);
		for _ in 0..MAX_ATTEMPTS {
			run_to_block(now() + DEADLINE + SPREAD as u64);
		}
		assert_eq!(receipt(other).outcome, Outcome::Expired);
		refused(BOB, other, proof(&case, 1), Error::<Test>::JobExpired);
	});
}
