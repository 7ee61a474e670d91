//! The plan of one run: which jobs to hand to the inference worker, and what to ask about each.
//! Pure: it reads the chain state and the agent's memory, and changes nothing.

use crate::{Config, Settings, RESEND_AFTER};
use alloc::{collections::BTreeMap, vec::Vec};
use codec::{Decode, Encode};
use frame_support::traits::Get;
use frame_system::{offchain::Account, pallet_prelude::BlockNumberFor};
use pallet_verity_disputes::Stage;
use pallet_verity_jobs::{JobId, JobStatus};
use sp_runtime::{traits::UniqueSaturatedInto, Saturating};
use verity_worker_api::{
	Execute, Generate, GenerationJob, GenerationLeaves, Prove, ProveGeneration, Request,
};

/// A transaction the agent sent: first in block `first`, last (re-signed) in block `at`, with
/// its sender's nonce `nonce` and, the last time, tip `tip`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Sent {
	pub first: u32,
	pub at: u32,
	pub nonce: u64,
	pub tip: u128,
}

/// How to send a transaction in this run: replacing the pending one with `nonce` (the same
/// nonce, a higher tip) or, `None`, with the sender's next nonce; with `tip`; `first`: the block
/// it was first sent in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Submission {
	pub replace: Option<u64>,
	pub tip: u128,
	pub first: u32,
}

/// What the agent remembers of a job (off-chain storage, pruned to the open jobs).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub enum Track {
	/// `commit` submitted for attempt `attempt`.
	Committed { attempt: u32, sent: Sent },
	/// `prove` found the commitment consistent.
	Consistent,
	/// `prove_fraud` submitted from the watcher's account (the reveal).
	Proved { sent: Sent },
	/// Not to be proven by this node: the worker's own check of its proof, or the chain's
	/// (`Disputes::judge`), found no fraud, or a proof was included and the job is still open
	/// (rejected). Never sent (again).
	Abandoned,
	/// `commit_proof` submitted from the watcher's account (the proof is revealed once the
	/// commitment is on chain).
	ProofCommitted { sent: Sent },
	/// A closed job the watcher still has business with: `withdraw_commitment` or
	/// `claim_reward` was sent in block `at` (sent again [`RESEND_AFTER`] blocks later if it is
	/// still needed).
	Settling { at: u32 },
	/// The operator of a disputed generation sent the reveal of `item` (its position roots:
	/// [`ROOTS`], or the step hashes of position `item`).
	Revealed { item: u32, sent: Sent },
	/// The watcher sent its move `what` of a generation's dispute game.
	Moved { what: Move, sent: Sent },
}

/// The item of [`Track::Revealed`] that stands for a generation's position roots.
pub const ROOTS: u32 = u32::MAX;

/// A watcher's move in a generation's dispute game ([`Track::Moved`]'s item).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub enum Move {
	/// Re-generate; challenge if the commitment differs.
	Check,
	/// Name the first position whose root (or token) differs from the honest generation's.
	Name,
	/// Prove the first wrong step of the named position.
	Prove(u32),
}

/// What the watcher does without asking the worker, for a job that closed while it still has a
/// commitment or a reward there (docs/PROTOCOL.md section 8, attack 2).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Direct<A> {
	/// Reveal the proof this node sent before (kept in its off-chain storage): the fraud was
	/// proven by a later commitment to the same proof, and the grace period is still on, so the
	/// reward is taken over.
	Reveal { job: JobId, send: Submission },
	/// Withdraw a commitment that can no longer be revealed usefully (its deposit comes back).
	Withdraw { job: JobId },
	/// Claim a reward whose grace period has passed.
	Claim { job: JobId },
	/// End the watcher's game against a generation: the operator missed its move (the watcher
	/// wins the job's collateral share), or the job closed (the bond comes back).
	Settle { job: JobId },
	/// End a game against `operator`'s (one of this node's keys) generation whose challenger
	/// missed its move (named no position, or proved nothing, in time): the challenger's bond
	/// goes to the operator, and the job can become final once no game is open.
	EndLateGame { job: JobId, challenger: A, operator: A },
}

