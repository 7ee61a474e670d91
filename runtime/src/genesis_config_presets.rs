//! Genesis presets, written in Rust and served through `sp-genesis-builder`.
//!
//! - `development` (`--dev`): Alice is the only Aura/GRANDPA authority and the sudo key.
//! - `local_testnet` (`--chain local`): Alice and Bob are the authorities; Alice is sudo.
//!
//! In both, the well-known dev accounts (Alice, Bob, Charlie, Dave, Eve, Ferdie) are endowed
//! with [`ENDOWMENT`] each, the example model ([`example_model_header`], the primitives' golden
//! CNN) is registered by Ferdie, and Alice is an operator with [`OPERATOR_STAKE`] bonded, serving
//! it at [`EXAMPLE_PRICE`] per job. Bob is meant to watch and Charlie to submit jobs; both are
//! just funded.

use crate::{AccountId, Balance, UNIT};
use alloc::{string::String, vec, vec::Vec};
use codec::Encode;
use serde_json::Value;
use sp_consensus_aura::sr25519::AuthorityId as AuraId;
use sp_consensus_grandpa::AuthorityId as GrandpaId;
use sp_genesis_builder::{self, PresetId};
use sp_keyring::{Ed25519Keyring, Sr25519Keyring};

/// What every endowed dev account starts with: one million VRTY.
pub const ENDOWMENT: Balance = 1_000_000 * UNIT;

/// Alice's bonded stake in both presets.
pub const OPERATOR_STAKE: Balance = 10_000 * UNIT;

/// Alice's price per job of the example model.
pub const EXAMPLE_PRICE: Balance = UNIT;

/// The example model file registered at genesis (header + weights, `VRTYMODL` format).
pub const EXAMPLE_MODEL_FILE: &[u8] = include_bytes!("../../primitives/testdata/cnn.vmodel");

/// The canonical header bytes of the example model.
pub fn example_model_header() -> Vec<u8> {
	match verity_primitives::ModelFile::decode(EXAMPLE_MODEL_FILE) {
		Ok(file) => file.header.encode(),
		Err(_) => Vec::new(),
	}
}

/// The id of the example model.
pub fn example_model_id() -> [u8; 32] {
	match verity_primitives::ModelFile::decode(EXAMPLE_MODEL_FILE) {
		Ok(file) => verity_primitives::model_id(&file.header),
		Err(_) => [0; 32],
	}
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

/// The genesis patch shared by both presets.
fn testnet_genesis(
	authorities: Vec<(AuraId, GrandpaId)>,
	endowed: Vec<AccountId>,
	root: AccountId,
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
			"models": vec![(
				Sr25519Keyring::Ferdie.to_account_id(),
				example_model_header(),
				b"golden-cnn".to_vec(),
				b"primitives/testdata/cnn.vmodel".to_vec(),
			)],
		},
		"operators": {
			"operators": vec![(
				Sr25519Keyring::Alice.to_account_id(),
				OPERATOR_STAKE,
				vec![(example_model_id(), EXAMPLE_PRICE)],
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
	)
}

/// `local_testnet`: Alice and Bob author and finalize together.
pub fn local_config_genesis() -> Value {
	testnet_genesis(
		vec![
			authority(Sr25519Keyring::Alice, Ed25519Keyring::Alice),
			authority(Sr25519Keyring::Bob, Ed25519Keyring::Bob),
		],
		endowed_accounts(),
		Sr25519Keyring::Alice.to_account_id(),
	)
}

/// The preset with the given id, serialized as JSON.
pub fn get_preset(id: &PresetId) -> Option<Vec<u8>> {
	let patch = match id.as_ref() {
		sp_genesis_builder::DEV_RUNTIME_PRESET => development_config_genesis(),
		sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET => local_config_genesis(),
		_ => return None,
	};
	serde_json::to_string(&patch).ok().map(String::into_bytes)
}

/// The ids of the presets this runtime offers.
pub fn preset_names() -> Vec<PresetId> {
	vec![
		PresetId::from(sp_genesis_builder::DEV_RUNTIME_PRESET),
		PresetId::from(sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET),
	]
}
