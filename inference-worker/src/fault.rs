//! Fault injection, for tests only: compiled with the cargo feature `fault-injection` (off by
//! default, so neither `cargo build -p verity-worker` nor a workspace build contains it) and
//! turned on only by the `verity-worker-faulty` binary, when the environment variable
//! [`ENV`] is set. The `verity-worker` binary never turns it on, even when built with the
//! feature (as `cargo test --features fault-injection` does).
//!
//! `VERITY_WORKER_FAULT=substitute-weights`: every model is executed with the weights of one
//! op substituted, [`target_step`] (the last op that has weights), every byte of which is
//! inverted (`w → !w = -w - 1`; for a Lookup table every entry changes). The substitution
//! happens after the model file was verified against its id, so the worker reports the genuine
//! model id and the genuine step hashes up to the chosen step; from that step on its
//! commitment is wrong, which an honest worker's `prove` detects at exactly that step.
//!
//! `VERITY_WORKER_FAULT=lm-weights`: every language model generates honestly up to the first
//! position after the prompt ([`lm_fault_position`]); from that position on, one weight of
//! every quantization block of query head 0 of its middle layer ([`lm_fault_layer`]) is
//! changed. Its tokens, step hashes and roots are computed honestly from what it actually did,
//! so the first wrong step is `Q(layer, 0)` at that position (the generation's commitment is
//! wrong from there on and an honest worker's `proveGeneration` proves it at exactly that
//! step). Classifier models execute honestly under this fault.

use std::{
	collections::HashMap,
	str::FromStr,
	sync::{Arc, Mutex, OnceLock},
};

use verity_primitives::lm::{
	header::{LmHeader, WeightChunk},
	interp::{LmExecError, LmJob},
};

use crate::{
	generate::TextModel,
	lm_fast::{FastLm, FastOptions, FastRun, LmFault},
	model::LoadedModel,
};

type Hash = [u8; 32];

/// The environment variable read by `verity-worker-faulty`.
pub const ENV: &str = "VERITY_WORKER_FAULT";

/// An injectable fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
	/// Execute every model with the weights of [`target_step`] inverted.
	SubstituteWeights,
	/// Generate with one weight of every block of query head 0 of the middle layer changed,
	/// from the first position after the prompt on.
	LmWeights,
}

impl Fault {
	pub fn name(self) -> &'static str {
		match self {
			Fault::SubstituteWeights => "substitute-weights",
			Fault::LmWeights => "lm-weights",
		}
	}
}

impl FromStr for Fault {
	type Err = String;
	fn from_str(s: &str) -> Result<Self, String> {
		match s {
			"substitute-weights" => Ok(Fault::SubstituteWeights),
			"lm-weights" => Ok(Fault::LmWeights),
			other => {
				Err(format!("unknown fault `{other}` (expected substitute-weights or lm-weights)"))
			},
		}
	}
}

static ACTIVE: OnceLock<Fault> = OnceLock::new();

/// Turn `fault` on for the rest of the process (first call wins).
pub fn enable(fault: Fault) {
	let _ = ACTIVE.set(fault);
}

/// The fault turned on in this process, if any.
pub fn active() -> Option<Fault> {
	ACTIVE.get().copied()
}

/// Read [`ENV`] and turn the fault it names on; `Ok(None)` if it is unset or empty.
pub fn enable_from_env() -> Result<Option<Fault>, String> {
	let Some(value) = std::env::var_os(ENV) else { return Ok(None) };
	let value = value.to_str().ok_or_else(|| format!("{ENV} is not UTF-8"))?.trim().to_string();
	if value.is_empty() {
		return Ok(None);
	}
	let fault: Fault = value.parse().map_err(|e| format!("{ENV}: {e}"))?;
	enable(fault);
	Ok(Some(fault))
}

/// The step (1-based op index) whose weights [`substitute_weights`] replaces: the last op with
/// weights; `None` if the model has no weights at all.
pub fn target_step(model: &LoadedModel) -> Option<u32> {
	let index = model.weights.iter().rposition(|w| !w.is_empty())?;
	u32::try_from(index + 1).ok()
}

