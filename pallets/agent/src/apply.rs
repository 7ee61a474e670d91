//! Applying the worker's replies: the signed transactions a run submits, and what it remembers.

use crate::plan::Move;
use crate::{
	agent::{load, save, TARGET},
	plan::{Direct, Sent, Submission, Track, Work},
	Config, CreateTippedTransaction, NONCE_TTL,
};
use alloc::{collections::BTreeMap, vec::Vec};
use codec::Encode;
use frame_system::offchain::{Account, SubmitTransaction};
use pallet_verity_jobs::JobId;
use sp_runtime::{traits::UniqueSaturatedInto, SaturatedConversion};
use verity_worker_api::{
	ErrorReply, ExecuteReply, Executed, GenerateReply, Generated, ProveGenerationReply, ProveReply,
	Reply,
};

const NONCES_KEY: &[u8] = b"verity/agent/nonces";
/// The jobs whose revealed proofs this node keeps (each under [`proof_key`]).
const PROOFS_KEY: &[u8] = b"verity/agent/proofs";

fn proof_key(job: JobId) -> Vec<u8> {
	(b"verity/agent/proof/", job).encode()
}

/// The worker's keys of the generations this node committed, by job (pruned to the open jobs).
const GENERATIONS_KEY: &[u8] = b"verity/agent/generations";

/// The worker's key of the generation this node committed for `job` (kept at the commit, to
/// ask for the step hashes of a challenged position).
pub fn generation_key(job: JobId) -> Option<verity_worker_api::Hash> {
	load::<BTreeMap<JobId, verity_worker_api::Hash>>(GENERATIONS_KEY).get(&job).copied()
}

fn keep_generation_key(job: JobId, key: verity_worker_api::Hash) {
	let mut keys: BTreeMap<JobId, verity_worker_api::Hash> = load(GENERATIONS_KEY);
	keys.insert(job, key);
	save(GENERATIONS_KEY, &keys);
}

/// Keep the proof this node reveals for `job`: after the job closes (a later commitment to the
/// same proof was revealed first) it can be revealed again to take the reward over, and the
/// worker can no longer rebuild it (the step hashes are pruned).
fn cache_proof(job: JobId, proof: &[u8]) {
	let mut jobs: Vec<JobId> = load(PROOFS_KEY);
	if !jobs.contains(&job) {
		jobs.push(job);
		save(PROOFS_KEY, &jobs);
	}
	save(&proof_key(job), &proof.to_vec());
}

/// The proof this node revealed for `job`, if it kept it.
fn cached_proof(job: JobId) -> Option<Vec<u8>> {
	let proof: Vec<u8> = load(&proof_key(job));
	(!proof.is_empty()).then_some(proof)
}

/// Whether this node kept a proof for `job`.
pub fn has_cached_proof(job: JobId) -> bool {
	load::<Vec<JobId>>(PROOFS_KEY).contains(&job)
}

/// Forget the kept proofs and generation keys of jobs not in `keep` (sorted).
pub fn forget_proofs(keep: &[JobId]) {
	let mut keys: BTreeMap<JobId, verity_worker_api::Hash> = load(GENERATIONS_KEY);
	let before = keys.len();
	keys.retain(|j, _| keep.binary_search(j).is_ok());
	if keys.len() != before {
		save(GENERATIONS_KEY, &keys);
	}
	let jobs: Vec<JobId> = load(PROOFS_KEY);
	let (kept, gone): (Vec<JobId>, Vec<JobId>) =
		jobs.into_iter().partition(|j| keep.binary_search(j).is_ok());
	if gone.is_empty() {
		return;
	}
	for job in gone {
		sp_runtime::offchain::storage::StorageValueRef::persistent(&proof_key(job)).clear();
	}
	save(PROOFS_KEY, &kept);
}

/// Nonces of transactions this node submitted that may still be in the pool:
/// account (encoded) → (next nonce, block).
pub struct Nonces<T: Config> {
	book: BTreeMap<Vec<u8>, (u64, u32)>,
	now: u32,
	_t: core::marker::PhantomData<T>,
}