/// What the watcher found committed (off-chain memory, attack 11): the last window-end queue
/// ([`pallet_verity_jobs::Queue`]) it read complete, and the jobs it sampled there that are
/// still inside their windows: job → (window end, whether to check it: not one of this node's
/// own jobs).
#[derive(Clone, PartialEq, Eq, Debug, Default, Encode, Decode)]
pub struct Watchlist {
	pub scanned: u32,
	pub jobs: BTreeMap<JobId, (u32, bool)>,
}

/// Window-end queues the watcher reads per run at most (it catches up over later runs).
pub const SCAN_BLOCKS: u32 = 16;

/// Window-end queues the watcher reads again every run, behind the last one it read: its
/// watchlist is off-chain storage shared by every fork, so after a re-organisation the queue
/// of a block it read on the losing fork may hold other commits on the winning one. Jobs
/// already on the watchlist are skipped without a read; the cost is these queues' reads.
pub const RESCAN_BLOCKS: u32 = 3;

/// A job handed to the worker in this run, and what to do with the answer.
pub enum Work<T: Config> {
	/// Execute for `account` (the assigned operator), attempt `attempt`; commit the result.
	Execute { job: JobId, account: Account<T>, attempt: u32, send: Submission },
	/// Check the commitment; prove fraud if it is wrong.
	Check { job: JobId, send: Submission },
	/// Reveal what a challenge of `account`'s generation asks: its position roots ([`ROOTS`]:
	/// the worker generates again, from its cache) or the step hashes of position `item`.
	Reveal { job: JobId, account: Account<T>, item: u32, send: Submission },
	/// The watcher's move `what` in a generation's dispute game.
	Game { job: JobId, what: Move, send: Submission },
}

impl<T: Config> Work<T> {
	pub fn job(&self) -> JobId {
		match self {
			Work::Execute { job, .. }
			| Work::Check { job, .. }
			| Work::Reveal { job, .. }
			| Work::Game { job, .. } => *job,
		}
	}
}

/// The worker's request for a generation job: its model and request, as the chain holds them.
pub fn generate_request(
	model: verity_primitives::ModelId,
	g: &pallet_verity_jobs::Generation<impl Config>,
) -> Request {
	Request::Generate(Generate {
		model,
		job: GenerationJob {
			prompt: g.prompt.to_vec(),
			max_new_tokens: g.max_new_tokens,
			temperature_q16: g.params.temperature_q16,
			top_k: g.params.top_k,
			top_p_q16: g.params.top_p_q16,
			seed: g.params.seed,
		},
		deadline_ms: Some(crate::WORKER_WAIT_MS),
	})
}

/// What a dispute of one of the operator's committed generations asks of it now, if anything:
/// its position roots before `roots_due`, else the lowest named position whose step hashes are
/// due and not revealed. `(item, due)`.
fn reveal_due<T: Config>(job: JobId, now: BlockNumberFor<T>) -> Option<(u32, BlockNumberFor<T>)> {
	let dispute = pallet_verity_disputes::Disputes::<T>::get(job)?;
	if dispute.roots_revealed_at.is_none() {
		return (now < dispute.roots_due).then_some((ROOTS, dispute.roots_due));
	}
	pallet_verity_disputes::Positions::<T>::iter_prefix(job)
		.filter(|(_, n)| n.revealed_at.is_none() && now < n.due)
		.min_by_key(|(p, _)| *p)
		.map(|(p, n)| (p, n.due))
}

/// The games against `operator`'s generation `job` whose challenger missed its move (no
/// position named, or no step proven, by the due block): each is ended by the operator
/// ([`Direct::EndLateGame`]), sent once and again after [`RESEND_AFTER`] blocks.
fn late_games<T: Config>(
	now: BlockNumberFor<T>,
	job: JobId,
	operator: &T::AccountId,
	tracks: &BTreeMap<JobId, Track>,
) -> Vec<Direct<T::AccountId>> {
	let now_n: u32 = now.unique_saturated_into();
	if let Some(Track::Settling { at }) = tracks.get(&job) {
		if now_n.saturating_sub(*at) < RESEND_AFTER {
			return Vec::new();
		}
	}
	pallet_verity_disputes::Games::<T>::iter_key_prefix(job)
		.filter(|challenger| {
			matches!(
				pallet_verity_disputes::Pallet::<T>::game_stage(job, challenger),
				Some((Stage::Name | Stage::Prove(_), due)) if now >= due
			)
		})
		.map(|challenger| Direct::EndLateGame { job, challenger, operator: operator.clone() })
		.collect()
}

