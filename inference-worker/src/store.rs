//! The model store: a directory of model files named by their id,
//! `<dir>/<64 hex digits of the model id>.vmodel`. Every file is verified against the id in its
//! name (header hash and every weight hash) and validated when it is added and when it is
//! loaded; a mismatch is refused.

use std::{
	fs,
	path::{Path, PathBuf},
};

use verity_primitives::ModelId;

use crate::model::{LoadedModel, ModelError};

/// File extension of model files.
pub const MODEL_EXT: &str = "vmodel";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
	#[error("{path}: {source}")]
	Io { path: PathBuf, source: std::io::Error },
	#[error("{path}: {source}")]
	Model { path: PathBuf, source: ModelError },
	#[error("model {0} is not in the store")]
	NotFound(String),
}

/// A directory of verified model files.
#[derive(Clone, Debug)]
pub struct ModelStore {
	dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
	move |source| StoreError::Io { path: path.to_path_buf(), source }
}

impl ModelStore {
	/// A store in `dir` (created if missing).
	pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
		let dir = dir.into();
		fs::create_dir_all(&dir).map_err(io(&dir))?;
		Ok(ModelStore { dir })
	}

	pub fn dir(&self) -> &Path {
		&self.dir
	}

	/// Path of the file of model `id`.
	pub fn path_of(&self, id: &ModelId) -> PathBuf {
		self.dir.join(format!("{}.{MODEL_EXT}", hex::encode(id)))
	}

	/// Verify and add a model file's bytes; returns the model. Writing is atomic (temporary
	/// file, then rename), so a reader never sees a partial file.
	pub fn add_bytes(&self, bytes: &[u8], source: &Path) -> Result<LoadedModel, StoreError> {
		let model = LoadedModel::from_bytes(bytes, None).map_err(|source_err| {
			StoreError::Model { path: source.to_path_buf(), source: source_err }
		})?;
		let path = self.path_of(&model.id);
		let tmp = self.dir.join(format!(".{}.tmp-{}", hex::encode(model.id), std::process::id()));
		fs::write(&tmp, bytes).map_err(io(&tmp))?;
		fs::rename(&tmp, &path).map_err(io(&path))?;
		Ok(model)
	}

	/// Verify and add the model file at `path`.
	pub fn add_file(&self, path: &Path) -> Result<LoadedModel, StoreError> {
		let bytes = fs::read(path).map_err(io(path))?;
		self.add_bytes(&bytes, path)
	}

	/// Load model `id`, verifying the file against the id.
	pub fn load(&self, id: &ModelId) -> Result<LoadedModel, StoreError> {
		let path = self.path_of(id);
		let bytes = match fs::read(&path) {
			Ok(b) => b,
			Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
				return Err(StoreError::NotFound(verity_worker_api::hex::encode(id)))
			},
			Err(e) => return Err(StoreError::Io { path, source: e }),
		};
		LoadedModel::from_bytes(&bytes, Some(id))
			.map_err(|source| StoreError::Model { path, source })
	}

	/// The ids of the model files in the store (files named `<id>.vmodel`), sorted.
	pub fn ids(&self) -> Result<Vec<ModelId>, StoreError> {
		let mut ids = Vec::new();
		for entry in fs::read_dir(&self.dir).map_err(io(&self.dir))? {
			let entry = entry.map_err(io(&self.dir))?;
			let name = entry.file_name();
			let Some(name) = name.to_str() else { continue };
			let Some(stem) = name.strip_suffix(&format!(".{MODEL_EXT}")) else { continue };
			if let Ok(id) = verity_worker_api::hex::decode_hash(stem) {
				if stem.len() == 64 {
					ids.push(id);
				}
			}
		}
		ids.sort();
		Ok(ids)
	}

	/// Load every model; files that fail verification are reported, not loaded.
	pub fn load_all(&self) -> Result<(Vec<LoadedModel>, Vec<StoreError>), StoreError> {
		let mut ok = Vec::new();
		let mut bad = Vec::new();
		for id in self.ids()? {
			match self.load(&id) {
				Ok(m) => ok.push(m),
				Err(e) => bad.push(e),
			}
		}
		Ok((ok, bad))
	}
}
