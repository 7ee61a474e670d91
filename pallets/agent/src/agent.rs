//! One run of the agent (the `offchain_worker` hook); see the crate docs for what it does.

use crate::{worker, Config, Settings, NONCE_TTL, RESEND_AFTER, SETTINGS_KEY};
use alloc::{collections::BTreeMap, string::String, vec::Vec};
use codec::{Decode, Encode};
use frame_support::traits::Get;
use frame_system::{
	offchain::{Account, CreateSignedTransaction, Signer, SubmitTransaction},
	pallet_prelude::BlockNumberFor,
};
use pallet_verity_jobs::{JobId, JobStatus};
use sp_runtime::{
	offchain::{
		storage::StorageValueRef,
		storage_lock::{BlockAndTime, StorageLock},
		Duration,
	},
	traits::UniqueSaturatedInto,
	SaturatedConversion,
};
use verity_worker_api::{Execute, ExecuteReply, Executed, Prove, ProveReply, Reply, Request};

const TARGET: &str = "verity::agent";
const LOCK_KEY: &[u8] = b"verity/agent/lock";
const TRACKS_KEY: &[u8] = b"verity/agent/tracks";
const NONCES_KEY: &[u8] = b"verity/agent/nonces";
const SALT_KEY: &[u8] = b"verity/agent/salt";

/// What the agent remembers of a job (off-chain storage, pruned to the open jobs).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
enum Track {
	/// `commit` submitted for attempt `attempt` in block `at`.
	Committed { attempt: u32, at: u32 },
	/// `prove` found the commitment consistent.
	Consistent,
	/// `prove_fraud` submitted in block `at`.
	Proved { at: u32 },
}

/// Off-chain storage value `key`, decoded (default when absent or undecodable).
fn load<V: Decode + Default>(key: &[u8]) -> V {
	StorageValueRef::persistent(key).get::<V>().ok().flatten().unwrap_or_default()
}