/// The tip of a transaction first sent in block `first` that must be included before block
/// `end`, in block `now`, when its inclusion is worth `stake` to its sender: rising linearly from
/// 0 at `first` to `stake / 2` at the last block before `end` (never above it: the sender keeps
/// at least half of what it would lose). One rule for commits and fraud proofs.
pub fn tip_for(now: u32, first: u32, end: u32, stake: u128) -> u128 {
	let span = end.saturating_sub(1).saturating_sub(first);
	if span == 0 {
		return stake / 2;
	}
	let elapsed = now.saturating_sub(first).min(span);
	(stake / 2).saturating_mul(u128::from(elapsed)) / u128::from(span)
}

/// How to send a job's transaction now, given what was sent before (`sent`, if it is for the
/// same attempt) and the sender's on-chain nonce: `None` when nothing is to be sent this block.
///
/// * Nothing sent: send it, no tip.
/// * Still pending (the nonce has not moved past it): replace it with a higher tip when
///   [`tip_for`] has risen, else leave it.
/// * The nonce moved past it but the job still waits for it (it was dropped, or failed): send
///   it again with a fresh nonce once [`RESEND_AFTER`] blocks have passed.
fn next_send(
	now: u32,
	end: u32,
	stake: u128,
	sent: Option<&Sent>,
	nonce: u64,
) -> Option<Submission> {
	let Some(sent) = sent else { return Some(Submission { replace: None, tip: 0, first: now }) };
	if nonce > sent.nonce {
		return (now.saturating_sub(sent.at) >= RESEND_AFTER).then_some(Submission {
			replace: None,
			tip: 0,
			first: now,
		});
	}
	let tip = tip_for(now, sent.first, end, stake);
	(tip > sent.tip).then_some(Submission { replace: Some(sent.nonce), tip, first: sent.first })
}

/// One run's plan: `work[i]` is answered by the worker's reply to `requests[i]`.
pub struct Plan<T: Config> {
	pub work: Vec<Work<T>>,
	pub requests: Vec<Request>,
	/// The jobs the agent still has business with, sorted: assigned to its keys, on its
	/// watchlist, or closed with a commitment or a reward of the watcher (the agent forgets the
	/// others).
	pub open: Vec<JobId>,
	/// Transactions for closed jobs that need no worker.
	pub direct: Vec<Direct<T::AccountId>>,
	/// Jobs whose fraud proof was included and rejected (the job is still open): abandoned.
	pub rejected: Vec<JobId>,
}

