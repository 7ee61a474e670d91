//! `verify`'s checks on receipts built here from a small chain (headers, a GRANDPA justification
//! signed by `//Alice`, storage proofs of real trie states), each tampering refused with its
//! reason; `rerun`; what `verify` prints; and `fetch` against a mock node serving that chain.

use codec::Encode;
use pallet_verity_jobs::{JobId, JobStatus, Outcome};
use sp_consensus_grandpa::{ConsensusLog, ScheduledChange, GRANDPA_ENGINE_ID};
use sp_core::{storage::Storage, H256};
use sp_keyring::{Ed25519Keyring, Sr25519Keyring};
use sp_runtime::{
	generic::{Digest, DigestItem},
	traits::{BlakeTwo256, Header as _},
	StateVersion,
};
use verity_primitives::lm::{
	file::LmFile,
	interp::{generate, LmJob},
	sample::SamplingParams,
	trace::{job_root, position_root},
};
use verity_runtime::{BlockNumber, Header, UNIT};

use super::{
	file::{
		claims_of, generation_claims, generation_key, hex, job_key, receipt_key, BlockRef,
		GenerationRecord, JobRecord, JobsReceipt, StorageProofAt,
	},
	print, rerun, verify, ReceiptFile, TrustRoot, FORMAT,
};

const JOB: JobId = 7;
const MLP: &[u8] = include_bytes!("../../../primitives/testdata/mlp.vmodel");
const MLP_INPUT: &[u8] = include_bytes!("../../../primitives/testdata/mlp.input");
const CNN: &[u8] = include_bytes!("../../../primitives/testdata/cnn.vmodel");
const LM: &[u8] = include_bytes!("../../../primitives/testdata/lm_greedy.vlm");

/// A chain whose blocks 1 ..= `finalized` hold the job (at `closed_at - 1`) and its receipt (at
/// `finalized`), and the receipt file of it.
#[derive(Clone)]
struct Chain {
	job: JobRecord,
	receipt: JobsReceipt,
	/// Stored instead of the encoded receipt record when set.
	receipt_value: Option<Vec<u8>>,
	finalized: BlockNumber,
	/// A digest item of one header.
	log: Option<(BlockNumber, DigestItem)>,
	signer: Ed25519Keyring,
	set_id: u64,
	genesis: H256,
	/// A generation job's request, stored beside the job record.
	generation: Option<GenerationRecord>,
}

impl Chain {
	/// The MLP example run on its example input, final at block 3, justified at block 4.
	fn honest() -> Self {
		let model = verity_primitives::ModelFile::decode(MLP).expect("mlp.vmodel decodes");
		let trace = verity_primitives::execute(&model.header, &model.weights, MLP_INPUT)
			.expect("the MLP runs on its input");
		let root = verity_primitives::trace_root(
			&trace.step_hashes(&model.header).expect("one hash per step"),
		);
		let requester = Sr25519Keyring::Charlie.to_account_id();
		let operator = Sr25519Keyring::Bob.to_account_id();
		let receipt = JobsReceipt {
			requester: requester.clone(),
			model: model.id(),
			operator: operator.clone(),
			output: trace.output().to_vec().try_into().expect("the output fits"),
			trace_root: Some(root),
			fee: UNIT,
			closed_at: 3,
			outcome: Outcome::Final,
		};
		let job = JobRecord {
			requester,
			model: model.id(),
			input: MLP_INPUT.to_vec().try_into().expect("the input fits"),
			max_fee: 2 * UNIT,
			operator,
			price: UNIT,
			collateral: 10 * UNIT,
			missed: Default::default(),
			submitted_at: 1,
			status: JobStatus::Committed {
				output: receipt.output.clone(),
				trace_root: root,
				committed_at: 1,
				window_end: 3,
			},
		};
		Chain {
			job,
			receipt,
			receipt_value: None,
			finalized: 4,
			log: None,
			signer: Ed25519Keyring::Alice,
			set_id: 0,
			genesis: H256::repeat_byte(0x6e),
			generation: None,
		}
	}

