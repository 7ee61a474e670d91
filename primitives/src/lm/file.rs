//! The transformer model file: the header and every weight chunk, in leaf order.
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `b"VRTYLMDL"` |
//! | 4 | file version, `u32` LE = 1 |
//! | 4 | header length `L`, `u32` LE |
//! | `L` | the canonical SCALE [`LmHeader`] |
//! | ... | the weight chunks in [`LmHeader::weight_chunks`] order, each exactly
//! [`LmHeader::chunk_bytes`] long, back to back; nothing after the last |

use alloc::vec::Vec;
use codec::{Decode, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

use super::{
	header::{decode_lm_header, LmHeader},
	quant::{check_block_scales, WeightError},
	trace::weights_root,
	validate::{check_structure, LmInvalid},
};
use crate::{file::DecodeError, model::Hash};

/// Magic bytes at the start of a transformer model file.
pub const LM_FILE_MAGIC: [u8; 8] = *b"VRTYLMDL";

/// The transformer file format version.
pub const LM_FILE_VERSION: u32 = 1;

/// Why a transformer model file is rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum LmFileError {
	BadMagic,
	UnsupportedVersion,
	/// The file ends inside the fixed fields or the header.
	Truncated,
	Header(DecodeError),
	/// The header is structurally invalid (the chunk layout is then undefined).
	InvalidHeader(LmInvalid),
	/// The bytes after the header are not exactly the chunks the header declares.
	WeightsLength,
	/// The header's id differs from the expected id.
	IdMismatch,
	/// The chunks do not hash to `weights_root`.
	WeightsRootMismatch,
	/// Chunk `chunk` (leaf index) has a non-finite fp16 scale in block `block`.
	NonFiniteScale {
		chunk: u32,
		block: u32,
	},
}

impl core::fmt::Display for LmFileError {
	fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
		write!(f, "bad transformer model file: {:?}", self)
	}
}

#[cfg(feature = "std")]
impl std::error::Error for LmFileError {}

/// A transformer model: the header and its weight chunks in leaf order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LmFile {
	pub header: LmHeader,
	pub chunks: Vec<Vec<u8>>,
}

fn take_u32(bytes: &[u8]) -> Result<(u32, &[u8]), LmFileError> {
	crate::file::take_u32(bytes).map_err(|_| LmFileError::Truncated)
}

impl LmFile {
	/// The file bytes (layout in the module documentation).
	pub fn encode(&self) -> Vec<u8> {
		let header = self.header.encode();
		let mut out = Vec::new();
		out.extend_from_slice(&LM_FILE_MAGIC);
		out.extend_from_slice(&LM_FILE_VERSION.to_le_bytes());
		out.extend_from_slice(&crate::len_u32(header.len()).to_le_bytes());
		out.extend_from_slice(&header);
		for c in &self.chunks {
			out.extend_from_slice(c);
		}
		out
	}

	/// Decode a file whose header is at most `max_header_bytes` long. The header is decoded
	/// canonically and must be structurally valid; the rest must be exactly its chunks. Never
	/// panics; memory is bounded by the file size (the chunk count is checked against the
	/// remaining bytes before the chunk list is built). Hashes are not checked here (see
	/// [`LmFile::verify`]).
	pub fn decode(bytes: &[u8], max_header_bytes: u32) -> Result<LmFile, LmFileError> {
		let (magic, rest) = bytes.split_at_checked(8).ok_or(LmFileError::Truncated)?;
		if magic != LM_FILE_MAGIC {
			return Err(LmFileError::BadMagic);
		}
		let (version, rest) = take_u32(rest)?;
		if version != LM_FILE_VERSION {
			return Err(LmFileError::UnsupportedVersion);
		}
		let (len, rest) = take_u32(rest)?;
		if len > max_header_bytes {
			return Err(LmFileError::Header(DecodeError::TooLarge));
		}
		let len = usize::try_from(len).map_err(|_| LmFileError::Truncated)?;
		let (header_bytes, mut rest) = rest.split_at_checked(len).ok_or(LmFileError::Truncated)?;
		let header =
			decode_lm_header(header_bytes, max_header_bytes).map_err(LmFileError::Header)?;
		check_structure(&header).map_err(LmFileError::InvalidHeader)?;
		// Every chunk has at least 18 bytes, so more chunks than bytes cannot fit.
		if header.num_weight_chunks() > rest.len() as u64 {
			return Err(LmFileError::WeightsLength);
		}
		let layout = header.weight_chunks();
		let total = layout.iter().fold(0u64, |a, &c| a.saturating_add(header.chunk_bytes(c)));
		if total != rest.len() as u64 {
			return Err(LmFileError::WeightsLength);
		}
		let mut chunks = Vec::with_capacity(layout.len());
		for c in layout {
			let n =
				usize::try_from(header.chunk_bytes(c)).map_err(|_| LmFileError::WeightsLength)?;
			let (chunk, tail) = rest.split_at_checked(n).ok_or(LmFileError::WeightsLength)?;
			chunks.push(chunk.to_vec());
			rest = tail;
		}
		Ok(LmFile { header, chunks })
	}