/// The plan for block `now` of a node holding `accounts`, with these settings, memory and
/// sampling salt. It reads only what concerns the node (attack 11): the assignments of its own
/// keys ([`pallet_verity_jobs::Assignments`]; only those before their deadline are read in
/// full), the jobs committed since its last run ([`scan`]: their window-end queues, each
/// sampled job once, into `watch`), the jobs it checks or has transactions for, and its own
/// commitments and rewards; never every open job.
///
/// * Operator: every job assigned to one of `accounts` and before its deadline, unless a commit
///   for the same attempt is pending and its tip need not rise yet ([`next_send`]).
/// * Watcher (`settings.watch_permill` set): every sampled committed job of another operator
///   inside its window, unless found consistent or abandoned, or a fraud proof is pending and
///   its tip need not rise yet, or a proof was included (the watcher's nonce moved past it) and
///   the job is still open: the chain rejected it, so it is not sent again.
///
/// At most `MaxRequestsPerBlock` per role. Executions: commits not yet sent first, then
/// re-signings of pending ones, each the most urgent first (earliest deadline, then the oldest
/// job), so that under a backlog no job waits behind newer ones until it misses its deadline.
/// Checks: re-signings of pending fraud proofs first, then jobs whose window leaves at least
/// [`PROOF_MARGIN`] blocks to get a proof in, chosen **at random** (by `seed`, fresh each block)
/// when there are more: with a fixed order, an attacker could hide a cheating job behind enough
/// decoys that come first.
pub fn plan<T: Config>(
	now: BlockNumberFor<T>,
	accounts: &[Account<T>],
	settings: &Settings,
	tracks: &BTreeMap<JobId, Track>,
	watch: &mut Watchlist,
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
	let gaps = gaps::<T>(now_n, accounts, settings, tracks);
	let watcher = accounts.first().filter(|_| settings.watch_permill.is_some());
	let commitment_on_chain = |job: JobId| {
		watcher.is_some_and(|w| {
			pallet_verity_disputes::ProofCommitments::<T>::contains_key(&w.id, job)
		})
	};
	let mut to_execute = Vec::new();
	let mut to_reveal = Vec::new();
	let mut end_late = Vec::new();
	for account in accounts {
		for (id, deadline) in pallet_verity_jobs::Assignments::<T>::iter_prefix(&account.id) {
			open.push(id);
			end_late.extend(late_games::<T>(now, id, &account.id, tracks));
			// A challenged generation of this operator: reveal what the dispute asks.
			if let Some((item, due)) = reveal_due::<T>(id, now) {
				let sent = match tracks.get(&id) {
					Some(Track::Revealed { item: i, sent }) if *i == item => Some(sent),
					_ => None,
				};
				let stake = pallet_verity_jobs::Jobs::<T>::get(id)
					.map(|j| j.collateral.unique_saturated_into())
					.unwrap_or(0);
				let nonce =
					frame_system::Account::<T>::get(&account.id).nonce.unique_saturated_into();
				let end: u32 = due.unique_saturated_into();
				if let Some(send) = next_send(now_n, end, stake, sent, nonce) {
					to_reveal.push((id, account.clone(), item, send));
				}
				continue;
			}
			if now >= deadline {
				continue;
			}
			// Before its deadline: assigned, or committed moments ago.
			let Some(job) = pallet_verity_jobs::Jobs::<T>::get(id) else { continue };
			if !matches!(job.status, JobStatus::Assigned { .. }) {
				continue;
			}
			let attempt = verity_primitives::len_u32(job.missed.len());
			let sent = match tracks.get(&id) {
				Some(Track::Committed { attempt: a, sent }) if *a == attempt => Some(sent),
				_ => None,
			};
			// What the operator loses if the commit misses the deadline.
			let stake =
				T::MissedDeadlinePenalty::get().saturating_add(job.price).unique_saturated_into();
			let nonce = frame_system::Account::<T>::get(&account.id).nonce.unique_saturated_into();
			let end: u32 = deadline.unique_saturated_into();
			let send = fill_gap(now_n, end, stake, sent, gaps.get(&id));
			let Some(send) = send.or_else(|| next_send(now_n, end, stake, sent, nonce)) else {
				continue;
			};
			// Commits never sent come before re-signings of pending ones (already pooled).
			to_execute.push((
				(send.replace.is_some(), deadline),
				id,
				(account.clone(), attempt, send, job),
			));
		}
	}
	let mut to_check = Vec::new();
	let mut to_game = Vec::new();
	let mut settle_games = Vec::new();
	if let Some(permill) = settings.watch_permill {
		scan::<T>(now_n, accounts, watcher.map(|w| &w.id), salt, permill, watch);
		for (&id, &(end, check)) in &watch.jobs {
			open.push(id);
			if let (Some(w), Some(nonce)) = (watcher, watcher_nonce) {
				if pallet_verity_jobs::Generations::<T>::contains_key(id)
					|| pallet_verity_disputes::Games::<T>::contains_key(id, &w.id)
				{
					match game_move::<T>(now, id, end, check, &w.id, tracks, nonce) {
						Some(GameStep::Work(what, send)) => to_game.push((id, what, send)),
						Some(GameStep::Settle) => settle_games.push(id),
						None => {},
					}
					continue;
				}
			}
			if !check || now_n.saturating_add(PROOF_MARGIN) >= end {
				continue;
			}
			let sent = match tracks.get(&id) {
				Some(Track::Consistent | Track::Abandoned) => continue,
				// The commitment is on chain: reveal (the worker gives the proof again).
				Some(Track::ProofCommitted { .. }) if commitment_on_chain(id) => None,
				// Included and the job still open: the chain rejected it (if the job closed,
				// the proof was accepted, or someone else's was; the watcher settles it).
				Some(Track::ProofCommitted { sent } | Track::Proved { sent })
					if watcher_nonce > Some(sent.nonce) =>
				{
					if pallet_verity_jobs::Jobs::<T>::contains_key(id) {
						rejected.push(id);
					}
					continue;
				},
				Some(Track::ProofCommitted { sent } | Track::Proved { sent }) => Some(sent),
				_ => None,
			};
			let (send, job) = match (sent, watcher_nonce) {
				(None, _) => (Submission { replace: None, tip: 0, first: now_n }, None),
				(Some(sent), Some(nonce)) => {
					// A pending proof of this node's: its job is read for the reward at stake.
					let Some(job) = committed::<T>(id) else { continue };
					// What the prover is paid if the proof lands.
					let stake = (<T as pallet_verity_disputes::Config>::ProverShare::get()
						* job.collateral)
						.unique_saturated_into();
					let send = fill_gap(now_n, end, stake, Some(sent), gaps.get(&id));
					let Some(send) =
						send.or_else(|| next_send(now_n, end, stake, Some(sent), nonce))
					else {
						continue;
					};
					(send, Some(job))
				},
				(Some(_), None) => continue,
			};
			// Re-signings of pending fraud proofs first (each is a fraud found), then at random.
			to_check.push(((send.replace.is_none(), random_rank(seed, id)), id, (send, job)));
		}
	}
	let mut work: Vec<Work<T>> = Vec::new();
	let mut requests: Vec<Request> = Vec::new();
	for (id, (account, attempt, send, job)) in most_urgent(to_execute, max) {
		work.push(Work::Execute { job: id, account, attempt, send });
		requests.push(match pallet_verity_jobs::Generations::<T>::get(id) {
			Some(g) => generate_request(job.model, &g),
			None => Request::Execute(Execute {
				model: job.model,
				input: job.input.into_inner(),
				deadline_ms: Some(crate::WORKER_WAIT_MS),
			}),
		});
	}
	// Reveals answer challenges; a dispute's moves come due within a reply period: at most
	// `MaxRequestsPerBlock` of them, in job order.
	for (id, account, item, send) in to_reveal.into_iter().take(max) {
		let request = if item == ROOTS {
			let Some((job, g)) = pallet_verity_jobs::Pallet::<T>::generation(id) else { continue };
			generate_request(job.model, &g)
		} else {
			let Some(key) = crate::apply::generation_key(id) else {
				log::warn!(
					target: crate::agent::TARGET,
					"job {id}: position {item} is challenged but this node does not know the \
					 worker's key of the generation; it cannot reveal it"
				);
				continue;
			};
			Request::GenerationLeaves(GenerationLeaves { job: key, position: item })
		};
		work.push(Work::Reveal { job: id, account, item, send });
		requests.push(request);
	}
	// A random subset, asked in job order.
	let mut checks: Vec<_> = most_urgent(to_check, max).collect();
	checks.sort_unstable_by_key(|(id, _)| *id);
	for (id, (send, job)) in checks {
		// Only the chosen jobs are read (a job proven by someone else meanwhile is gone).
		let Some(job) = job.or_else(|| committed::<T>(id)) else { continue };
		let step_hashes = pallet_verity_jobs::StepHashes::<T>::get(id)
			.map(|h| h.into_inner())
			.unwrap_or_default();
		work.push(Work::Check { job: id, send });
		requests.push(Request::Prove(Prove {
			model: job.model,
			input: job.input.into_inner(),
			step_hashes,
			deadline_ms: Some(crate::WORKER_WAIT_MS),
		}));
	}
	// The watcher's game moves: at most `MaxRequestsPerBlock`, in job order (each is due
	// within a reply period).
	for (id, what, send) in to_game.into_iter().take(max) {
		let Some((job, g)) = pallet_verity_jobs::Pallet::<T>::generation(id) else { continue };
		let request = match what {
			Move::Check | Move::Name => generate_request(job.model, &g),
			Move::Prove(position) => {
				let roots = pallet_verity_disputes::Roots::<T>::get(id).unwrap_or_default();
				let leaves =
					pallet_verity_disputes::Leaves::<T>::get(id, position).unwrap_or_default();
				let Request::Generate(Generate { job: request, .. }) =
					generate_request(job.model, &g)
				else {
					continue;
				};
				Request::ProveGeneration(ProveGeneration {
					model: job.model,
					job: request,
					position_roots: roots.into_inner(),
					reveal: Some(verity_worker_api::Reveal {
						position,
						step_hashes: leaves.into_inner(),
					}),
					deadline_ms: Some(crate::WORKER_WAIT_MS),
				})
			},
		};
		work.push(Work::Game { job: id, what, send });
		requests.push(request);
	}
	let mut direct: Vec<Direct<T::AccountId>> =
		settle_games.into_iter().map(|job| Direct::Settle { job }).collect();
	direct.append(&mut end_late);
	if let (Some(w), Some(nonce)) = (watcher, watcher_nonce) {
		settle::<T>(now, &w.id, nonce, tracks, &mut open, &mut direct);
	}
	open.sort_unstable();
	open.dedup();
	Plan { work, requests, open, direct, rejected }
}

