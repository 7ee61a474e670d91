//! The inference worker's JSON-RPC API as the agent uses it: one batch request (JSON array of
//! `execute` and `prove` calls, ids = positions) over the node's off-chain HTTP client, and a
//! parser of the batch answer. Byte strings are `0x`-prefixed hex, as in the worker's API
//! (`inference-worker/README.md`).

use alloc::{format, string::String, vec::Vec};
use serde_json::Value;
use sp_runtime::offchain::{http, Duration};
use verity_primitives::{Hash, ModelId};

/// One call of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
	/// Execute `input` on `model`.
	Execute { model: ModelId, input: Vec<u8> },
	/// Compare `step_hashes` with an honest execution of `input` on `model`.
	Prove { model: ModelId, input: Vec<u8>, step_hashes: Vec<Hash> },
}

/// The worker's answer to one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
	/// Not finished within the wait; ask again later.
	Pending,
	/// `execute`: the output and the step hashes `[h_0, ..., h_n]`.
	Executed { output: Vec<u8>, step_hashes: Vec<Hash> },
	/// `prove`: the committed step hashes are those of an honest execution.
	Consistent,
	/// `prove`: step `step` is wrong; `proof` is the SCALE-encoded fraud proof.
	Fraud { step: u32, proof: Vec<u8> },
	/// The worker refused the call (unknown model, queue full, ...).
	Refused { code: i64, message: String },
}

/// Why a batch got no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
	/// The request could not be sent or timed out (the worker is down or slow).
	Http(&'static str),
	/// The worker answered with this HTTP status.
	Status(u16),
	/// The answer is not the JSON-RPC batch answer expected.
	Malformed(&'static str),
}

/// `0x`-prefixed lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
	const DIGITS: &[u8; 16] = b"0123456789abcdef";
	let mut s = String::with_capacity(2 + 2 * bytes.len());
	s.push_str("0x");
	for b in bytes {
		s.push(char::from(DIGITS[usize::from(b >> 4)]));
		s.push(char::from(DIGITS[usize::from(b & 15)]));
	}
	s
}

/// Decode hex with or without a `0x` prefix.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
	let s = s.strip_prefix("0x").unwrap_or(s).as_bytes();
	if s.len() % 2 != 0 {
		return None;
	}
	let digit = |c: u8| match c {
		b'0'..=b'9' => Some(c - b'0'),
		b'a'..=b'f' => Some(c - b'a' + 10),
		b'A'..=b'F' => Some(c - b'A' + 10),
		_ => None,
	};
	s.chunks_exact(2)
		.map(|p| match p {
			[hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
			_ => None,
		})
		.collect()
}

fn hash_of(v: &Value) -> Option<Hash> {
	unhex(v.as_str()?)?.try_into().ok()
}

/// The JSON body of a batch; `wait_ms` is the worker-side wait of every call.
pub fn batch_body(requests: &[Request], wait_ms: u64) -> Vec<u8> {
	let calls: Vec<String> = requests
		.iter()
		.enumerate()
		.map(|(id, r)| match r {
			Request::Execute { model, input } => format!(
				r#"{{"jsonrpc":"2.0","id":{id},"method":"execute","params":["{}","{}",{wait_ms}]}}"#,
				hex(model),
				hex(input)
			),
			Request::Prove { model, input, step_hashes } => {
				let hashes: Vec<String> =
					step_hashes.iter().map(|h| format!("\"{}\"", hex(h))).collect();
				format!(
					r#"{{"jsonrpc":"2.0","id":{id},"method":"prove","params":["{}","{}",[{}],{wait_ms}]}}"#,
					hex(model),
					hex(input),
					hashes.join(",")
				)
			},
		})
		.collect();
	format!("[{}]", calls.join(",")).into_bytes()
}

fn reply_of(request: &Request, answer: &Value) -> Result<Reply, Error> {
	if let Some(e) = answer.get("error") {
		return Ok(Reply::Refused {
			code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
			message: String::from(e.get("message").and_then(Value::as_str).unwrap_or("")),
		});
	}
	let result = answer.get("result").ok_or(Error::Malformed("neither result nor error"))?;
	let status = result.get("status").and_then(Value::as_str).ok_or(Error::Malformed("status"))?;
	match (request, status) {
		(_, "pending") => Ok(Reply::Pending),
		(Request::Execute { .. }, "done") => {
			let output = result
				.get("output")
				.and_then(Value::as_str)
				.and_then(unhex)
				.ok_or(Error::Malformed("output"))?;
			let step_hashes = result
				.get("step_hashes")
				.and_then(Value::as_array)
				.ok_or(Error::Malformed("step_hashes"))?
				.iter()
				.map(hash_of)
				.collect::<Option<Vec<Hash>>>()
				.ok_or(Error::Malformed("step hash"))?;
			Ok(Reply::Executed { output, step_hashes })
		},
		(Request::Prove { .. }, "consistent") => Ok(Reply::Consistent),
		(Request::Prove { .. }, "fraud") => {
			let step = result
				.get("step")
				.and_then(Value::as_u64)
				.and_then(|s| u32::try_from(s).ok())
				.ok_or(Error::Malformed("step"))?;
			let proof = result
				.get("proof")
				.and_then(Value::as_str)
				.and_then(unhex)
				.ok_or(Error::Malformed("proof"))?;
			Ok(Reply::Fraud { step, proof })
		},
		_ => Err(Error::Malformed("unexpected status")),
	}
}

