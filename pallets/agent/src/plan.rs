//! The plan of one run: which jobs to hand to the inference worker, and what to ask about each.
//! Pure: it reads the chain state and the agent's memory, and changes nothing.

use crate::{Config, Settings, RESEND_AFTER};
use alloc::{collections::BTreeMap, vec::Vec};
use codec::{Decode, Encode};
use frame_support::traits::Get;
use frame_system::{offchain::Account, pallet_prelude::BlockNumberFor};
use pallet_verity_jobs::{JobId, JobStatus};
use sp_runtime::{traits::UniqueSaturatedInto, Saturating};
use verity_worker_api::{Execute, Prove, Request};

/// What the agent remembers of a job (off-chain storage, pruned to the open jobs).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub enum Track {
	/// `commit` submitted for attempt `attempt` in block `at`.
	Committed { attempt: u32, at: u32 },
	/// `prove` found the commitment consistent.
	Consistent,
	/// `prove_fraud` submitted in block `at` with the watcher's nonce `nonce`.
	Proved { at: u32, nonce: u64 },
	/// Not to be proven by this node: the worker's own check of its proof, or the chain's
	/// (`Disputes::judge`), found no fraud, or a proof was included and the job is still open
	/// (rejected). Never sent (again).
	Abandoned,
}

/// A job handed to the worker in this run, and what to do with the answer.
pub enum Work<T: Config> {
	/// Execute for `account` (the assigned operator), attempt `attempt`; commit the result.
	Execute { job: JobId, account: Account<T>, attempt: u32 },
	/// Check the commitment; prove fraud if it is wrong.
	Check { job: JobId },
}

impl<T: Config> Work<T> {
	pub fn job(&self) -> JobId {
		match self {
			Work::Execute { job, .. } | Work::Check { job } => *job,
		}
	}
}

/// One run's plan: `work[i]` is answered by the worker's reply to `requests[i]`.
pub struct Plan<T: Config> {
	pub work: Vec<Work<T>>,
	pub requests: Vec<Request>,
	/// Every job still in the jobs pallet (the agent forgets the others).
	pub open: Vec<JobId>,
	/// Jobs whose fraud proof was included and rejected (the job is still open): abandoned.
	pub rejected: Vec<JobId>,
}

/// The plan for block `now` of a node holding `accounts`, with these settings, memory and
/// sampling salt.
///
/// * Operator: every job assigned to one of `accounts` and before its deadline, unless a commit
///   for the same attempt was submitted less than [`RESEND_AFTER`] blocks ago.
/// * Watcher (`settings.watch_permill` set): every sampled committed job of another operator
///   inside its window, unless found consistent or abandoned, or a fraud proof was submitted
///   less than [`RESEND_AFTER`] blocks ago, or a proof was included (the watcher's nonce moved
///   past it) and the job is still open: the chain rejected it, so it is not sent again.
///
/// At most `MaxRequestsPerBlock` per role. Executions: the most urgent (earliest deadline,
/// then the oldest job), so that under a backlog no job waits behind newer ones until it misses
/// its deadline. Checks: jobs whose window leaves at least [`PROOF_MARGIN`] blocks to get a
/// proof in, chosen **at random** (by `seed`, fresh each block) when there are more: with a
/// fixed order, an attacker could hide a cheating job behind enough decoys that come first.
pub fn plan<T: Config>(
	now: BlockNumberFor<T>,
	accounts: &[Account<T>],
	settings: &Settings,
	tracks: &BTreeMap<JobId, Track>,
	salt: &[u8; 32],
	seed: &[u8; 32],
) -> Plan<T> {
	let now_n: u32 = now.unique_saturated_into();
	let max = usize::try_from(T::MaxRequestsPerBlock::get()).unwrap_or(usize::MAX);
	let mut open = Vec::new();
	let mut rejected = Vec::new();
	// The watcher signs with the node's first key; its on-chain nonce tells whether a proof it
	// sent was included.
	let watcher_nonce: Option<u64> = accounts
		.first()
		.filter(|_| settings.watch_permill.is_some())
		.map(|a| frame_system::Account::<T>::get(&a.id).nonce.unique_saturated_into());
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
			JobStatus::Committed { window_end, .. }
				if now.saturating_add(PROOF_MARGIN.into()) < window_end =>
			{
				let Some(permill) = settings.watch_permill else { continue };
				if accounts.iter().any(|a| a.id == job.operator) || !sampled(salt, id, permill) {
					continue;
				}
				match tracks.get(&id) {
					Some(Track::Consistent | Track::Abandoned) => continue,
					Some(Track::Proved { nonce, .. }) if watcher_nonce > Some(*nonce) => {
						rejected.push(id);
						continue;
					},
					Some(Track::Proved { at, .. }) if now_n.saturating_sub(*at) < RESEND_AFTER => {
						continue
					},
					_ => {},
				}
				to_check.push((random_rank(seed, id), id, job));
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
	// A random subset, asked in job order.
	let mut checks: Vec<_> = most_urgent(to_check, max).collect();
	checks.sort_unstable_by_key(|(id, _)| *id);
	for (id, job) in checks {
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
	Plan { work, requests, open, rejected }
}

/// Blocks a check needs before the window ends: the worker's answer (this block, or the next
/// if it is still running) and one block for the proof to be included while the window is open.
pub const PROOF_MARGIN: u32 = 2;

/// A uniformly random rank of `job` under `seed` (sorting by it picks a random subset).
fn random_rank(seed: &[u8; 32], job: JobId) -> [u8; 32] {
	sp_io::hashing::blake2_256(&(b"verity/check", seed, job).encode())
}

/// Whether this node watches `job` when it watches `permill` parts per million of the jobs.
pub fn sampled(salt: &[u8; 32], job: JobId, permill: u32) -> bool {
	if permill >= 1_000_000 {
		return true;
	}
	let h = sp_io::hashing::blake2_256(&(b"verity/watch", salt, job).encode());
	u32::from_le_bytes([h[0], h[1], h[2], h[3]]) % 1_000_000 < permill
}

/// The first `max` of `candidates` by key (for executions the block each is due by: earliest
/// first, then the oldest job, as job ids grow with submission; for checks a random rank).
fn most_urgent<B: Ord + Copy, X>(
	mut candidates: Vec<(B, JobId, X)>,
	max: usize,
) -> impl Iterator<Item = (JobId, X)> {
	candidates.sort_unstable_by_key(|(due, id, _)| (*due, *id));
	candidates.into_iter().take(max).map(|(_, id, x)| (id, x))
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
