//! Genesis presets, written in Rust and served through `sp-genesis-builder`.
//!
//! - `development` (`--dev`): Alice is the only Aura/GRANDPA authority and the sudo key.
//! - `local_testnet` (`--chain local`): Alice and Bob are the authorities; Alice is sudo.
//! - `testnet` (`--chain testnet`, the network of `make testnet`): Alice, Bob and Charlie are the
//!   authorities (Alice is sudo); Dave, a node that does not validate, is the only operator and
//!   Eve is meant to watch.
//!
//! In all of them, the well-known dev accounts (Alice, Bob, Charlie, Dave, Eve, Ferdie) are
//! endowed with [`ENDOWMENT`] each and the example models ([`EXAMPLE_MODELS`]: the inference
//! worker's digits CNN and MLP) are registered by Ferdie. In `development` and `local_testnet`
//! Alice is an operator with [`OPERATOR_STAKE`] bonded, serving both at [`EXAMPLE_PRICE`] per job;
//! Bob is meant to watch and Charlie to submit jobs; both are just funded. In `testnet` Dave is
//! that operator instead (same stake, models and price), so that no job goes to a validator
//! that runs no inference worker.
//!
//! Timing: `development` keeps the runtime's short execution deadline (10 blocks) and challenge
//! window (20 blocks, two minutes) so that a job is final while you watch; `local_testnet` and
//! `testnet` set [`NETWORK_TIMING`] (a 3-minute deadline, a 1-hour window): a window must be long
//! enough that keeping a fraud proof out of every block of it costs more than a cheat can gain
//! (docs/PROTOCOL.md, "Attacks and what they cost", row 1).

use crate::{AccountId, Balance, BlockNumber, HOURS, MINUTES, UNIT};
use alloc::{string::String, vec, vec::Vec};
use codec::Encode;
use serde_json::Value;
use sp_consensus_aura::sr25519::AuthorityId as AuraId;
use sp_consensus_grandpa::AuthorityId as GrandpaId;
use sp_genesis_builder::{self, PresetId};
use sp_keyring::{Ed25519Keyring, Sr25519Keyring};

/// What every endowed dev account starts with: one million VRTY.
pub const ENDOWMENT: Balance = 1_000_000 * UNIT;

/// The operator's bonded stake (Alice, or Dave in `testnet`).
pub const OPERATOR_STAKE: Balance = 10_000 * UNIT;

/// The execution deadline and challenge window of every preset but `development`.
pub const NETWORK_TIMING: pallet_verity_jobs::Timing<BlockNumber> =
	pallet_verity_jobs::Timing { execution_deadline: 3 * MINUTES, challenge_window: HOURS };

/// `preset` with [`NETWORK_TIMING`].
fn with_network_timing(mut preset: Value) -> Value {
	if let Some(patch) = preset.as_object_mut() {
		patch.insert("jobs".into(), serde_json::json!({ "timing": NETWORK_TIMING }));
	}
	preset
}

/// The operator's price per job of each example model.
pub const EXAMPLE_PRICE: Balance = UNIT;

/// The example models registered at genesis: (name, model file, URI). The inference worker's
/// examples, trained on the scikit-learn digits (8x8 images; `inference-worker/models/`).
pub const EXAMPLE_MODELS: [(&str, &[u8], &str); 2] = [
	(
		"digits-cnn",
		include_bytes!("../../inference-worker/models/digits_cnn.vmodel"),
		"inference-worker/models/digits_cnn.vmodel",
	),
	(
		"digits-mlp",
		include_bytes!("../../inference-worker/models/digits_mlp.vmodel"),
		"inference-worker/models/digits_mlp.vmodel",
	),
];

/// The first example model file (the digits CNN; header + weights, `VRTYMODL` format).
pub const EXAMPLE_MODEL_FILE: &[u8] = EXAMPLE_MODELS[0].1;

fn header_of(file: &[u8]) -> Option<verity_primitives::ModelHeader> {
	verity_primitives::ModelFile::decode(file).ok().map(|f| f.header)
}

/// The canonical header bytes of the example model.
pub fn example_model_header() -> Vec<u8> {
	header_of(EXAMPLE_MODEL_FILE).map(|h| h.encode()).unwrap_or_default()
}

/// The id of the example model.
pub fn example_model_id() -> [u8; 32] {
	header_of(EXAMPLE_MODEL_FILE).map(|h| verity_primitives::model_id(&h)).unwrap_or([0; 32])
}

