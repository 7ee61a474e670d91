//! Fraud proofs: what a watcher submits and how the chain judges it.

use alloc::vec::Vec;
use codec::{Decode, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

use crate::{
	commit::step_hash,
	interp::{execute, execute_step, ExecError, Trace},
	model::{weight_hash, Hash, ModelHeader},
};

/// A claim that the operator's committed `h_step` is wrong: the step's input tensors (in the
/// order of `Op::inputs`, one entry per reference) and the op's weight bytes.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, TypeInfo)]
pub struct FraudProof {
	/// The 1-based op index.
	pub step: u32,
	/// The op's input tensors, as committed by the operator.
	pub input_tensors: Vec<Vec<u8>>,
	/// The op's weight bytes (as registered in the header).
	pub weights: Vec<u8>,
}

/// The judgement of a well-formed fraud proof.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum Verdict {
	/// Re-executing the step gives a different hash than the operator committed.
	Fraud,
	/// Re-executing the step reproduces the operator's committed hash.
	NoFraud,
}

/// Why a fraud proof is not judged (it is malformed or does not match the commitments).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum ProofError {
	/// `committed_hashes` does not have `n + 1` entries.
	WrongHashCount { expected: u32, got: u32 },
	/// `step` is not in `1..=n`.
	StepOutOfRange,
	/// The number of input tensors differs from the op's number of inputs.
	WrongInputCount,
	/// Input tensor `index` has the wrong length or does not hash to the committed hash of the
	/// step that produced it.
	InputMismatch { index: u32 },
	/// The weights do not have the declared length and hash.
	WeightsMismatch,
	/// The step could not be executed (only possible on an invalid header).
	Execution(ExecError),
}

impl core::fmt::Display for ProofError {
	fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
		write!(f, "fraud proof rejected: {:?}", self)
	}
}

#[cfg(feature = "std")]
impl std::error::Error for ProofError {}

/// Judge a fraud proof against an operator's committed step hashes `[h_0, ..., h_n]`:
///
/// 1. `committed_hashes.len() == n + 1` and `1 <= step <= n`;
/// 2. there is one input tensor per input reference `r` of the op; each has exactly the
///    element count of tensor `r`'s declared shape and
///    `step_hash(r, shape_r, tensor) == committed_hashes[r]`;
/// 3. `weights.len() == weight_len` and `blake2_256(weights) == weight_hash`;
/// 4. the op is re-executed with [`execute_step`];
/// 5. [`Verdict::Fraud`] iff `step_hash(step, output_shape, output) != committed_hashes[step]`.
///
/// Any failure of 1-4 is an `Err`: the proof is rejected, not judged. Because every input and
/// the weights are bound to the commitments by hashes and execution is deterministic, a proof
/// against an honest trace can never yield `Fraud` (barring a blake2-256 collision).
/// Cost: hashing the proof's bytes plus [`crate::validate::step_macs`] of the step.
pub fn check_fraud_proof(
	header: &ModelHeader,
	committed_hashes: &[Hash],
	proof: &FraudProof,
) -> Result<Verdict, ProofError> {
	let expected = header.ops.len().saturating_add(1);
	if committed_hashes.len() != expected {
		return Err(ProofError::WrongHashCount {
			expected: crate::len_u32(expected),
			got: crate::len_u32(committed_hashes.len()),
		});
	}
	let op = header.op(proof.step).ok_or(ProofError::StepOutOfRange)?;
	if proof.input_tensors.len() != op.inputs.len() {
		return Err(ProofError::WrongInputCount);
	}
	for (j, (&r, tensor)) in op.inputs.iter().zip(&proof.input_tensors).enumerate() {
		let index = crate::len_u32(j);
		let mismatch = ProofError::InputMismatch { index };
		// r < step is checked by the structural check in execute_step; here r only needs to
		// name an existing tensor (a forward reference would still be rejected below).
		if r >= proof.step {
			return Err(mismatch);
		}
		let spec = header.tensor_spec(r).ok_or(mismatch)?;
		let len = spec.num_elements().and_then(|n| usize::try_from(n).ok()).ok_or(mismatch)?;
		if tensor.len() != len {
			return Err(mismatch);
		}
		let committed =
			committed_hashes.get(usize::try_from(r).map_err(|_| mismatch)?).ok_or(mismatch)?;
		if step_hash(r, &spec.shape, tensor) != *committed {
			return Err(mismatch);
		}
	}
	if proof.weights.len() as u64 != u64::from(op.weight_len)
		|| weight_hash(&proof.weights) != op.weight_hash
	{
		return Err(ProofError::WeightsMismatch);
	}
	let output = execute_step(header, proof.step, &proof.input_tensors, &proof.weights)
		.map_err(ProofError::Execution)?;
	let recomputed = step_hash(proof.step, &op.output.shape, &output);
	let committed = usize::try_from(proof.step)
		.ok()
		.and_then(|s| committed_hashes.get(s))
		.ok_or(ProofError::StepOutOfRange)?;
	Ok(if recomputed == *committed { Verdict::NoFraud } else { Verdict::Fraud })
}

