//! One run of the agent (the `offchain_worker` hook); see the crate docs for what it does.
//!
//! A run is three parts, each testable alone: [`plan`](crate::plan::plan) (which jobs, what to
//! ask; pure but for the random seed it is given), [`worker::call`] (one JSON-RPC batch to the
//! inference worker) and [`apply`](crate::apply::apply) (the signed transactions, what to
//! remember).

use crate::{
	apply::{apply, apply_direct, Nonces},
	plan::{plan, Track, Watchlist},
	worker, Config, Settings, RESEND_AFTER, SETTINGS_KEY,
};
use alloc::{collections::BTreeMap, string::String, vec::Vec};
use codec::{Decode, Encode};
use frame_system::{
	offchain::{Account, Signer},
	pallet_prelude::BlockNumberFor,
};
use pallet_verity_jobs::JobId;
use sp_runtime::{
	offchain::{
		storage::StorageValueRef,
		storage_lock::{BlockAndTime, StorageLock},
		Duration,
	},
	traits::UniqueSaturatedInto,
};

pub(crate) const TARGET: &str = "verity::agent";
const LOCK_KEY: &[u8] = b"verity/agent/lock";
const TRACKS_KEY: &[u8] = b"verity/agent/tracks";
const SALT_KEY: &[u8] = b"verity/agent/salt";
const WATCH_KEY: &[u8] = b"verity/agent/watch";

/// Off-chain storage value `key`, decoded (default when absent or undecodable).
pub(crate) fn load<V: Decode + Default>(key: &[u8]) -> V {
	StorageValueRef::persistent(key).get::<V>().ok().flatten().unwrap_or_default()
}

pub(crate) fn save<V: Encode>(key: &[u8], value: &V) {
	StorageValueRef::persistent(key).set(value);
}

/// This node's sampling salt (random, made once), so that watchers sample different jobs.
fn salt() -> [u8; 32] {
	let stored = StorageValueRef::persistent(SALT_KEY);
	if let Ok(Some(s)) = stored.get::<[u8; 32]>() {
		return s;
	}
	let s = sp_io::offchain::random_seed();
	stored.set(&s);
	s
}

/// One run of the agent in the off-chain worker of block `now`.
pub fn run<T: Config>(now: BlockNumberFor<T>) {
	let accounts: Vec<Account<T>> = Signer::<T, T::AuthorityId>::keystore_accounts().collect();
	if accounts.is_empty() {
		return;
	}
	let mut lock =
		StorageLock::<BlockAndTime<frame_system::Pallet<T>>>::with_block_and_time_deadline(
			LOCK_KEY,
			RESEND_AFTER,
			Duration::from_millis(crate::HTTP_TIMEOUT_MS.saturating_mul(4)),
		);
	let Ok(_guard) = lock.try_lock() else {
		log::debug!(target: TARGET, "block {now:?}: the previous run is still going");
		return;
	};
	let settings: Settings = load(SETTINGS_KEY);
	let now_n: u32 = now.unique_saturated_into();
	let mut tracks: BTreeMap<JobId, Track> = load(TRACKS_KEY);

	let seed = sp_io::offchain::random_seed();
	let mut watch: Watchlist = load(WATCH_KEY);
	let plan = plan::<T>(now, &accounts, &settings, &tracks, &mut watch, &salt(), &seed);
	save(WATCH_KEY, &watch);
	tracks.retain(|id, _| plan.open.binary_search(id).is_ok());
	for job in &plan.rejected {
		log::warn!(
			target: TARGET,
			"job {job}: the fraud proof was included but the job is still open (rejected); \
			 not sending it again"
		);
		tracks.insert(*job, Track::Abandoned);
	}
	crate::apply::forget_proofs(&plan.open);
	if !plan.direct.is_empty() {
		let mut nonces = Nonces::<T>::load(now_n);
		apply_direct(now_n, plan.direct, &accounts, &mut tracks, &mut nonces);
		nonces.save();
	}
	if plan.work.is_empty() {
		save(TRACKS_KEY, &tracks);
		return;
	}

	let url = String::from_utf8_lossy(&settings.worker_url).into_owned();
	match worker::call(&url, &plan.requests) {
		Ok(replies) => {
			let mut nonces = Nonces::<T>::load(now_n);
			apply(now_n, plan.work, replies, accounts.first(), &mut tracks, &mut nonces);
			nonces.save();
		},
		Err(e) => log::warn!(
			target: TARGET,
			"block {now_n}: inference worker at {url} gave no answer for {} job(s): {e:?}; \
			 retrying next block",
			plan.work.len()
		),
	}
	save(TRACKS_KEY, &tracks);
}