impl<T: Config> Nonces<T> {
	/// The book in block `now`, without entries older than [`NONCE_TTL`] blocks.
	pub fn load(now: u32) -> Self {
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
		let next = self.book.get(&who.encode()).map(|(n, _)| *n).unwrap_or(0);
		self.book.insert(who.encode(), (next.max(nonce.saturating_add(1)), self.now));
	}

	pub fn save(&self) {
		save(NONCES_KEY, &self.book);
	}
}

/// Sign `call` with `account`'s key as `send` says (the nonce it replaces or the next one, the
/// tip) and submit it to the pool; what was sent, if the pool accepted it.
fn submit<T, C>(
	now: u32,
	account: &Account<T>,
	call: C,
	send: Submission,
	nonces: &mut Nonces<T>,
) -> Option<Sent>
where
	T: Config + CreateTippedTransaction<C>,
{
	let nonce = send.replace.unwrap_or_else(|| nonces.next(&account.id));
	let Some(xt) = <T as CreateTippedTransaction<C>>::create_tipped_transaction::<T::AuthorityId>(
		call.into(),
		account.public.clone(),
		account.id.clone(),
		nonce.saturated_into(),
		send.tip.saturated_into(),
	) else {
		log::warn!(target: TARGET, "cannot sign a transaction for {:?}", account.id);
		return None;
	};
	SubmitTransaction::<T, C>::submit_transaction(xt).ok()?;
	nonces.used(&account.id, nonce);
	Some(Sent { first: send.first, at: now, nonce, tip: send.tip })
}

/// What a log line says of how a transaction was sent.
fn how(send: &Submission) -> &'static str {
	if send.replace.is_some() {
		"re-signed with a higher tip"
	} else {
		"submitted"
	}
}

