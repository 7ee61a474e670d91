//! 0x-prefixed lowercase hex for bytes and hashes (the API and CLI format).

/// `0x` + lowercase hex.
pub fn hex0x(bytes: impl AsRef<[u8]>) -> String {
	format!("0x{}", hex::encode(bytes.as_ref()))
}

/// Parse hex with or without a `0x` prefix.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
	let t = s.trim();
	let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
	hex::decode(t).map_err(|e| format!("invalid hex: {e}"))
}

/// Parse a 32-byte hash (model id, step hash, job key).
pub fn parse_hash(s: &str) -> Result<[u8; 32], String> {
	let v = parse_hex(s)?;
	<[u8; 32]>::try_from(v.as_slice())
		.map_err(|_| format!("expected 32 bytes (64 hex digits), got {} bytes", v.len()))
}
