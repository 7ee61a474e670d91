//! The agent (`pallet-verity-agent`'s off-chain worker) in the mock runtime: for a given chain
//! state and inference-worker answer, the exact request it sends and the exact signed
//! extrinsic it pools, as `frame/examples/offchain-worker` tests its pallet.
//!
//! The worker is `TestOffchainExt`'s HTTP mock (the request body is compared byte for byte);
//! the pool is `TestTransactionPoolExt`; keys are `UintAuthorityId`s (the key of account `n` is
//! `n`, its signature is `(n, payload)`).

use crate::mock::*;
use codec::{Decode, Encode};
use frame_support::{
	assert_ok,
	traits::{Get, Hooks, UnfilteredDispatchable},
};
use pallet_verity_agent::{Settings, DEFAULT_WORKER_URL, RESEND_AFTER, SETTINGS_KEY};
use sp_core::offchain::{
	testing::{OffchainState, PendingRequest, PoolState, TestOffchainExt, TestTransactionPoolExt},
	OffchainDbExt, OffchainWorkerExt, StorageKind, TransactionPoolExt,
};
use sp_runtime::{
	generic::{Preamble, SignedPayload},
	testing::{TestSignature, UintAuthorityId},
	traits::Verify,
};
use std::sync::Arc;
use verity_primitives::{testing::TestCase, Hash};
use verity_worker_api::{
	batch, Execute, ExecuteReply, Executed, Prove, ProveReply, Request, Timings,
};

type Shared<S> = Arc<parking_lot::RwLock<S>>;

/// A node of the mock chain: its externalities with the agent's keys (`keys`), its worker's
/// HTTP mock and its transaction pool.
struct Node {
	ext: sp_io::TestExternalities,
	http: Shared<OffchainState>,
	pool: Shared<PoolState>,
}

impl Node {
	fn new(keys: &[AccountId], watch_permill: Option<u32>) -> Node {
		UintAuthorityId::set_all_keys(keys.iter().copied());
		let mut ext = new_test_ext();
		let (offchain, http) = TestOffchainExt::new();
		let (pool, pool_state) = TestTransactionPoolExt::new();
		ext.register_extension(OffchainDbExt::new(offchain.clone()));
		ext.register_extension(OffchainWorkerExt::new(offchain));
		ext.register_extension(TransactionPoolExt::new(pool));
		ext.execute_with(|| {
			let settings = Settings { watch_permill, ..Settings::default() };
			sp_io::offchain::local_storage_set(
				StorageKind::PERSISTENT,
				SETTINGS_KEY,
				&settings.encode(),
			);
		});
		Node { ext, http, pool: pool_state }
	}

	/// The worker answers the batch `requests` (compared byte for byte) with `results`.
	fn worker_answers(&self, requests: &[Request], results: Vec<serde_json::Value>) {
		let answer: Vec<serde_json::Value> = results
			.into_iter()
			.enumerate()
			.map(|(id, result)| serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}))
			.collect();
		self.worker_answers_raw(requests, serde_json::to_vec(&answer).unwrap());
	}

	/// The worker answers the batch `requests` (compared byte for byte) with the body `answer`.
	fn worker_answers_raw(&self, requests: &[Request], answer: Vec<u8>) {
		self.http.write().expect_request(PendingRequest {
			method: "POST".into(),
			uri: DEFAULT_WORKER_URL.into(),
			headers: vec![("Content-Type".into(), "application/json".into())],
			body: batch::body(requests),
			response: Some(answer),
			sent: true,
			..Default::default()
		});
	}

	/// Run the agent in the off-chain worker of the current block.
	fn run_agent(&mut self) {
		self.ext.execute_with(|| Agent::offchain_worker(now()));
	}

	/// The worker runs `n` jobs of `case` honestly: it is asked `n` `execute` requests for
	/// `case`, and answers each with the honest result.
	fn worker_executes(&self, case: &TestCase, n: usize) {
		let (output, hashes) = honest(case);
		self.worker_answers(&vec![execute_request(case); n], vec![done(case, &output, &hashes); n]);
	}

	/// Run the agent against a worker that never answers (the HTTP mock panics when the agent
	/// waits for the answer; the run is cut there): the batch it asked, decoded, or nothing.
	fn requests_of_a_run(&mut self) -> Vec<Request> {
		let before = self.http.read().requests.len();
		let ext = &mut self.ext;
		let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
			ext.execute_with(|| Agent::offchain_worker(now()))
		}));
		let state = self.http.read();
		if state.requests.len() == before {
			return Vec::new();
		}
		let body = &state.requests.values().last().expect("a request").body;
		let calls: Vec<serde_json::Value> = serde_json::from_slice(body).expect("a JSON batch");
		calls
			.into_iter()
			.map(|c| {
				Request::from_params(c["method"].as_str().expect("a method"), c["params"].clone())
					.expect("a known method")
					.expect("valid params")
			})
			.collect()
	}

	/// `xt`, signed by `who`, is included: dispatched, and `who`'s nonce moves past it.
	fn include(&mut self, xt: &Extrinsic, who: AccountId) {
		self.ext.execute_with(|| {
			assert_ok!(xt.function.clone().dispatch_bypass_filter(origin(who)));
			frame_system::Pallet::<Test>::inc_account_nonce(who);
		});
	}

	/// The one transaction pooled since the last call is `call`, signed by `who` with `nonce`
	/// and no tip; it is included.
	fn pools_and_includes(&mut self, who: AccountId, nonce: u32, call: RuntimeCall) {
		let xt = self.pooled_one();
		assert_signed(&xt, who, nonce, call);
		self.include(&xt, who);
	}

	/// The one transaction pooled since the last call.
	fn pooled_one(&self) -> Extrinsic {
		let mut pooled = self.pooled();
		assert_eq!(pooled.len(), 1, "one transaction pooled: {pooled:?}");
		pooled.remove(0)
	}

	/// The transactions pooled since the last call, decoded.
	fn pooled(&self) -> Vec<Extrinsic> {
		std::mem::take(&mut self.pool.write().transactions)
			.into_iter()
			.map(|tx| Extrinsic::decode(&mut &tx[..]).expect("a mock extrinsic"))
			.collect()
	}
}

/// `xt` is signed by `who`'s key over its call and extensions, with nonce `nonce` and no tip,
/// and its call is `call`.
fn assert_signed(xt: &Extrinsic, who: AccountId, nonce: u32, call: RuntimeCall) {
	assert_signed_tipped(xt, who, nonce, 0, call)
}

/// [`assert_signed`] with tip `tip`.
fn assert_signed_tipped(
	xt: &Extrinsic,
	who: AccountId,
	nonce: u32,
	tip: Balance,
	call: RuntimeCall,
) {
	let Preamble::Signed(signer, signature, extension) = &xt.preamble else {
		panic!("not a signed transaction: {xt:?}");
	};
	assert_eq!(*signer, who);
	assert_eq!(extension.0.encode(), frame_system::CheckNonce::<Test>::from(nonce).encode());
	assert_eq!(extension.1.tip(), tip, "the tip");
	assert_eq!(xt.function, call);
	let payload = SignedPayload::new(xt.function.clone(), extension.clone()).unwrap();
	assert!(
		payload.using_encoded(|p| <TestSignature as Verify>::verify(signature, p, &who)),
		"the signature is {who}'s over the call and extensions"
	);
}