/// The first index where two hash lists differ (or the shorter length if one is a prefix of
/// the other and they differ in length); `None` if equal.
pub fn first_mismatch(honest: &[Hash], committed: &[Hash]) -> Option<u32> {
	let i = honest.iter().zip(committed).position(|(a, b)| a != b);
	let i = match i {
		Some(i) => i,
		None if honest.len() == committed.len() => return None,
		None => honest.len().min(committed.len()),
	};
	u32::try_from(i).ok()
}

/// The fraud proof for `step` from an honest trace and the model's weights (`weights[i - 1]`
/// for op `i`); `None` if `step` is out of range or the trace lacks a tensor.
pub fn build_fraud_proof<W: AsRef<[u8]>>(
	header: &ModelHeader,
	trace: &Trace,
	weights: &[W],
	step: u32,
) -> Option<FraudProof> {
	let op = header.op(step)?;
	let mut input_tensors = Vec::with_capacity(op.inputs.len());
	for &r in &op.inputs {
		input_tensors.push(trace.tensor(r)?.to_vec());
	}
	let w = weights.get(usize::try_from(step).ok()?.checked_sub(1)?)?;
	Some(FraudProof { step, input_tensors, weights: w.as_ref().to_vec() })
}

/// Why [`find_fraud`] cannot produce a proof.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum FindFraudError {
	/// Honest execution failed (invalid model, wrong input or weight lengths).
	Execution(ExecError),
	/// The committed list does not have `n + 1` entries (the chain rejects such commitments).
	WrongHashCount,
	/// `h_0` differs: the commitment is for another input (the chain checks `h_0` on commit,
	/// so this is not provable by a fraud proof).
	InputMismatch,
}

/// Re-execute the model honestly and compare with an operator's committed hashes. Returns
/// `Ok(None)` if every committed hash is right, otherwise the fraud proof for the first wrong
/// step `i >= 1` (its inputs are the honest tensors, whose hashes the operator committed
/// correctly since every earlier step is right; so [`check_fraud_proof`] returns `Fraud`).
pub fn find_fraud<W: AsRef<[u8]>>(
	header: &ModelHeader,
	weights: &[W],
	input: &[u8],
	committed_hashes: &[Hash],
) -> Result<Option<FraudProof>, FindFraudError> {
	let trace = execute(header, weights, input).map_err(FindFraudError::Execution)?;
	let honest = trace.step_hashes(header).ok_or(FindFraudError::WrongHashCount)?;
	if honest.len() != committed_hashes.len() {
		return Err(FindFraudError::WrongHashCount);
	}
	match first_mismatch(&honest, committed_hashes) {
		None => Ok(None),
		Some(0) => Err(FindFraudError::InputMismatch),
		Some(step) => Ok(build_fraud_proof(header, &trace, weights, step)),
	}
}
