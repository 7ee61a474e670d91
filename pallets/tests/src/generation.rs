//! Generation jobs and their dispute game against the mock runtime, with real transformers
//! (random tiny models of the primitives, run by the reference interpreter): registration of
//! text models, submission and commitment with every error (state unchanged), an honest job to
//! final, and each way a dispute ends — the operator silent on its roots or on a position, a
//! committed token that is not its `Select`, a corrupted step proven at exactly that step, a
//! frivolous challenger paying the operator, a proof that shows no fraud.

use crate::mock::*;
use frame_support::{assert_noop, assert_ok};
use pallet_verity_disputes::{Error as DisputeError, Games, Leaves, Positions, Roots};
use pallet_verity_jobs::{Error as JobError, Generations, JobStatus, Outcome};
use verity_primitives::{
	lm::{
		header::LmHeader,
		interp::{generate, LmJob, LmTrace},
		sample::SamplingParams,
		trace::{find_lm_fraud, job_root},
		validate::validate_lm,
	},
	Hash, ModelId,
};

const PRICE: Balance = 3;

/// A random tiny transformer the mock admits, with a job of at least 2 prompt tokens and 2
/// generated tokens that fits its context, and the honest trace.
pub(crate) struct Lm {
	pub header: LmHeader,
	pub chunks: Vec<Vec<u8>>,
	pub job: LmJob,
	pub trace: LmTrace,
}

pub(crate) fn lm() -> Lm {
	let limits = Models::lm_limits();
	for seed in 0..500 {
		let case = verity_primitives::testing::lm::random_lm_case(seed);
		let h = case.header;
		if validate_lm(&h, &limits).is_err() || h.max_context < 5 {
			continue;
		}
		let mut job = case.job;
		job.prompt.truncate(2.max(job.prompt.len().min(3)));
		if job.prompt.len() < 2 {
			continue;
		}
		job.max_new_tokens = h.max_context + 1 - job.prompt.len() as u32;
		job.params = SamplingParams::GREEDY;
		let Ok(trace) = generate(&h, &case.chunks, &job) else { continue };
		if trace.tokens.len() >= 3 {
			return Lm { header: h, chunks: case.chunks, job, trace };
		}
	}
	panic!("no random transformer fits the mock");
}

impl Lm {
	pub fn register(&self) -> ModelId {
		let bytes = codec::Encode::encode(&self.header);
		announce_earlier(PUBLISHER, &bytes);
		assert_ok!(Models::register(origin(PUBLISHER), bytes, b"lm".to_vec(), b"u".to_vec()));
		self.header.id()
	}

	fn units(&self) -> Balance {
		(self.job.prompt.len() as u32 + self.job.max_new_tokens) as Balance
	}

	pub fn submit(&self, who: AccountId, model: ModelId) -> u64 {
		let id = pallet_verity_jobs::NextJobId::<Test>::get();
		assert_ok!(Jobs::submit_generation(
			origin(who),
			model,
			self.job.prompt.clone(),
			self.job.max_new_tokens,
			self.job.params,
			PRICE * self.units(),
		));
		id
	}

	fn tokens(&self) -> Vec<u32> {
		self.trace.tokens.clone()
	}

	fn root(&self) -> Hash {
		job_root(&self.trace.position_roots())
	}

	/// Positions of the honest generation.
	pub fn positions(&self) -> u32 {
		self.trace.outputs.len() as u32
	}

	/// The step hashes and tokens of a trace whose op `op` of position `k` is wrong.
	pub fn variant_at(&self, k: u32, op: u32) -> (Vec<Vec<Hash>>, Vec<Hash>, Vec<u32>) {
		corrupted(self, k, op)
	}

	/// The step hashes and tokens an operator commits: `kind` 0 the honest ones, 1 with step
	/// `step` (of every step, in order) corrupted, 2 with the first token replaced.
	pub fn variant(&self, kind: u8, step: u8) -> (Vec<Vec<Hash>>, Vec<u32>) {
		match kind {
			1 => {
				let steps: Vec<(u32, u32)> = self
					.trace
					.outputs
					.iter()
					.enumerate()
					.flat_map(|(p, ops)| (0..ops.len() as u32).map(move |i| (p as u32, i)))
					.collect();
				let (p, i) = steps[step as usize % steps.len()];
				let (leaves, _, tokens) = corrupted(self, p, i);
				(leaves, tokens)
			},
			2 => {
				let mut tokens = self.tokens();
				tokens[0] = (0..self.header.vocab)
					.find(|t| *t != tokens[0] && !self.header.eos_tokens.contains(t))
					.unwrap_or(tokens[0]);
				(self.trace.step_hashes(), tokens)
			},
			_ => (self.trace.step_hashes(), self.tokens()),
		}
	}
}

