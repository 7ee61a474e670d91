//! A JSON-RPC 2.0 batch (a JSON array of calls whose ids are their positions) and its answer.

use crate::{ErrorReply, Reply, Request};
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One call of a batch: `{"jsonrpc":"2.0","id":..,"method":..,"params":[..]}`.
#[derive(Serialize)]
struct Call {
	jsonrpc: &'static str,
	id: usize,
	method: &'static str,
	params: Value,
}

/// One answer of a batch: `result` or `error`.
#[derive(Deserialize)]
struct Answer {
	id: usize,
	#[serde(default)]
	result: Option<Value>,
	#[serde(default)]
	error: Option<ErrorReply>,
}

/// Why a batch answer is not the one expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// The JSON body of a batch of `requests`, ids `0..`.
pub fn body(requests: &[Request]) -> Vec<u8> {
	let calls: Vec<Call> = requests
		.iter()
		.enumerate()
		.map(|(id, r)| Call { jsonrpc: "2.0", id, method: r.method(), params: r.params() })
		.collect();
	// Serializing strings, numbers and arrays cannot fail.
	serde_json::to_vec(&calls).unwrap_or_default()
}

/// Parse the answer to [`body`]`(requests)`: per request, in order, its reply or the worker's
/// error. The answers may come in any order.
pub fn parse(
	requests: &[Request],
	body: &[u8],
) -> Result<Vec<Result<Reply, ErrorReply>>, Malformed> {
	let value: Value = serde_json::from_slice(body).map_err(|_| Malformed("not JSON"))?;
	let Value::Array(answers) = value else { return Err(Malformed("not a batch answer")) };
	let mut replies: Vec<Option<Result<Reply, ErrorReply>>> =
		requests.iter().map(|_| None).collect();
	for answer in answers {
		let answer: Answer = serde_json::from_value(answer).map_err(|_| Malformed("answer"))?;
		let request = requests.get(answer.id).ok_or(Malformed("unknown id"))?;
		let slot = replies.get_mut(answer.id).ok_or(Malformed("unknown id"))?;
		*slot = Some(match (answer.error, answer.result) {
			(Some(e), _) => Err(e),
			(None, Some(result)) => {
				Ok(Reply::of(request, result).map_err(|_| Malformed("unexpected result"))?)
			},
			(None, None) => return Err(Malformed("neither result nor error")),
		});
	}
	replies.into_iter().map(|r| r.ok_or(Malformed("missing answer"))).collect()
}