/// The ids of all example models, in [`EXAMPLE_MODELS`] order.
pub fn example_model_ids() -> Vec<[u8; 32]> {
	EXAMPLE_MODELS
		.iter()
		.filter_map(|(_, file, _)| header_of(file).map(|h| verity_primitives::model_id(&h)))
		.collect()
}

/// The accounts endowed by both presets.
pub fn endowed_accounts() -> Vec<AccountId> {
	[
		Sr25519Keyring::Alice,
		Sr25519Keyring::Bob,
		Sr25519Keyring::Charlie,
		Sr25519Keyring::Dave,
		Sr25519Keyring::Eve,
		Sr25519Keyring::Ferdie,
	]
	.iter()
	.map(|k| k.to_account_id())
	.collect()
}

fn authority(sr: Sr25519Keyring, ed: Ed25519Keyring) -> (AuraId, GrandpaId) {
	(sr.public().into(), ed.public().into())
}

/// The genesis patch shared by the presets: `operator` is bonded with [`OPERATOR_STAKE`] and
/// serves every example model at [`EXAMPLE_PRICE`].
fn testnet_genesis(
	authorities: Vec<(AuraId, GrandpaId)>,
	endowed: Vec<AccountId>,
	root: AccountId,
	operator: AccountId,
) -> Value {
	serde_json::json!({
		"balances": {
			"balances": endowed.into_iter().map(|a| (a, ENDOWMENT)).collect::<Vec<_>>(),
		},
		"aura": {
			"authorities": authorities.iter().map(|x| x.0.clone()).collect::<Vec<_>>(),
		},
		"grandpa": {
			"authorities": authorities.iter().map(|x| (x.1.clone(), 1u64)).collect::<Vec<_>>(),
		},
		"sudo": { "key": Some(root) },
		"models": {
			"models": EXAMPLE_MODELS
				.iter()
				.filter_map(|(name, file, uri)| Some((
					Sr25519Keyring::Ferdie.to_account_id(),
					header_of(file)?.encode(),
					name.as_bytes().to_vec(),
					uri.as_bytes().to_vec(),
				)))
				.collect::<Vec<_>>(),
		},
		"operators": {
			"operators": vec![(
				operator,
				OPERATOR_STAKE,
				example_model_ids().into_iter().map(|id| (id, EXAMPLE_PRICE)).collect::<Vec<_>>(),
			)],
		},
	})
}

/// `development`: Alice alone authors and finalizes.
pub fn development_config_genesis() -> Value {
	testnet_genesis(
		vec![authority(Sr25519Keyring::Alice, Ed25519Keyring::Alice)],
		endowed_accounts(),
		Sr25519Keyring::Alice.to_account_id(),
		Sr25519Keyring::Alice.to_account_id(),
	)
}

/// `local_testnet`: Alice and Bob author and finalize together.
pub fn local_config_genesis() -> Value {
	with_network_timing(testnet_genesis(
		vec![
			authority(Sr25519Keyring::Alice, Ed25519Keyring::Alice),
			authority(Sr25519Keyring::Bob, Ed25519Keyring::Bob),
		],
		endowed_accounts(),
		Sr25519Keyring::Alice.to_account_id(),
		Sr25519Keyring::Alice.to_account_id(),
	))
}

/// The id of the `testnet` preset (`make testnet`).
pub const TESTNET_PRESET: &str = "testnet";

/// `testnet`: Alice, Bob and Charlie author and finalize; Dave (no validator) is the operator.
pub fn testnet_config_genesis() -> Value {
	with_network_timing(testnet_genesis(
		vec![
			authority(Sr25519Keyring::Alice, Ed25519Keyring::Alice),
			authority(Sr25519Keyring::Bob, Ed25519Keyring::Bob),
			authority(Sr25519Keyring::Charlie, Ed25519Keyring::Charlie),
		],
		endowed_accounts(),
		Sr25519Keyring::Alice.to_account_id(),
		Sr25519Keyring::Dave.to_account_id(),
	))
}

/// The preset with the given id, serialized as JSON.
pub fn get_preset(id: &PresetId) -> Option<Vec<u8>> {
	let patch = match id.as_ref() {
		sp_genesis_builder::DEV_RUNTIME_PRESET => development_config_genesis(),
		sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET => local_config_genesis(),
		TESTNET_PRESET => testnet_config_genesis(),
		_ => return None,
	};
	serde_json::to_string(&patch).ok().map(String::into_bytes)
}

/// The ids of the presets this runtime offers.
pub fn preset_names() -> Vec<PresetId> {
	vec![
		PresetId::from(sp_genesis_builder::DEV_RUNTIME_PRESET),
		PresetId::from(sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET),
		PresetId::from(TESTNET_PRESET),
	]
}
