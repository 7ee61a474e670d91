//! Canonical decoding of headers and the model file format (see `docs/MODEL_FORMAT.md`).

use alloc::vec::Vec;
use codec::{Decode, DecodeLimit, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

use crate::model::{model_id, weight_hash, ModelHeader, ModelId};

/// Nesting limit passed to `decode_all_with_depth_limit` (headers nest at most 4 levels).
pub const MAX_DECODE_DEPTH: u32 = 16;

/// Header size limit used by [`ModelFile::decode`] (1 MiB).
pub const DEFAULT_MAX_HEADER_BYTES: u32 = 1 << 20;

/// Magic bytes at the start of a model file.
pub const MODEL_FILE_MAGIC: [u8; 8] = *b"VRTYMODL";

/// The model file format version this crate reads and writes.
pub const MODEL_FILE_VERSION: u32 = 1;

/// Why bytes do not decode.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum DecodeError {
	/// More bytes than the caller's limit.
	TooLarge,
	/// Not a valid SCALE encoding of the type, or trailing bytes.
	Malformed,
	/// Decodes, but re-encodes to different bytes.
	NonCanonical,
}

/// Decode a SCALE value from untrusted bytes, canonically: at most `max_bytes` bytes, nesting
/// depth at most [`MAX_DECODE_DEPTH`], no trailing bytes, and the value must re-encode to
/// exactly `bytes`. Never panics; memory is bounded by a small multiple of `bytes.len()` plus
/// a 16 KiB chunk per nesting level (the codec grows vectors in chunks while decoding, so a
/// huge declared length with few bytes behind it fails after one chunk).
pub fn decode_canonical<T: Decode + Encode>(
	bytes: &[u8],
	max_bytes: u32,
) -> Result<T, DecodeError> {
	if bytes.len() as u64 > u64::from(max_bytes) {
		return Err(DecodeError::TooLarge);
	}
	let mut input = bytes;
	let value = T::decode_all_with_depth_limit(MAX_DECODE_DEPTH, &mut input)
		.map_err(|_| DecodeError::Malformed)?;
	if value.encode() != bytes {
		return Err(DecodeError::NonCanonical);
	}
	Ok(value)
}

/// [`decode_canonical`] for a [`ModelHeader`]. Decoding does not validate: call
/// [`crate::validate::validate`] next.
pub fn decode_header(bytes: &[u8], max_bytes: u32) -> Result<ModelHeader, DecodeError> {
	decode_canonical(bytes, max_bytes)
}

/// Why a model file is rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, TypeInfo, MaxEncodedLen)]
pub enum FileError {
	/// The file does not start with [`MODEL_FILE_MAGIC`].
	BadMagic,
	/// The version field is not [`MODEL_FILE_VERSION`].
	UnsupportedVersion,
	/// The file ends inside the fixed fields or the header.
	Truncated,
	/// The header could not be decoded canonically.
	Header(DecodeError),
	/// The bytes after the header are not exactly the sum of the declared weight lengths.
	WeightsLength,
	/// The model has a different number of weight blobs than ops.
	WeightCount,
	/// The header's id differs from the expected id.
	IdMismatch,
	/// The weights of op `op` (1-based) do not match its declared length or hash.
	WeightMismatch { op: u32 },
}

impl core::fmt::Display for FileError {
	fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
		write!(f, "bad model file: {:?}", self)
	}
}

#[cfg(feature = "std")]
impl std::error::Error for FileError {}

/// A whole model: header plus the weight bytes of every op (`weights[i - 1]` for op `i`).
///
/// File layout (all integers little-endian):
///
/// | bytes | content |
/// |---|---|
/// | 8 | magic `b"VRTYMODL"` |
/// | 4 | file version, `u32` = 1 |
/// | 4 | header length `L`, `u32` |
/// | `L` | SCALE-encoded [`ModelHeader`] (canonical) |
/// | ... | weight bytes of op 1, op 2, ..., op n, concatenated, each exactly `weight_len` bytes |
///
/// Nothing follows the last op's weights.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ModelFile {
	pub header: ModelHeader,
	pub weights: Vec<Vec<u8>>,
}