/// A registered text model served by ALICE at `PRICE` per position, and a job of BOB's,
/// assigned to ALICE.
fn setup(lm: &Lm) -> (ModelId, u64) {
	let model = lm.register();
	operator(ALICE, 10_000, model, PRICE);
	let id = lm.submit(BOB, model);
	assert_eq!(assignee(id), ALICE);
	(model, id)
}

/// The step hashes of a trace in which the output of `(position, op)` is wrong (one byte
/// changed) and every other step honest, as a worker with one faulty op produces: the leaves,
/// their roots and the tokens.
fn corrupted(lm: &Lm, position: u32, op: u32) -> (Vec<Vec<Hash>>, Vec<Hash>, Vec<u32>) {
	let mut faulty = lm.trace.clone();
	faulty.outputs[position as usize][op as usize][0] ^= 1;
	(faulty.step_hashes(), faulty.position_roots(), faulty.tokens)
}

#[test]
fn text_models_register_and_take_only_generation_jobs() {
	new_test_ext().execute_with(|| {
		let lm = lm();
		let model = lm.register();
		let record = pallet_verity_models::Models::<Test>::get(model).unwrap();
		assert_eq!(
			record.kind.text_limits().unwrap(),
			verity_primitives::lm::job::TextLimits::of(&lm.header)
		);
		operator(ALICE, 10_000, model, PRICE);
		assert_noop!(
			Jobs::submit(origin(BOB), model, vec![0; 4], 1_000),
			JobError::<Test>::NotAClassifier
		);
		let classifier = register(&mlp());
		operator(CHARLIE, 10_000, classifier, 1);
		assert_noop!(
			Jobs::submit_generation(
				origin(BOB),
				classifier,
				vec![1],
				1,
				SamplingParams::GREEDY,
				1_000
			),
			JobError::<Test>::NotATextModel
		);
		check_invariants();
	});
}

#[test]
fn submit_generation_errors_change_nothing() {
	new_test_ext().execute_with(|| {
		let lm = lm();
		let model = lm.register();
		operator(ALICE, 10_000, model, PRICE);
		let g = SamplingParams::GREEDY;
		let ctx = lm.header.max_context;
		let fee = 1_000;
		let refuse = |who, model, prompt: Vec<u32>, n, fee, err: JobError<Test>| {
			assert_noop!(Jobs::submit_generation(origin(who), model, prompt, n, g, fee), err);
		};
		refuse(BOB, [9; 32], vec![1], 1, fee, JobError::ModelNotActive);
		refuse(BOB, model, vec![], 1, fee, JobError::EmptyPrompt);
		refuse(BOB, model, vec![1; MAX_CONTEXT as usize + 1], 1, fee, JobError::PromptTooLong);
		refuse(BOB, model, vec![1], 0, fee, JobError::BadMaxNewTokens);
		refuse(BOB, model, vec![1], Jobs::max_new_tokens() + 1, fee, JobError::BadMaxNewTokens);
		refuse(BOB, model, vec![1, lm.header.vocab], 1, fee, JobError::TokenOutOfVocab);
		refuse(BOB, model, vec![1; ctx as usize], 2, fee, JobError::ContextExceeded);
		// A price per position of 3 for 2 positions: a fee of 5 is too little.
		refuse(BOB, model, vec![1], 1, 2 * PRICE - 1, JobError::NoOperatorAvailable);
		refuse(NOBODY, model, vec![1], 1, fee, JobError::InsufficientBalance);
		// The largest request that fits is accepted.
		assert_ok!(Jobs::submit_generation(origin(BOB), model, vec![1; ctx as usize], 1, g, fee));
		check_invariants();
	});
}