/// The worker's `execute` request for `case` (what the agent must send).
fn execute_request(case: &TestCase) -> Request {
	Request::Execute(Execute {
		model: case.header.id(),
		input: case.input.clone(),
		deadline_ms: Some(pallet_verity_agent::WORKER_WAIT_MS),
	})
}

/// The worker's `done` answer with this output and these step hashes.
fn done(case: &TestCase, output: &[u8], step_hashes: &[Hash]) -> serde_json::Value {
	serde_json::to_value(ExecuteReply::Done(Executed {
		job: [7; 32],
		model: case.header.id(),
		output: output.to_vec(),
		step_hashes: step_hashes.to_vec(),
		trace_root: verity_primitives::trace_root(step_hashes),
		timings: Timings::default(),
		backend: "reference".into(),
	}))
	.unwrap()
}

/// The commit of `case`'s honest result for `job`.
fn honest_commit(job: JobId, case: &TestCase) -> RuntimeCall {
	let (output, step_hashes) = honest(case);
	RuntimeCall::Jobs(pallet_verity_jobs::Call::commit { job, output, step_hashes })
}

/// A model served by ALICE and a job of CHARLIE's for it, assigned to ALICE.
fn assigned_job(node: &mut Node, case: &TestCase) -> JobId {
	node.ext.execute_with(|| {
		let model = register(case);
		operator(ALICE, 4 * MIN_BOND, model, 30);
		let id = submit(CHARLIE, model, case, 100);
		assert_eq!(assignee(id), ALICE);
		id
	})
}

#[test]
fn operator_commits_the_workers_result_once() {
	let case = mlp();
	let mut node = Node::new(&[ALICE], None);
	let id = assigned_job(&mut node, &case);
	// The worker is asked `execute` for the job's model and input (compared byte for byte).
	node.worker_executes(&case, 1);
	node.run_agent();
	assert_signed(&node.pooled_one(), ALICE, 0, honest_commit(id, &case));
	let first = node.ext.execute_with(now) as u32;
	let deadline = first + DEADLINE as u32;

	// While it waits in the pool (ALICE's nonce unmoved), each block re-signs it with the same
	// nonce and a tip rising toward half of what missing the deadline costs (penalty + price).
	let stake = u128::from(PENALTY + 30);
	let mut last = 0;
	for _ in 1..DEADLINE {
		node.ext.execute_with(|| run_to_block(now() + 1));
		let block = node.ext.execute_with(now) as u32;
		let tip = pallet_verity_agent::plan::tip_for(block, first, deadline, stake);
		assert!(tip > last && tip <= stake / 2, "tip {tip} after {last}");
		last = tip;
		node.worker_executes(&case, 1);
		node.run_agent();
		assert_signed_tipped(
			&node.pooled_one(),
			ALICE,
			0,
			tip as Balance,
			honest_commit(id, &case),
		);
	}
	assert_eq!(last, stake / 2, "half the stake in the last block before the deadline");

	// Once it is in a block (the job is committed), nothing more is sent.
	node.ext.execute_with(|| {
		frame_system::Pallet::<Test>::inc_account_nonce(ALICE);
		let (output, step_hashes) = honest(&case);
		assert_ok!(Jobs::commit(origin(ALICE), id, output, step_hashes));
		run_to_block(now() + 1);
	});
	node.run_agent();
	assert!(node.pooled().is_empty());
}

/// Attack 1 (block stuffing), the agent's side: a fraud proof kept out of the blocks is
/// re-signed every block with the same nonce and a tip that rises toward half the prover's
/// reward at the window's end, so that whoever keeps it out must outbid a rising price in every
/// block. On the old code the agent sent it once with no tip (and again, with no tip, every
/// RESEND_AFTER blocks).
#[test]
fn attack_01_a_pending_proof_is_re_signed_with_a_rising_tip() {
	let case = cnn();
	let bad_step = 2;
	let mut node = Node::new(&[EVE], Some(1_000_000));
	let (job, request) = wrong_commitment(&mut node, &case, bad_step);
	// The first transaction of a proof is the commitment to it (attack 2).
	let prove_fraud = commit_proof_call(job, &case, bad_step, EVE);
	let answer = || vec![fraud(bad_step, proof(&case, bad_step), "Fraud")];
	node.worker_answers(std::slice::from_ref(&request), answer());
	node.run_agent();
	assert_signed(&node.pooled_one(), EVE, 0, prove_fraud.clone());
	let (first, window_end, reward) = node.ext.execute_with(|| {
		let pallet_verity_jobs::JobStatus::Committed { window_end, .. } = job_status(job) else {
			panic!("committed")
		};
		let reward = ProverShare::get() * crate::mock::job(job).collateral;
		(now() as u32, window_end as u32, u128::from(reward))
	});
	let mut last = 0;
	let margin = pallet_verity_agent::plan::PROOF_MARGIN;
	for block in first + 1..window_end - margin {
		node.ext.execute_with(|| run_to_block(u64::from(block)));
		let tip = pallet_verity_agent::plan::tip_for(block, first, window_end, reward);
		assert!(tip > last && tip <= reward / 2, "tip {tip} after {last}");
		last = tip;
		node.worker_answers(std::slice::from_ref(&request), answer());
		node.run_agent();
		assert_signed_tipped(&node.pooled_one(), EVE, 0, tip as Balance, prove_fraud.clone());
	}
	assert!(last > reward / 4, "more than a quarter of the reward near the end: {last}");
}

#[test]
fn a_node_without_the_operators_key_does_nothing() {
	let case = mlp();
	let mut node = Node::new(&[BOB], None);
	assigned_job(&mut node, &case);
	// No request is expected (an unexpected one panics), nothing is pooled.
	node.run_agent();
	assert!(node.pooled().is_empty());
	let mut keyless = Node::new(&[], Some(1_000_000));
	assigned_job(&mut keyless, &case);
	keyless.run_agent();
	assert!(keyless.pooled().is_empty());
}

#[test]
fn pending_or_refused_work_pools_nothing_and_is_asked_again() {
	let case = mlp();
	let mut node = Node::new(&[ALICE], None);
	let id = assigned_job(&mut node, &case);
	node.worker_answers(
		&[execute_request(&case)],
		vec![serde_json::json!({"status": "pending", "job": format!("0x{}", "07".repeat(32))})],
	);
	node.run_agent();
	assert!(node.pooled().is_empty());

	// A refusal (a JSON-RPC error) in the next block: nothing pooled either.
	node.ext.execute_with(|| run_to_block(now() + 1));
	node.worker_answers_raw(
		&[execute_request(&case)],
		br#"[{"jsonrpc":"2.0","id":0,"error":{"code":-32004,"message":"unknown model"}}]"#.to_vec(),
	);
	node.run_agent();
	assert!(node.pooled().is_empty());

	// Then the result: committed at once.
	node.ext.execute_with(|| run_to_block(now() + 1));
	node.worker_executes(&case, 1);
	node.run_agent();
	assert_signed(&node.pooled_one(), ALICE, 0, honest_commit(id, &case));
}

