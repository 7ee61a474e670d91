//! The node's RPC extensions: the standard system and payment methods, and Verity's own:
//! `verity_bestJustification` (the GRANDPA justification of the latest finalized block, which
//! `verity-node receipt fetch` puts into receipts).

#![warn(missing_docs)]

use std::sync::Arc;

use codec::Encode;
use jsonrpsee::{types::ErrorObjectOwned, RpcModule};
use sc_client_api::AuxStore;
use sc_transaction_pool_api::TransactionPool;
use sp_api::ProvideRuntimeApi;
use sp_block_builder::BlockBuilder;
use sp_blockchain::{Error as BlockChainError, HeaderBackend, HeaderMetadata};
use verity_runtime::{opaque::Block, AccountId, Balance, Nonce};

/// What the RPC extensions need.
pub struct FullDeps<C, P> {
	/// The client.
	pub client: Arc<C>,
	/// The transaction pool.
	pub pool: Arc<P>,
}

/// Build the RPC module with all of the node's extensions merged in.
pub fn create_full<C, P>(
	deps: FullDeps<C, P>,
) -> Result<RpcModule<()>, Box<dyn std::error::Error + Send + Sync>>
where
	C: ProvideRuntimeApi<Block>
		+ AuxStore
		+ HeaderBackend<Block>
		+ HeaderMetadata<Block, Error = BlockChainError>
		+ Send
		+ Sync
		+ 'static,
	C::Api: substrate_frame_rpc_system::AccountNonceApi<Block, AccountId, Nonce>
		+ pallet_transaction_payment_rpc::TransactionPaymentRuntimeApi<Block, Balance>
		+ BlockBuilder<Block>,
	P: TransactionPool + 'static,
{
	use pallet_transaction_payment_rpc::{TransactionPayment, TransactionPaymentApiServer};
	use substrate_frame_rpc_system::{System, SystemApiServer};

	let mut module = RpcModule::new(());
	let FullDeps { client, pool } = deps;

	module.merge(System::new(client.clone(), pool).into_rpc())?;
	module.merge(TransactionPayment::new(client.clone()).into_rpc())?;

	// The voter stores the justification of every block it finalizes as the "best" one (GRANDPA's
	// `grandpa_proveFinality` answers only for blocks before an authority set change, and this
	// chain's set never changes).
	let mut verity = RpcModule::new(client);
	verity.register_method("verity_bestJustification", |_, client, _| {
		sc_consensus_grandpa::best_justification::<_, Block>(&**client)
			.map(|j| j.map(|j| sp_core::Bytes(j.encode())))
			.map_err(|e| ErrorObjectOwned::owned(1, e.to_string(), None::<()>))
	})?;
	module.merge(verity)?;

	Ok(module)
}
