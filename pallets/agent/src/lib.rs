//! # Agent pallet: the off-chain worker of operators and watchers
//!
//! This pallet has no calls and no storage. Its `offchain_worker` hook is the agent of the
//! node it runs in: it acts for every `vrty` key (sr25519, [`KEY_TYPE`]) in the node's
//! keystore.
//!
//! * **Operator role** (always on): for every open job assigned to one of those accounts and
//!   still before its deadline, it asks the local inference worker to `execute` the job (a
//!   generation job: `generate`) and, once the result is there, submits the signed
//!   `Jobs::commit(job, output, step_hashes)` (`Jobs::commit_generation(job, tokens,
//!   job_root)`) from the operator's account. When one of its generations is challenged it
//!   answers the dispute game before each move's due block: the position roots (the worker's
//!   cached generation, asked again) with `Disputes::reveal_roots`, then the step hashes of
//!   each named position (`generationLeaves`, by the worker's key kept at the commit) with
//!   `Disputes::reveal_position`, each re-signed with a rising tip while it waits, as commits.
//! * **Watcher role** (node flag `--watcher`): for every committed job inside its challenge
//!   window (all of them, or a sampled share), it asks the inference worker to `prove` the
//!   committed step hashes; on a wrong step it proves it from its first key in two signed
//!   transactions, `Disputes::commit_proof(job, commitment)` and, once that is on chain,
//!   `Disputes::prove_fraud(job, proof)` (the reveal), but only for a proof that the worker's own
//!   check and the chain's rule (`Disputes::judge`, run here) both call fraud; a commitment or
//!   proof that was included and left the job open (rejected) is never sent again. Jobs of its
//!   own keys are skipped. A sampled **generation** is re-generated (`generate`) and, if its
//!   job root or tokens differ, disputed in the game of docs/PROTOCOL.md 3.1 from the first key:
//!   `Disputes::challenge`, then `name_position` (the first position whose root or token
//!   differs, once the roots are revealed), then `prove_step` (the worker's `proveGeneration`
//!   proof, once the position is revealed), or `settle` when the operator's move is late or the
//!   job has closed; the job stays on the watchlist while the watcher has a game there. For
//!   jobs that closed while it still has business there (attack 2,
//!   [`plan::Direct`]): if a copy of its proof committed later was revealed first, it re-reveals
//!   its proof (kept in its off-chain storage) during the grace period to take the reward over;
//!   after the grace period it claims its rewards (`Disputes::claim_reward`) and withdraws
//!   commitments that lost (`Disputes::withdraw_commitment`).
//!
//! **Tips.** Commits and fraud proofs are Operational transactions (the block's reserve, ranked
//! by their fee). Each is first sent with no tip; while it waits in the pool (its sender's
//! nonce has not moved past it) the agent re-signs it every block with the same nonce and a
//! tip that rises linearly from 0 to half of what is at stake at the deadline or window end
//! ([`plan::tip_for`]: for a commit the missed-deadline penalty plus the price, for a proof the
//! prover's reward), so that whoever keeps it out of the chain must outbid a rising price in
//! every block (docs/PROTOCOL.md, "Attacks and what they cost", row 1).
//!
//! **Nonce gaps.** When a transaction leaves the pool unincluded (evicted) and its job no longer
//! needs it, the later transactions of the same account wait behind its nonce for ever. The
//! agent notices when none of the transactions it waits for has the account's on-chain nonce
//! while later ones wait, and re-signs the lowest of them with that nonce ([`plan::GAP_AFTER`]
//! blocks after it was first sent).
//!
//! It never blocks for long: one JSON-RPC batch request per block, with a deadline
//! ([`WORKER_WAIT_MS`] for the worker, [`HTTP_TIMEOUT_MS`] for the request); a result that is not
//! ready yet is picked up in a later block (the worker caches results by content, so asking
//! again costs nothing). What it submitted is remembered in the node's off-chain storage (per
//! job, with the attempt, nonce and tip): a waiting transaction is only ever replaced (same
//! nonce, higher tip, or moved into a nonce gap), and sent anew with a fresh nonce only when its
//! nonce was used while the job still waits for it, [`RESEND_AFTER`] blocks later (it failed or
//! was dropped); one run at a time (a storage lock). Nonces of transactions still in the pool are
//! tracked for [`NONCE_TTL`] blocks so that submissions of consecutive blocks do not collide.
//!
//! Settings come from the node (flags `--inference-worker`, `--watcher`, `--watch-share`),
//! written into the off-chain storage under [`SETTINGS_KEY`] as [`Settings`]. Everything it does
//! is logged under the target `verity::agent`.
//!
//! Off-chain cost (attack 11): a run reads only what concerns the node, never every open job:
//! the jobs assigned to its keys (the jobs pallet's `Assignments` index, with their deadlines;
//! only those before their deadline are read in full), and for the watcher the window-end
//! queues of the jobs committed since its last run (`Queue` at `commit block + window`, at most
//! [`plan::SCAN_BLOCKS`] per run; each sampled job is read once, when found, and kept on the
//! node's watchlist with its window end), then the at most `MaxRequestsPerBlock` jobs it hands
//! to the worker per role, and its own pending transactions, commitments and rewards. Per
//! block that is `O(own open jobs' keys + one block's commits + MaxRequestsPerBlock)` reads,
//! whatever the number of open jobs.

