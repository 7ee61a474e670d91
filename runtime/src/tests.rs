//! Genesis preset tests: each preset builds and funds exactly the documented accounts.

use super::*;
use crate::genesis_config_presets::{
	endowed_accounts, example_model_id, example_model_ids, get_preset, preset_names, ENDOWMENT,
	EXAMPLE_PRICE, OPERATOR_STAKE,
};
use frame_support::genesis_builder_helper::build_state;
use serde_json::Value;
use sp_genesis_builder::PresetId;
use sp_keyring::{Ed25519Keyring, Sr25519Keyring};

/// Merge a JSON patch into a base value the way the node's chain-spec builder does.
fn merge(base: &mut Value, patch: Value) {
	match (base, patch) {
		(Value::Object(base), Value::Object(patch)) => {
			for (k, v) in patch {
				merge(base.entry(k).or_insert(Value::Null), v);
			}
		},
		(base, patch) => *base = patch,
	}
}

/// Genesis storage of a preset, built through the runtime's own `build_state`.
pub(crate) fn ext_for(preset: &str) -> sp_io::TestExternalities {
	let patch: Value =
		serde_json::from_slice(&get_preset(&PresetId::from(preset)).expect("preset exists"))
			.expect("preset is JSON");
	let mut config = serde_json::to_value(RuntimeGenesisConfig::default()).expect("serializes");
	merge(&mut config, patch);
	let json = serde_json::to_vec(&config).expect("serializes");
	let mut ext = sp_io::TestExternalities::default();
	ext.execute_with(|| build_state::<RuntimeGenesisConfig>(json).expect("genesis builds"));
	ext
}

fn assert_endowed() {
	use frame_support::traits::fungible::Inspect;
	for who in endowed_accounts() {
		// Free plus held (Alice's stake, Ferdie's model deposit).
		assert_eq!(pallet_balances::Pallet::<Runtime>::total_balance(&who), ENDOWMENT);
	}
	assert_eq!(
		pallet_balances::Pallet::<Runtime>::free_balance(Sr25519Keyring::Bob.to_account_id()),
		ENDOWMENT
	);
	assert_eq!(
		pallet_balances::Pallet::<Runtime>::total_issuance(),
		ENDOWMENT * endowed_accounts().len() as u128
	);
	// An account nobody endowed holds nothing.
	let nobody = Sr25519Keyring::One.to_account_id();
	assert_eq!(pallet_balances::Pallet::<Runtime>::free_balance(&nobody), 0);
}

#[test]
fn development_preset_has_alice_as_only_authority_and_sudo() {
	ext_for("development").execute_with(|| {
		let aura = pallet_aura::Authorities::<Runtime>::get().into_inner();
		assert_eq!(aura, vec![Sr25519Keyring::Alice.public().into()]);
		let grandpa = pallet_grandpa::Pallet::<Runtime>::grandpa_authorities();
		assert_eq!(grandpa, vec![(Ed25519Keyring::Alice.public().into(), 1)]);
		assert_eq!(pallet_sudo::Key::<Runtime>::get(), Some(Sr25519Keyring::Alice.to_account_id()));
		assert_endowed();
	});
}

#[test]
fn local_testnet_preset_has_alice_and_bob_as_authorities() {
	ext_for("local_testnet").execute_with(|| {
		let aura = pallet_aura::Authorities::<Runtime>::get().into_inner();
		assert_eq!(
			aura,
			vec![Sr25519Keyring::Alice.public().into(), Sr25519Keyring::Bob.public().into()]
		);
		let grandpa = pallet_grandpa::Pallet::<Runtime>::grandpa_authorities();
		assert_eq!(
			grandpa,
			vec![
				(Ed25519Keyring::Alice.public().into(), 1),
				(Ed25519Keyring::Bob.public().into(), 1)
			]
		);
		assert_eq!(pallet_sudo::Key::<Runtime>::get(), Some(Sr25519Keyring::Alice.to_account_id()));
		assert_endowed();
	});
}