/// Parse the answer to [`batch_body`]`(requests)`: one reply per request, in order.
pub fn parse_batch(requests: &[Request], body: &[u8]) -> Result<Vec<Reply>, Error> {
	let value: Value = serde_json::from_slice(body).map_err(|_| Error::Malformed("not JSON"))?;
	let answers = value.as_array().ok_or(Error::Malformed("not a batch answer"))?;
	let mut replies: Vec<Option<Reply>> = requests.iter().map(|_| None).collect();
	for answer in answers {
		let id = answer
			.get("id")
			.and_then(Value::as_u64)
			.and_then(|i| usize::try_from(i).ok())
			.ok_or(Error::Malformed("id"))?;
		let request = requests.get(id).ok_or(Error::Malformed("unknown id"))?;
		let slot = replies.get_mut(id).ok_or(Error::Malformed("unknown id"))?;
		*slot = Some(reply_of(request, answer)?);
	}
	replies.into_iter().map(|r| r.ok_or(Error::Malformed("missing answer"))).collect()
}

/// Send a batch to the worker at `url` and wait at most [`crate::HTTP_TIMEOUT_MS`].
pub fn call(url: &str, requests: &[Request]) -> Result<Vec<Reply>, Error> {
	if requests.is_empty() {
		return Ok(Vec::new());
	}
	let deadline = sp_io::offchain::timestamp().add(Duration::from_millis(crate::HTTP_TIMEOUT_MS));
	let body = batch_body(requests, crate::WORKER_WAIT_MS);
	let pending = http::Request::post(url, alloc::vec![body])
		.add_header("Content-Type", "application/json")
		.deadline(deadline)
		.send()
		.map_err(|_| Error::Http("cannot send the request"))?;
	let response = pending
		.try_wait(deadline)
		.map_err(|_| Error::Http("no answer before the deadline"))?
		.map_err(|_| Error::Http("the request failed"))?;
	if response.code != 200 {
		return Err(Error::Status(response.code));
	}
	let answer: Vec<u8> = response.body().collect();
	parse_batch(requests, &answer)
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn hex_round_trips() {
		assert_eq!(hex(&[0, 1, 0xab, 0xff]), "0x0001abff");
		assert_eq!(unhex("0x0001abff"), Some(alloc::vec![0, 1, 0xab, 0xff]));
		assert_eq!(unhex("ABff"), Some(alloc::vec![0xab, 0xff]));
		assert_eq!(unhex("0x0"), None);
		assert_eq!(unhex("0xzz"), None);
	}

	#[test]
	fn batch_body_is_positional_json_rpc() {
		let reqs = alloc::vec![
			Request::Execute { model: [1; 32], input: alloc::vec![0xff, 0] },
			Request::Prove {
				model: [2; 32],
				input: alloc::vec![7],
				step_hashes: alloc::vec![[3; 32]]
			},
		];
		let v: Value = serde_json::from_slice(&batch_body(&reqs, 5)).unwrap();
		assert_eq!(v[0]["method"], "execute");
		assert_eq!(v[0]["id"], 0);
		assert_eq!(v[0]["params"][1], "0xff00");
		assert_eq!(v[0]["params"][2], 5);
		assert_eq!(v[1]["method"], "prove");
		assert_eq!(v[1]["params"][2][0], hex(&[3; 32]));
	}

	#[test]
	fn parses_every_kind_of_answer_in_any_order() {
		let reqs = alloc::vec![
			Request::Execute { model: [1; 32], input: alloc::vec![1] },
			Request::Execute { model: [1; 32], input: alloc::vec![2] },
			Request::Prove { model: [1; 32], input: alloc::vec![1], step_hashes: alloc::vec![] },
			Request::Prove { model: [1; 32], input: alloc::vec![1], step_hashes: alloc::vec![] },
			Request::Execute { model: [9; 32], input: alloc::vec![1] },
		];
		let h = hex(&[4; 32]);
		let body = format!(
			r#"[{{"jsonrpc":"2.0","id":3,"result":{{"status":"fraud","step":2,"proof":"0x0102"}}}},
			{{"jsonrpc":"2.0","id":0,"result":{{"status":"done","job":"0x00","output":"0x7f80","step_hashes":["{h}","{h}"]}}}},
			{{"jsonrpc":"2.0","id":1,"result":{{"status":"pending","job":"0x00"}}}},
			{{"jsonrpc":"2.0","id":2,"result":{{"status":"consistent","trace_root":"0x00"}}}},
			{{"jsonrpc":"2.0","id":4,"error":{{"code":-32001,"message":"unknown model"}}}}]"#
		);
		let replies = parse_batch(&reqs, body.as_bytes()).unwrap();
		assert_eq!(
			replies,
			alloc::vec![
				Reply::Executed {
					output: alloc::vec![0x7f, 0x80],
					step_hashes: alloc::vec![[4; 32]; 2]
				},
				Reply::Pending,
				Reply::Consistent,
				Reply::Fraud { step: 2, proof: alloc::vec![1, 2] },
				Reply::Refused { code: -32001, message: "unknown model".into() },
			]
		);
	}

	#[test]
	fn rejects_malformed_answers() {
		let reqs = alloc::vec![Request::Execute { model: [1; 32], input: alloc::vec![1] }];
		let bad = |b: &str| parse_batch(&reqs, b.as_bytes()).unwrap_err();
		assert_eq!(bad("nope"), Error::Malformed("not JSON"));
		assert_eq!(bad(r#"{"id":0}"#), Error::Malformed("not a batch answer"));
		assert_eq!(bad("[]"), Error::Malformed("missing answer"));
		assert_eq!(
			bad(r#"[{"id":5,"result":{"status":"pending"}}]"#),
			Error::Malformed("unknown id")
		);
		assert_eq!(
			bad(r#"[{"id":0,"result":{"status":"done","output":"0x1","step_hashes":[]}}]"#),
			Error::Malformed("output")
		);
		assert_eq!(
			bad(r#"[{"id":0,"result":{"status":"consistent"}}]"#),
			Error::Malformed("unexpected status")
		);
	}
}