/// `id`, if it is open and committed.
fn committed<T: Config>(id: JobId) -> Option<pallet_verity_jobs::Job<T>> {
	pallet_verity_jobs::Jobs::<T>::get(id)
		.filter(|job| matches!(job.status, JobStatus::Committed { .. }))
		.filter(|_| !pallet_verity_jobs::Generations::<T>::contains_key(id))
}

/// `id`, if it is open and committed (a classifier job or a generation).
fn committed_any<T: Config>(id: JobId) -> Option<pallet_verity_jobs::Job<T>> {
	pallet_verity_jobs::Jobs::<T>::get(id)
		.filter(|job| matches!(job.status, JobStatus::Committed { .. }))
}

/// What the watcher does next in a generation's dispute game.
enum GameStep {
	/// Ask the worker, then move.
	Work(Move, Submission),
	/// End the game (no worker): the operator missed its move, or the job closed.
	Settle,
}

/// The watcher's next step for generation `id` (window end `end`; `check`: not its own job):
/// without a game, re-generate and compare (unless found consistent, or too late to
/// challenge); in a game, the move its stage asks ([`pallet_verity_disputes::Pallet::game_stage`]),
/// or settling once the operator's move is late or the job has closed. A move already sent is
/// re-signed with a rising tip while it waits ([`next_send`]); a settlement is sent once and
/// again after [`RESEND_AFTER`] blocks.
fn game_move<T: Config>(
	now: BlockNumberFor<T>,
	id: JobId,
	end: u32,
	check: bool,
	watcher: &T::AccountId,
	tracks: &BTreeMap<JobId, Track>,
	nonce: u64,
) -> Option<GameStep> {
	let now_n: u32 = now.unique_saturated_into();
	let settling = |tracks: &BTreeMap<JobId, Track>| match tracks.get(&id) {
		Some(Track::Settling { at }) => now_n.saturating_sub(*at) >= RESEND_AFTER,
		_ => true,
	};
	let Some((record, _)) = pallet_verity_jobs::Pallet::<T>::generation(id) else {
		// The job closed (another game won it): the bond comes back.
		return settling(tracks).then_some(GameStep::Settle);
	};
	let stake: u128 = (<T as pallet_verity_disputes::Config>::ProverShare::get()
		* record.collateral)
		.unique_saturated_into();
	let (what, due) = match pallet_verity_disputes::Pallet::<T>::game_stage(id, watcher) {
		None => {
			let done = matches!(tracks.get(&id), Some(Track::Consistent | Track::Abandoned));
			if !check || done || now_n.saturating_add(PROOF_MARGIN) >= end {
				return None;
			}
			(Move::Check, end)
		},
		Some((Stage::Roots | Stage::Reveal(_), due)) => {
			return (now >= due && settling(tracks)).then_some(GameStep::Settle);
		},
		Some((Stage::Name, due)) => (Move::Name, due.unique_saturated_into()),
		Some((Stage::Prove(p), due)) => (Move::Prove(p), due.unique_saturated_into()),
	};
	let sent = match tracks.get(&id) {
		Some(Track::Moved { what: w, sent }) if *w == what => Some(sent),
		_ => None,
	};
	next_send(now_n, due, stake, sent, nonce).map(|send| GameStep::Work(what, send))
}

