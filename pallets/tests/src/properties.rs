//! Property test: random sequences of calls and blocks keep every invariant (holds equal the
//! obligations behind them, queues and counters consistent) and total issuance changes only by
//! burns (slashes not paid to a prover).

use crate::mock::*;
use frame_support::{assert_ok, traits::Get};
use proptest::prelude::*;

// Generation jobs: `CommitGeneration.kind` 0 honest, 1 a corrupted step, 2 a committed token
// that is not its `Select`; `Game` plays a whole game, each move made or skipped by a bit of
// `moves` (roots, name, reveal, prove; name the first differing position or position
// `moves >> 8`), then `(moves >> 5) & 7` blocks and a settlement attempt.
#[derive(Clone, Debug)]
enum Action {
	Submit { requester: u8, max_fee: u8 },
	Commit { job: u8, corrupt: Option<u8> },
	CommitProof { job: u8, step: u8, prover: u8 },
	Prove { job: u8, step: u8, prover: u8 },
	CommitAndProve { job: u8, step: u8, prover: u8 },
	ClaimReward { job: u8 },
	WithdrawCommitment { job: u8, prover: u8 },
	Announce { who: u8 },
	Register { who: u8 },
	WithdrawAnnouncement { who: u8 },
	ChallengeWeights { who: u8, op: u8 },
	PostWeights { who: u8, op: u8, wrong: bool },
	ClaimWithheld { op: u8 },
	Advance { blocks: u8 },
	BondExtra { who: u8, amount: u16 },
	Unbond { who: u8, amount: u16 },
	Withdraw { who: u8 },
	Serve { who: u8, price: u8 },
	Unserve { who: u8 },
	Unjail { who: u8 },
	SubmitGeneration { requester: u8, max_fee: u8 },
	CommitGeneration { job: u8, kind: u8, step: u8 },
	Challenge { job: u8, who: u8 },
	RevealRoots { job: u8 },
	NamePosition { job: u8, who: u8, position: u8 },
	RevealPosition { job: u8, position: u8 },
	ProveStep { job: u8, who: u8 },
	Settle { job: u8, who: u8 },
	Game { job: u8, who: u8, moves: u16 },
}

fn action() -> impl Strategy<Value = Action> {
	prop_oneof![
		4 => (0u8..3, any::<u8>()).prop_map(|(requester, max_fee)| Action::Submit { requester, max_fee }),
		4 => (any::<u8>(), proptest::option::of(any::<u8>())).prop_map(|(job, corrupt)| Action::Commit { job, corrupt }),
		2 => (any::<u8>(), any::<u8>(), 0u8..3).prop_map(|(job, step, prover)| Action::CommitProof { job, step, prover }),
		2 => (any::<u8>(), any::<u8>(), 0u8..3).prop_map(|(job, step, prover)| Action::Prove { job, step, prover }),
		1 => (any::<u8>(), any::<u8>(), 0u8..3).prop_map(|(job, step, prover)| Action::CommitAndProve { job, step, prover }),
		1 => any::<u8>().prop_map(|job| Action::ClaimReward { job }),
		1 => (any::<u8>(), 0u8..3).prop_map(|(job, prover)| Action::WithdrawCommitment { job, prover }),
		1 => (0u8..3).prop_map(|who| Action::Announce { who }),
		1 => (0u8..3).prop_map(|who| Action::Register { who }),
		1 => (0u8..3).prop_map(|who| Action::WithdrawAnnouncement { who }),
		1 => (0u8..3, any::<u8>()).prop_map(|(who, op)| Action::ChallengeWeights { who, op }),
		1 => (0u8..3, any::<u8>(), any::<bool>()).prop_map(|(who, op, wrong)| Action::PostWeights { who, op, wrong }),
		1 => any::<u8>().prop_map(|op| Action::ClaimWithheld { op }),
		3 => (1u8..8).prop_map(|blocks| Action::Advance { blocks }),
		1 => (0u8..3, any::<u16>()).prop_map(|(who, amount)| Action::BondExtra { who, amount }),
		1 => (0u8..3, any::<u16>()).prop_map(|(who, amount)| Action::Unbond { who, amount }),
		1 => (0u8..3).prop_map(|who| Action::Withdraw { who }),
		1 => (0u8..3, any::<u8>()).prop_map(|(who, price)| Action::Serve { who, price }),
		1 => (0u8..3).prop_map(|who| Action::Unserve { who }),
		1 => (0u8..3).prop_map(|who| Action::Unjail { who }),
		3 => (0u8..3, any::<u8>()).prop_map(|(requester, max_fee)| Action::SubmitGeneration { requester, max_fee }),
		3 => (any::<u8>(), 0u8..3, any::<u8>()).prop_map(|(job, kind, step)| Action::CommitGeneration { job, kind, step }),
		2 => (any::<u8>(), 0u8..3).prop_map(|(job, who)| Action::Challenge { job, who }),
		2 => any::<u8>().prop_map(|job| Action::RevealRoots { job }),
		2 => (any::<u8>(), 0u8..3, any::<u8>()).prop_map(|(job, who, position)| Action::NamePosition { job, who, position }),
		2 => (any::<u8>(), any::<u8>()).prop_map(|(job, position)| Action::RevealPosition { job, position }),
		2 => (any::<u8>(), 0u8..3).prop_map(|(job, who)| Action::ProveStep { job, who }),
		2 => (any::<u8>(), 0u8..3).prop_map(|(job, who)| Action::Settle { job, who }),
		4 => (any::<u8>(), 0u8..3, any::<u16>()).prop_map(|(job, who, moves)| Action::Game { job, who, moves }),
	]
}

