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

use std::{str::FromStr, sync::OnceLock};

use crate::model::LoadedModel;

/// The environment variable read by `verity-worker-faulty`.
pub const ENV: &str = "VERITY_WORKER_FAULT";

/// An injectable fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
	/// Execute every model with the weights of [`target_step`] inverted.
	SubstituteWeights,
}

impl Fault {
	pub fn name(self) -> &'static str {
		match self {
			Fault::SubstituteWeights => "substitute-weights",
		}
	}
}

impl FromStr for Fault {
	type Err = String;
	fn from_str(s: &str) -> Result<Self, String> {
		match s {
			"substitute-weights" => Ok(Fault::SubstituteWeights),
			other => Err(format!("unknown fault `{other}` (expected substitute-weights)")),
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
		None => {},
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