#[test]
fn watcher_proves_a_wrong_commitment_and_remembers_a_consistent_one() {
	let case = cnn();
	let bad_step = 2;
	let mut node = Node::new(&[EVE], Some(1_000_000));
	let (bad, good) = node.ext.execute_with(|| {
		let model = register(&case);
		operator(ALICE, 4 * MIN_BOND, model, 30);
		let bad = submit(CHARLIE, model, &case, 100);
		let good = submit(CHARLIE, model, &case, 100);
		let (out, hashes) = corrupted(&case, bad_step);
		assert_ok!(Jobs::commit(origin(ALICE), bad, out, hashes));
		let (out, hashes) = honest(&case);
		assert_ok!(Jobs::commit(origin(ALICE), good, out, hashes));
		(bad, good)
	});
	let requests: Vec<Request> = node.ext.execute_with(|| {
		[bad, good]
			.into_iter()
			.map(|job| {
				Request::Prove(Prove {
					model: case.header.id(),
					input: case.input.clone(),
					step_hashes: Jobs::step_hashes(job),
					deadline_ms: Some(pallet_verity_agent::WORKER_WAIT_MS),
				})
			})
			.collect()
	});
	let fraud = serde_json::to_value(ProveReply::Fraud {
		step: bad_step,
		proof: proof(&case, bad_step),
		verdict: "Fraud".into(),
	})
	.unwrap();
	let consistent = serde_json::to_value(ProveReply::Consistent { trace_root: [1; 32] }).unwrap();
	node.worker_answers(&requests, vec![fraud.clone(), consistent]);
	node.run_agent();
	// First the commitment to the proof (attack 2); it is included.
	let pooled = node.pooled_one();
	assert_signed(&pooled, EVE, 0, commit_proof_call(bad, &case, bad_step, EVE));
	node.include(&pooled, EVE);
	node.ext.execute_with(|| run_to_block(now() + 1));
	// Next block: the commitment is on chain, the proof is revealed (the worker is asked for
	// it again; it answers from its cache).
	node.worker_answers(&requests[..1], vec![fraud]);
	node.run_agent();
	let pooled = node.pooled_one();
	assert_signed(&pooled, EVE, 1, prove_fraud_call(bad, &case, bad_step));
	// The pooled proof is one the chain accepts: EVE's reward is held for the grace period.
	let before = node.ext.execute_with(|| held(EVE));
	node.include(&pooled, EVE);
	assert!(node.ext.execute_with(|| held(EVE)) > before);

	// Next block: the consistent job is remembered, the proven one was closed by the proof;
	// the worker is not asked again.
	node.ext.execute_with(|| run_to_block(now() + 1));
	node.run_agent();
	assert!(node.pooled().is_empty());
}

#[test]
fn watcher_skips_its_own_jobs_and_operators_never_check() {
	let case = mlp();
	// ALICE both operates and watches: her own commitment is not checked.
	let mut node = Node::new(&[ALICE], Some(1_000_000));
	let id = assigned_job(&mut node, &case);
	node.ext.execute_with(|| {
		let (out, hashes) = corrupted(&case, 1);
		assert_ok!(Jobs::commit(origin(ALICE), id, out, hashes));
	});
	node.run_agent();
	assert!(node.pooled().is_empty());
	// A node that does not watch never checks another operator's commitment.
	let mut operator_only = Node::new(&[EVE], None);
	let id = assigned_job(&mut operator_only, &case);
	operator_only.ext.execute_with(|| {
		let (out, hashes) = corrupted(&case, 1);
		assert_ok!(Jobs::commit(origin(ALICE), id, out, hashes));
	});
	operator_only.run_agent();
	assert!(operator_only.pooled().is_empty());
}

#[test]
fn at_most_max_requests_per_block_the_oldest_first() {
	let case = mlp();
	let mut node = Node::new(&[ALICE], None);
	let first = assigned_job(&mut node, &case);
	let (second, third) = node.ext.execute_with(|| {
		(
			submit(CHARLIE, case.header.id(), &case, 100),
			submit(CHARLIE, case.header.id(), &case, 100),
		)
	});
	assert_eq!((second, third), (first + 1, first + 2));
	let max: u32 = <Test as pallet_verity_agent::Config>::MaxRequestsPerBlock::get();
	assert_eq!(max, 2);
	node.worker_executes(&case, 2);
	node.run_agent();
	let committed: Vec<JobId> = node
		.pooled()
		.iter()
		.map(|xt| match &xt.function {
			RuntimeCall::Jobs(pallet_verity_jobs::Call::commit { job, .. }) => *job,
			other => panic!("not a commit: {other:?}"),
		})
		.collect();
	assert_eq!(committed, vec![first, second]);
	// The third in the next block, with the nonce after the two still in the pool, before the
	// first two are re-signed with a tip (the budget's second request).
	node.ext.execute_with(|| run_to_block(now() + 1));
	node.worker_executes(&case, 2);
	node.run_agent();
	let pooled = node.pooled();
	assert_eq!(pooled.len(), 2);
	assert_signed(&pooled[0], ALICE, 2, honest_commit(third, &case));
	assert_eq!(pooled[1].function, honest_commit(first, &case), "then the most urgent re-signing");
}

/// A watcher node (EVE, watching every job) and a job of ALICE's committed with step `bad_step`
/// wrong; returns the job and the `prove` request the watcher must send for it.
fn wrong_commitment(node: &mut Node, case: &TestCase, bad_step: u32) -> (JobId, Request) {
	node.ext.execute_with(|| {
		let model = register(case);
		operator(ALICE, 4 * MIN_BOND, model, 30);
		let job = submit(CHARLIE, model, case, 100);
		let (out, hashes) = corrupted(case, bad_step);
		assert_ok!(Jobs::commit(origin(ALICE), job, out, hashes.clone()));
		let request = Request::Prove(Prove {
			model,
			input: case.input.clone(),
			step_hashes: hashes,
			deadline_ms: Some(pallet_verity_agent::WORKER_WAIT_MS),
		});
		(job, request)
	})
}

/// The `commit_proof` call of `who` for `case`'s proof of step `bad_step` against `job`.
fn commit_proof_call(job: JobId, case: &TestCase, bad_step: u32, who: AccountId) -> RuntimeCall {
	RuntimeCall::Disputes(pallet_verity_disputes::Call::commit_proof {
		job,
		commitment: Disputes::commitment(job, &who, &proof(case, bad_step)),
	})
}

/// The `prove_fraud` call of `case`'s proof of step `bad_step` against `job`.
fn prove_fraud_call(job: JobId, case: &TestCase, bad_step: u32) -> RuntimeCall {
	RuntimeCall::Disputes(pallet_verity_disputes::Call::prove_fraud {
		job,
		proof: proof(case, bad_step),
	})
}