	/// The model id.
	pub fn id(&self) -> Hash {
		self.header.id()
	}

	/// [`LmFile::verify_hashes`], and that every block scale (and Q4_1 minimum) is a finite
	/// fp16 (what publishing tools require; execution reads a non-finite scale as 0).
	pub fn verify(&self, id: &Hash) -> Result<(), LmFileError> {
		self.verify_hashes(id)?;
		self.check_scales()
	}

	/// Check the id and that the chunks hash to `weights_root` (what a worker checks before
	/// executing: the file is the model the id names).
	pub fn verify_hashes(&self, id: &Hash) -> Result<(), LmFileError> {
		if self.id() != *id {
			return Err(LmFileError::IdMismatch);
		}
		if self.header.num_weight_chunks() != self.chunks.len() as u64 {
			return Err(LmFileError::WeightsLength);
		}
		if weights_root(&self.chunks) != self.header.weights_root {
			return Err(LmFileError::WeightsRootMismatch);
		}
		Ok(())
	}

	/// Every block scale and Q4_1 minimum of every matrix chunk is a finite fp16.
	pub fn check_scales(&self) -> Result<(), LmFileError> {
		for (i, (c, bytes)) in self.header.weight_chunks().iter().zip(&self.chunks).enumerate() {
			if let Some((format, _, _)) = self.header.chunk_matrix(*c) {
				check_block_scales(format, bytes).map_err(|e| match e {
					WeightError::NonFiniteScale { block } => {
						LmFileError::NonFiniteScale { chunk: crate::len_u32(i), block }
					},
					WeightError::Length => LmFileError::WeightsLength,
				})?;
			}
		}
		Ok(())
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::lm::header::tests::tiny;

	fn tiny_file() -> LmFile {
		let mut header = tiny();
		let chunks: Vec<Vec<u8>> = header
			.weight_chunks()
			.iter()
			.map(|&c| {
				let mut bytes = alloc::vec![0u8; header.chunk_bytes(c) as usize];
				if let Some((format, _, _)) = header.chunk_matrix(c) {
					for block in bytes.chunks_mut(format.block_bytes()) {
						block[1] = 0x3c; // scale 1.0 (and minimum 0)
					}
				}
				bytes
			})
			.collect();
		header.weights_root = weights_root(&chunks);
		LmFile { header, chunks }
	}

	#[test]
	fn round_trip_and_verify() {
		let file = tiny_file();
		let bytes = file.encode();
		assert_eq!(&bytes[..8], b"VRTYLMDL");
		let decoded = LmFile::decode(&bytes, 1 << 20).unwrap();
		assert_eq!(decoded, file);
		assert_eq!(decoded.verify(&file.id()), Ok(()));
		assert_eq!(decoded.verify(&[0; 32]), Err(LmFileError::IdMismatch));
		let mut tampered = file.clone();
		tampered.chunks[3][5] ^= 1;
		assert_eq!(tampered.verify(&file.id()), Err(LmFileError::WeightsRootMismatch));
	}

	#[test]
	fn non_finite_scales_are_refused_by_verify() {
		let mut file = tiny_file();
		file.chunks[0][1] = 0x7c; // +inf scale in the first embedding block
		file.header.weights_root = weights_root(&file.chunks);
		let id = file.id();
		assert_eq!(file.verify(&id), Err(LmFileError::NonFiniteScale { chunk: 0, block: 0 }));
	}

	#[test]
	fn malformed_files_are_errors() {
		let bytes = tiny_file().encode();
		assert_eq!(
			LmFile::decode(&bytes[..bytes.len() - 1], 1 << 20),
			Err(LmFileError::WeightsLength)
		);
		let mut extra = bytes.clone();
		extra.push(0);
		assert_eq!(LmFile::decode(&extra, 1 << 20), Err(LmFileError::WeightsLength));
		let mut magic = bytes.clone();
		magic[0] = b'X';
		assert_eq!(LmFile::decode(&magic, 1 << 20), Err(LmFileError::BadMagic));
		assert_eq!(LmFile::decode(&bytes[..10], 1 << 20), Err(LmFileError::Truncated));
		assert_eq!(LmFile::decode(&bytes, 10), Err(LmFileError::Header(DecodeError::TooLarge)));
		// Every truncation fails without panicking.
		for n in 0..bytes.len().min(2000) {
			assert!(LmFile::decode(&bytes[..n], 1 << 20).is_err());
		}
	}
}