#[test]
fn commit_generation_errors_change_nothing() {
	new_test_ext().execute_with(|| {
		let lm = lm();
		let (_, id) = setup(&lm);
		let tokens = lm.tokens();
		let root = lm.root();
		let refuse = |who, job, tokens: Vec<u32>, err: JobError<Test>| {
			assert_noop!(Jobs::commit_generation(origin(who), job, tokens, root), err);
		};
		refuse(ALICE, 99, tokens.clone(), JobError::UnknownJob);
		refuse(CHARLIE, id, tokens.clone(), JobError::NotAssignedOperator);
		refuse(ALICE, id, vec![], JobError::WrongTokenCount);
		let mut long = tokens.clone();
		long.resize(lm.job.max_new_tokens as usize + 1, 0);
		refuse(ALICE, id, long, JobError::WrongTokenCount);
		let mut out_of_vocab = tokens.clone();
		out_of_vocab[0] = lm.header.vocab;
		refuse(ALICE, id, out_of_vocab, JobError::TokenOutOfVocab);
		let eos = lm.header.eos_tokens[0];
		let non_eos = (0..lm.header.vocab).find(|t| !lm.header.eos_tokens.contains(t)).unwrap();
		refuse(ALICE, id, vec![eos, non_eos], JobError::EarlyStop);
		if lm.job.max_new_tokens > 1 {
			refuse(ALICE, id, vec![non_eos], JobError::NotStopped);
		}
		// A classifier commitment for a generation job, and the reverse.
		assert_noop!(
			Jobs::commit(origin(ALICE), id, vec![0], vec![[0; 32]]),
			JobError::<Test>::WrongJobKind
		);
		let case = mlp();
		let classifier = register(&case);
		operator(CHARLIE, 10_000, classifier, 1);
		let cid = submit(DAVE, classifier, &case, 10);
		assert_noop!(
			Jobs::commit_generation(origin(assignee(cid)), cid, tokens.clone(), root),
			JobError::<Test>::WrongJobKind
		);
		assert_ok!(Jobs::commit_generation(origin(ALICE), id, tokens.clone(), root));
		refuse(ALICE, id, tokens.clone(), JobError::AlreadyCommitted);
		check_invariants();
	});
}

#[test]
fn an_honest_generation_is_final_and_paid_per_position() {
	new_test_ext().execute_with(|| {
		let lm = lm();
		let (model, id) = setup(&lm);
		let max_fee = PRICE * lm.units();
		assert_eq!(fee_held(BOB), max_fee);
		let (bob, alice) = (free(BOB), free(ALICE));
		assert_ok!(Jobs::commit_generation(origin(ALICE), id, lm.tokens(), lm.root()));
		let JobStatus::Committed { window_end, .. } = job(id).status else { panic!() };
		run_to_block(window_end);
		let r = receipt(id);
		assert_eq!(r.outcome, Outcome::Final);
		assert_eq!(r.model, model);
		assert_eq!(r.trace_root, Some(lm.root()));
		let bytes: Vec<u8> = lm.tokens().iter().flat_map(|t| t.to_le_bytes()).collect();
		assert_eq!(r.output.to_vec(), bytes);
		// Paid for the prompt and the tokens generated, not for max_new_tokens.
		let paid = PRICE * (lm.job.prompt.len() + lm.trace.tokens.len()) as Balance;
		assert_eq!(r.fee, paid);
		assert_eq!(free(ALICE), alice + paid);
		assert_eq!(free(BOB), bob + max_fee - paid);
		assert_eq!(fee_held(BOB), 0);
		assert!(!Generations::<Test>::contains_key(id));
	});
}

/// Commit `leaves`' roots and `tokens`, then challenge with `challenger`.
fn committed_and_challenged(
	lm: &Lm,
	roots: &[Hash],
	tokens: Vec<u32>,
	challenger: AccountId,
) -> u64 {
	let (_, id) = setup(lm);
	assert_ok!(Jobs::commit_generation(origin(ALICE), id, tokens, job_root(roots)));
	assert_ok!(Disputes::challenge(origin(challenger), id));
	assert_eq!(held(challenger), CHALLENGE_BOND);
	id
}

#[test]
fn an_operator_silent_on_its_roots_loses() {
	new_test_ext().execute_with(|| {
		let lm = lm();
		let roots = lm.trace.position_roots();
		let id = committed_and_challenged(&lm, &roots, lm.tokens(), CHARLIE);
		let due = Disputes::game_stage(id, &CHARLIE).unwrap().1;
		assert_noop!(
			Disputes::settle(origin(EVE), id, CHARLIE),
			DisputeError::<Test>::GameNotDecided
		);
		run_to_block(due);
		assert_noop!(
			Disputes::reveal_roots(origin(ALICE), id, roots.clone()),
			DisputeError::<Test>::ReplyTooLate
		);
		let (charlie, collateral) = (free(CHARLIE), job(id).collateral);
		assert_ok!(Disputes::settle(origin(EVE), id, CHARLIE));
		let r = receipt(id);
		assert_eq!(
			r.outcome,
			Outcome::GenerationFraud { prover: CHARLIE, position: None, op: None }
		);
		assert_eq!(free(CHARLIE), charlie + CHALLENGE_BOND + collateral / 2);
		assert_eq!(fee_held(BOB), 0);
		assert!(pallet_verity_operators::Operators::<Test>::get(ALICE)
			.unwrap()
			.jailed_until
			.is_some());
		assert!(!Games::<Test>::contains_key(id, CHARLIE));
		check_invariants();
	});
}