	/// A greedy generation of at most 6 tokens by the primitives' test transformer, final at block 3.
	fn generation() -> Self {
		let mut chain = Chain::honest();
		let file = LmFile::decode(LM, u32::MAX).expect("lm_greedy.vlm decodes");
		let job =
			LmJob { prompt: vec![5, 3, 9], params: SamplingParams::GREEDY, max_new_tokens: 6 };
		let run = generate(&file.header, &file.chunks, &job).expect("generates");
		let roots: Vec<_> = run.step_hashes().iter().map(|h| position_root(h)).collect();
		let root = job_root(&roots);
		let output: Vec<u8> = run.tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
		chain.receipt.model = file.id();
		chain.receipt.output = output.try_into().expect("fits");
		chain.receipt.trace_root = Some(root);
		chain.job.model = file.id();
		chain.job.input = Default::default();
		chain.generation = Some(GenerationRecord {
			prompt: job.prompt.try_into().expect("fits"),
			max_new_tokens: job.max_new_tokens,
			params: job.params,
			price_per_token: UNIT / 100,
			settles_at: None,
		});
		chain
	}

	/// The job expired: no output, no trace root, no fee.
	fn expired() -> Self {
		let mut chain = Chain::honest();
		chain.receipt.outcome = Outcome::Expired;
		chain.receipt.output = Default::default();
		chain.receipt.trace_root = None;
		chain.receipt.fee = 0;
		chain
	}

	/// The genesis and its GRANDPA set: `//Alice` alone.
	fn root(&self) -> TrustRoot {
		TrustRoot {
			genesis_hash: self.genesis,
			authorities: vec![(Ed25519Keyring::Alice.public().into(), 1)],
		}
	}

	/// The storage of block `n` (the job's record before it closed, the receipt at the end).
	fn state(&self, n: BlockNumber) -> Vec<(Vec<u8>, Vec<u8>)> {
		let mut entries = Vec::new();
		if n.checked_add(1) == Some(self.receipt.closed_at) {
			entries.push((job_key(JOB), self.job.encode()));
			entries.extend(self.generation.as_ref().map(|g| (generation_key(JOB), g.encode())));
		}
		if n == self.finalized {
			let value = self.receipt_value.clone().unwrap_or_else(|| self.receipt.encode());
			entries.push((receipt_key(JOB), value));
		}
		entries
	}

	fn state_root(&self, n: BlockNumber) -> H256 {
		let entries = self.state(n);
		if entries.is_empty() {
			H256::repeat_byte(u8::try_from(n).expect("a short chain"))
		} else {
			*backend(entries).root()
		}
	}

	fn proof(&self, n: BlockNumber, keys: &[Vec<u8>]) -> StorageProofAt {
		let proof = sp_state_machine::prove_read(backend(self.state(n)), keys).expect("proves");
		StorageProofAt { block: n, nodes: proof.into_iter_nodes().map(|n| hex(&n)).collect() }
	}

	fn headers(&self) -> Vec<Header> {
		let mut parent = self.genesis;
		(1..=self.finalized)
			.map(|n| {
				let logs = self.log.iter().filter(|(at, _)| *at == n).map(|(_, l)| l.clone());
				let header = Header::new(
					n,
					H256::zero(),
					self.state_root(n),
					parent,
					Digest { logs: logs.collect() },
				);
				parent = header.hash();
				header
			})
			.collect()
	}

	/// A justification of `target` by one precommit of `signer` in round 1 of `set_id`.
	fn justification(&self, target: &Header) -> Vec<u8> {
		let precommit = sp_consensus_grandpa::Precommit::<Header> {
			target_hash: target.hash(),
			target_number: *target.number(),
		};
		let round = 1u64;
		let message = sp_consensus_grandpa::Message::<Header>::Precommit(precommit.clone());
		let payload = sp_consensus_grandpa::localized_payload(round, self.set_id, &message);
		let signature: sp_consensus_grandpa::AuthoritySignature = self.signer.sign(&payload).into();
		let id: sp_consensus_grandpa::AuthorityId = self.signer.public().into();
		// `GrandpaJustification { round, commit: Commit { target_hash, target_number,
		// precommits: [SignedPrecommit { precommit, signature, id }] }, votes_ancestries: [] }`,
		// SCALE-encoded field by field (finality-grandpa is not a dependency of the node).
		(
			round,
			(target.hash(), *target.number(), vec![(precommit, signature, id)]),
			Vec::<Header>::new(),
		)
			.encode()
	}

	fn file(&self) -> ReceiptFile {
		let headers = self.headers();
		let last = headers.last().expect("at least one header");
		let mut claimed = claims_of(&self.receipt);
		claimed.generation = self.generation.as_ref().map(|g| generation_claims(&self.receipt, g));
		ReceiptFile {
			format: FORMAT.into(),
			job: JOB,
			claimed,
			finalized: BlockRef { number: self.finalized, hash: hex(last.hash().as_bytes()) },
			headers: headers.iter().map(|h| hex(&h.encode())).collect(),
			justification: hex(&self.justification(last)),
			receipt_proof: self.proof(self.finalized, &[receipt_key(JOB)]),
			job_proof: self.proof(
				self.receipt.closed_at.saturating_sub(1),
				&[job_key(JOB), generation_key(JOB)],
			),
		}
	}