/// Act on the worker's `replies` (in the order of `work`) in block `now`: commit a finished
/// execution from the operator's account; submit a fraud proof from `watcher` (the node's first
/// key) for a wrong commitment, only when the worker's own check says `Fraud` and
/// `Disputes::judge` (the chain's rule, run here) accepts it; remember all of it in `tracks`. A pending
/// job, a refusal or an unexpected answer changes nothing (it is asked again next block).
pub fn apply<T: Config>(
	now: u32,
	work: Vec<Work<T>>,
	replies: Vec<Result<Reply, ErrorReply>>,
	watcher: Option<&Account<T>>,
	tracks: &mut BTreeMap<JobId, Track>,
	nonces: &mut Nonces<T>,
) {
	for (w, reply) in work.into_iter().zip(replies) {
		let job = w.job();
		match (w, reply) {
			(
				Work::Execute { account, attempt, send, .. },
				Ok(Reply::Execute(ExecuteReply::Done(Executed { output, step_hashes, .. }))),
			) => {
				let call = pallet_verity_jobs::Call::<T>::commit { job, output, step_hashes };
				if let Some(sent) = submit::<T, _>(now, &account, call, send, nonces) {
					log::info!(
						target: TARGET,
						"job {job}: commit {} by {:?} (nonce {}, tip {})",
						how(&send),
						account.id,
						sent.nonce,
						sent.tip
					);
					tracks.insert(job, Track::Committed { attempt, sent });
				} else {
					log::warn!(target: TARGET, "job {job}: the pool refused the commit; retrying");
				}
			},
			(
				Work::Execute { account, attempt, send, .. },
				Ok(Reply::Generate(GenerateReply::Done(Generated {
					job: key,
					tokens,
					job_root,
					..
				}))),
			) => {
				let n = tokens.len();
				let call =
					pallet_verity_jobs::Call::<T>::commit_generation { job, tokens, job_root };
				if let Some(sent) = submit::<T, _>(now, &account, call, send, nonces) {
					log::info!(
						target: TARGET,
						"job {job}: generation of {n} tokens committed {} by {:?} (nonce {}, tip \
						 {})",
						how(&send),
						account.id,
						sent.nonce,
						sent.tip
					);
					keep_generation_key(job, key);
					tracks.insert(job, Track::Committed { attempt, sent });
				} else {
					log::warn!(target: TARGET, "job {job}: the pool refused the commit; retrying");
				}
			},
			(
				Work::Reveal { account, item, send, .. },
				Ok(Reply::Generate(GenerateReply::Done(Generated {
					position_roots,
					job_root,
					..
				}))),
			) => {
				let committed =
					pallet_verity_jobs::Jobs::<T>::get(job).and_then(|j| match j.status {
						pallet_verity_jobs::JobStatus::Committed { trace_root, .. } => {
							Some(trace_root)
						},
						_ => None,
					});
				if committed != Some(job_root) {
					log::warn!(
						target: TARGET,
						"job {job}: the worker's generation is not the committed one; cannot \
						 reveal its roots"
					);
					continue;
				}
				let call =
					pallet_verity_disputes::Call::<T>::reveal_roots { job, roots: position_roots };
				reveal(now, job, &account, item, call, send, tracks, nonces);
			},
			(Work::Reveal { account, item, send, .. }, Ok(Reply::Leaves(hex))) => {
				let leaves: Option<Vec<_>> = hex
					.iter()
					.map(|h| {
						verity_worker_api::hex::decode(h)
							.ok()
							.and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
					})
					.collect();
				let Some(leaves) = leaves else {
					log::warn!(target: TARGET, "job {job}: malformed step hashes from the worker");
					continue;
				};
				let call = pallet_verity_disputes::Call::<T>::reveal_position {
					job,
					position: item,
					leaves,
				};
				reveal(now, job, &account, item, call, send, tracks, nonces);
			},
			(
				Work::Game { what: Move::Check, send, .. },
				Ok(Reply::Generate(GenerateReply::Done(g))),
			) => {
				let Some((record, _)) = pallet_verity_jobs::Pallet::<T>::generation(job) else {
					continue;
				};
				let pallet_verity_jobs::JobStatus::Committed { trace_root, .. } = &record.status
				else {
					continue;
				};
				let tokens = pallet_verity_disputes::Pallet::<T>::tokens(&record);
				if *trace_root == g.job_root && tokens == g.tokens {
					log::info!(target: TARGET, "job {job}: re-generated, commitment consistent");
					tracks.insert(job, Track::Consistent);
					continue;
				}
				let Some(watcher) = watcher else { continue };
				let call = pallet_verity_disputes::Call::<T>::challenge { job };
				game_move(now, job, watcher, Move::Check, "challenge", call, send, tracks, nonces);
			},
			(
				Work::Game { what: Move::Name, send, .. },
				Ok(Reply::Generate(GenerateReply::Done(g))),
			) => {
				let Some((record, generation)) = pallet_verity_jobs::Pallet::<T>::generation(job)
				else {
					continue;
				};
				let roots = pallet_verity_disputes::Roots::<T>::get(job).unwrap_or_default();
				let tokens = pallet_verity_disputes::Pallet::<T>::tokens(&record);
				let prompt = verity_primitives::len_u32(generation.prompt.len());
				let Some(position) = verity_primitives::lm::job::first_difference(
					prompt,
					(&roots, &tokens),
					(&g.position_roots, &g.tokens),
				) else {
					log::warn!(
						target: TARGET,
						"job {job}: the revealed roots and the tokens are the honest ones; \
						 nothing to name (the challenge was a mistake)"
					);
					tracks.insert(job, Track::Abandoned);
					continue;
				};
				let Some(watcher) = watcher else { continue };
				let call = pallet_verity_disputes::Call::<T>::name_position { job, position };
				let what = alloc::format!("naming position {position}");
				game_move(now, job, watcher, Move::Name, &what, call, send, tracks, nonces);
			},
			(
				Work::Game { what: Move::Prove(position), send, .. },
				Ok(Reply::ProveGeneration(ProveGenerationReply::Fraud {
					op, proof, verdict, ..
				})),
			) => {
				if verdict != "Fraud" {
					log::warn!(
						target: TARGET,
						"job {job}: the worker's check of its proof of step {op} of position \
						 {position} says {verdict}; not submitting it"
					);
					continue;
				}
				let Some(watcher) = watcher else { continue };
				let call = pallet_verity_disputes::Call::<T>::prove_step { job, proof };
				let what = alloc::format!("proof of step {op} of position {position}");
				game_move(
					now,
					job,
					watcher,
					Move::Prove(position),
					&what,
					call,
					send,
					tracks,
					nonces,
				);
			},
			(Work::Check { .. }, Ok(Reply::Prove(ProveReply::Consistent { .. }))) => {
				log::info!(target: TARGET, "job {job}: re-executed, commitment consistent");
				tracks.insert(job, Track::Consistent);
			},
			(
				Work::Check { send, .. },
				Ok(Reply::Prove(ProveReply::Fraud { step, proof, verdict })),
			) => {
				// Only what both the worker's own check and the chain's rule call fraud is worth
				// a fee; anything else is never sent.
				if verdict != "Fraud" {
					log::warn!(
						target: TARGET,
						"job {job}: the worker's check of its proof of step {step} says {verdict}; \
						 not submitting it"
					);
					tracks.insert(job, Track::Abandoned);
					continue;
				}
				if let Err((_, error)) = pallet_verity_disputes::Pallet::<T>::judge(job, &proof) {
					log::warn!(
						target: TARGET,
						"job {job}: the chain would reject the proof of step {step} ({error:?}); \
						 not submitting it"
					);
					tracks.insert(job, Track::Abandoned);
					continue;
				}
				let Some(watcher) = watcher else { continue };
				let bytes = proof.len();
				// First a commitment to the proof; once it is on chain, the proof (attack 2).
				let (call, what, track): (_, _, fn(Sent) -> Track) =
					if pallet_verity_disputes::ProofCommitments::<T>::contains_key(&watcher.id, job)
					{
						cache_proof(job, &proof);
						(
							pallet_verity_disputes::Call::<T>::prove_fraud { job, proof },
							"fraud proof",
							|sent| Track::Proved { sent },
						)
					} else {
						let commitment = pallet_verity_disputes::Pallet::<T>::commitment(
							job,
							&watcher.id,
							&proof,
						);
						(
							pallet_verity_disputes::Call::<T>::commit_proof { job, commitment },
							"commitment to a fraud proof",
							|sent| Track::ProofCommitted { sent },
						)
					};
				if let Some(sent) = submit::<T, _>(now, watcher, call, send, nonces) {
					log::info!(
						target: TARGET,
						"job {job}: step {step} is wrong; {what} of {bytes} bytes {} (nonce {}, \
						 tip {})",
						how(&send),
						sent.nonce,
						sent.tip
					);
					tracks.insert(job, track(sent));
				} else {
					log::warn!(target: TARGET, "job {job}: the pool refused the {what}; retrying");
				}
			},
			(
				_,
				Ok(
					Reply::Execute(ExecuteReply::Pending { .. })
					| Reply::Prove(ProveReply::Pending { .. })
					| Reply::Generate(GenerateReply::Pending { .. })
					| Reply::ProveGeneration(ProveGenerationReply::Pending { .. }),
				),
			) => {
				log::debug!(target: TARGET, "job {job}: the worker is still running it");
			},
			(_, Err(refused)) => {
				log::warn!(
					target: TARGET,
					"job {job}: the worker refused it ({}): {}",
					refused.code,
					refused.message
				);
			},
			(_, other) => {
				log::warn!(target: TARGET, "job {job}: unexpected worker answer {other:?}");
			},
		}
	}
}