/// Find the jobs committed since the last run: their window ends are queued
/// ([`pallet_verity_jobs::Queue`]) at `commit block + challenge window`, or later when that
/// block's queue was full. The queues up to `now + window` are complete after block `now` (a
/// later commit ends later): read those not read yet (`watch.scanned` is the last) and the
/// [`RESCAN_BLOCKS`] before them (re-organisations), at most [`SCAN_BLOCKS`] per run and none
/// that ends too soon for a proof; then the queues after it,
/// as long as each before was full (a commit only spills into the next queue when one is
/// full: read again next run). Add the sampled jobs not yet on the watchlist (each job is read
/// once, when found) and forget the jobs whose windows have ended. On the honest path this
/// costs the chain nothing: the queue exists for `on_initialize`.
fn scan<T: Config>(
	now: u32,
	accounts: &[Account<T>],
	watcher: Option<&T::AccountId>,
	salt: &[u8; 32],
	permill: u32,
	watch: &mut Watchlist,
) {
	let window: u32 = pallet_verity_jobs::Pallet::<T>::challenge_window().unique_saturated_into();
	let complete = now.saturating_add(window);
	let from = watch
		.scanned
		.saturating_add(1)
		.saturating_sub(RESCAN_BLOCKS)
		.max(now.saturating_add(PROOF_MARGIN).saturating_add(1));
	let to = complete.min(from.saturating_add(SCAN_BLOCKS.saturating_sub(1)));
	let mut add = |ids: &[JobId]| {
		for &id in ids {
			if watch.jobs.contains_key(&id) || !sampled(salt, id, permill) {
				continue;
			}
			let Some(job) = committed_any::<T>(id) else { continue };
			let JobStatus::Committed { window_end, .. } = job.status else { continue };
			let own = accounts.iter().any(|a| a.id == job.operator);
			watch.jobs.insert(id, (window_end.unique_saturated_into(), !own));
		}
	};
	for block in from..=to {
		add(&pallet_verity_jobs::Queue::<T>::get(BlockNumberFor::<T>::from(block)));
	}
	if to == complete {
		let full = <T as pallet_verity_jobs::Config>::MaxJobsPerBlock::get() as usize;
		let mut spilled =
			pallet_verity_jobs::Queue::<T>::get(BlockNumberFor::<T>::from(to)).len() >= full;
		let mut block = to;
		for _ in 0..<T as pallet_verity_jobs::Config>::ScheduleSpread::get() {
			if !spilled {
				break;
			}
			block = block.saturating_add(1);
			let ids = pallet_verity_jobs::Queue::<T>::get(BlockNumberFor::<T>::from(block));
			spilled = ids.len() >= full;
			add(&ids);
		}
	}
	watch.scanned = to.max(watch.scanned);
	// A job stays while its window is open, or while the watcher has a game against it.
	watch.jobs.retain(|id, (end, _)| {
		*end > now
			|| watcher.is_some_and(|w| pallet_verity_disputes::Games::<T>::contains_key(id, w))
	});
}