#[test]
fn preset_names_are_listed_and_unknown_presets_refused() {
	let names = preset_names();
	assert!(names.contains(&PresetId::from("development")));
	assert!(names.contains(&PresetId::from("local_testnet")));
	assert!(names.contains(&PresetId::from("testnet")));
	assert!(get_preset(&PresetId::from("no-such-preset")).is_none());
}

#[test]
fn authorize_call_runs_first_in_the_extension_pipeline() {
	use sp_runtime::traits::TransactionExtension;
	let ids = <TxExtension as TransactionExtension<RuntimeCall>>::metadata()
		.into_iter()
		.map(|m| m.identifier)
		.collect::<Vec<_>>();
	assert_eq!(ids.first().copied(), Some("AuthorizeCall"));
	assert!(ids.contains(&"ChargeTransactionPayment"));
}

#[test]
fn metadata_v16_is_offered() {
	assert!(Runtime::metadata_versions().contains(&16));
	assert!(Runtime::metadata_at_version(16).is_some());
}

/// The development preset ships a usable chain: the example model is registered, Alice serves
/// it, and a job Charlie submits is assigned to Alice.
#[test]
fn development_preset_has_model_operator_and_accepts_jobs() {
	use frame_support::{assert_ok, traits::IntegrityTest};
	ext_for("development").execute_with(|| {
		<AllPalletsWithSystem as IntegrityTest>::integrity_test();
		let ids = example_model_ids();
		assert_eq!(ids.len(), 2, "both example models decode");
		for id in &ids {
			let model = pallet_verity_models::Models::<Runtime>::get(id).expect("example model");
			assert_eq!(model.status, pallet_verity_models::ModelStatus::Active);
		}
		let id = example_model_id();
		assert_eq!(id, ids[0]);
		let model = pallet_verity_models::Models::<Runtime>::get(id).expect("example model");
		assert_eq!(model.publisher, Sr25519Keyring::Ferdie.to_account_id());
		let alice = Sr25519Keyring::Alice.to_account_id();
		let op = pallet_verity_operators::Operators::<Runtime>::get(&alice).expect("operator");
		assert_eq!(op.active, OPERATOR_STAKE);
		for id in &ids {
			assert_eq!(pallet_verity_operators::Servers::<Runtime>::get(id)[0].operator, alice);
		}
		pallet_verity_models::Pallet::<Runtime>::do_try_state().unwrap();
		pallet_verity_operators::Pallet::<Runtime>::do_try_state().unwrap();

		frame_system::Pallet::<Runtime>::set_block_number(1);
		let input = include_bytes!("../../inference-worker/models/digits_cnn.input").to_vec();
		assert_eq!(input.len() as u32, model.input_elements);
		let charlie = Sr25519Keyring::Charlie.to_account_id();
		assert_ok!(pallet_verity_jobs::Pallet::<Runtime>::submit(
			RuntimeOrigin::signed(charlie),
			id,
			input,
			2 * EXAMPLE_PRICE
		));
		assert_eq!(pallet_verity_jobs::Jobs::<Runtime>::get(0).expect("job").operator, alice);
		pallet_verity_jobs::Pallet::<Runtime>::do_try_state().unwrap();
	});
}