#[test]
fn a_frivolous_challenger_pays_the_honest_operator_and_the_job_is_final() {
	new_test_ext().execute_with(|| {
		let lm = lm();
		let roots = lm.trace.position_roots();
		let id = committed_and_challenged(&lm, &roots, lm.tokens(), CHARLIE);
		// Wrong roots are refused: too few, or not the job root's.
		assert_noop!(
			Disputes::reveal_roots(origin(ALICE), id, roots[1..].to_vec()),
			DisputeError::<Test>::WrongRoots
		);
		let mut wrong = roots.clone();
		wrong[0][0] ^= 1;
		assert_noop!(
			Disputes::reveal_roots(origin(ALICE), id, wrong),
			DisputeError::<Test>::WrongRoots
		);
		assert_noop!(
			Disputes::reveal_roots(origin(BOB), id, roots.clone()),
			DisputeError::<Test>::NotOperator
		);
		assert_ok!(Disputes::reveal_roots(origin(ALICE), id, roots.clone()));
		assert_eq!(Roots::<Test>::get(id).unwrap().to_vec(), roots);
		// The challenger names the last position; the operator reveals it honestly.
		let last = lm.positions() - 1;
		assert_noop!(
			Disputes::name_position(origin(CHARLIE), id, lm.positions()),
			DisputeError::<Test>::NoSuchPosition
		);
		assert_ok!(Disputes::name_position(origin(CHARLIE), id, last));
		let leaves = lm.trace.step_hashes()[last as usize].clone();
		assert_noop!(
			Disputes::reveal_position(origin(ALICE), id, last, leaves[1..].to_vec()),
			DisputeError::<Test>::WrongLeafCount
		);
		assert_ok!(Disputes::reveal_position(origin(ALICE), id, last, leaves.clone()));
		assert_eq!(Leaves::<Test>::get(id, last).unwrap().to_vec(), leaves);
		// No step of an honest position shows fraud: any proof is refused.
		let honest = find_lm_fraud(&lm.header, &lm.chunks, &lm.job, &lm.trace.step_hashes());
		assert_eq!(honest, Ok(None));
		// The window ends with the game open: finality waits.
		let JobStatus::Committed { window_end, .. } = job(id).status else { panic!() };
		run_to_block(window_end);
		assert!(Generations::<Test>::get(id).unwrap().settles_at.is_some());
		let due = Disputes::game_stage(id, &CHARLIE).unwrap().1;
		run_to_block(due);
		let alice = free(ALICE);
		assert_ok!(Disputes::settle(origin(EVE), id, CHARLIE));
		assert_eq!(free(ALICE), alice + CHALLENGE_BOND);
		assert_eq!(held(CHARLIE), 0);
		assert!(!Positions::<Test>::contains_key(id, last));
		let settles = Generations::<Test>::get(id).unwrap().settles_at.unwrap();
		run_to_block(settles);
		assert_eq!(receipt(id).outcome, Outcome::Final);
		assert!(!Roots::<Test>::contains_key(id));
	});
}

#[test]
fn a_committed_token_that_is_not_its_select_cannot_be_revealed_and_loses() {
	new_test_ext().execute_with(|| {
		let lm = lm();
		let roots = lm.trace.position_roots();
		// The honest trace, but the first generated token replaced by another non-EOS token.
		let mut tokens = lm.tokens();
		let other = (0..lm.header.vocab)
			.find(|t| *t != tokens[0] && !lm.header.eos_tokens.contains(t))
			.unwrap();
		tokens[0] = other;
		let id = committed_and_challenged(&lm, &roots, tokens, CHARLIE);
		assert_ok!(Disputes::reveal_roots(origin(ALICE), id, roots.clone()));
		// The first token is selected at the last prompt position.
		let p = lm.job.prompt.len() as u32 - 1;
		assert_ok!(Disputes::name_position(origin(CHARLIE), id, p));
		let leaves = lm.trace.step_hashes()[p as usize].clone();
		assert_noop!(
			Disputes::reveal_position(origin(ALICE), id, p, leaves),
			DisputeError::<Test>::TokenMismatch
		);
		run_to_block(Disputes::game_stage(id, &CHARLIE).unwrap().1);
		assert_ok!(Disputes::settle(origin(EVE), id, CHARLIE));
		assert_eq!(
			receipt(id).outcome,
			Outcome::GenerationFraud { prover: CHARLIE, position: Some(p), op: None }
		);
		check_invariants();
	});
}

