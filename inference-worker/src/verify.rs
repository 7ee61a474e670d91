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
		graph::{op_at, ops_at, LmOp, Shape},
		interp::LmJob,
		sample::SamplingParams,
		trace::{check_step_proof, job_root, position_root, LmStepProof},
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
	#[error("the revealed position is {revealed}; the first differing position is {first}")]
	RevealWrongPosition { revealed: u32, first: u32 },
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
	/// They differ at `position` (see [`first_differing`]; the positions run if only the
	/// tokens differ), and no step proof was asked for or possible: without the revealed
	/// step hashes of that position, or if the lists only differ in length.
	Differs { position: u32, tokens_equal: bool },
	/// The first wrong step, its op, and a step proof the primitives' check judged `Fraud`.
	Fraud { position: u32, op: u32, kind: LmOp, proof: Box<LmStepProof> },
}

/// The first position whose committed root differs from the honest one, or the first
/// position past the shorter list if every common root agrees; `None` if they are equal.
pub fn first_differing(honest: &[Hash], committed: &[Hash]) -> Option<u32> {
	match honest.iter().zip(committed).position(|(a, b)| a != b) {
		Some(t) => Some(t as u32),
		None if honest.len() != committed.len() => Some(honest.len().min(committed.len()) as u32),
		None => None,
	}
}

/// Judge someone's position roots of `job` against the honest run `honest` (its step hashes
/// included). `reveal`: their step hashes of the first differing position, which must be that
/// position and have its committed root. Without it, a difference is `Differs` (the position
/// to challenge); with it, the first wrong step is proven and its proof judged by the
/// primitives' `check_step_proof`. `tokens`: their output tokens, if given, must also agree.
pub fn judge(
	model: &TextModel,
	job: &LmJob,
	honest: &FastRun,
	roots: &[Hash],
	tokens: Option<&[u32]>,
	reveal: Option<(u32, &[Hash])>,
	threads: usize,
) -> Result<Outcome, VerifyError> {
	let h = &model.file.header;
	let tokens_equal = tokens.is_none_or(|t| t == honest.tokens);
	let Some(t) = first_differing(&honest.position_roots, roots) else {
		return Ok(if tokens_equal {
			Outcome::Consistent
		} else {
			// Every step is honest but the tokens are not the ones the committed selection
			// steps chose (the chain's cheap check).
			Outcome::Differs { position: honest.positions, tokens_equal }
		});
	};
	let differs = Outcome::Differs { position: t, tokens_equal };
	// A list longer than the context, or one that agrees with the honest one on every common
	// position, has no wrong step to prove: its length is the chain's check.
	if roots.len() as u64 > u64::from(h.max_context)
		|| t as usize >= roots.len().min(honest.position_roots.len())
	{
		return Ok(differs);
	}
	let Some((p, leaves)) = reveal else { return Ok(differs) };
	if p != t {
		return Err(VerifyError::RevealWrongPosition { revealed: p, first: t });
	}
	if leaves.len() as u64 != ops_at(h, Shape::at(h, job.prompt_len(), t))
		|| position_root(leaves) != roots[t as usize]
	{
		return Err(VerifyError::RevealMismatch { position: t });
	}
	// Positions before t agree with the honest ones, so their honest step hashes are the
	// committed ones (the inclusion proofs of earlier keys and values are taken in them).
	let mut committed: Vec<Vec<Hash>> = honest.step_hashes[..t as usize].to_vec();
	committed.push(leaves.to_vec());
	let fast = model.fast().map_err(|e| VerifyError::Execution(e.to_string()))?;
	let kernel = Kernel::detect();
	let found =
		with_threads(threads, || fast.find_fraud(&model.file.chunks, job, &committed, kernel))
			.map_err(|e| VerifyError::Execution(format!("{e:?}")))?;
	let Some(proof) = found else {
		return Err(VerifyError::Execution("the revealed position has no wrong step".into()));
	};
	let verdict = check_step_proof(h, job, roots, &proof)
		.map_err(|e| VerifyError::Execution(format!("our proof is rejected: {e:?}")))?;
	if verdict != Verdict::Fraud {
		return Err(VerifyError::Execution("our proof is not judged fraud".into()));
	}
	let kind = op_at(h, Shape::at(h, job.prompt_len(), proof.position), proof.op)
		.ok_or_else(|| VerifyError::Execution("no such op".into()))?;
	Ok(Outcome::Fraud { position: proof.position, op: proof.op, kind, proof: Box::new(proof) })
}

/// The honest run of `job` (fast backend, step hashes included).
pub fn honest_run(model: &TextModel, job: &LmJob, threads: usize) -> Result<FastRun, VerifyError> {
	job.check(&model.file.header).map_err(|e| VerifyError::BadJob(format!("{e:?}")))?;
	let fast = model.fast().map_err(|e| VerifyError::Execution(e.to_string()))?;
	let kernel = Kernel::detect();
	with_threads(threads, || fast.generate(job, FastOptions::with_kernel(kernel)))
		.map_err(|e| VerifyError::Execution(format!("{e:?}")))
}

/// Re-run the committed job on `model` and compare (`reveal`: every committed step hash).
pub fn verify(
	model: &TextModel,
	c: &Commitment,
	reveal: Option<&[Vec<Hash>]>,
	threads: usize,
) -> Result<Outcome, VerifyError> {
	let id = model.file.id();
	if hash_from_hex(&c.model, "model")? != id {
		return Err(VerifyError::WrongModel { committed: c.model.clone(), model: hex::encode(id) });
	}
	let (job, roots) = (c.job()?, c.roots()?);
	if job_root(&roots) != hash_from_hex(&c.job_root, "job root")? {
		return Err(VerifyError::RootMismatch);
	}
	if let Some(reveal) = reveal {
		let n = reveal.len().max(roots.len());
		for t in 0..n {
			let same = reveal.get(t).map(|l| position_root(l)) == roots.get(t).copied();
			if !same {
				return Err(VerifyError::RevealMismatch { position: t as u32 });
			}
		}
	}
	let honest = honest_run(model, &job, threads)?;
	let first = first_differing(&honest.position_roots, &roots);
	let leaves = match (reveal, first) {
		(Some(r), Some(t)) => r.get(t as usize).map(|l| (t, l.as_slice())),
		_ => None,
	};
	judge(model, &job, &honest, &roots, Some(&c.tokens), leaves, threads)
}