	fn verify(&self) -> Result<super::Verified, String> {
		verify(&self.file(), &self.root())
	}
}

fn backend(entries: Vec<(Vec<u8>, Vec<u8>)>) -> sp_state_machine::InMemoryBackend<BlakeTwo256> {
	let storage =
		Storage { top: entries.into_iter().collect(), children_default: Default::default() };
	(storage, StateVersion::V1).into()
}

/// Flip the lowest bit of byte `at` of a `0x` hex string.
fn flip(hex_text: &mut String, at: usize) {
	let mut bytes = super::file::unhex("test", hex_text).expect("hex");
	bytes[at] ^= 1;
	*hex_text = hex(&bytes);
}

/// `verify` refuses `file` with exactly `reason`.
#[track_caller]
fn refused(file: &ReceiptFile, root: &TrustRoot, reason: &str) {
	match verify(file, root) {
		Ok(v) => panic!("accepted, finalized at #{}; expected: {reason}", v.finalized.0),
		Err(e) => assert_eq!(e, reason),
	}
}

/// `verify` refuses `file` with a reason that starts with `start` and contains `part`.
#[track_caller]
fn refused_with(file: &ReceiptFile, root: &TrustRoot, start: &str, part: &str) {
	match verify(file, root) {
		Ok(v) => panic!("accepted, finalized at #{}; expected: {start}...", v.finalized.0),
		Err(e) => assert!(e.starts_with(start) && e.contains(part), "{e}"),
	}
}

#[test]
fn an_honest_receipt_verifies() {
	let chain = Chain::honest();
	let v = chain.verify().expect("verifies");
	assert_eq!(v.finalized, (4, chain.headers()[3].hash()));
	assert_eq!(v.voters, 1);
	assert_eq!(v.receipt, chain.receipt);
	assert_eq!(v.job, chain.job);
	// A receipt is a JSON file: it survives the round trip.
	let file = chain.file();
	let json = serde_json::to_string(&file).expect("serializes");
	let back: ReceiptFile = serde_json::from_str(&json).expect("parses");
	assert!(verify(&back, &chain.root()).is_ok());
	// The job may close in the finalized block itself.
	let mut chain = Chain::honest();
	chain.finalized = 3;
	assert_eq!(chain.verify().expect("verifies").finalized.0, 3);
}

#[test]
fn an_expired_job_verifies_as_expired() {
	let v = Chain::expired().verify().expect("verifies");
	assert_eq!(v.receipt.outcome, Outcome::Expired);
}

#[test]
fn an_unknown_format_is_refused() {
	let chain = Chain::honest();
	let mut file = chain.file();
	file.format = "verity-receipt/2".into();
	refused(
		&file,
		&chain.root(),
		"unknown receipt format \"verity-receipt/2\" (expected verity-receipt/1)",
	);
}