/// The `testnet` preset (`make testnet`): three validators; Dave, who validates nothing, is the
/// only operator, so every job goes to the node that runs an inference worker.
#[test]
fn testnet_preset_has_three_validators_and_dave_as_only_operator() {
	ext_for("testnet").execute_with(|| {
		let aura = pallet_aura::Authorities::<Runtime>::get().into_inner();
		assert_eq!(
			aura,
			vec![
				Sr25519Keyring::Alice.public().into(),
				Sr25519Keyring::Bob.public().into(),
				Sr25519Keyring::Charlie.public().into()
			]
		);
		let grandpa = pallet_grandpa::Pallet::<Runtime>::grandpa_authorities();
		assert_eq!(
			grandpa,
			vec![
				(Ed25519Keyring::Alice.public().into(), 1),
				(Ed25519Keyring::Bob.public().into(), 1),
				(Ed25519Keyring::Charlie.public().into(), 1)
			]
		);
		assert_eq!(pallet_sudo::Key::<Runtime>::get(), Some(Sr25519Keyring::Alice.to_account_id()));
		assert_endowed();
		let dave = Sr25519Keyring::Dave.to_account_id();
		let op = pallet_verity_operators::Operators::<Runtime>::get(&dave).expect("Dave bonded");
		assert_eq!(op.active, OPERATOR_STAKE);
		let alice = Sr25519Keyring::Alice.to_account_id();
		assert!(pallet_verity_operators::Operators::<Runtime>::get(&alice).is_none());
		for id in &example_model_ids() {
			let servers = pallet_verity_operators::Servers::<Runtime>::get(id);
			assert_eq!(servers.len(), 1);
			assert_eq!(servers[0].operator, dave);
			assert_eq!(servers[0].price, EXAMPLE_PRICE);
		}
		// Eve, the watcher, can pay for fraud proofs.
		assert_eq!(
			pallet_balances::Pallet::<Runtime>::free_balance(Sr25519Keyring::Eve.to_account_id()),
			ENDOWMENT
		);
		pallet_verity_operators::Pallet::<Runtime>::do_try_state().unwrap();
	});
}

/// Genesis writes each Verity pallet's declared `STORAGE_VERSION`, so the first migration
/// starts from a known on-chain version.
#[test]
fn genesis_records_the_storage_versions() {
	use frame_support::traits::{GetStorageVersion, StorageVersion};
	for preset in preset_names() {
		ext_for(&preset).execute_with(|| {
			for (pallet, on_chain, in_code) in [
				("models", Models::on_chain_storage_version(), Models::in_code_storage_version()),
				(
					"operators",
					Operators::on_chain_storage_version(),
					Operators::in_code_storage_version(),
				),
				("jobs", Jobs::on_chain_storage_version(), Jobs::in_code_storage_version()),
			] {
				assert_eq!(in_code, StorageVersion::new(0), "{pallet}");
				assert_eq!(on_chain, in_code, "{pallet} in preset {preset}");
			}
		});
	}
}

/// Attack 1 (block stuffing) is priced per block of the challenge window: `--dev` keeps the
/// short times (a job is final in two minutes), every other preset sets hours-long windows.
#[test]
fn only_the_development_preset_has_short_windows() {
	use crate::genesis_config_presets::NETWORK_TIMING;
	type Jobs = pallet_verity_jobs::Pallet<Runtime>;
	ext_for("development").execute_with(|| {
		assert_eq!(pallet_verity_jobs::ChainTiming::<Runtime>::get(), None);
		assert_eq!(Jobs::challenge_window(), 20);
		assert_eq!(Jobs::execution_deadline(), 10);
	});
	for preset in ["local_testnet", "testnet"] {
		ext_for(preset).execute_with(|| {
			assert_eq!(Jobs::challenge_window(), HOURS, "{preset}");
			assert_eq!(Jobs::execution_deadline(), 3 * MINUTES, "{preset}");
			assert_eq!(pallet_verity_jobs::ChainTiming::<Runtime>::get(), Some(NETWORK_TIMING));
		});
	}
}

