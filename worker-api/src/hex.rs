//! `0x`-prefixed lowercase hex, the format of every byte string and hash of the API, and the
//! serde helpers that write fields in it (`#[serde(with = "verity_worker_api::hex::bytes")]`).

pub use ::hex::FromHexError;

use crate::Hash;
use alloc::{string::String, vec::Vec};
use core::fmt;

/// `0x` + lowercase hex.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
	let mut s = String::from("0x");
	s.push_str(&::hex::encode(bytes.as_ref()));
	s
}

/// Why a string is not the hex expected.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HexError {
	/// Not hex (odd length, a character that is not a hex digit).
	Invalid(::hex::FromHexError),
	/// Hex of `got` bytes where a 32-byte hash was expected.
	NotAHash { got: usize },
}

impl fmt::Display for HexError {
	fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
		match self {
			HexError::Invalid(e) => write!(f, "invalid hex: {e}"),
			HexError::NotAHash { got } => {
				write!(f, "expected 32 bytes (64 hex digits), got {got} bytes")
			},
		}
	}
}

/// Decode hex with or without a `0x` (or `0X`) prefix; surrounding whitespace is ignored.
pub fn decode(s: &str) -> Result<Vec<u8>, HexError> {
	let t = s.trim();
	let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
	::hex::decode(t).map_err(HexError::Invalid)
}

/// Decode a 32-byte hash (model id, step hash, job key, trace root).
pub fn decode_hash(s: &str) -> Result<Hash, HexError> {
	let v = decode(s)?;
	Hash::try_from(v.as_slice()).map_err(|_| HexError::NotAHash { got: v.len() })
}

fn string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
	<String as serde::Deserialize>::deserialize(d)
}

/// A byte string field as hex.
pub mod bytes {
	use alloc::vec::Vec;
	use serde::{de::Error, Deserializer, Serializer};

	pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
		s.serialize_str(&super::encode(b))
	}

	pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
		super::decode(&super::string(d)?).map_err(D::Error::custom)
	}
}

/// A 32-byte hash field as hex.
pub mod hash {
	use crate::Hash;
	use serde::{de::Error, Deserializer, Serializer};

	pub fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
		s.serialize_str(&super::encode(h))
	}

	pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
		super::decode_hash(&super::string(d)?).map_err(D::Error::custom)
	}
}

/// A list of 32-byte hashes as a list of hex strings.
pub mod hashes {
	use crate::Hash;
	use alloc::{string::String, vec::Vec};
	use serde::{de::Error, Deserialize, Deserializer, Serializer};

	pub fn serialize<S: Serializer>(hs: &[Hash], s: S) -> Result<S::Ok, S::Error> {
		s.collect_seq(hs.iter().map(super::encode))
	}

	pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
		Vec::<String>::deserialize(d)?
			.iter()
			.map(|h| super::decode_hash(h).map_err(D::Error::custom))
			.collect()
	}
}