/// Generation jobs and their games, with blocks passing.
fn generation_action() -> impl Strategy<Value = Action> {
	prop_oneof![
		4 => (0u8..3, any::<u8>()).prop_map(|(requester, max_fee)| Action::SubmitGeneration { requester, max_fee }),
		4 => (any::<u8>(), 0u8..3, any::<u8>()).prop_map(|(job, kind, step)| Action::CommitGeneration { job, kind, step }),
		6 => (any::<u8>(), 0u8..3, any::<u16>()).prop_map(|(job, who, moves)| Action::Game { job, who, moves }),
		1 => (any::<u8>(), 0u8..3).prop_map(|(job, who)| Action::Challenge { job, who }),
		1 => any::<u8>().prop_map(|job| Action::RevealRoots { job }),
		1 => (any::<u8>(), 0u8..3, any::<u8>()).prop_map(|(job, who, position)| Action::NamePosition { job, who, position }),
		1 => (any::<u8>(), any::<u8>()).prop_map(|(job, position)| Action::RevealPosition { job, position }),
		1 => (any::<u8>(), 0u8..3).prop_map(|(job, who)| Action::ProveStep { job, who }),
		1 => (any::<u8>(), 0u8..3).prop_map(|(job, who)| Action::Settle { job, who }),
		2 => (1u8..4).prop_map(|blocks| Action::Advance { blocks }),
	]
}

const OPERATORS: [AccountId; 3] = [ALICE, BOB, DAVE];
const REQUESTERS: [AccountId; 3] = [CHARLIE, EVE, 7];
const PROVERS: [AccountId; 3] = [8, 9, BOB];

/// Issuance burnt so far according to the events: slashes minus what provers were paid.
fn burnt() -> Balance {
	System::events().iter().fold(0, |acc, r| match &r.event {
		RuntimeEvent::Operators(pallet_verity_operators::Event::Slashed { amount, .. }) => {
			acc + amount
		},
		RuntimeEvent::Disputes(pallet_verity_disputes::Event::FraudProven { reward, .. }) => {
			acc - reward
		},
		RuntimeEvent::Disputes(pallet_verity_disputes::Event::GenerationFraudProven {
			reward,
			..
		}) => acc - reward,
		_ => acc,
	})
}