/// Submit the watcher's move `what` of a generation's dispute game.
#[allow(clippy::too_many_arguments)]
fn game_move<T: Config>(
	now: u32,
	job: JobId,
	watcher: &Account<T>,
	what: Move,
	describe: &str,
	call: pallet_verity_disputes::Call<T>,
	send: Submission,
	tracks: &mut BTreeMap<JobId, Track>,
	nonces: &mut Nonces<T>,
) {
	if let Some(sent) = submit::<T, _>(now, watcher, call, send, nonces) {
		log::info!(
			target: TARGET,
			"job {job}: {describe} {} (nonce {}, tip {})",
			how(&send),
			sent.nonce,
			sent.tip
		);
		tracks.insert(job, Track::Moved { what, sent });
	} else {
		log::warn!(target: TARGET, "job {job}: the pool refused the {describe}; retrying");
	}
}

/// Submit the operator's reveal of `item` of a disputed generation.
#[allow(clippy::too_many_arguments)]
fn reveal<T: Config>(
	now: u32,
	job: JobId,
	account: &Account<T>,
	item: u32,
	call: pallet_verity_disputes::Call<T>,
	send: Submission,
	tracks: &mut BTreeMap<JobId, Track>,
	nonces: &mut Nonces<T>,
) {
	let what = if item == crate::plan::ROOTS {
		alloc::string::String::from("position roots")
	} else {
		alloc::format!("step hashes of position {item}")
	};
	if let Some(sent) = submit::<T, _>(now, account, call, send, nonces) {
		log::info!(
			target: TARGET,
			"job {job}: challenged; {what} {} (nonce {}, tip {})",
			how(&send),
			sent.nonce,
			sent.tip
		);
		tracks.insert(job, Track::Revealed { item, sent });
	} else {
		log::warn!(target: TARGET, "job {job}: the pool refused the {what}; retrying");
	}
}

