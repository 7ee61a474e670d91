//! Checking someone's generation (`verity-worker verify`): re-run the job exactly and compare
//! with what they committed to. A commitment is the job (prompt tokens, sampling, seed,
//! `max_new_tokens`), the output tokens, the position roots and the job root, as
//! `verity-worker generate --commitment` writes it and as the chain stores it. With the
//! revealed step hashes (`generate --reveal`) a wrong generation is pinned to its first wrong
//! step and the step proof is built and judged here by the primitives' own check.

use serde::{Deserialize, Serialize};
use verity_primitives::{
	fraud::Verdict,
	lm::{
		graph::{op_at, samples_at, LmOp},
		interp::LmJob,
		sample::SamplingParams,
		trace::{check_step_proof, job_root, position_root, LmFindFraudError, LmStepProof},
	},
	Hash,
};

use crate::{
	generate::TextModel,
	lm_fast::{with_threads, FastOptions, FastRun, Kernel},
};

/// A generation's commitment (hex for hashes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
	pub model: String,
	pub prompt_tokens: Vec<u32>,
	pub temperature_q16: u32,
	pub top_k: u32,
	pub top_p_q16: u32,
	pub seed: String,
	pub max_new_tokens: u32,
	pub tokens: Vec<u32>,
	pub position_roots: Vec<String>,
	pub job_root: String,
}

/// Why a commitment cannot be checked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
	#[error("the commitment is for model {committed}, not {model}")]
	WrongModel { committed: String, model: String },
	#[error("the commitment's {0} is not valid hex of the right length")]
	BadHex(&'static str),
	#[error("the commitment's job root is not the root of its position roots")]
	RootMismatch,
	#[error("the revealed step hashes are not the committed ones (position {position})")]
	RevealMismatch { position: u32 },
	#[error("the job does not fit the model: {0}")]
	BadJob(String),
	#[error("the re-execution failed: {0}")]
	Execution(String),
}

fn hash_from_hex(s: &str, what: &'static str) -> Result<Hash, VerifyError> {
	let bytes = hex::decode(s.trim_start_matches("0x")).map_err(|_| VerifyError::BadHex(what))?;
	bytes.try_into().map_err(|_| VerifyError::BadHex(what))
}

impl Commitment {
	pub fn new(model: Hash, job: &LmJob, run: &FastRun) -> Commitment {
		Commitment {
			model: hex::encode(model),
			prompt_tokens: job.prompt.clone(),
			temperature_q16: job.params.temperature_q16,
			top_k: job.params.top_k,
			top_p_q16: job.params.top_p_q16,
			seed: hex::encode(job.params.seed),
			max_new_tokens: job.max_new_tokens,
			tokens: run.tokens.clone(),
			position_roots: run.position_roots.iter().map(hex::encode).collect(),
			job_root: hex::encode(job_root(&run.position_roots)),
		}
	}

	pub fn job(&self) -> Result<LmJob, VerifyError> {
		Ok(LmJob {
			prompt: self.prompt_tokens.clone(),
			params: SamplingParams {
				temperature_q16: self.temperature_q16,
				top_k: self.top_k,
				top_p_q16: self.top_p_q16,
				seed: hash_from_hex(&self.seed, "seed")?,
			},
			max_new_tokens: self.max_new_tokens,
		})
	}

	pub fn roots(&self) -> Result<Vec<Hash>, VerifyError> {
		self.position_roots.iter().map(|r| hash_from_hex(r, "position roots")).collect()
	}
}

/// The outcome of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
	/// Tokens, position roots and job root are what the model computes.
	Consistent,
	/// They differ; without revealed step hashes, the first position whose root differs
	/// (or, if every common root agrees, the first position past the shorter one).
	Differs { position: u32, tokens_equal: bool },
	/// The first wrong step, its op, and a step proof the primitives' check judged `Fraud`.
	Fraud { position: u32, op: u32, kind: LmOp, proof: Box<LmStepProof> },
}

/// Re-run the committed job on `model` and compare (`reveal`: the committed step hashes).
pub fn verify(
	model: &TextModel,
	c: &Commitment,
	reveal: Option<&[Vec<Hash>]>,
	threads: usize,
) -> Result<Outcome, VerifyError> {
	let id = hex::encode(model.file.id());
	if c.model.trim_start_matches("0x") != id {
		return Err(VerifyError::WrongModel { committed: c.model.clone(), model: id });
	}
	let (job, roots) = (c.job()?, c.roots()?);
	if job_root(&roots) != hash_from_hex(&c.job_root, "job root")? {
		return Err(VerifyError::RootMismatch);
	}
	let h = &model.file.header;
	job.check(h).map_err(|e| VerifyError::BadJob(format!("{e:?}")))?;
	if let Some(reveal) = reveal {
		let n = reveal.len().max(roots.len());
		for t in 0..n {
			let same = reveal.get(t).map(|l| position_root(l)) == roots.get(t).copied();
			if !same {
				return Err(VerifyError::RevealMismatch { position: t as u32 });
			}
		}
	}
	let fast = model.fast().map_err(|e| VerifyError::Execution(e.to_string()))?;
	let kernel = Kernel::detect();
	let run = with_threads(threads, || fast.generate(&job, FastOptions { hash: true, kernel }))
		.map_err(|e| VerifyError::Execution(format!("{e:?}")))?;
	if run.position_roots == roots && run.tokens == c.tokens {
		return Ok(Outcome::Consistent);
	}
	let Some(reveal) = reveal else {
		let position = run
			.position_roots
			.iter()
			.zip(&roots)
			.position(|(a, b)| a != b)
			.unwrap_or(run.position_roots.len().min(roots.len()));
		return Ok(Outcome::Differs {
			position: position as u32,
			tokens_equal: run.tokens == c.tokens,
		});
	};
	let found = with_threads(threads, || fast.find_fraud(&model.file.chunks, &job, reveal, kernel));
	let proof = match found {
		Ok(p) => p,
		Err(LmFindFraudError::LengthMismatch) => {
			let position = run.positions.min(roots.len() as u32);
			return Ok(Outcome::Differs { position, tokens_equal: run.tokens == c.tokens });
		},
		Err(e) => return Err(VerifyError::Execution(format!("{e:?}"))),
	};
	let Some(proof) = proof else {
		// Every revealed step is honest but the tokens differ: the tokens are not the
		// ones the committed selection steps chose (the chain's cheap check).
		return Ok(Outcome::Differs { position: run.positions, tokens_equal: false });
	};
	let verdict = check_step_proof(h, &job, &roots, &proof)
		.map_err(|e| VerifyError::Execution(format!("our proof is rejected: {e:?}")))?;
	if verdict != Verdict::Fraud {
		return Err(VerifyError::Execution("our proof is not judged fraud".into()));
	}
	let kind = op_at(h, proof.op, samples_at(job.prompt_len(), proof.position))
		.ok_or_else(|| VerifyError::Execution("no such op".into()))?;
	Ok(Outcome::Fraud { position: proof.position, op: proof.op, kind, proof: Box::new(proof) })
}