/// The watcher's business with closed jobs (attack 2): reveal again to take a reward over
/// while the grace period lasts and its commitment is earlier than the reward holder's (only
/// with a proof it sent before, [`crate::apply::cached_proof`]); withdraw commitments that can
/// no longer be used; claim its rewards whose grace period has passed. Each such job, and each
/// job of a reward it holds, is added to `keep` (remembered).
fn settle<T: Config>(
	now: BlockNumberFor<T>,
	watcher: &T::AccountId,
	nonce: u64,
	tracks: &BTreeMap<JobId, Track>,
	keep: &mut Vec<JobId>,
	direct: &mut Vec<Direct<T::AccountId>>,
) {
	let now_n: u32 = now.unique_saturated_into();
	let settling_due = |job: &JobId| match tracks.get(job) {
		Some(Track::Settling { at }) => now_n.saturating_sub(*at) >= RESEND_AFTER,
		_ => true,
	};
	for (job, commitment) in pallet_verity_disputes::ProofCommitments::<T>::iter_prefix(watcher) {
		if pallet_verity_jobs::Jobs::<T>::contains_key(job) {
			continue;
		}
		keep.push(job);
		let reward = pallet_verity_disputes::Rewards::<T>::get(job);
		match reward {
			Some(r)
				if now < r.until
					&& commitment.at < r.committed_at
					&& !matches!(tracks.get(&job), Some(Track::Abandoned))
					&& crate::apply::has_cached_proof(job) =>
			{
				let sent = match tracks.get(&job) {
					Some(Track::Proved { sent }) => Some(sent),
					_ => None,
				};
				// A reveal that was included and left the commitment (it failed): not again; the
				// commitment is withdrawn after the grace period.
				if sent.is_some_and(|s| nonce > s.nonce) {
					continue;
				}
				let end: u32 = r.until.unique_saturated_into();
				if let Some(send) =
					next_send(now_n, end, r.amount.unique_saturated_into(), sent, nonce)
				{
					direct.push(Direct::Reveal { job, send });
				}
			},
			_ if !pallet_verity_disputes::Pallet::<T>::in_use(job) && settling_due(&job) => {
				direct.push(Direct::Withdraw { job });
			},
			_ => {},
		}
	}
	// Its rewards: of the proofs it revealed (the jobs it remembers), not every reward.
	for (&job, track) in tracks {
		if !matches!(track, Track::Proved { .. } | Track::Settling { .. }) {
			continue;
		}
		let Some(r) = pallet_verity_disputes::Rewards::<T>::get(job) else { continue };
		if &r.prover == watcher {
			keep.push(job);
			if now >= r.until && settling_due(&job) {
				direct.push(Direct::Claim { job });
			}
		}
	}
}