impl ModelFile {
	/// Encode to the file layout above.
	pub fn encode(&self) -> Vec<u8> {
		let header = self.header.encode();
		let weights_len: usize = self.weights.iter().map(|w| w.len()).sum();
		let mut out = Vec::with_capacity(16 + header.len() + weights_len);
		out.extend_from_slice(&MODEL_FILE_MAGIC);
		out.extend_from_slice(&MODEL_FILE_VERSION.to_le_bytes());
		out.extend_from_slice(&(header.len() as u32).to_le_bytes());
		out.extend_from_slice(&header);
		for w in &self.weights {
			out.extend_from_slice(w);
		}
		out
	}

	/// Decode a file with a header of at most [`DEFAULT_MAX_HEADER_BYTES`].
	pub fn decode(bytes: &[u8]) -> Result<ModelFile, FileError> {
		Self::decode_with_limit(bytes, DEFAULT_MAX_HEADER_BYTES)
	}

	/// Decode a file whose header is at most `max_header_bytes` long. The header is decoded
	/// canonically; the weights are split by the declared `weight_len`s and must use up the
	/// file exactly. Hashes are not checked here (see [`ModelFile::verify`]) and the header is
	/// not validated (see [`crate::validate::validate`]).
	pub fn decode_with_limit(bytes: &[u8], max_header_bytes: u32) -> Result<ModelFile, FileError> {
		let (magic, rest) = bytes.split_at_checked(8).ok_or(FileError::Truncated)?;
		if magic != MODEL_FILE_MAGIC {
			return Err(FileError::BadMagic);
		}
		let (version, rest) = take_u32(rest)?;
		if version != MODEL_FILE_VERSION {
			return Err(FileError::UnsupportedVersion);
		}
		let (header_len, rest) = take_u32(rest)?;
		if header_len > max_header_bytes {
			return Err(FileError::Header(DecodeError::TooLarge));
		}
		let header_len = usize::try_from(header_len).map_err(|_| FileError::Truncated)?;
		let (header_bytes, mut rest) =
			rest.split_at_checked(header_len).ok_or(FileError::Truncated)?;
		let header = decode_header(header_bytes, max_header_bytes).map_err(FileError::Header)?;
		let total: u64 = header.ops.iter().map(|op| u64::from(op.weight_len)).sum();
		if total != rest.len() as u64 {
			return Err(FileError::WeightsLength);
		}
		let mut weights = Vec::with_capacity(header.ops.len());
		for op in &header.ops {
			let len = usize::try_from(op.weight_len).map_err(|_| FileError::WeightsLength)?;
			let (w, tail) = rest.split_at_checked(len).ok_or(FileError::WeightsLength)?;
			weights.push(w.to_vec());
			rest = tail;
		}
		Ok(ModelFile { header, weights })
	}

	/// The model id of the header.
	pub fn id(&self) -> ModelId {
		model_id(&self.header)
	}

	/// Check every op's weights against its declared length and hash.
	pub fn verify_weights(&self) -> Result<(), FileError> {
		if self.weights.len() != self.header.ops.len() {
			return Err(FileError::WeightCount);
		}
		for (i, (op, w)) in self.header.ops.iter().zip(&self.weights).enumerate() {
			let op_index = crate::len_u32(i).saturating_add(1);
			if w.len() as u64 != u64::from(op.weight_len) || weight_hash(w) != op.weight_hash {
				return Err(FileError::WeightMismatch { op: op_index });
			}
		}
		Ok(())
	}

	/// Check that the header has id `id` and every op's weights match the header.
	pub fn verify(&self, id: &ModelId) -> Result<(), FileError> {
		if self.id() != *id {
			return Err(FileError::IdMismatch);
		}
		self.verify_weights()
	}
}

/// A little-endian `u32` from the front of `bytes` and the rest (shared by the file formats).
pub(crate) fn take_u32(bytes: &[u8]) -> Result<(u32, &[u8]), FileError> {
	let (head, rest) = bytes.split_first_chunk::<4>().ok_or(FileError::Truncated)?;
	Ok((u32::from_le_bytes(*head), rest))
}
