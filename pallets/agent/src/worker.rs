//! The agent's client of the inference worker: one JSON-RPC batch request per block over the
//! node's off-chain HTTP client. The protocol (requests, replies, hex) is `verity-worker-api`'s.

use alloc::vec::Vec;
use sp_runtime::offchain::{http, Duration};
use verity_worker_api::{batch, ErrorReply, Reply, Request};

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

/// Send a batch to the worker at `url` and wait at most [`crate::HTTP_TIMEOUT_MS`]; per request,
/// in order, its reply or the worker's refusal.
pub fn call(url: &str, requests: &[Request]) -> Result<Vec<Result<Reply, ErrorReply>>, Error> {
	if requests.is_empty() {
		return Ok(Vec::new());
	}
	let deadline = sp_io::offchain::timestamp().add(Duration::from_millis(crate::HTTP_TIMEOUT_MS));
	let pending = http::Request::post(url, alloc::vec![batch::body(requests)])
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
	batch::parse(requests, &answer).map_err(|batch::Malformed(why)| Error::Malformed(why))
}
