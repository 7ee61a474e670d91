//! Models pallet: every call, happy path and every error.

use crate::mock::*;
use frame_support::{assert_noop, assert_ok};
use pallet_verity_models::{Error, Event, InvalidModelReason, ModelStatus};
use verity_primitives::{
	testing::{test_limits, Kernel, ModelBuilder},
	InvalidReason, InvalidReasonCode, Requant, TensorSpec,
};

fn invalid(op: u16, reason: InvalidReasonCode) -> Error<Test> {
	Error::<Test>::InvalidModel { op, reason: InvalidModelReason(reason) }
}

/// A one-op FC model `[k] -> [n]`.
fn fc(k: u32, n: u32) -> verity_primitives::testing::TestCase {
	let mut b = ModelBuilder::new(TensorSpec::new(vec![k], 0, 1.0));
	b.fully_connected(
		0,
		TensorSpec::new(vec![n], 0, 1.0),
		(-128, 127),
		Kernel {
			bias: vec![0; n as usize],
			requant: vec![Requant { multiplier: 1 << 30, shift: -8 }; n as usize],
			weights: vec![1; (k * n) as usize],
		},
	);
	b.finish(vec![0; k as usize])
}

#[test]
fn register_holds_deposit_and_stores_the_model() {
	new_test_ext().execute_with(|| {
		let case = mlp();
		let bytes = header_bytes(&case);
		announce_earlier(PUBLISHER, &bytes);
		assert_ok!(Models::register(
			origin(PUBLISHER),
			bytes.clone(),
			b"mlp".to_vec(),
			b"ipfs://x".to_vec()
		));
		let id = case.header.id();
		let deposit = DEPOSIT_BASE + bytes.len() as u64 + 3 + 8;
		assert_eq!(held(PUBLISHER), deposit);
		assert_eq!(free(PUBLISHER), ENDOWMENT - deposit);
		let r = pallet_verity_models::Models::<Test>::get(id).unwrap();
		assert_eq!(r.num_ops, case.header.num_ops());
		assert_eq!(r.input_elements, 16);
		assert_eq!(r.status, ModelStatus::Active);
		assert_eq!(pallet_verity_models::Headers::<Test>::get(id).unwrap().to_vec(), bytes);
		assert!(has_event(Event::Registered { model: id, publisher: PUBLISHER, deposit }.into()));
		assert_eq!(Models::header(&id), Some(case.header.clone()));
		check_invariants();
	});
}

#[test]
fn register_rejects_bad_headers() {
	new_test_ext().execute_with(|| {
		let too_big = vec![0u8; (1 << 16) + 1];
		refused_registration(PUBLISHER, too_big, vec![], vec![], Error::<Test>::HeaderTooLarge);
		refused_registration(
			PUBLISHER,
			vec![1, 2, 3],
			vec![],
			vec![],
			Error::<Test>::MalformedHeader,
		);
		let mut trailing = header_bytes(&mlp());
		trailing.push(0);
		refused_registration(PUBLISHER, trailing, vec![], vec![], Error::<Test>::MalformedHeader);

		let mut wrong_version = mlp();
		wrong_version.header.version = 2;
		let e = verity_primitives::validate(&wrong_version.header, &Models::limits()).unwrap_err();
		assert_eq!((e.op, e.reason), (0, InvalidReason::UnsupportedVersion));
		refused_registration(
			PUBLISHER,
			header_bytes(&wrong_version),
			vec![],
			vec![],
			invalid(0, InvalidReasonCode::UnsupportedVersion),
		);
		// A step beyond the chain's MAC and proof limits: 4096 x 512 FC.
		let huge = fc(4096, 512);
		let e = verity_primitives::validate(&huge.header, &Models::limits()).unwrap_err();
		assert_eq!(e.op, 1);
		assert!(matches!(e.reason, InvalidReason::StepProofTooLarge | InvalidReason::TooManyMacs));
		refused_registration(
			PUBLISHER,
			header_bytes(&huge),
			vec![],
			vec![],
			invalid(1, e.reason.code()),
		);
		// Valid under generous limits, but input / output larger than the chain stores.
		let wide_in = fc(8192, 4);
		assert!(verity_primitives::validate(&wide_in.header, &Models::limits()).is_ok());
		refused_registration(
			PUBLISHER,
			header_bytes(&wide_in),
			vec![],
			vec![],
			Error::<Test>::InputTooLarge,
		);
		let wide_out = fc(4, 1024);
		assert!(verity_primitives::validate(&wide_out.header, &Models::limits()).is_ok());
		refused_registration(
			PUBLISHER,
			header_bytes(&wide_out),
			vec![],
			vec![],
			Error::<Test>::OutputTooLarge,
		);
		let _ = test_limits();
	});
}

#[test]
fn register_rejects_duplicates_long_metadata_and_the_poor() {
	new_test_ext().execute_with(|| {
		let bytes = header_bytes(&mlp());
		refused_registration(
			PUBLISHER,
			bytes.clone(),
			vec![0; 33],
			vec![],
			Error::<Test>::NameTooLong,
		);
		refused_registration(
			PUBLISHER,
			bytes.clone(),
			vec![],
			vec![0; 129],
			Error::<Test>::UriTooLong,
		);
		refused_registration(
			NOBODY,
			bytes.clone(),
			vec![],
			vec![],
			Error::<Test>::InsufficientBalance,
		);
		announce_earlier(PUBLISHER, &bytes);
		assert_ok!(Models::register(origin(PUBLISHER), bytes.clone(), vec![], vec![]));
		refused_registration(ALICE, bytes, vec![], vec![], Error::<Test>::AlreadyRegistered);
	});
}

#[test]
fn retire_and_reap() {
	new_test_ext().execute_with(|| {
		let case = mlp();
		let id = register(&case);
		let unknown = [7u8; 32];
		assert_noop!(Models::retire(origin(PUBLISHER), unknown), Error::<Test>::UnknownModel);
		assert_noop!(Models::retire(origin(ALICE), id), Error::<Test>::NotPublisher);
		assert_noop!(Models::reap(origin(ALICE), unknown), Error::<Test>::UnknownModel);
		assert_noop!(Models::reap(origin(ALICE), id), Error::<Test>::NotRetired);

		operator(ALICE, 10_000, id, 10);
		let job = submit(CHARLIE, id, &case, 100);
		assert_ok!(Models::retire(origin(PUBLISHER), id));
		assert_eq!(last_event(), Event::Retired { model: id }.into());
		assert_noop!(Models::retire(origin(PUBLISHER), id), Error::<Test>::AlreadyRetired);
		// No new jobs, but the open one keeps the model.
		assert_noop!(
			Jobs::submit(origin(CHARLIE), id, case.input.clone(), 100),
			pallet_verity_jobs::Error::<Test>::ModelNotActive
		);
		assert_noop!(Models::reap(origin(ALICE), id), Error::<Test>::JobsOpen);

		// The open job still finishes.
		let (out, hashes) = honest(&case);
		assert_ok!(Jobs::commit(origin(ALICE), job, out, hashes));
		run_to_block(now() + WINDOW);
		assert_eq!(receipt(job).outcome, pallet_verity_jobs::Outcome::Final);

		let before = free(PUBLISHER);
		let deposit = held(PUBLISHER);
		assert_ok!(Models::reap(origin(ALICE), id));
		assert_eq!(free(PUBLISHER), before + deposit);
		assert_eq!(held(PUBLISHER), 0);
		assert!(pallet_verity_models::Headers::<Test>::get(id).is_none());
		check_invariants();
	});
}