/// Blocks after which a nonce below every transaction the agent waits for counts as a gap.
pub const GAP_AFTER: u32 = 2;

/// Nonce gaps (attack 13): for each account of this node whose on-chain nonce `n` is below the
/// nonces of all the transactions the agent still waits for (none of them has `n`: the one
/// that had it left the pool, e.g. evicted, and the later ones can never be included), the job
/// whose waiting transaction has the lowest nonce, first sent at least [`GAP_AFTER`] blocks
/// ago, and `n`: that transaction is re-signed with nonce `n`, which unblocks the others (its
/// old copy, if still pooled, fails harmlessly once the job is done).
fn gaps<T: Config>(
	now: u32,
	accounts: &[Account<T>],
	settings: &Settings,
	tracks: &BTreeMap<JobId, Track>,
) -> BTreeMap<JobId, u64> {
	// account (encoded) → (its on-chain nonce, [(nonce, first sent, job)] still waited for)
	type Waiting = BTreeMap<Vec<u8>, (u64, Vec<(u64, u32, JobId)>)>;
	let mut waiting: Waiting = BTreeMap::new();
	let watcher = accounts.first().filter(|_| settings.watch_permill.is_some());
	for (id, track) in tracks {
		// Only the jobs with a transaction waiting are read.
		if !matches!(
			track,
			Track::Committed { .. } | Track::ProofCommitted { .. } | Track::Proved { .. }
		) {
			continue;
		}
		let Some(job) = pallet_verity_jobs::Jobs::<T>::get(id) else { continue };
		// A transaction whose time is over (a deadline or window end passed, though the jobs
		// hook may not have handled the job yet: its backlog) can never be included: not
		// waited for.
		let before = |end: &BlockNumberFor<T>| now < (*end).unique_saturated_into();
		let (who, sent) = match (track, &job.status) {
			(Track::Committed { attempt, sent }, JobStatus::Assigned { deadline })
				if *attempt == verity_primitives::len_u32(job.missed.len()) && before(deadline) =>
			{
				(job.operator.clone(), sent)
			},
			(
				Track::ProofCommitted { sent } | Track::Proved { sent },
				JobStatus::Committed { window_end, .. },
			) if before(window_end) => match watcher {
				Some(w) => (w.id.clone(), sent),
				None => continue,
			},
			_ => continue,
		};
		if !accounts.iter().any(|a| a.id == who) {
			continue;
		}
		let entry = waiting.entry(who.encode()).or_insert_with(|| {
			(frame_system::Account::<T>::get(&who).nonce.unique_saturated_into(), Vec::new())
		});
		if sent.nonce >= entry.0 {
			entry.1.push((sent.nonce, sent.first, *id));
		}
	}
	let mut moves = BTreeMap::new();
	for (on_chain, mut pending) in waiting.into_values() {
		pending.sort_unstable();
		if let Some((lowest, first, job)) = pending.first() {
			if *lowest > on_chain && now.saturating_sub(*first) >= GAP_AFTER {
				moves.insert(*job, on_chain);
			}
		}
	}
	moves
}

/// The re-signing of a waiting transaction into a nonce gap ([`gaps`]): nonce `gap`, the tip it
/// has by now (at least its last one).
fn fill_gap(
	now: u32,
	end: u32,
	stake: u128,
	sent: Option<&Sent>,
	gap: Option<&u64>,
) -> Option<Submission> {
	let (sent, gap) = (sent?, gap?);
	let tip = tip_for(now, sent.first, end, stake).max(sent.tip);
	Some(Submission { replace: Some(*gap), tip, first: sent.first })
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