/// The worker's `fraud` answer.
fn fraud(step: u32, proof: Vec<u8>, verdict: &str) -> serde_json::Value {
	serde_json::to_value(ProveReply::Fraud { step, proof, verdict: verdict.into() }).unwrap()
}

/// Attack 9: the agent spent fees on proofs its own worker had judged `NoFraud` (and on proofs
/// the chain rejects). Now it submits only what the worker's check and the chain's rule
/// (`Disputes::judge`) both call fraud, and never asks about that job again.
#[test]
fn attack_09_agent_submits_only_proofs_that_show_fraud() {
	let case = cnn();
	let bad_step = 2;
	// The worker itself says its proof shows no fraud.
	let mut node = Node::new(&[EVE], Some(1_000_000));
	let (_, request) = wrong_commitment(&mut node, &case, bad_step);
	node.worker_answers(
		std::slice::from_ref(&request),
		vec![fraud(bad_step, proof(&case, bad_step), "NoFraud")],
	);
	node.run_agent();
	assert!(node.pooled().is_empty(), "no fee spent on a proof the worker calls NoFraud");
	node.ext.execute_with(|| run_to_block(now() + 1));
	node.run_agent();
	assert!(node.pooled().is_empty(), "and the job is not asked about again");

	// The worker says Fraud, but the proof is of a step the operator got right: the chain's rule
	// says NoFraud, so it is not sent either.
	let mut node = Node::new(&[EVE], Some(1_000_000));
	let (_, request) = wrong_commitment(&mut node, &case, bad_step);
	node.worker_answers(&[request], vec![fraud(1, proof(&case, 1), "Fraud")]);
	node.run_agent();
	assert!(node.pooled().is_empty(), "no fee spent on a proof the chain would reject");
}

/// Attack 9: a proof that the chain included and rejected (the watcher's nonce moved past it and
/// the job is still open) was re-sent every `RESEND_AFTER` blocks until the window closed. Now it
/// is never sent again; a proof that was dropped (nonce unmoved) still is.
#[test]
fn attack_09_a_rejected_proof_is_not_sent_again() {
	let case = cnn();
	let bad_step = 2;
	let mut node = Node::new(&[EVE], Some(1_000_000));
	let (job, request) = wrong_commitment(&mut node, &case, bad_step);
	let prove_fraud = commit_proof_call(job, &case, bad_step, EVE);
	node.worker_answers(
		std::slice::from_ref(&request),
		vec![fraud(bad_step, proof(&case, bad_step), "Fraud")],
	);
	node.run_agent();
	assert_signed(&node.pooled_one(), EVE, 0, prove_fraud.clone());

	// Included and rejected (the nonce moved, the job is still committed): RESEND_AFTER blocks
	// later, still inside the window, it is not sent again.
	node.ext.execute_with(|| {
		frame_system::Pallet::<Test>::inc_account_nonce(EVE);
		run_to_block(now() + RESEND_AFTER as u64);
		assert!(now() < WINDOW);
		assert!(matches!(job_status(job), pallet_verity_jobs::JobStatus::Committed { .. }));
	});
	node.run_agent();
	assert!(node.pooled().is_empty());

	// Dropped or still waiting (the nonce did not move): sent again, same nonce, with a tip.
	let mut node = Node::new(&[EVE], Some(1_000_000));
	let (again, request) = wrong_commitment(&mut node, &case, bad_step);
	assert_eq!(again, job, "the same job id in a fresh chain");
	let answer = || vec![fraud(bad_step, proof(&case, bad_step), "Fraud")];
	node.worker_answers(std::slice::from_ref(&request), answer());
	node.run_agent();
	assert_eq!(node.pooled_one().function, prove_fraud);
	node.ext.execute_with(|| run_to_block(now() + RESEND_AFTER as u64));
	node.worker_answers(&[request], answer());
	node.run_agent();
	let resent = node.pooled_one();
	assert_eq!(resent.function, prove_fraud);
	let Preamble::Signed(_, _, extension) = &resent.preamble else { panic!("signed") };
	assert!(extension.1.tip() > 0, "with a tip");
}

fn job_status(id: JobId) -> pallet_verity_jobs::JobStatus<Test> {
	crate::mock::job(id).status
}

/// A watcher node (EVE) and, committed by ALICE in one block, `decoys` honest jobs and then one
/// wrong one (the newest, last in every fixed order); returns the wrong commitment's hashes.
fn decoys_then_a_cheat(node: &mut Node, case: &TestCase, decoys: usize) -> Vec<Hash> {
	node.ext.execute_with(|| {
		let model = register(case);
		operator(ALICE, 8 * MIN_BOND, model, 30);
		for _ in 0..decoys {
			let job = submit(CHARLIE, model, case, 100);
			let (out, hashes) = honest(case);
			assert_ok!(Jobs::commit(origin(ALICE), job, out, hashes));
		}
		let cheat = submit(CHARLIE, model, case, 100);
		let (out, hashes) = corrupted(case, 1);
		assert_ok!(Jobs::commit(origin(ALICE), cheat, out, hashes.clone()));
		hashes
	})
}

/// Attack 8: the agent checked the `MaxRequestsPerBlock` jobs whose windows end first, oldest
/// first, so enough older decoys hid a cheating job from every watcher. Now the checks are a
/// random choice (fresh seed per block) among the checkable jobs: over 24 seeds, the newest job
/// among 6 is checked in about a third of them (2 checks per block in the mock), never in none.
#[test]
fn attack_08_decoys_cannot_choose_which_job_escapes_the_check() {
	let case = mlp();
	let seeds = 24u8;
	let mut cheat_checked = 0;
	for s in 0..seeds {
		let mut node = Node::new(&[EVE], Some(1_000_000));
		let cheat = decoys_then_a_cheat(&mut node, &case, 5);
		node.http.write().seed = [s; 32];
		let asked = node.requests_of_a_run();
		assert_eq!(asked.len(), 2, "MaxRequestsPerBlock checks");
		if asked.iter().any(|r| matches!(r, Request::Prove(p) if p.step_hashes == cheat)) {
			cheat_checked += 1;
		}
	}
	assert!((4..=14).contains(&cheat_checked), "checked under {cheat_checked} of {seeds} seeds");
}

/// A re-organisation after the watcher's run: it read the window-end queues on the losing
/// fork, where the queue of `now + window` held no commit; on the winning fork, whose block at
/// the same height holds a commit, that queue holds it. The watchlist is off-chain storage
/// shared by every fork, so with the scan starting after the last queue read (before
/// `RESCAN_BLOCKS`) the commit was never read and its job never checked.
#[test]
fn a_commit_that_a_reorg_puts_in_a_scanned_queue_is_still_checked() {
	let case = mlp();
	let mut node = Node::new(&[EVE], Some(1_000_000));
	let first = node.ext.execute_with(now);
	assert!(node.requests_of_a_run().is_empty(), "the losing fork: nothing to check");
	let (job, request) = wrong_commitment(&mut node, &case, 2);
	node.ext.execute_with(|| {
		assert!(matches!(
			job_status(job),
			pallet_verity_jobs::JobStatus::Committed { window_end, .. } if window_end == first + WINDOW
		));
		run_to_block(first + 1);
	});
	let Request::Prove(want) = request else { panic!("a prove request") };
	let asked = node.requests_of_a_run();
	assert!(
		asked.iter().any(|r| matches!(r, Request::Prove(p) if p.step_hashes == want.step_hashes)),
		"the commit in the re-scanned queue is checked: {asked:?}"
	);
}