/// Replace the weights of [`target_step`] by their bitwise inverse (same length, so the model
/// still executes; the header and hence the id are untouched). Returns the step.
pub fn substitute_weights(model: &mut LoadedModel) -> Option<u32> {
	let step = target_step(model)?;
	for b in model.weights.get_mut(step as usize - 1)?.iter_mut() {
		*b = !*b;
	}
	Some(step)
}

/// Apply the active fault to a model that has just been verified (called by
/// `LoadedModel::from_file`); a no-op unless a fault was turned on.
pub(crate) fn apply(model: &mut LoadedModel) {
	match active() {
		None | Some(Fault::LmWeights) => {},
		Some(Fault::SubstituteWeights) => match substitute_weights(model) {
			Some(step) => eprintln!(
				"verity-worker: FAULT INJECTION: model {} executes with substituted weights of op {step} (its results from step {step} on are WRONG)",
				verity_worker_api::hex::encode(model.id)
			),
			None => eprintln!(
				"verity-worker: FAULT INJECTION: model {} has no weights; it executes honestly",
				verity_worker_api::hex::encode(model.id)
			),
		},
	}
}

// ---- language models ------------------------------------------------------------------------

/// The layer whose query head 0 [`Fault::LmWeights`] changes: the middle one.
pub fn lm_fault_layer(header: &LmHeader) -> u32 {
	header.n_layers / 2
}

/// The first position [`Fault::LmWeights`] computes with the changed weights: the first one
/// after the prompt (its input is the first generated token).
pub fn lm_fault_position(job: &LmJob) -> u32 {
	u32::try_from(job.prompt.len()).unwrap_or(u32::MAX)
}

/// `model`'s weights with one weight of every block of query head 0 of [`lm_fault_layer`]
/// changed (its second byte of each 34-byte block: the first weight after the block scale).
pub fn lm_faulty_weights(model: &TextModel) -> Option<FastLm> {
	let h = &model.file.header;
	let mut chunks = model.file.chunks.clone();
	let i = h.chunk_index(WeightChunk::Wq(lm_fault_layer(h), 0))? as usize;
	let chunk = chunks.get_mut(i)?;
	for b in (2..chunk.len()).step_by(34) {
		chunk[b] ^= 0x40;
	}
	FastLm::new(h, &chunks).ok()
}

/// The faulty models, made once per model.
static FAULTY_LMS: OnceLock<Mutex<HashMap<Hash, Arc<FastLm>>>> = OnceLock::new();

/// Generate `job` with `model` (`fast`: the model packed) as the active fault says: honestly without a fault (or under a
/// classifier fault), with [`lm_faulty_weights`] from [`lm_fault_position`] on under
/// [`Fault::LmWeights`].
pub fn generate(
	model: &TextModel,
	fast: &FastLm,
	job: &LmJob,
	opts: FastOptions,
) -> Result<FastRun, LmExecError> {
	if active() != Some(Fault::LmWeights) {
		return fast.generate(job, opts);
	}
	let id = model.file.id();
	let bad = {
		let mut map =
			FAULTY_LMS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
		match map.get(&id) {
			Some(bad) => bad.clone(),
			None => {
				let Some(bad) = lm_faulty_weights(model) else { return fast.generate(job, opts) };
				let bad = Arc::new(bad);
				map.insert(id, bad.clone());
				bad
			},
		}
	};
	let from_position = lm_fault_position(job);
	eprintln!(
		"verity-worker: FAULT INJECTION: generation on model {} with changed weights of layer {} \
		 from position {from_position} on (WRONG from Q({}, 0) at that position)",
		verity_worker_api::hex::encode(id),
		lm_fault_layer(&model.file.header),
		lm_fault_layer(&model.file.header),
	);
	fast.generate_faulty(job, opts, LmFault::WeightsFrom { from_position, model: &bad })
}