#[test]
fn a_corrupted_step_is_proven_at_exactly_that_step() {
	new_test_ext().execute_with(|| {
		let lm = lm();
		// Corrupt an op of a layer at the second position (after the first token's position
		// when the prompt is 2 tokens long).
		let k = 1u32;
		let op = 3u32;
		let (leaves, roots, tokens) = corrupted(&lm, k, op);
		let id = committed_and_challenged(&lm, &roots, tokens, CHARLIE);
		// A second challenger joins; the first to name the position is paid.
		assert_ok!(Disputes::challenge(origin(DAVE), id));
		assert_noop!(
			Disputes::challenge(origin(DAVE), id),
			DisputeError::<Test>::AlreadyChallenged
		);
		assert_noop!(
			Disputes::name_position(origin(CHARLIE), id, k),
			DisputeError::<Test>::RootsNotRevealed
		);
		assert_ok!(Disputes::reveal_roots(origin(ALICE), id, roots.clone()));
		// The watcher compares the roots with its own and names the first that differs.
		let honest = lm.trace.position_roots();
		let first = honest.iter().zip(&roots).position(|(a, b)| a != b).unwrap() as u32;
		assert_eq!(first, k);
		assert_ok!(Disputes::name_position(origin(CHARLIE), id, k));
		assert_noop!(
			Disputes::name_position(origin(CHARLIE), id, k),
			DisputeError::<Test>::AlreadyNamed
		);
		assert_ok!(Disputes::name_position(origin(DAVE), id, k));
		assert_ok!(Disputes::reveal_position(origin(ALICE), id, k, leaves[k as usize].clone()));
		// The proof from the revealed leaves (earlier positions' equal the honest ones).
		let mut known = lm.trace.step_hashes();
		known.truncate(k as usize);
		known.push(leaves[k as usize].clone());
		let proof = find_lm_fraud(&lm.header, &lm.chunks, &lm.job, &known[..])
			.expect("proof")
			.expect("fraud");
		assert_eq!((proof.position, proof.op), (k, op));
		let encoded = codec::Encode::encode(&proof);
		assert_noop!(
			Disputes::prove_step(origin(EVE), id, encoded.clone()),
			DisputeError::<Test>::NoGame
		);
		let (charlie, collateral) = (free(CHARLIE), job(id).collateral);
		// DAVE proves; CHARLIE named the position first and is paid.
		assert_ok!(Disputes::prove_step(origin(DAVE), id, encoded));
		assert_eq!(
			receipt(id).outcome,
			Outcome::GenerationFraud { prover: CHARLIE, position: Some(k), op: Some(op) }
		);
		assert_eq!(free(CHARLIE), charlie + collateral / 2);
		assert_eq!(held(DAVE), 0);
		// CHARLIE's game ends with the job: its bond comes back.
		assert_ok!(Disputes::settle(origin(EVE), id, CHARLIE));
		assert_eq!(held(CHARLIE), 0);
		assert!(!pallet_verity_disputes::Disputes::<Test>::contains_key(id));
		check_invariants();
	});
}

#[test]
fn a_step_proof_against_an_honest_position_is_refused() {
	new_test_ext().execute_with(|| {
		let lm = lm();
		let roots = lm.trace.position_roots();
		let id = committed_and_challenged(&lm, &roots, lm.tokens(), CHARLIE);
		assert_ok!(Disputes::reveal_roots(origin(ALICE), id, roots.clone()));
		assert_ok!(Disputes::name_position(origin(CHARLIE), id, 1));
		let hashes = lm.trace.step_hashes();
		assert_ok!(Disputes::reveal_position(origin(ALICE), id, 1, hashes[1].clone()));
		// A real proof of a corrupted step at position 1, judged against the honest roots.
		let (leaves, _, _) = corrupted(&lm, 1, 3);
		let mut known = hashes.clone();
		known[1] = leaves[1].clone();
		let proof = find_lm_fraud(&lm.header, &lm.chunks, &lm.job, &known[..2]).unwrap().unwrap();
		assert_noop!(
			Disputes::prove_step(origin(CHARLIE), id, codec::Encode::encode(&proof)),
			DisputeError::<Test>::InputMismatch
		);
		assert_noop!(
			Disputes::prove_step(origin(CHARLIE), id, vec![1, 2, 3]),
			DisputeError::<Test>::MalformedProof
		);
		// The classifier calls refuse a generation job.
		assert_noop!(
			Disputes::commit_proof(origin(CHARLIE), id, [0; 32]),
			DisputeError::<Test>::GenerationJob
		);
		check_invariants();
	});
}