/// Attack 8, the other half: a job whose window ends too soon for a proof to land is not worth
/// a check (it would only take the place of one that can still be proven).
#[test]
fn attack_08_jobs_that_cannot_be_proven_in_time_are_not_checked() {
	let case = mlp();
	let mut node = Node::new(&[EVE], Some(1_000_000));
	decoys_then_a_cheat(&mut node, &case, 0);
	let margin = pallet_verity_agent::plan::PROOF_MARGIN as u64;
	node.ext.execute_with(|| run_to_block(1 + WINDOW - margin - 1));
	assert_eq!(node.requests_of_a_run().len(), 1, "still provable: checked");
	let mut node = Node::new(&[EVE], Some(1_000_000));
	decoys_then_a_cheat(&mut node, &case, 0);
	node.ext.execute_with(|| run_to_block(1 + WINDOW - margin));
	assert!(node.requests_of_a_run().is_empty(), "too late to prove: not checked");
}

/// Attack 13, nonce gaps: the operator's commit of job A (nonce 0) leaves the pool and A closes
/// without it (its deadline passes); the commit of job B, sent later with nonce 1, can then
/// never be included: the on-chain nonce is stuck at 0. On the old code B's commit waited there
/// until B's deadline (a missed deadline, a penalty). Now the agent sees that nothing it waits
/// for has the on-chain nonce and, `GAP_AFTER` blocks after B's commit was first sent, re-signs
/// B's commit with nonce 0.
#[test]
fn attack_13_a_nonce_gap_is_filled_before_the_deadline() {
	nonce_gap(false);
}

/// The same gap while A's missed deadline waits in the jobs hook's backlog (the hook had no
/// budget left in A's deadline block): A is still `Assigned` after its deadline, and its commit
/// must not count as waited for (it can never be included), else B's commit stays stuck.
#[test]
fn a_nonce_gap_is_filled_while_the_missed_deadline_waits_in_the_backlog() {
	nonce_gap(true);
}

fn nonce_gap(backlogged: bool) {
	use pallet_verity_agent::plan::GAP_AFTER;
	let case = mlp();
	let mut node = Node::new(&[ALICE], None);
	let a = assigned_job(&mut node, &case);
	node.worker_executes(&case, 1);
	node.run_agent();
	assert_signed(&node.pooled_one(), ALICE, 0, honest_commit(a, &case));
	// A's commit is never included (evicted): ALICE's nonce stays 0. B comes two blocks later.
	let mut b = None;
	let deadline_a = 1 + DEADLINE;
	for block in 2..deadline_a {
		node.ext.execute_with(|| {
			run_to_block(block);
			if block == 3 {
				b = Some(submit(CHARLIE, job(a).model, &case, 100));
			}
		});
		let waiting = if block < 3 { 1 } else { 2 };
		node.worker_executes(&case, waiting);
		node.run_agent();
		let pooled = node.pooled();
		assert_eq!(pooled.len(), waiting, "A re-signed (rising tip), B sent once it exists");
	}
	let b = b.expect("B submitted");
	let deadline_b = 3 + DEADLINE;
	// A's deadline passes (A closes: nobody else serves the model, or, backlogged, it waits
	// past its deadline); B waits with nonce 1.
	node.ext.execute_with(|| {
		if backlogged {
			HookBudget::set(frame_support::weights::Weight::zero());
		}
		run_to_block(deadline_a);
		let open = pallet_verity_jobs::Jobs::<Test>::get(a).is_some();
		assert_eq!(open, backlogged, "A closed unless backlogged");
		assert_eq!(frame_system::Pallet::<Test>::account_nonce(ALICE), 0);
	});
	assert!(deadline_a - 3 >= u64::from(GAP_AFTER), "B's commit waited long enough");
	assert!(deadline_a < deadline_b);
	node.worker_executes(&case, 1);
	node.run_agent();
	let moved = node.pooled_one();
	assert_eq!(moved.function, honest_commit(b, &case), "B's commit");
	let Preamble::Signed(_, _, extension) = &moved.preamble else { panic!("signed") };
	assert_eq!(extension.0.encode(), frame_system::CheckNonce::<Test>::from(0).encode(), "nonce 0");
	// Included, it commits B before its deadline.
	node.ext.execute_with(|| {
		assert_ok!(moved.function.clone().dispatch_bypass_filter(origin(ALICE)));
		assert!(matches!(job_status(b), pallet_verity_jobs::JobStatus::Committed { .. }));
	});
}

/// Attack 2, the agent's side: the watcher commits to its proof, reveals it once the
/// commitment is on chain, and when a copy committed later lands first (its own reveal kept out
/// of the block), it keeps re-signing its reveal with a rising tip during the grace period,
/// from the proof it kept (the worker cannot rebuild it: the job is closed), which takes the
/// reward over; after the grace period it claims the reward. On the old code the first
/// `prove_fraud` in a block was paid, whoever signed it.
#[test]
fn attack_02_the_watcher_takes_its_reward_back_from_a_copier_and_claims_it() {
	let case = cnn();
	let bad_step = 2;
	let mut node = Node::new(&[EVE], Some(1_000_000));
	let (job, request) = wrong_commitment(&mut node, &case, bad_step);
	let answer = || vec![fraud(bad_step, proof(&case, bad_step), "Fraud")];
	node.worker_answers(std::slice::from_ref(&request), answer());
	node.run_agent();
	let commit = node.pooled_one();
	assert_signed(&commit, EVE, 0, commit_proof_call(job, &case, bad_step, EVE));
	node.include(&commit, EVE);
	node.ext.execute_with(|| run_to_block(now() + 1));
	node.worker_answers(std::slice::from_ref(&request), answer());
	node.run_agent();
	let reveal_call = prove_fraud_call(job, &case, bad_step);
	assert_signed(&node.pooled_one(), EVE, 1, reveal_call.clone());

	// EVE's reveal waits in the pool; DAVE saw it, commits to a copy and gets it in first.
	node.ext.execute_with(|| {
		let p = proof(&case, bad_step);
		assert_ok!(Disputes::commit_proof(origin(DAVE), job, Disputes::commitment(job, &DAVE, &p)));
		run_to_block(now() + 1);
		assert_ok!(Disputes::prove_fraud(origin(DAVE), job, p));
		run_to_block(now() + 1);
	});
	// The job is closed; no worker request (an unexpected one would panic): EVE's reveal is
	// re-signed from the kept proof, same nonce, with a tip.
	node.run_agent();
	let resigned = node.pooled_one();
	assert_eq!(resigned.function, reveal_call);
	let Preamble::Signed(_, _, extension) = &resigned.preamble else { panic!("signed") };
	assert_eq!(extension.0.encode(), frame_system::CheckNonce::<Test>::from(1).encode());
	assert!(extension.1.tip() > 0, "with a tip");
	node.include(&resigned, EVE);
	let reward = node.ext.execute_with(|| {
		let r = pallet_verity_disputes::Rewards::<Test>::get(job).expect("pending");
		assert_eq!(r.prover, EVE, "taken over");
		run_to_block(now() + 1);
		r
	});
	// Nothing more during the grace period; after it, the claim.
	node.run_agent();
	assert!(node.pooled().is_empty());
	node.ext.execute_with(|| run_to_block(reward.until));
	node.run_agent();
	let claim = node.pooled_one();
	assert_signed(
		&claim,
		EVE,
		2,
		RuntimeCall::Disputes(pallet_verity_disputes::Call::claim_reward { job }),
	);
	let before = node.ext.execute_with(|| free(EVE));
	node.include(&claim, EVE);
	assert_eq!(node.ext.execute_with(|| free(EVE)), before + reward.amount);
}

