//! Chain specifications, built from the runtime's genesis presets.

use sc_service::ChainType;
use verity_runtime::WASM_BINARY;

/// A chain specification for the Verity runtime (no extensions).
pub type ChainSpec = sc_service::GenericChainSpec;

fn properties() -> sc_service::Properties {
	let mut p = sc_service::Properties::new();
	p.insert("tokenSymbol".into(), "VRTY".into());
	p.insert("tokenDecimals".into(), 12.into());
	p.insert("ss58Format".into(), 42.into());
	p
}

/// A spec named `name` with id `id` whose genesis is the runtime preset `preset`.
fn from_preset(
	name: &str,
	id: &str,
	chain_type: ChainType,
	preset: &str,
) -> Result<ChainSpec, String> {
	let wasm = WASM_BINARY.ok_or_else(|| {
		"the runtime wasm is not available (built with SKIP_WASM_BUILD?)".to_string()
	})?;
	Ok(ChainSpec::builder(wasm, None)
		.with_name(name)
		.with_id(id)
		.with_chain_type(chain_type)
		.with_genesis_config_preset_name(preset)
		.with_properties(properties())
		.build())
}

/// `--dev`: Alice alone produces and finalizes blocks.
pub fn development_chain_spec() -> Result<ChainSpec, String> {
	from_preset(
		"Verity Development",
		"verity_dev",
		ChainType::Development,
		sp_genesis_builder::DEV_RUNTIME_PRESET,
	)
}

/// `--chain local`: Alice and Bob are the validators.
pub fn local_chain_spec() -> Result<ChainSpec, String> {
	from_preset(
		"Verity Local Testnet",
		"verity_local",
		ChainType::Local,
		sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET,
	)
}

/// `--chain testnet`: Alice, Bob and Charlie are the validators, Dave the operator
/// (`make testnet`, `scripts/testnet.sh`).
pub fn testnet_chain_spec() -> Result<ChainSpec, String> {
	from_preset(
		"Verity Testnet",
		"verity_testnet",
		ChainType::Local,
		verity_runtime::genesis_config_presets::TESTNET_PRESET,
	)
}