/// `tight`: the jobs hook gets the least budget `integrity_test` admits (about one job of each
/// kind per block), so that due jobs wait in the backlog; otherwise an unlimited one.
fn run(actions: Vec<Action>, tight: bool) {
	new_test_ext().execute_with(|| {
		if tight {
			let stop = pallet_verity_operators::Pallet::<Test>::stop_serving_weight();
			let db: frame_support::weights::RuntimeDbWeight =
				<<Test as frame_system::Config>::DbWeight as Get<_>>::get();
			HookBudget::set(
				Jobs::hook_weight(1, 1)
					.saturating_add(stop)
					.saturating_add(db.reads_writes(2, 2))
					.saturating_add(<() as pallet_verity_jobs::WeightInfo>::prune_receipts(1)),
			);
		}
		let case = mlp();
		let model = register(&case);
		for (i, who) in OPERATORS.iter().enumerate() {
			operator(*who, MIN_BOND + COLLATERAL * (i as u64 + 1), model, 10 * i as u64);
		}
		let lm = crate::generation::lm();
		let text = lm.register();
		for (i, who) in OPERATORS.iter().enumerate() {
			assert_ok!(Operators::serve(origin(*who), text, 10 * i as u64));
		}
		// What each generation job's operator committed: its step hashes.
		let mut committed: std::collections::BTreeMap<JobId, Vec<Vec<verity_primitives::Hash>>> =
			Default::default();
		let initial = total_issuance();
		let n = case.header.num_ops();
		for a in actions {
			let next_id = pallet_verity_jobs::NextJobId::<Test>::get().max(1);
			// Game moves pick among the open committed generations (any job id if none).
			let pick = |job: u8| -> JobId {
				let keys: Vec<JobId> = committed
					.keys()
					.copied()
					.filter(|j| pallet_verity_jobs::Jobs::<Test>::contains_key(j))
					.collect();
				if keys.is_empty() {
					job as u64 % next_id
				} else {
					keys[job as usize % keys.len()]
				}
			};
			match a {
				Action::Submit { requester, max_fee } => {
					let _ = Jobs::submit(
						origin(REQUESTERS[requester as usize]),
						model,
						case.input.clone(),
						max_fee as u64,
					);
				},
				Action::Commit { job, corrupt } => {
					let job = job as u64 % next_id;
					if let Some(j) = pallet_verity_jobs::Jobs::<Test>::get(job) {
						let (out, hashes) = match corrupt {
							Some(s) => corrupted(&case, 1 + s as u32 % n),
							None => honest(&case),
						};
						let _ = Jobs::commit(origin(j.operator), job, out, hashes);
					}
				},
				Action::CommitProof { job, step, prover } => {
					let (job, who) = (job as u64 % next_id, PROVERS[prover as usize]);
					let c = Disputes::commitment(job, &who, &proof(&case, 1 + step as u32 % n));
					let _ = Disputes::commit_proof(origin(who), job, c);
				},
				Action::Prove { job, step, prover } => {
					let _ = Disputes::prove_fraud(
						origin(PROVERS[prover as usize]),
						job as u64 % next_id,
						proof(&case, 1 + step as u32 % n),
					);
				},
				Action::CommitAndProve { job, step, prover } => {
					let _ = reveal(
						PROVERS[prover as usize],
						job as u64 % next_id,
						proof(&case, 1 + step as u32 % n),
					);
				},
				Action::ClaimReward { job } => {
					let _ = Disputes::claim_reward(origin(NOBODY), job as u64 % next_id);
				},
				Action::Announce { who } => {
					let who = PROVERS[who as usize];
					let _ = Models::announce(origin(who), Models::announcement(&who, &model));
				},
				Action::Register { who } => {
					let bytes = header_bytes(&case);
					let _ = Models::register(origin(PROVERS[who as usize]), bytes, vec![], vec![]);
				},
				Action::WithdrawAnnouncement { who } => {
					let who = PROVERS[who as usize];
					let a = Models::announcement(&who, &model);
					let _ = Models::withdraw_announcement(origin(who), a);
				},
				Action::ChallengeWeights { who, op } => {
					let op = 1 + op as u32 % n;
					let _ = Models::challenge_weights(origin(PROVERS[who as usize]), model, op);
				},
				Action::PostWeights { who, op, wrong } => {
					let op = 1 + op as u32 % n;
					let mut weights = case.weights[op as usize - 1].clone();
					if wrong {
						weights.push(0);
					}
					let _ =
						Models::post_weights(origin(OPERATORS[who as usize]), model, op, weights);
				},
				Action::ClaimWithheld { op } => {
					let _ = Models::claim_withheld(origin(NOBODY), model, 1 + op as u32 % n);
				},
				Action::WithdrawCommitment { job, prover } => {
					let _ = Disputes::withdraw_commitment(
						origin(PROVERS[prover as usize]),
						job as u64 % next_id,
					);
				},
				Action::Advance { blocks } => run_to_block(now() + blocks as u64),
				Action::BondExtra { who, amount } => {
					let _ = Operators::bond_extra(origin(OPERATORS[who as usize]), amount as u64);
				},
				Action::Unbond { who, amount } => {
					let _ = Operators::unbond(origin(OPERATORS[who as usize]), amount as u64);
				},
				Action::Withdraw { who } => {
					let _ = Operators::withdraw_unbonded(origin(OPERATORS[who as usize]));
				},
				Action::Serve { who, price } => {
					let _ = Operators::serve(origin(OPERATORS[who as usize]), model, price as u64);
				},
				Action::Unserve { who } => {
					let _ = Operators::unserve(origin(OPERATORS[who as usize]), model);
				},
				Action::Unjail { who } => {
					let _ = Operators::unjail(origin(OPERATORS[who as usize]));
				},
				Action::SubmitGeneration { requester, max_fee } => {
					let _ = Jobs::submit_generation(
						origin(REQUESTERS[requester as usize]),
						text,
						lm.job.prompt.clone(),
						lm.job.max_new_tokens,
						lm.job.params,
						max_fee as u64,
					);
				},
				Action::CommitGeneration { job, kind, step } => {
					let job = job as u64 % next_id;
					if let Some(j) = pallet_verity_jobs::Jobs::<Test>::get(job) {
						let (hashes, tokens) = lm.variant(kind, step);
						let root = verity_primitives::lm::trace::job_root(
							&hashes
								.iter()
								.map(|h| verity_primitives::lm::trace::position_root(h))
								.collect::<Vec<_>>(),
						);
						if Jobs::commit_generation(origin(j.operator), job, tokens, root).is_ok() {
							committed.insert(job, hashes);
						}
					}
				},
				Action::Challenge { job, who } => {
					let _ =
						Disputes::challenge(origin(PROVERS[who as usize]), job as u64 % next_id);
				},
				Action::RevealRoots { job } => {
					let job = pick(job);
					if let (Some(j), Some(h)) =
						(pallet_verity_jobs::Jobs::<Test>::get(job), committed.get(&job))
					{
						let roots = h
							.iter()
							.map(|h| verity_primitives::lm::trace::position_root(h))
							.collect();
						let _ = Disputes::reveal_roots(origin(j.operator), job, roots);
					}
				},
				Action::NamePosition { job, who, position } => {
					let job = pick(job);
					// Half the time the watcher's choice: the first root that differs from the
					// honest generation's.
					let honest = lm.trace.position_roots();
					let first = committed.get(&job).and_then(|h| {
						h.iter()
							.map(|h| verity_primitives::lm::trace::position_root(h))
							.zip(&honest)
							.position(|(a, b)| a != *b)
					});
					let p = match first {
						Some(p) if position % 2 == 0 => p as u32,
						_ => position as u32 % lm.positions().max(1),
					};
					let _ = Disputes::name_position(origin(PROVERS[who as usize]), job, p);
				},
				Action::RevealPosition { job, position } => {
					let job = pick(job);
					if let (Some(j), Some(h)) =
						(pallet_verity_jobs::Jobs::<Test>::get(job), committed.get(&job))
					{
						let named: Vec<u32> =
							pallet_verity_disputes::Positions::<Test>::iter_key_prefix(job)
								.collect();
						let p = match named.len() {
							0 => position as u32 % h.len() as u32,
							k => named[position as usize % k],
						};
						let _ = Disputes::reveal_position(
							origin(j.operator),
							job,
							p,
							h[p as usize].clone(),
						);
					}
				},
				Action::ProveStep { job, who } => {
					let job = pick(job);
					let who = PROVERS[who as usize];
					let named =
						pallet_verity_disputes::Games::<Test>::get(job, who).and_then(|g| g.named);
					if let (Some((p, _)), Some(h)) = (named, committed.get(&job)) {
						let upto = (p as usize + 1).min(h.len());
						if let Ok(Some(proof)) = verity_primitives::lm::trace::find_lm_fraud(
							&lm.header,
							&lm.chunks,
							&lm.job,
							&h[..upto],
						) {
							let _ = Disputes::prove_step(
								origin(who),
								job,
								codec::Encode::encode(&proof),
							);
						}
					}
				},
				Action::Game { job, who, moves } => {
					let position = moves >> 8;
					let job = pick(job);
					let who = PROVERS[who as usize];
					let _ = Disputes::challenge(origin(who), job);
					let operator = pallet_verity_jobs::Jobs::<Test>::get(job).map(|j| j.operator);
					if let (Some(operator), Some(h)) = (operator, committed.get(&job)) {
						let roots: Vec<_> = h
							.iter()
							.map(|h| verity_primitives::lm::trace::position_root(h))
							.collect();
						if moves & 1 != 0 {
							let _ = Disputes::reveal_roots(origin(operator), job, roots.clone());
						}
						let honest = lm.trace.position_roots();
						let first = roots.iter().zip(&honest).position(|(a, b)| a != b);
						let p = match first {
							Some(p) if moves & 16 == 0 => p as u32,
							_ => position as u32 % h.len() as u32,
						};
						if moves & 2 != 0 {
							let _ = Disputes::name_position(origin(who), job, p);
						}
						if moves & 4 != 0 {
							let leaves = h[p as usize].clone();
							let _ = Disputes::reveal_position(origin(operator), job, p, leaves);
						}
						if moves & 8 != 0 {
							let upto = (p as usize + 1).min(h.len());
							if let Ok(Some(proof)) = verity_primitives::lm::trace::find_lm_fraud(
								&lm.header,
								&lm.chunks,
								&lm.job,
								&h[..upto],
							) {
								let proof = codec::Encode::encode(&proof);
								let _ = Disputes::prove_step(origin(who), job, proof);
							}
						}
					}
					run_to_block(now() + ((moves >> 5) & 7) as u64);
					let _ = Disputes::settle(origin(NOBODY), job, who);
				},
				Action::Settle { job, who } => {
					let _ = Disputes::settle(
						origin(NOBODY),
						job as u64 % next_id,
						PROVERS[who as usize],
					);
				},
			}
			check_invariants();
			assert_eq!(total_issuance(), initial - burnt(), "issuance changed other than by burns");
		}
		// Drain: every game is decided within a window and settled; then every open job closes
		// within the bounded horizon, and every grace period ends.
		run_to_block(now() + WINDOW + 1);
		let games: Vec<(JobId, AccountId)> =
			pallet_verity_disputes::Games::<Test>::iter_keys().collect();
		for (job, who) in games {
			assert_ok!(Disputes::settle(origin(NOBODY), job, who));
		}
		run_to_block(
			now()
				+ (DEADLINE + SPREAD as u64) * MAX_ATTEMPTS as u64
				+ 2 * WINDOW + SPREAD as u64
				+ 1,
		);
		assert_eq!(pallet_verity_jobs::Jobs::<Test>::iter().count(), 0, "a job never closed");
		for who in REQUESTERS {
			assert_eq!(fee_held(who), 0);
		}
		// Every reward can be claimed and every commitment withdrawn: nothing stays held.
		let rewards: Vec<JobId> = pallet_verity_disputes::Rewards::<Test>::iter_keys().collect();
		for job in rewards {
			assert_ok!(Disputes::claim_reward(origin(NOBODY), job));
		}
		let commitments: Vec<(AccountId, JobId)> =
			pallet_verity_disputes::ProofCommitments::<Test>::iter_keys().collect();
		for (who, job) in commitments {
			assert_ok!(Disputes::withdraw_commitment(origin(who), job));
		}
		let announcements: Vec<(AccountId, [u8; 32])> =
			pallet_verity_models::Announcements::<Test>::iter_keys().collect();
		for (who, a) in announcements {
			assert_ok!(Models::withdraw_announcement(origin(who), a));
		}
		let challenges: Vec<(verity_primitives::ModelId, u32)> =
			pallet_verity_models::WeightChallenges::<Test>::iter_keys().collect();
		for (model, op) in challenges {
			assert_ok!(Models::claim_withheld(origin(NOBODY), model, op));
		}
		let publisher = pallet_verity_models::Models::<Test>::get(model).expect("model").publisher;
		for who in PROVERS {
			let deposit = if who == publisher {
				pallet_verity_models::Models::<Test>::get(model).expect("model").deposit
			} else {
				0
			};
			assert_eq!(
				held(who) - stake_of(who) - deposit,
				0,
				"a prover's deposit, announcement, bond or reward stayed held"
			);
		}
		check_invariants();
		assert_eq!(total_issuance(), initial - burnt());
	});
}

proptest! {
	#![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
	#[test]
	fn random_call_sequences_keep_invariants(
		actions in proptest::collection::vec(action(), 1..60),
		tight in proptest::bool::ANY,
	) {
		run(actions, tight);
	}

	#[test]
	fn random_generation_games_keep_invariants(
		actions in proptest::collection::vec(generation_action(), 1..60),
	) {
		run(actions, false);
	}
}