/// Attack 2, the watcher that lost the race: its commitment (later than the proven one) is
/// withdrawn once the grace period is over, so its deposit comes back.
#[test]
fn attack_02_a_losing_commitment_is_withdrawn_after_the_grace_period() {
	let case = cnn();
	let bad_step = 2;
	let mut node = Node::new(&[EVE], Some(1_000_000));
	let (job, request) = wrong_commitment(&mut node, &case, bad_step);
	let until = node.ext.execute_with(|| {
		// BOB proves it first (committed a block before EVE could).
		let p = proof(&case, bad_step);
		assert_ok!(Disputes::commit_proof(origin(BOB), job, Disputes::commitment(job, &BOB, &p)));
		run_to_block(now() + 1);
		now()
	});
	node.worker_answers(
		std::slice::from_ref(&request),
		vec![fraud(bad_step, proof(&case, bad_step), "Fraud")],
	);
	node.run_agent();
	let commit = node.pooled_one();
	node.include(&commit, EVE);
	let until = node.ext.execute_with(|| {
		assert_ok!(Disputes::prove_fraud(origin(BOB), job, proof(&case, bad_step)));
		run_to_block(now() + 1);
		let r = pallet_verity_disputes::Rewards::<Test>::get(job).expect("pending");
		assert!(r.until > until);
		r.until
	});
	// EVE's commitment is later than BOB's: no reveal; nothing until the grace period ends.
	node.run_agent();
	assert!(node.pooled().is_empty());
	node.ext.execute_with(|| run_to_block(until));
	node.run_agent();
	let withdraw = node.pooled_one();
	assert_signed(
		&withdraw,
		EVE,
		1,
		RuntimeCall::Disputes(pallet_verity_disputes::Call::withdraw_commitment { job }),
	);
	node.include(&withdraw, EVE);
	assert_eq!(node.ext.execute_with(|| held(EVE)), 0, "the deposit came back");
}

/// `case` with the first 16 bytes of its input replaced by `marker` (so that a job's input can
/// be recognised in a storage proof).
fn marked(case: &TestCase, marker: &[u8; 16]) -> TestCase {
	let mut input = case.input.clone();
	input[..16].copy_from_slice(marker);
	TestCase { input, ..case.clone() }
}

fn marker(kind: &[u8; 4], i: usize) -> [u8; 16] {
	let mut m = [0u8; 16];
	m[..4].copy_from_slice(kind);
	m[4..].copy_from_slice(format!("-{i:011}").as_bytes());
	m
}

/// Run the agent and return the storage it read (the proof of every trie node it touched).
fn agent_reads(node: &mut Node) -> Vec<u8> {
	node.ext.commit_all().expect("committed");
	let block = node.ext.execute_with(now);
	let ((), proof) = node.ext.execute_and_prove(|| Agent::offchain_worker(block));
	proof.into_iter_nodes().flatten().collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
	haystack.windows(needle.len()).any(|w| w == needle)
}

/// A job of `case` submitted by CHARLIE (the model's only server gets it).
fn submit_case(case: &TestCase) -> JobId {
	let id = pallet_verity_jobs::NextJobId::<Test>::get();
	assert_ok!(Jobs::submit(origin(CHARLIE), case.header.id(), case.input.clone(), 100));
	id
}

/// The watcher's `prove` request for committed `job` of `case`.
fn prove_request(job: JobId, case: &TestCase) -> Request {
	Request::Prove(Prove {
		model: case.header.id(),
		input: case.input.clone(),
		step_hashes: Jobs::step_hashes(job),
		deadline_ms: Some(pallet_verity_agent::WORKER_WAIT_MS),
	})
}

/// Attack 11: the agent read every open job, inputs included (`Jobs::iter`), on every block, so
/// its off-chain work grew with everybody's jobs. Now an operator reads the jobs assigned to
/// its keys (an index) and a watcher the commits of each block once: measured by the storage
/// proof of one run, which holds the input of every job the run read. On the old code every
/// foreign job's input was in it.
#[test]
fn attack_11_the_agent_reads_only_what_concerns_it() {
	let (mlp, cnn) = (mlp(), cnn());
	// The operator: ALICE serves the MLP, BOB the CNN; ALICE's node holds only her key.
	let mut node = Node::new(&[ALICE], None);
	let mine = marked(&mlp, &marker(b"MINE", 0));
	let foreign: Vec<TestCase> = (0..12).map(|i| marked(&cnn, &marker(b"BOBS", i))).collect();
	node.ext.execute_with(|| {
		register(&mlp);
		register(&cnn);
		operator(ALICE, 4 * MIN_BOND, mlp.header.id(), 30);
		operator(BOB, 40 * MIN_BOND, cnn.header.id(), 30);
		assert_eq!(assignee(submit_case(&mine)), ALICE);
		for (i, case) in foreign.iter().enumerate() {
			let id = submit_case(case);
			assert_eq!(assignee(id), BOB);
			if i % 2 == 0 {
				let (out, hashes) = honest(case);
				assert_ok!(Jobs::commit(origin(BOB), id, out, hashes));
			}
		}
	});
	node.worker_executes(&mine, 1);
	let read = agent_reads(&mut node);
	assert_eq!(node.pooled().len(), 1, "ALICE's job is committed");
	assert!(contains(&read, &marker(b"MINE", 0)), "the proof shows what the run read");
	for i in 0..foreign.len() {
		assert!(!contains(&read, &marker(b"BOBS", i)), "the operator read BOB's job {i}");
	}

	// The watcher (EVE, every job): reads each block's new commits once. Block 1 of watching:
	// two commits, checked and found consistent.
	let mut node = Node::new(&[EVE], Some(1_000_000));
	let old: Vec<TestCase> = (0..2).map(|i| marked(&cnn, &marker(b"OLDC", i))).collect();
	let waiting: Vec<TestCase> = (0..8).map(|i| marked(&cnn, &marker(b"WAIT", i))).collect();
	let fresh = marked(&cnn, &marker(b"NEWC", 0));
	let old_ids = node.ext.execute_with(|| {
		register(&cnn);
		operator(BOB, 40 * MIN_BOND, cnn.header.id(), 30);
		let ids: Vec<JobId> = old.iter().map(submit_case).collect();
		for (id, case) in ids.iter().zip(&old) {
			let (out, hashes) = honest(case);
			assert_ok!(Jobs::commit(origin(BOB), *id, out, hashes));
		}
		ids
	});
	let consistent = serde_json::to_value(ProveReply::Consistent { trace_root: [1; 32] }).unwrap();
	let requests: Vec<Request> = node.ext.execute_with(|| {
		old_ids.iter().zip(&old).map(|(id, case)| prove_request(*id, case)).collect()
	});
	node.worker_answers(&requests, vec![consistent.clone(); 2]);
	let read = agent_reads(&mut node);
	assert!((0..2).all(|i| contains(&read, &marker(b"OLDC", i))), "new commits are read");
	// Next block: one new commit, and jobs assigned to BOB but not committed.
	let fresh_id = node.ext.execute_with(|| {
		run_to_block(now() + 1);
		waiting.iter().for_each(|case| {
			submit_case(case);
		});
		let id = submit_case(&fresh);
		let (out, hashes) = honest(&fresh);
		assert_ok!(Jobs::commit(origin(BOB), id, out, hashes));
		id
	});
	let request = node.ext.execute_with(|| prove_request(fresh_id, &fresh));
	node.worker_answers(&[request], vec![consistent]);
	let read = agent_reads(&mut node);
	assert!(contains(&read, &marker(b"NEWC", 0)), "the new commit is read");
	for i in 0..old.len() {
		assert!(!contains(&read, &marker(b"OLDC", i)), "checked job {i} read again");
	}
	for i in 0..waiting.len() {
		assert!(!contains(&read, &marker(b"WAIT", i)), "uncommitted job {i} read");
	}
}