fn save<V: Encode>(key: &[u8], value: &V) {
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

/// Whether this node watches `job` when it watches `permill` parts per million of the jobs.
fn sampled(salt: &[u8; 32], job: JobId, permill: u32) -> bool {
	if permill >= 1_000_000 {
		return true;
	}
	let h = sp_io::hashing::blake2_256(&(b"verity/watch", salt, job).encode());
	u32::from_le_bytes([h[0], h[1], h[2], h[3]]) % 1_000_000 < permill
}

/// Nonces of transactions this node submitted that may still be in the pool:
/// account (encoded) → (next nonce, block).
struct Nonces<T: Config> {
	book: BTreeMap<Vec<u8>, (u64, u32)>,
	now: u32,
	_t: core::marker::PhantomData<T>,
}

impl<T: Config> Nonces<T> {
	fn load(now: u32) -> Self {
		let mut book: BTreeMap<Vec<u8>, (u64, u32)> = load(NONCES_KEY);
		book.retain(|_, (_, at)| now.saturating_sub(*at) <= NONCE_TTL);
		Nonces { book, now, _t: Default::default() }
	}

	/// The nonce for `who`'s next transaction: the on-chain one, or past the ones sent lately.
	fn next(&self, who: &T::AccountId) -> u64 {
		let on_chain: u64 = frame_system::Account::<T>::get(who).nonce.unique_saturated_into();
		let sent = self.book.get(&who.encode()).map(|(n, _)| *n).unwrap_or(0);
		on_chain.max(sent)
	}

	fn used(&mut self, who: &T::AccountId, nonce: u64) {
		self.book.insert(who.encode(), (nonce.saturating_add(1), self.now));
	}

	fn save(&self) {
		save(NONCES_KEY, &self.book);
	}
}

/// Sign `call` with `account`'s key and submit it to the pool; whether it was accepted.
fn submit<T, C>(account: &Account<T>, call: C, nonces: &mut Nonces<T>) -> bool
where
	T: Config + CreateSignedTransaction<C>,
{
	let nonce = nonces.next(&account.id);
	let Some(xt) = <T as CreateSignedTransaction<C>>::create_signed_transaction::<T::AuthorityId>(
		call.into(),
		account.public.clone(),
		account.id.clone(),
		nonce.saturated_into(),
	) else {
		log::warn!(target: TARGET, "cannot sign a transaction for {:?}", account.id);
		return false;
	};
	let ok = SubmitTransaction::<T, C>::submit_transaction(xt).is_ok();
	if ok {
		nonces.used(&account.id, nonce);
	}
	ok
}

/// A job handed to the worker in this run.
enum Work<T: Config> {
	/// Execute for `account` (the assigned operator), attempt `attempt`.
	Execute { job: JobId, account: Account<T>, attempt: u32 },
	/// Check the commitment.
	Check { job: JobId },
}

/// One run of the agent in the off-chain worker of block `now`.
/// The `max` most urgent of `candidates` (each with the block it is due by): earliest due block
/// first, then the oldest job (job ids grow with submission).
fn most_urgent<B: Ord + Copy, X>(
	mut candidates: Vec<(B, JobId, X)>,
	max: usize,
) -> impl Iterator<Item = (JobId, X)> {
	candidates.sort_unstable_by_key(|(due, id, _)| (*due, *id));
	candidates.into_iter().take(max).map(|(_, id, x)| (id, x))
}

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
	let max = usize::try_from(T::MaxRequestsPerBlock::get()).unwrap_or(usize::MAX);
	let mut tracks: BTreeMap<JobId, Track> = load(TRACKS_KEY);
	let salt = salt();

	// Every job this node could work on, then the most urgent first (earliest deadline, then the
	// oldest job): under a backlog larger than `MaxRequestsPerBlock` no job waits behind newer
	// ones until it misses its deadline.
	let mut open = Vec::new();
	let mut to_execute = Vec::new();
	let mut to_check = Vec::new();
	for (id, job) in pallet_verity_jobs::Jobs::<T>::iter() {
		open.push(id);
		match job.status {
			JobStatus::Assigned { deadline } if now < deadline => {
				let Some(account) = accounts.iter().find(|a| a.id == job.operator) else {
					continue;
				};
				let attempt = verity_primitives::len_u32(job.missed.len());
				if let Some(Track::Committed { attempt: a, at }) = tracks.get(&id) {
					if *a == attempt && now_n.saturating_sub(*at) < RESEND_AFTER {
						continue;
					}
				}
				to_execute.push((deadline, id, (account.clone(), attempt, job)));
			},
			JobStatus::Committed { window_end, .. } if now < window_end => {
				let Some(permill) = settings.watch_permill else { continue };
				if accounts.iter().any(|a| a.id == job.operator) || !sampled(&salt, id, permill) {
					continue;
				}
				match tracks.get(&id) {
					Some(Track::Consistent) => continue,
					Some(Track::Proved { at }) if now_n.saturating_sub(*at) < RESEND_AFTER => {
						continue
					},
					_ => {},
				}
				to_check.push((window_end, id, job));
			},
			_ => {},
		}
	}
	let mut work: Vec<Work<T>> = Vec::new();
	let mut requests: Vec<Request> = Vec::new();
	for (id, (account, attempt, job)) in most_urgent(to_execute, max) {
		work.push(Work::Execute { job: id, account, attempt });
		requests.push(Request::Execute(Execute {
			model: job.model,
			input: job.input.into_inner(),
			deadline_ms: Some(crate::WORKER_WAIT_MS),
		}));
	}
	for (id, job) in most_urgent(to_check, max) {
		let step_hashes = pallet_verity_jobs::StepHashes::<T>::get(id)
			.map(|h| h.into_inner())
			.unwrap_or_default();
		work.push(Work::Check { job: id });
		requests.push(Request::Prove(Prove {
			model: job.model,
			input: job.input.into_inner(),
			step_hashes,
			deadline_ms: Some(crate::WORKER_WAIT_MS),
		}));
	}
	open.sort_unstable();
	tracks.retain(|id, _| open.binary_search(id).is_ok());
	if work.is_empty() {
		save(TRACKS_KEY, &tracks);
		return;
	}

	let url = String::from_utf8_lossy(&settings.worker_url).into_owned();
	let replies = match worker::call(&url, &requests) {
		Ok(r) => r,
		Err(e) => {
			log::warn!(
				target: TARGET,
				"block {now_n}: inference worker at {url} gave no answer for {} job(s): {e:?}; \
				 retrying next block",
				work.len()
			);
			save(TRACKS_KEY, &tracks);
			return;
		},
	};

	let mut nonces = Nonces::<T>::load(now_n);
	for (w, reply) in work.into_iter().zip(replies) {
		match (w, reply) {
			(
				Work::Execute { job, account, attempt },
				Ok(Reply::Execute(ExecuteReply::Done(Executed { output, step_hashes, .. }))),
			) => {
				let call = pallet_verity_jobs::Call::<T>::commit { job, output, step_hashes };
				if submit::<T, _>(&account, call, &mut nonces) {
					log::info!(target: TARGET, "job {job}: commit submitted by {:?}", account.id);
					tracks.insert(job, Track::Committed { attempt, at: now_n });
				} else {
					log::warn!(target: TARGET, "job {job}: the pool refused the commit; retrying");
				}
			},
			(Work::Check { job }, Ok(Reply::Prove(ProveReply::Consistent { .. }))) => {
				log::info!(target: TARGET, "job {job}: re-executed, commitment consistent");
				tracks.insert(job, Track::Consistent);
			},
			(Work::Check { job }, Ok(Reply::Prove(ProveReply::Fraud { step, proof, .. }))) => {
				let Some(watcher) = accounts.first() else { continue };
				log::info!(
					target: TARGET,
					"job {job}: step {step} is wrong; submitting a fraud proof of {} bytes",
					proof.len()
				);
				let call = pallet_verity_disputes::Call::<T>::prove_fraud { job, proof };
				if submit::<T, _>(watcher, call, &mut nonces) {
					tracks.insert(job, Track::Proved { at: now_n });
				} else {
					log::warn!(target: TARGET, "job {job}: the pool refused the fraud proof; retrying");
				}
			},
			(
				Work::Execute { job, .. } | Work::Check { job },
				Ok(
					Reply::Execute(ExecuteReply::Pending { .. })
					| Reply::Prove(ProveReply::Pending { .. }),
				),
			) => {
				log::debug!(target: TARGET, "job {job}: the worker is still running it");
			},
			(Work::Execute { job, .. } | Work::Check { job }, Err(refused)) => {
				log::warn!(
					target: TARGET,
					"job {job}: the worker refused it ({}): {}",
					refused.code,
					refused.message
				);
			},
			(Work::Execute { job, .. } | Work::Check { job }, other) => {
				log::warn!(target: TARGET, "job {job}: unexpected worker answer {other:?}");
			},
		}
	}
	nonces.save();
	save(TRACKS_KEY, &tracks);
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn most_urgent_takes_the_earliest_due_then_the_oldest() {
		// (due block, job id, payload): storage order is by hash, i.e. arbitrary.
		let candidates =
			vec![(30u32, 9, 'a'), (12, 7, 'b'), (30, 2, 'c'), (11, 8, 'd'), (12, 3, 'e')];
		let picked: Vec<_> = most_urgent(candidates.clone(), 3).collect();
		assert_eq!(picked, vec![(8, 'd'), (3, 'e'), (7, 'b')]);
		let all: Vec<_> = most_urgent(candidates, 10).map(|(id, _)| id).collect();
		assert_eq!(all, vec![8, 3, 7, 2, 9]);
		assert_eq!(most_urgent(Vec::<(u32, JobId, ())>::new(), 3).count(), 0);
	}

	#[test]
	fn sampling_takes_about_the_share_and_all_or_nothing_at_the_ends() {
		sp_io::TestExternalities::default().execute_with(|| {
			let salt = [7u8; 32];
			let taken = (0..10_000u64).filter(|j| sampled(&salt, *j, 250_000)).count();
			assert!((2_200..2_800).contains(&taken), "{taken}");
			assert!((0..1000u64).all(|j| sampled(&salt, j, 1_000_000)));
			assert!(!(0..1000u64).any(|j| sampled(&salt, j, 0)));
			let other = (0..10_000u64)
				.filter(|j| sampled(&salt, *j, 250_000) != sampled(&[8; 32], *j, 250_000))
				.count();
			assert!(other > 2_000, "another salt samples other jobs: {other}");
		});
	}
}