/// Send the transactions that need no worker ([`Direct`]): the watcher's (from `watcher`, the
/// node's first key) and the operators' ends of late games (from that operator's key among
/// `accounts`).
pub fn apply_direct<T: Config>(
	now: u32,
	direct: Vec<Direct<T::AccountId>>,
	accounts: &[Account<T>],
	tracks: &mut BTreeMap<JobId, Track>,
	nonces: &mut Nonces<T>,
) {
	let fresh = Submission { replace: None, tip: 0, first: now };
	let Some(watcher) = accounts.first() else { return };
	for d in direct {
		match d {
			Direct::EndLateGame { job, challenger, operator } => {
				let Some(account) = accounts.iter().find(|a| a.id == operator) else { continue };
				let call = pallet_verity_disputes::Call::<T>::settle { job, challenger };
				if let Some(sent) = submit::<T, _>(now, account, call, fresh, nonces) {
					log::info!(
						target: TARGET,
						"job {job}: the challenger missed its move; ending its game (nonce {})",
						sent.nonce
					);
					tracks.insert(job, Track::Settling { at: now });
				}
			},
			Direct::Reveal { job, send } => {
				let Some(proof) = cached_proof(job) else { continue };
				let call = pallet_verity_disputes::Call::<T>::prove_fraud { job, proof };
				if let Some(sent) = submit::<T, _>(now, watcher, call, send, nonces) {
					log::info!(
						target: TARGET,
						"job {job}: a later commitment proved the fraud first; our earlier one \
						 takes the reward over, proof {} (nonce {}, tip {})",
						how(&send),
						sent.nonce,
						sent.tip
					);
					tracks.insert(job, Track::Proved { sent });
				}
			},
			Direct::Withdraw { job } => {
				let call = pallet_verity_disputes::Call::<T>::withdraw_commitment { job };
				if let Some(sent) = submit::<T, _>(now, watcher, call, fresh, nonces) {
					log::info!(
						target: TARGET,
						"job {job}: withdrawing our unused proof commitment (nonce {})",
						sent.nonce
					);
					tracks.insert(job, Track::Settling { at: now });
				}
			},
			Direct::Settle { job } => {
				let call = pallet_verity_disputes::Call::<T>::settle {
					job,
					challenger: watcher.id.clone(),
				};
				if let Some(sent) = submit::<T, _>(now, watcher, call, fresh, nonces) {
					log::info!(
						target: TARGET,
						"job {job}: ending our dispute game (nonce {})",
						sent.nonce
					);
					tracks.insert(job, Track::Settling { at: now });
				}
			},
			Direct::Claim { job } => {
				let call = pallet_verity_disputes::Call::<T>::claim_reward { job };
				if let Some(sent) = submit::<T, _>(now, watcher, call, fresh, nonces) {
					log::info!(
						target: TARGET,
						"job {job}: claiming the prover's reward (nonce {})",
						sent.nonce
					);
					tracks.insert(job, Track::Settling { at: now });
				}
			},
		}
	}
}