// ---- Generation jobs: the operator's side ------------------------------------------------

/// The worker's `generate` answer for `lm`'s honest generation (the job key `[9; 32]`).
fn generated(lm: &crate::generation::Lm) -> serde_json::Value {
	let roots = lm.trace.position_roots();
	serde_json::to_value(verity_worker_api::GenerateReply::Done(verity_worker_api::Generated {
		job: [9; 32],
		model: lm.header.id(),
		tokens: lm.trace.tokens.clone(),
		job_root: verity_primitives::lm::trace::job_root(&roots),
		positions: roots.len() as u32,
		position_roots: roots,
		queue_ms: 0.0,
		generate_ms: 1.0,
		hash_ms: 0.1,
	}))
	.unwrap()
}

/// A text model served by ALICE and a generation of CHARLIE's, assigned to ALICE; the worker's
/// request for it.
fn assigned_generation(node: &mut Node, lm: &crate::generation::Lm) -> (JobId, Request) {
	node.ext.execute_with(|| {
		let model = lm.register();
		operator(ALICE, 4 * MIN_BOND, model, 1);
		let id = lm.submit(CHARLIE, model);
		assert_eq!(assignee(id), ALICE);
		let g = pallet_verity_jobs::Generations::<Test>::get(id).unwrap();
		(id, pallet_verity_agent::plan::generate_request(model, &g))
	})
}

/// The operator's agent generates an assigned generation job through its worker and commits
/// the tokens and job root; when the job is challenged it reveals the position roots, and when
/// a position is named, that position's step hashes (asked of the worker by the key it gave at
/// the commit). Every move lands, and the challenger that gives up pays the operator.
#[test]
fn operator_commits_a_generation_and_answers_its_challenges() {
	let lm = crate::generation::lm();
	let mut node = Node::new(&[ALICE], None);
	let (id, request) = assigned_generation(&mut node, &lm);
	let GenerateRequestShape { prompt, max_new_tokens } = shape_of(&request);
	assert_eq!((prompt, max_new_tokens), (lm.job.prompt.clone(), lm.job.max_new_tokens));
	let roots = lm.trace.position_roots();
	let root = verity_primitives::lm::trace::job_root(&roots);
	node.worker_answers(std::slice::from_ref(&request), vec![generated(&lm)]);
	node.run_agent();
	let commit = RuntimeCall::Jobs(pallet_verity_jobs::Call::commit_generation {
		job: id,
		tokens: lm.trace.tokens.clone(),
		job_root: root,
	});
	node.pools_and_includes(ALICE, 0, commit);

	// Committed and unchallenged: nothing to do.
	node.ext.execute_with(|| run_to_block(now() + 1));
	node.run_agent();
	assert!(node.pooled().is_empty());

	// Challenged: the roots (the worker's cached generation) are revealed.
	node.ext.execute_with(|| {
		assert_ok!(Disputes::challenge(origin(EVE), id));
		run_to_block(now() + 1);
	});
	node.worker_answers(std::slice::from_ref(&request), vec![generated(&lm)]);
	node.run_agent();
	node.pools_and_includes(
		ALICE,
		1,
		RuntimeCall::Disputes(pallet_verity_disputes::Call::reveal_roots {
			job: id,
			roots: roots.clone(),
		}),
	);

	// A position is named: its step hashes, asked by the key the worker gave.
	let p = 1u32;
	node.ext.execute_with(|| {
		assert_ok!(Disputes::name_position(origin(EVE), id, p));
		run_to_block(now() + 1);
	});
	let leaves = lm.trace.step_hashes()[p as usize].clone();
	let leaves_request = Request::GenerationLeaves(verity_worker_api::GenerationLeaves {
		job: [9; 32],
		position: p,
	});
	let hex: Vec<String> = leaves.iter().map(verity_worker_api::hex::encode).collect();
	node.worker_answers(std::slice::from_ref(&leaves_request), vec![serde_json::json!(hex)]);
	node.run_agent();
	node.pools_and_includes(
		ALICE,
		2,
		RuntimeCall::Disputes(pallet_verity_disputes::Call::reveal_position {
			job: id,
			position: p,
			leaves,
		}),
	);

	// EVE has nothing to prove. Before its time is up ALICE's agent waits; then it ends the
	// game: EVE's bond is ALICE's, and the job can become final.
	let due = node.ext.execute_with(|| {
		let (_, due) = Disputes::game_stage(id, &EVE).unwrap();
		run_to_block(due - 1);
		due
	});
	node.run_agent();
	assert!(node.pooled().is_empty(), "nothing before the challenger's due block");
	let alice = node.ext.execute_with(|| {
		run_to_block(due);
		free(ALICE)
	});
	node.run_agent();
	node.pools_and_includes(
		ALICE,
		3,
		RuntimeCall::Disputes(pallet_verity_disputes::Call::settle { job: id, challenger: EVE }),
	);
	node.ext.execute_with(|| {
		assert_eq!(free(ALICE), alice + CHALLENGE_BOND);
		assert!(Disputes::game_stage(id, &EVE).is_none(), "the game ended");
	});
	node.run_agent();
	assert!(node.pooled().is_empty());
}