//! Watching budget: each job needs one check, and a watcher makes at most `MaxRequestsPerBlock`
//! (64 on the presets) per block, chosen at random among the checkable jobs (those whose window
//! leaves [`plan::PROOF_MARGIN`] blocks for a proof), with a fresh seed each block. Against `D`
//! commitments per block a watcher checks `min(64, D)` of them per block, so a given job is
//! checked with probability `min(1, 64 / D)` whatever its position, and by at least one of `k`
//! independent watchers with `1 − (1 − 64/D)^k`: an attacker can dilute the checks with decoys
//! it pays for (`D − 64` jobs' fees every block), but cannot choose which job escapes.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod agent;
mod apply;
pub mod plan;
pub mod worker;

pub use pallet::*;

use codec::{Decode, Encode};
use sp_core::crypto::KeyTypeId;

/// The key type of the agent's keys: `vrty`.
pub const KEY_TYPE: KeyTypeId = KeyTypeId(*b"vrty");

/// The off-chain storage key (kind `PERSISTENT`) of the node's agent [`Settings`].
pub const SETTINGS_KEY: &[u8] = b"verity/agent/settings";

/// The inference worker's default address.
pub const DEFAULT_WORKER_URL: &str = "http://127.0.0.1:9955";

/// How long the inference worker may wait for a result within one request.
pub const WORKER_WAIT_MS: u64 = 1_500;

/// How long one HTTP request to the inference worker may take.
pub const HTTP_TIMEOUT_MS: u64 = 3_000;

/// Blocks after which a submitted transaction whose effect is not visible is sent again.
pub const RESEND_AFTER: u32 = 5;

/// Blocks for which the nonce of a submitted transaction is remembered.
pub const NONCE_TTL: u32 = 8;

/// The node's settings for its agent (SCALE-encoded under [`SETTINGS_KEY`]).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Settings {
	/// The inference worker's JSON-RPC address (`http://host:port`).
	pub worker_url: alloc::vec::Vec<u8>,
	/// `Some(share)`: watch this share (parts per million) of the committed jobs.
	pub watch_permill: Option<u32>,
}

impl Default for Settings {
	fn default() -> Self {
		Settings { worker_url: DEFAULT_WORKER_URL.as_bytes().to_vec(), watch_permill: None }
	}
}

/// Signed transactions with a tip the agent chooses: the runtime's `CreateSignedTransaction`
/// (same extensions, same era) with `tip` in its payment extension. The agent raises the tip of
/// a commit or fraud proof that is still in the pool as its deadline or window end approaches
/// ([`plan::tip_for`]), re-signing it with the same nonce so that it replaces itself.
pub trait CreateTippedTransaction<C>:
	frame_system::offchain::CreateSignedTransaction<C> + pallet_verity_models::Config
{
	/// `call` signed by `public` for `account` with `nonce` and `tip`.
	fn create_tipped_transaction<
		A: frame_system::offchain::AppCrypto<Self::Public, Self::Signature>,
	>(
		call: <Self as frame_system::offchain::CreateTransactionBase<C>>::RuntimeCall,
		public: Self::Public,
		account: Self::AccountId,
		nonce: Self::Nonce,
		tip: pallet_verity_models::BalanceOf<Self>,
	) -> Option<<Self as frame_system::offchain::CreateTransactionBase<C>>::Extrinsic>;
}

/// The agent's keys: sr25519 under [`KEY_TYPE`]. A key's account is the operator (or
/// watcher) account it signs for.
pub mod crypto {
	use super::KEY_TYPE;
	use sp_runtime::{
		app_crypto::{app_crypto, sr25519},
		MultiSignature, MultiSigner,
	};
	app_crypto!(sr25519, KEY_TYPE);

	/// The agent's signing identity for `frame_system::offchain`.
	pub struct AgentId;

	impl frame_system::offchain::AppCrypto<MultiSigner, MultiSignature> for AgentId {
		type RuntimeAppPublic = Public;
		type GenericSignature = sp_core::sr25519::Signature;
		type GenericPublic = sp_core::sr25519::Public;
	}
}

#[frame_support::pallet]
pub mod pallet {
	use frame_support::pallet_prelude::*;
	use frame_system::{offchain::AppCrypto, pallet_prelude::*};

	#[pallet::pallet]
	pub struct Pallet<T>(_);

	#[pallet::config]
	pub trait Config:
		frame_system::Config
		+ pallet_verity_disputes::Config
		+ crate::CreateTippedTransaction<pallet_verity_jobs::Call<Self>>
		+ crate::CreateTippedTransaction<pallet_verity_disputes::Call<Self>>
	{
		/// The agent's keys (`crypto::AgentId` in a runtime with `MultiSignature`).
		type AuthorityId: AppCrypto<Self::Public, Self::Signature>;
		/// Jobs handed to the inference worker per block and role (bounds one run's work).
		#[pallet::constant]
		type MaxRequestsPerBlock: Get<u32>;
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		fn offchain_worker(now: BlockNumberFor<T>) {
			crate::agent::run::<T>(now);
		}
	}
}