/// The chain's language-model limits (`Models::lm_limits`) admit SmolLM2-135M with attention
/// in blocks of 256 at every context up to its 8,192 tokens, and refuse it with unblocked
/// attention at 2,048 (its largest step proof would be 2.7 MB) and under the classifiers'
/// limits (64 ops).
#[test]
fn lm_limits_admit_smollm2_up_to_its_context() {
	use verity_primitives::lm::validate::{validate_lm, LmInvalid};
	use verity_primitives::testing::lm::smollm2_135m_header;
	let limits = pallet_verity_models::Pallet::<Runtime>::lm_limits();
	for ctx in [512u32, 1024, 2048, 4096, 8192] {
		let info = validate_lm(&smollm2_135m_header(ctx, 256), &limits)
			.unwrap_or_else(|e| panic!("SmolLM2-135M at {ctx}: {e:?}"));
		println!(
			"ctx {ctx}: {} ops per sampling position, largest proof {} B ({:?}), largest cost \
			 {} MACs ({:?})",
			info.ops_per_sampling_position,
			info.max_step_proof_bytes,
			info.max_proof_op,
			info.max_step_macs,
			info.max_macs_op
		);
	}
	assert!(matches!(
		validate_lm(&smollm2_135m_header(2048, 2048), &limits),
		Err(LmInvalid::StepProofTooLarge { .. })
	));
	assert!(matches!(
		validate_lm(
			&smollm2_135m_header(512, 256),
			&pallet_verity_models::Pallet::<Runtime>::limits()
		),
		Err(LmInvalid::TooManyOps)
	));
}

/// Every move of a generation dispute over SmolLM2-135M at its full context (8,192 positions,
/// attention in blocks of 256) fits one Operational transaction, in declared weight and in
/// length: the roots of 8,192 positions, the 10,875 step hashes of the last position, and the
/// largest step proof (with the declared weight of the costliest step the limits admit).
#[test]
fn smollm2_dispute_moves_fit_one_transaction() {
	use codec::Encode;
	use frame_support::dispatch::{DispatchClass, GetDispatchInfo};
	use verity_primitives::lm::{
		graph::{ops_at, Shape},
		validate::validate_lm,
	};
	use verity_primitives::testing::lm::smollm2_135m_header;
	let ctx = 8192u32;
	let h = smollm2_135m_header(ctx, 256);
	let info = validate_lm(&h, &pallet_verity_models::Pallet::<Runtime>::lm_limits())
		.expect("SmolLM2 at 8,192");
	let leaves = ops_at(&h, Shape::at(&h, 1, ctx - 1)) as usize;
	assert_eq!(leaves as u64, info.ops_per_sampling_position);
	let proof_bytes = usize::try_from(info.max_step_proof_bytes).unwrap();
	let calls = [
		(
			"reveal_roots",
			RuntimeCall::Disputes(pallet_verity_disputes::Call::reveal_roots {
				job: 0,
				roots: vec![[7; 32]; ctx as usize],
			}),
		),
		(
			"reveal_position",
			RuntimeCall::Disputes(pallet_verity_disputes::Call::reveal_position {
				job: 0,
				position: ctx - 1,
				leaves: vec![[7; 32]; leaves],
			}),
		),
		(
			"prove_step",
			RuntimeCall::Disputes(pallet_verity_disputes::Call::prove_step {
				job: 0,
				proof: vec![0; proof_bytes],
			}),
		),
		(
			"commit_generation",
			RuntimeCall::Jobs(pallet_verity_jobs::Call::commit_generation {
				job: 0,
				tokens: vec![5; pallet_verity_jobs::Pallet::<Runtime>::max_new_tokens() as usize],
				job_root: [7; 32],
			}),
		),
	];
	let weights = configs::RuntimeBlockWeights::get();
	let operational = weights.get(DispatchClass::Operational).max_extrinsic.expect("a limit");
	let length = *configs::RuntimeBlockLength::get().max.get(DispatchClass::Operational);
	for (name, call) in calls {
		let dispatch = call.get_dispatch_info();
		let bytes = call.encode().len();
		println!(
			"{name}: {bytes} bytes ({:.1} % of the block's length), declared {:?} ({:.2} % of \
			 the block's time)",
			bytes as f64 * 100.0 / (5.0 * 1024.0 * 1024.0),
			dispatch.total_weight(),
			dispatch.total_weight().ref_time() as f64 * 100.0 / weights.max_block.ref_time() as f64,
		);
		assert_eq!(dispatch.class, DispatchClass::Operational, "{name}");
		assert!(dispatch.total_weight().all_lte(operational), "{name}: weight");
		assert!(bytes as u32 <= length, "{name}: length");
	}
}