struct GenerateRequestShape {
	prompt: Vec<u32>,
	max_new_tokens: u32,
}

fn shape_of(request: &Request) -> GenerateRequestShape {
	let Request::Generate(g) = request else { panic!("a generate request: {request:?}") };
	GenerateRequestShape { prompt: g.job.prompt.clone(), max_new_tokens: g.job.max_new_tokens }
}

// ---- Generation jobs: the watcher's side -------------------------------------------------

/// ALICE serves `lm`'s model and commits a generation whose op `op` of position `k` is wrong
/// (every other step honest); returns the job, the worker's `generate` request for it and the
/// committed step hashes.
fn wrong_generation(
	node: &mut Node,
	lm: &crate::generation::Lm,
	k: u32,
	op: u32,
) -> (JobId, Request, Vec<Vec<Hash>>) {
	let (id, request) = assigned_generation(node, lm);
	let (leaves, _, tokens) = lm.variant_at(k, op);
	node.ext.execute_with(|| {
		let roots: Vec<Hash> =
			leaves.iter().map(|l| verity_primitives::lm::trace::position_root(l)).collect();
		let root = verity_primitives::lm::trace::job_root(&roots);
		assert_ok!(Jobs::commit_generation(origin(ALICE), id, tokens, root));
		run_to_block(now() + 1);
	});
	(id, request, leaves)
}

/// The watcher re-generates a committed generation, finds it differs and challenges; after the
/// roots' reveal it names the first differing position (exactly the corrupted one), and after
/// that position's reveal it proves the wrong step with the worker's proof: the job is lost
/// by the operator at exactly that step, and the watcher is paid.
#[test]
fn watcher_wins_the_game_at_exactly_the_corrupted_step() {
	let lm = crate::generation::lm();
	let (k, op) = (1u32, 3u32);
	let mut node = Node::new(&[EVE], Some(1_000_000));
	let (id, request, leaves) = wrong_generation(&mut node, &lm, k, op);
	node.worker_answers(std::slice::from_ref(&request), vec![generated(&lm)]);
	node.run_agent();
	node.pools_and_includes(
		EVE,
		0,
		RuntimeCall::Disputes(pallet_verity_disputes::Call::challenge { job: id }),
	);

	// The operator reveals its roots; the watcher names the first that differs.
	let roots: Vec<Hash> =
		leaves.iter().map(|l| verity_primitives::lm::trace::position_root(l)).collect();
	node.ext.execute_with(|| {
		assert_ok!(Disputes::reveal_roots(origin(ALICE), id, roots.clone()));
		run_to_block(now() + 1);
	});
	node.worker_answers(std::slice::from_ref(&request), vec![generated(&lm)]);
	node.run_agent();
	node.pools_and_includes(
		EVE,
		1,
		RuntimeCall::Disputes(pallet_verity_disputes::Call::name_position { job: id, position: k }),
	);

	// The operator reveals the position; the worker proves its first wrong step.
	node.ext.execute_with(|| {
		assert_ok!(Disputes::reveal_position(origin(ALICE), id, k, leaves[k as usize].clone()));
		run_to_block(now() + 1);
	});
	let Request::Generate(g) = &request else { panic!() };
	let prove = Request::ProveGeneration(verity_worker_api::ProveGeneration {
		model: lm.header.id(),
		job: g.job.clone(),
		position_roots: roots.clone(),
		reveal: Some(verity_worker_api::Reveal {
			position: k,
			step_hashes: leaves[k as usize].clone(),
		}),
		deadline_ms: Some(pallet_verity_agent::WORKER_WAIT_MS),
	});
	let mut known = lm.trace.step_hashes();
	known.truncate(k as usize);
	known.push(leaves[k as usize].clone());
	let proof =
		verity_primitives::lm::trace::find_lm_fraud(&lm.header, &lm.chunks, &lm.job, &known)
			.unwrap()
			.unwrap();
	assert_eq!((proof.position, proof.op), (k, op));
	let encoded = proof.encode();
	let answer = serde_json::to_value(verity_worker_api::ProveGenerationReply::Fraud {
		position: k,
		op,
		proof: encoded.clone(),
		verdict: "Fraud".into(),
	})
	.unwrap();
	node.worker_answers(std::slice::from_ref(&prove), vec![answer]);
	node.run_agent();
	node.pools_and_includes(
		EVE,
		2,
		RuntimeCall::Disputes(pallet_verity_disputes::Call::prove_step { job: id, proof: encoded }),
	);
	node.ext.execute_with(|| {
		assert_eq!(
			receipt(id).outcome,
			pallet_verity_jobs::Outcome::GenerationFraud {
				prover: EVE,
				position: Some(k),
				op: Some(op)
			}
		);
		assert_eq!(held(EVE), 0, "the bond came back");
		run_to_block(now() + 1);
	});
	node.run_agent();
	assert!(node.pooled().is_empty());
}

/// A watcher whose challenge the operator does not answer ends the game when the roots are
/// due, and wins the job; an honest generation is left alone.
#[test]
fn watcher_settles_a_silent_operator_and_leaves_honest_generations_alone() {
	let lm = crate::generation::lm();
	let mut node = Node::new(&[EVE], Some(1_000_000));
	let (id, request, _) = wrong_generation(&mut node, &lm, 1, 3);
	node.worker_answers(std::slice::from_ref(&request), vec![generated(&lm)]);
	node.run_agent();
	node.pools_and_includes(
		EVE,
		0,
		RuntimeCall::Disputes(pallet_verity_disputes::Call::challenge { job: id }),
	);
	let due = node.ext.execute_with(|| Disputes::game_stage(id, &EVE).unwrap().1);
	// Before the roots are due: nothing to do.
	node.ext.execute_with(|| run_to_block(due - 1));
	node.run_agent();
	assert!(node.pooled().is_empty());
	node.ext.execute_with(|| run_to_block(due));
	node.run_agent();
	node.pools_and_includes(
		EVE,
		1,
		RuntimeCall::Disputes(pallet_verity_disputes::Call::settle { job: id, challenger: EVE }),
	);
	node.ext.execute_with(|| {
		assert_eq!(
			receipt(id).outcome,
			pallet_verity_jobs::Outcome::GenerationFraud { prover: EVE, position: None, op: None }
		);
	});

	// An honest generation: re-generated once, found consistent, never challenged.
	let mut honest = Node::new(&[EVE], Some(1_000_000));
	let (hid, request) = assigned_generation(&mut honest, &lm);
	honest.ext.execute_with(|| {
		let roots = lm.trace.position_roots();
		let root = verity_primitives::lm::trace::job_root(&roots);
		assert_ok!(Jobs::commit_generation(origin(ALICE), hid, lm.trace.tokens.clone(), root));
		run_to_block(now() + 1);
	});
	honest.worker_answers(std::slice::from_ref(&request), vec![generated(&lm)]);
	honest.run_agent();
	assert!(honest.pooled().is_empty());
	honest.ext.execute_with(|| run_to_block(now() + 1));
	honest.run_agent();
	assert!(honest.pooled().is_empty());
}
