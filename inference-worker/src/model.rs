//! A verified, validated model in memory.

use verity_primitives::{validate, FileError, Limits, ModelFile, ModelHeader, ModelId, ModelInfo};

/// Why a model file is refused.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
	#[error("not a Verity model file: {0:?}")]
	Decode(FileError),
	#[error("model file does not match its id {}: {reason}", verity_worker_api::hex::encode(.id))]
	Verify { id: ModelId, reason: String },
	#[error("invalid model: op {op}: {reason}")]
	Invalid { op: u32, reason: String },
}

/// Limits a model must satisfy to be served: `Limits::default()` of verity-primitives
/// (generous off-chain limits; the chain enforces its own at registration).
pub fn worker_limits() -> Limits {
	Limits::default()
}

/// A model whose file has been checked against its id and whose header validates.
#[derive(Clone, Debug)]
pub struct LoadedModel {
	pub id: ModelId,
	pub header: ModelHeader,
	/// `weights[i - 1]` = weight bytes of op `i`.
	pub weights: Vec<Vec<u8>>,
	pub info: ModelInfo,
}

impl LoadedModel {
	/// Decode a model file, verify it against `expected` (or against the id of its own header
	/// if `None`: every weight hash is still checked) and validate the header.
	pub fn from_bytes(bytes: &[u8], expected: Option<&ModelId>) -> Result<Self, ModelError> {
		let file = ModelFile::decode(bytes).map_err(ModelError::Decode)?;
		Self::from_file(file, expected)
	}

	pub fn from_file(file: ModelFile, expected: Option<&ModelId>) -> Result<Self, ModelError> {
		let id = file.id();
		let check = match expected {
			Some(e) => file.verify(e),
			None => file.verify_weights(),
		};
		check.map_err(|e| ModelError::Verify {
			id: expected.copied().unwrap_or(id),
			reason: match e {
				FileError::IdMismatch => "the header hashes to another id".to_string(),
				FileError::WeightMismatch { op } => {
					format!("the weights of op {op} do not match the hash in the header")
				},
				other => format!("{other:?}"),
			},
		})?;
		let info = validate(&file.header, &worker_limits())
			.map_err(|e| ModelError::Invalid { op: e.op, reason: format!("{:?}", e.reason) })?;
		#[allow(unused_mut)]
		let mut model = LoadedModel { id, header: file.header, weights: file.weights, info };
		// Test builds only (`verity-worker-faulty`): the fault is injected after verification,
		// so the model keeps its genuine id.
		#[cfg(feature = "fault-injection")]
		crate::fault::apply(&mut model);
		Ok(model)
	}

	pub fn input_len(&self) -> usize {
		self.info.input_elements as usize
	}

	pub fn output_len(&self) -> usize {
		self.info.output_elements as usize
	}

	pub fn num_ops(&self) -> u32 {
		self.header.num_ops()
	}

	pub fn file(&self) -> ModelFile {
		ModelFile { header: self.header.clone(), weights: self.weights.clone() }
	}
}