#[test]
fn each_claim_that_is_not_the_proven_record_is_refused() {
	let chain = Chain::honest();
	let root = chain.root();
	let honest = chain.file();
	let proven = honest.claimed.clone();
	let bob = Sr25519Keyring::Bob.to_account_id().to_string();
	let charlie = Sr25519Keyring::Charlie.to_account_id().to_string();
	let mut flipped_output = proven.output.clone();
	flip(&mut flipped_output, 0);
	let other_model = hex(&[0x11; 32]);
	type Tamper<'a> = Box<dyn Fn(&mut super::file::Claims) + 'a>;
	let cases: Vec<(Tamper<'_>, String)> =
		vec![
		(
			Box::new(|c| c.outcome = "expired".into()),
			"the claimed outcome expired differs from the outcome proven on chain final".into(),
		),
		(
			Box::new(|c| c.model = other_model.clone()),
			format!(
				"the claimed model {other_model} differs from the model proven on chain {}",
				proven.model
			),
		),
		(
			Box::new(|c| c.requester = bob.clone()),
			format!("the claimed requester {bob} differs from the requester proven on chain {charlie}"),
		),
		(
			Box::new(|c| c.operator = charlie.clone()),
			format!("the claimed operator {charlie} differs from the operator proven on chain {bob}"),
		),
		(
			Box::new(|c| c.output = flipped_output.clone()),
			format!(
				"the claimed output {flipped_output} differs from the output proven on chain {}",
				proven.output
			),
		),
		(
			Box::new(|c| c.fee = "2000000000000".into()),
			"the claimed fee 2000000000000 differs from the fee proven on chain 1000000000000"
				.into(),
		),
		(
			Box::new(|c| c.trace_root = None),
			"the claimed trace root differs from the trace root proven on chain".into(),
		),
		(
			Box::new(|c| c.closed_at = 2),
			"the claimed closing block differs from the one proven on chain".into(),
		),
	];
	for (tamper, reason) in cases {
		let mut file = honest.clone();
		tamper(&mut file.claimed);
		refused(&file, &root, &reason);
	}
}

#[test]
fn a_final_claim_for_a_job_that_is_not_final_is_refused() {
	let chain = Chain::expired();
	let mut file = chain.file();
	file.claimed = Chain::honest().file().claimed;
	refused(
		&file,
		&chain.root(),
		"the claimed outcome final differs from the outcome proven on chain expired",
	);
}

#[test]
fn a_receipt_for_another_job_is_refused() {
	let chain = Chain::honest();
	let mut file = chain.file();
	file.job = JOB + 1;
	refused(&file, &chain.root(), "the receipt proof shows no record at block #4");
}

#[test]
fn tampered_or_misplaced_storage_proofs_are_refused() {
	let chain = Chain::honest();
	let root = chain.root();
	let honest = chain.file();

	let mut file = honest.clone();
	flip(&mut file.receipt_proof.nodes[0], 3);
	refused_with(&file, &root, "the receipt proof does not match the state root of block #4: ", "");

	let mut file = honest.clone();
	let last = file.job_proof.nodes.len() - 1;
	flip(&mut file.job_proof.nodes[last], 5);
	refused_with(&file, &root, "the job proof does not match the state root of block #2: ", "");

	let mut file = honest.clone();
	file.receipt_proof.nodes[0].push('0');
	refused(&file, &root, "receipt proof node: odd number of hex digits");

	let mut file = honest.clone();
	file.receipt_proof.block = 5;
	refused(&file, &root, "the receipt proof is at block #5, beyond the headers");

	// The receipt's proof checked against another block's state root.
	let mut file = honest.clone();
	file.receipt_proof.block = 3;
	refused_with(&file, &root, "the receipt proof does not match the state root of block #3: ", "");

	let mut file = honest.clone();
	file.job_proof.block = 1;
	refused(
		&file,
		&root,
		"the job record is proven at block #1, not at the block before the job closed (#2)",
	);
}

#[test]
fn records_that_do_not_fit_together_are_refused() {
	let mut chain = Chain::honest();
	chain.receipt_value = Some(vec![1, 2, 3]);
	refused_with(&chain.file(), &chain.root(), "the proven receipt record does not decode: ", "");

	// Closed after the justified block (its job record is then at the justified block).
	let mut chain = Chain::honest();
	chain.receipt.closed_at = 5;
	refused(&chain.file(), &chain.root(), "the receipt record closes after the finalized block");

	let mut chain = Chain::honest();
	chain.job.model = [0x11; 32];
	refused(
		&chain.file(),
		&chain.root(),
		"the proven job record is for another model or requester",
	);

	let mut chain = Chain::honest();
	chain.job.requester = Sr25519Keyring::Dave.to_account_id();
	refused(
		&chain.file(),
		&chain.root(),
		"the proven job record is for another model or requester",
	);
}

#[test]
fn a_header_chain_that_does_not_hold_together_is_refused() {
	let chain = Chain::honest();
	let root = chain.root();
	let honest = chain.file();

	// Another chain's genesis.
	let mut other = chain.root();
	other.genesis_hash = H256::repeat_byte(0x01);
	refused(
		&honest,
		&other,
		&format!(
			"header #1 does not extend the genesis of the chain specification ({:?})",
			other.genesis_hash
		),
	);

	// Header #2's state root changed: header #3 no longer extends it.
	let mut file = honest.clone();
	flip(&mut file.headers[1], 40);
	refused(&file, &root, "header #3 does not extend header #2: broken chain");

	let mut file = honest.clone();
	file.headers.swap(1, 2);
	refused(&file, &root, "header 2 is numbered #3");

	let mut file = honest.clone();
	file.headers[1] = hex(&[0x00, 0x01]);
	refused_with(&file, &root, "header #2 does not decode: ", "");

	let mut file = honest.clone();
	file.headers[1] = "0xzz".into();
	refused(&file, &root, "header #2: not hex");

	let mut file = honest.clone();
	file.headers.clear();
	refused(&file, &root, "the receipt has no headers");
}

#[test]
fn a_grandpa_set_change_in_the_headers_is_refused() {
	let change = ScheduledChange::<BlockNumber> { next_authorities: vec![], delay: 0 };
	for log in
		[ConsensusLog::ScheduledChange(change.clone()), ConsensusLog::ForcedChange(1, change)]
	{
		let mut chain = Chain::honest();
		chain.log = Some((2, DigestItem::Consensus(GRANDPA_ENGINE_ID, log.encode())));
		refused(
			&chain.file(),
			&chain.root(),
			"header #2 changes the GRANDPA authority set; receipts across a set change are not supported",
		);
	}
	// Other GRANDPA logs do not change the set.
	let mut chain = Chain::honest();
	let pause = ConsensusLog::<BlockNumber>::Pause(1);
	chain.log = Some((2, DigestItem::Consensus(GRANDPA_ENGINE_ID, pause.encode())));
	assert!(chain.verify().is_ok());
}

#[test]
fn a_justification_that_does_not_prove_the_last_header_final_is_refused() {
	let chain = Chain::honest();
	let root = chain.root();

	// The receipt stops before the justified block.
	let mut file = chain.file();
	file.headers.pop();
	refused(&file, &root, "the justification finalizes block #4, not the last header #3");

	// Signed by a key outside the genesis set.
	let mut bob = Chain::honest();
	bob.signer = Ed25519Keyring::Bob;
	refused_with(
		&bob.file(),
		&root,
		"the justification does not prove block #4 final: ",
		"invalid commit",
	);

	// Signed for another set.
	let mut later_set = Chain::honest();
	later_set.set_id = 1;
	refused_with(
		&later_set.file(),
		&root,
		"the justification does not prove block #4 final: ",
		"invalid signature",
	);

	// A flipped bit in the signature (after round 8, hash 32, number 4, length 1 and the
	// precommit's 36 bytes).
	let mut file = chain.file();
	flip(&mut file.justification, 8 + 36 + 1 + 36 + 10);
	refused_with(&file, &root, "the justification does not prove block #4 final: ", "signature");

	let mut file = chain.file();
	file.justification = hex(&[1, 2, 3]);
	refused_with(&file, &root, "the justification does not decode: ", "");
}

#[test]
fn rerun_compares_the_model_output_and_trace_root() {
	let v = Chain::honest().verify().expect("verifies");
	let root = v.receipt.trace_root.expect("final");
	assert_eq!(
		rerun(MLP, &v),
		Ok(format!(
			"re-run with the reference interpreter: same output and trace root {}",
			hex(&root)
		))
	);

	let cnn = verity_primitives::ModelFile::decode(CNN).expect("cnn.vmodel decodes");
	assert_eq!(
		rerun(CNN, &v),
		Err(format!(
			"the model file is model {}, the job ran model {}",
			hex(&cnn.id()),
			hex(&v.receipt.model)
		))
	);
	assert!(rerun(&[1, 2, 3], &v).unwrap_err().starts_with("the model file does not decode: "));

	// An operator's wrong output or trace root, final on chain, is caught by the re-run.
	let mut chain = Chain::honest();
	let mut output = chain.receipt.output.to_vec();
	output[0] ^= 1;
	chain.receipt.output = output.clone().try_into().expect("fits");
	let wrong = chain.verify().expect("the proofs hold");
	assert_eq!(
		rerun(MLP, &wrong),
		Err(format!(
			"re-run output {} differs from the receipt's output {}",
			hex(&v.receipt.output),
			hex(&output)
		))
	);
	let mut chain = Chain::honest();
	chain.receipt.trace_root = Some([0x22; 32]);
	let wrong = chain.verify().expect("the proofs hold");
	assert_eq!(
		rerun(MLP, &wrong),
		Err(format!("re-run trace root {} differs from the receipt's", hex(&root)))
	);

	let expired = Chain::expired().verify().expect("verifies");
	assert_eq!(
		rerun(MLP, &expired),
		Ok(format!(
			"re-run with the reference interpreter: output {} (the job has no final output to compare)",
			hex(&v.receipt.output)
		))
	);
}

/// A generation job's receipt: the proof shows the prompt and sampling beside the job record;
/// the claimed request and tokens must be the proven ones; `--model` with the `.vlm` generates
/// again and compares the tokens and job root (a wrong token or root is caught); a classifier's
/// receipt that claims a generation, or a generation's that claims none, is refused.
#[test]
fn generation_receipts_verify_and_regenerate() {
	let chain = Chain::generation();
	let v = chain.verify().expect("verifies");
	let g = v.generation.as_ref().expect("a generation");
	assert_eq!(g.prompt.to_vec(), vec![5, 3, 9]);
	let claims = chain.file().claimed.generation.expect("claims a generation");
	// The test transformer stops early (its EOS) or after 6 tokens.
	let n = claims.tokens.len();
	assert!((1..=6).contains(&n), "{n} tokens");
	let root = v.receipt.trace_root.expect("final");
	assert_eq!(
		rerun(LM, &v),
		Ok(format!(
			"re-generated with the reference interpreter: the same {n} tokens and job root {}",
			hex(&root)
		))
	);
	assert!(rerun(MLP, &v).unwrap_err().starts_with("the model file is not a language model file"));
	let report = print::verified("verity_dev", &chain.root(), &chain.file(), &v, None);
	assert!(report.lines().any(|l| l == "  prompt:      3 tokens [5, 3, 9]"), "{report}");
	assert!(report.lines().any(|l| l == format!("  job root:    {}", hex(&root))), "{report}");

	// Claims that are not the proven request or output.
	let mut file = chain.file();
	file.claimed.generation.as_mut().expect("claims").prompt[0] = 6;
	refused(
		&file,
		&chain.root(),
		"the claimed generation (prompt, sampling, tokens) differs from the one proven on chain",
	);
	let mut file = chain.file();
	file.claimed.generation = None;
	refused(
		&file,
		&chain.root(),
		"the claimed generation (prompt, sampling, tokens) differs from the one proven on chain",
	);
	let mut file = Chain::honest().file();
	file.claimed.generation = claims.clone().into();
	refused(
		&file,
		&Chain::honest().root(),
		"the receipt claims a generation; the job proven on chain is not one",
	);

	// A wrong token committed and final: the proofs hold, the re-generation catches it.
	let mut wrong = Chain::generation();
	let mut output = wrong.receipt.output.to_vec();
	output[0] ^= 1;
	wrong.receipt.output = output.try_into().expect("fits");
	let v = wrong.verify().expect("the proofs hold");
	assert!(rerun(LM, &v).unwrap_err().starts_with("re-generated tokens "));
	let mut wrong = Chain::generation();
	wrong.receipt.trace_root = Some([7; 32]);
	let v = wrong.verify().expect("the proofs hold");
	assert_eq!(
		rerun(LM, &v),
		Err(format!("re-generated job root {} differs from the receipt's", hex(&root)))
	);
}

#[test]
fn verify_prints_what_was_proven() {
	let chain = Chain::honest();
	let file = chain.file();
	let root = chain.root();
	let v = verify(&file, &root).expect("verifies");
	let c = claims_of(&chain.receipt);
	let report = print::verified("verity_dev", &root, &file, &v, Some("re-run: fine"));
	let expected = [
		format!("receipt verified against chain \"verity_dev\" (genesis {:?})", chain.genesis),
		"  job:         7".into(),
		"  outcome:     final".into(),
		format!("  model:       {}", c.model),
		format!("  requester:   {}", c.requester),
		format!("  operator:    {}", c.operator),
		format!("  output:      {}", c.output),
		format!("  trace root:  {}", c.trace_root.expect("final")),
		"  fee:         1000000000000".into(),
		"  closed at:   #3".into(),
		format!(
			"  finalized:   #4 {:?} (GRANDPA justification, set 0, 1 voters)",
			chain.headers()[3].hash()
		),
		"  re-run: fine".into(),
	];
	assert_eq!(report.lines().collect::<Vec<_>>(), expected);
	let expired = Chain::expired();
	let v = expired.verify().expect("verifies");
	let report = print::verified("verity_dev", &root, &expired.file(), &v, None);
	assert!(report.lines().any(|l| l == "  trace root:  -"));
	assert_eq!(report.lines().count(), 11);
	assert_eq!(
		print::fetched(&file, std::path::Path::new("/tmp/r.json")),
		"receipt of job 7 (final) written to /tmp/r.json: 4 headers, finalized at #4"
	);
}

/// Attack 6: anyone can mint a receipt for the dev chain (its only authority is the public
/// `//Alice` key), and `receipt verify` used to trust `--chain dev` by default. Here a receipt of
/// a made-up job, signed with `//Alice` on top of the real dev genesis: the signatures check out
/// (`verify` alone accepts it), so the defence is the trust policy of the command: no default
/// chain, and a chain finalized by development keys refused unless `--allow-dev-keys`.
#[test]
fn attack_06_receipts_minted_with_development_keys_are_refused() {
	use clap::Parser;
	let spec = crate::chain_spec::development_chain_spec().expect("the dev chain spec");
	let root = super::trust_root(&spec).expect("the dev genesis");
	assert_eq!(super::development_keys(&root.authorities), vec!["//Alice".to_string()]);
	let mut chain = Chain::honest();
	chain.genesis = root.genesis_hash;
	assert!(verify(&chain.file(), &root).is_ok(), "the forgery is cryptographically valid");
	// VERITY_MINTED_GENESIS=0x..: only write the receipt minted on that genesis (another
	// build's dev chain) to VERITY_MINTED_RECEIPT, to show what that build's verifier says.
	let other = std::env::var("VERITY_MINTED_GENESIS").ok();
	if let Some(genesis) = &other {
		chain.genesis = genesis.parse().expect("a 0x-prefixed 32-byte hash");
	}
	let file = chain.file();
	// VERITY_MINTED_RECEIPT=FILE keeps the minted receipt there (to show what an older
	// `verity-node receipt verify FILE` said of it); by default it is a temporary file.
	let keep = std::env::var_os("VERITY_MINTED_RECEIPT").map(std::path::PathBuf::from);
	let path = keep.clone().unwrap_or_else(|| {
		std::env::temp_dir().join(format!("verity-minted-{}.json", std::process::id()))
	});
	std::fs::write(&path, serde_json::to_string(&file).expect("serializes")).expect("written");
	if other.is_some() {
		return;
	}
	let path = path.to_str().expect("utf-8 path");

	let no_chain = super::VerifyCmd::try_parse_from(["verify", path]);
	assert!(no_chain.is_err(), "there is no default chain to trust");
	let cmd = super::VerifyCmd::try_parse_from(["verify", path, "--chain", "dev"]).unwrap();
	let refused = cmd.run(&spec).expect_err("a chain of development keys is not trusted");
	assert!(refused.contains("public development keys (//Alice)"), "{refused}");
	assert!(refused.contains("--allow-dev-keys"), "{refused}");
	let allowed =
		super::VerifyCmd::try_parse_from(["verify", path, "--chain", "dev", "--allow-dev-keys"])
			.unwrap();
	assert_eq!(allowed.run(&spec), Ok(()), "explicitly allowed: a local dev chain");
	if keep.is_none() {
		let _ = std::fs::remove_file(path);
	}
	// A chain whose authorities are not development keys is trusted as before.
	let mut other = chain.root();
	other.authorities = vec![(sp_core::ed25519::Public::from_raw([9; 32]).into(), 1)];
	assert!(super::development_keys(&other.authorities).is_empty());
}

mod fetch {
	use super::*;
	use crate::receipt::fetch::{fetch, Rpc};
	use jsonrpsee::{server::Server, types::ErrorObjectOwned, RpcModule};

	#[test]
	fn endpoints_other_than_http_are_refused() {
		let e = |url: &str| Rpc::new(url).expect_err("refused");
		assert_eq!(
			e("https://127.0.0.1:9944"),
			"--rpc https://127.0.0.1:9944: only http:// (or ws://) endpoints are supported"
		);
		assert_eq!(e("http:///x"), "--rpc http:///x: no host");
		assert!(Rpc::new("ws://127.0.0.1:9944").is_ok());
	}

	#[test]
	fn an_unreachable_node_is_named() {
		// Nothing listens on port 1.
		let rpc = Rpc::new("http://127.0.0.1:1").expect("a URL");
		let e = fetch(&rpc, JOB).expect_err("no node");
		assert!(e.starts_with("cannot connect to the node at 127.0.0.1:1: "), "{e}");
	}

	/// A node that serves `chain` (justified at its last header) over JSON-RPC.
	fn serve(chain: &Chain) -> (jsonrpsee::tokio::runtime::Runtime, String) {
		let headers = chain.headers();
		let file = chain.file();
		let hash_of = |h: &Header| hex(h.hash().as_bytes());
		let mut module = RpcModule::new(());
		let head = hash_of(headers.last().expect("a header"));
		module
			.register_method("chain_getFinalizedHead", move |_, _, _| head.clone())
			.expect("registers");
		let justification = file.justification.clone();
		module
			.register_method("verity_bestJustification", move |_, _, _| justification.clone())
			.expect("registers");
		let hashes: Vec<String> = headers.iter().map(hash_of).collect();
		module
			.register_method("chain_getBlockHash", move |p, _, _| {
				let (n,): (usize,) = p.parse()?;
				Ok::<_, ErrorObjectOwned>(n.checked_sub(1).and_then(|i| hashes.get(i)).cloned())
			})
			.expect("registers");
		let by_hash = headers.clone();
		module
			.register_method("chain_getHeader", move |p, _, _| {
				let (hash,): (String,) = p.parse()?;
				Ok::<_, ErrorObjectOwned>(
					by_hash
						.iter()
						.find(|h| hash_of(h) == hash)
						.map(|h| serde_json::to_value(h).expect("serializes")),
				)
			})
			.expect("registers");
		// Storage and proofs at the blocks the chain keeps them.
		let at = move |hash: &str| {
			headers.iter().find(|h| hash_of(h) == hash).map(|h| *h.number()).unwrap_or(0)
		};
		let (storage_chain, at_storage) = (chain.clone(), at.clone());
		module
			.register_method("state_getStorage", move |p, _, _| {
				let (key, hash): (String, String) = p.parse()?;
				let state = storage_chain.state(at_storage(&hash));
				Ok::<_, ErrorObjectOwned>(
					state.into_iter().find(|(k, _)| hex(k) == key).map(|(_, v)| hex(&v)),
				)
			})
			.expect("registers");
		let proof_chain = chain.clone();
		module
			.register_method("state_getReadProof", move |p, _, _| {
				let (keys, hash): (Vec<String>, String) = p.parse()?;
				let keys: Vec<Vec<u8>> = keys
					.iter()
					.map(|k| super::super::file::unhex("key", k).expect("hex"))
					.collect();
				let proof = proof_chain.proof(at(&hash), &keys);
				Ok::<_, ErrorObjectOwned>(serde_json::json!({ "at": hash, "proof": proof.nodes }))
			})
			.expect("registers");

		let runtime = jsonrpsee::tokio::runtime::Builder::new_multi_thread()
			.worker_threads(1)
			.enable_all()
			.build()
			.expect("a runtime");
		let url = runtime.block_on(async {
			let server = Server::builder().build("127.0.0.1:0").await.expect("binds");
			let url = format!("http://{}", server.local_addr().expect("an address"));
			let handle = server.start(module);
			// Serve until the runtime is dropped.
			jsonrpsee::tokio::spawn(handle.stopped());
			url
		});
		(runtime, url)
	}

	#[test]
	fn fetch_writes_what_verify_accepts() {
		let chain = Chain::honest();
		let (_node, url) = serve(&chain);
		let rpc = Rpc::new(&url).expect("a URL");
		let fetched = fetch(&rpc, JOB).expect("fetches");
		let v = verify(&fetched, &chain.root()).expect("verifies");
		assert_eq!(v.receipt, chain.receipt);
		assert_eq!(v.job.input.to_vec(), MLP_INPUT);
		let expected = chain.file();
		assert_eq!(fetched.headers, expected.headers);
		assert_eq!(fetched.claimed, expected.claimed);
		assert_eq!(fetched.finalized.hash, expected.finalized.hash);
		assert_eq!(fetched.job_proof.block, 2);

		assert_eq!(
			fetch(&rpc, JOB + 1).expect_err("unknown"),
			format!("job {} is unknown at the finalized block {:?}", JOB + 1, v.finalized.1)
		);
	}

	#[test]
	fn fetch_of_a_generation_claims_and_proves_its_request() {
		let chain = Chain::generation();
		let (_node, url) = serve(&chain);
		let fetched = fetch(&Rpc::new(&url).expect("a URL"), JOB).expect("fetches");
		assert_eq!(fetched.claimed, chain.file().claimed);
		assert!(fetched.claimed.generation.is_some());
		let v = verify(&fetched, &chain.root()).expect("verifies");
		assert_eq!(v.generation, chain.generation);
	}

	#[test]
	fn fetch_refuses_a_receipt_that_the_justification_does_not_cover() {
		// The job closes after the node's latest justified block.
		let mut chain = Chain::honest();
		chain.receipt.closed_at = chain.finalized + 1;
		let (_node, url) = serve(&chain);
		let rpc = Rpc::new(&url).expect("a URL");
		assert_eq!(
			fetch(&rpc, JOB).expect_err("closes later"),
			"the node's latest justification (#4) is older than the job's closing block #5"
		);
	}
}
