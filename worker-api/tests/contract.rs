//! The wire contract: every request and reply, serialized to the exact JSON that the worker and
//! the agent have always exchanged (field names, order, hex, tags), and read back.

use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};
use verity_worker_api::{
	batch::{self, Malformed},
	codes, hex, method, ChatMessage, Detokenize, Detokenized, ErrorReply, Execute, ExecuteReply,
	Executed, Generate, Generation, GenerationJob, GenerationLeaves, Health, HealthStatus, Job,
	ModelEntry, Prove, ProveGeneration, ProveReply, Reply, Request, Reveal, Stats, TextPrompt,
	Timings, Tokenize, Tokenized,
};

/// `0x` and 32 times the byte `b`.
fn h(b: u8) -> String {
	format!("0x{}", format!("{b:02x}").repeat(32))
}

/// `value` serializes to exactly `wire` and reads back as itself, the way replies are read
/// (`batch::parse`): text to a `Value`, then the typed reply from it. (Straight from text, serde's
/// status-tagged enums cannot read numbers when serde_json's `arbitrary_precision` is on, as it is
/// in the workspace's native builds.)
fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
	value: &T,
	wire: &str,
) {
	assert_eq!(serde_json::to_string(value).unwrap(), wire);
	let parsed: Value = serde_json::from_str(wire).unwrap();
	assert_eq!(&serde_json::from_value::<T>(parsed).unwrap(), value);
}

#[test]
fn every_request_and_reply_has_the_wire_format() {
	// Requests: a batch of every call, by position, as the agent has always sent them.
	let execute =
		Request::Execute(Execute { model: [1; 32], input: vec![0xff, 0], deadline_ms: Some(5) });
	let prove = Request::Prove(Prove {
		model: [2; 32],
		input: vec![7],
		step_hashes: vec![[3; 32], [4; 32]],
		deadline_ms: Some(1500),
	});
	let job = Request::Job(Job { job: [5; 32], deadline_ms: None });
	let requests = [execute, prove, job, Request::Models, Request::Health];
	let body = String::from_utf8(batch::body(&requests)).unwrap();
	let wire = format!(
		concat!(
			r#"[{{"jsonrpc":"2.0","id":0,"method":"execute","params":["{}","0xff00",5]}},"#,
			r#"{{"jsonrpc":"2.0","id":1,"method":"prove","params":["{}","0x07",["{}","{}"],1500]}},"#,
			r#"{{"jsonrpc":"2.0","id":2,"method":"job","params":["{}"]}},"#,
			r#"{{"jsonrpc":"2.0","id":3,"method":"models","params":[]}},"#,
			r#"{{"jsonrpc":"2.0","id":4,"method":"health","params":[]}}]"#
		),
		h(1),
		h(2),
		h(3),
		h(4),
		h(5)
	);
	assert_eq!(body, wire);
	let calls: Vec<Value> = serde_json::from_str(&body).unwrap();
	for (call, request) in calls.into_iter().zip(&requests) {
		let m = call["method"].as_str().unwrap();
		let back = Request::from_params(m, call["params"].clone()).unwrap().unwrap();
		assert_eq!(&back, request);
	}
	// The generation methods: by position, back from their params, and by name.
	let job = GenerationJob {
		prompt: vec![1, 2, 3],
		max_new_tokens: 8,
		temperature_q16: 0,
		top_k: 0,
		top_p_q16: 65536,
		seed: [0; 32],
	};
	let generation = [
		Request::Generate(Generate { model: [1; 32], job: job.clone(), deadline_ms: Some(50) }),
		Request::Generation(Generation { job: [2; 32], deadline_ms: None }),
		Request::GenerationLeaves(GenerationLeaves { job: [2; 32], position: 4 }),
		Request::ProveGeneration(ProveGeneration {
			model: [1; 32],
			job: job.clone(),
			position_roots: vec![[3; 32], [4; 32]],
			reveal: Some(Reveal { position: 1, step_hashes: vec![[5; 32]] }),
			deadline_ms: Some(9),
		}),
		Request::ProveGeneration(ProveGeneration {
			model: [1; 32],
			job: job.clone(),
			position_roots: vec![],
			reveal: None,
			deadline_ms: Some(9),
		}),
		Request::Tokenize(Tokenize { model: [1; 32], prompt: TextPrompt::Chat("Hi".into()) }),
		Request::Detokenize(Detokenize { model: [1; 32], tokens: vec![7, 8] }),
		Request::Tokenize(Tokenize {
			model: [1; 32],
			prompt: TextPrompt::Messages(vec![
				ChatMessage { role: "system".into(), content: "Be brief.".into() },
				ChatMessage { role: "user".into(), content: "Hi".into() },
			]),
		}),
	];
	for r in &generation {
		let back = Request::from_params(r.method(), r.params()).unwrap().unwrap();
		assert_eq!(&back, r);
	}
	assert_eq!(
		generation[0].params(),
		json!([h(1), {"prompt": [1, 2, 3], "max_new_tokens": 8, "temperature_q16": 0, "top_k": 0,
			"top_p_q16": 65536, "seed": h(0)}, 50])
	);
	let by_name =
		json!({"model": h(1), "job": {"prompt": [1, 2, 3], "maxNewTokens": 8}, "deadlineMs": 50});
	assert_eq!(Request::from_params("generate", by_name).unwrap().unwrap(), generation[0]);
	assert_eq!(generation[5].params(), json!([h(1), {"chat": "Hi"}]));
	assert_eq!(generation[6].params(), json!([h(1), [7, 8]]));
	assert_eq!(
		generation[7].params(),
		json!([h(1), {"messages": [{"role": "system", "content": "Be brief."},
			{"role": "user", "content": "Hi"}]}])
	);
	let by_name = json!({"model": h(1), "prompt": {"text": "The capital"}});
	assert_eq!(
		Request::from_params("tokenize", by_name).unwrap().unwrap(),
		Request::Tokenize(Tokenize {
			model: [1; 32],
			prompt: TextPrompt::Text("The capital".into())
		})
	);
	assert!(Request::from_params("tokenize", json!([h(1), {"poem": "x"}])).unwrap().is_err());
	round_trips(
		&Tokenized { tokens: vec![1, 2], text: "Hi".into() },
		r#"{"tokens":[1,2],"text":"Hi"}"#,
	);
	round_trips(&Detokenized { text: " Paris.".into() }, r#"{"text":" Paris."}"#);
	let mut names: Vec<&str> = requests
		.iter()
		.chain(generation[..4].iter().chain(&generation[5..7]))
		.map(Request::method)
		.collect();
	let mut all = method::ALL;
	names.sort_unstable();
	all.sort_unstable();
	assert_eq!(names, all);
	// By name too, snake or lower camel case, as the server takes them.
	let by_name =
		json!({"model": h(2), "input": "0x07", "stepHashes": [h(3), h(4)], "deadline_ms": 1500});
	assert_eq!(Request::from_params("prove", by_name).unwrap().unwrap(), requests[1]);
	let by_name = json!({"job": h(5)});
	assert_eq!(Request::from_params("job", by_name).unwrap().unwrap(), requests[2]);
	assert!(Request::from_params("nope", json!([])).is_none());

	// Replies, as the worker has always written them.
	round_trips(
		&ExecuteReply::Pending { job: [9; 32] },
		&format!(r#"{{"status":"pending","job":"{}"}}"#, h(9)),
	);
	let done = ExecuteReply::Done(Executed {
		job: [9; 32],
		model: [1; 32],
		output: vec![0x7f, 0x80],
		step_hashes: vec![[3; 32], [4; 32]],
		trace_root: [6; 32],
		timings: Timings { queue_ms: 0.5, exec_ms: 1.25, hash_ms: 0.0, batch_size: 2 },
		backend: "tch".into(),
	});
	round_trips(
		&done,
		&format!(
			concat!(
				r#"{{"status":"done","job":"{}","model":"{}","output":"0x7f80","step_hashes":["{}","{}"],"#,
				r#""trace_root":"{}","timings":{{"queue_ms":0.5,"exec_ms":1.25,"hash_ms":0.0,"batch_size":2}},"#,
				r#""backend":"tch"}}"#
			),
			h(9),
			h(1),
			h(3),
			h(4),
			h(6)
		),
	);
	round_trips(
		&ProveReply::Pending { job: [9; 32] },
		&format!(r#"{{"status":"pending","job":"{}"}}"#, h(9)),
	);
	round_trips(
		&ProveReply::Consistent { trace_root: [6; 32] },
		&format!(r#"{{"status":"consistent","trace_root":"{}"}}"#, h(6)),
	);
	round_trips(
		&ProveReply::Fraud { step: 2, proof: vec![1, 2], verdict: "Fraud".into() },
		r#"{"status":"fraud","step":2,"proof":"0x0102","verdict":"Fraud"}"#,
	);
	round_trips(
		&vec![ModelEntry {
			id: [1; 32],
			num_ops: 3,
			input_shape: vec![3, 8, 8],
			input_zero_point: -128,
			input_len: 192,
			output_shape: vec![10],
			output_len: 10,
			total_macs: 12345,
			weight_bytes: 678,
		}],
		&format!(
			concat!(
				r#"[{{"id":"{}","num_ops":3,"input_shape":[3,8,8],"input_zero_point":-128,"input_len":192,"#,
				r#""output_shape":[10],"output_len":10,"total_macs":12345,"weight_bytes":678}}]"#
			),
			h(1)
		),
	);
	let health = Health {
		status: HealthStatus::Ok,
		version: "0.1.0".into(),
		backend: "tch".into(),
		device: "Cpu".into(),
		models: 1,
		queue_len: 0,
		queue_capacity: 256,
		max_batch: 32,
		uptime_s: 1.5,
		stats: Stats { jobs_executed: 4, batches: 2, cache_hits: 1, rejected_queue_full: 0 },
		fault: None,
	};
	let health_wire = concat!(
		r#"{"status":"ok","version":"0.1.0","backend":"tch","device":"Cpu","models":1,"queue_len":0,"#,
		r#""queue_capacity":256,"max_batch":32,"uptime_s":1.5,"#,
		r#""stats":{"jobs_executed":4,"batches":2,"cache_hits":1,"rejected_queue_full":0}"#
	);
	round_trips(&health, &format!("{health_wire}}}"));
	round_trips(
		&Health { fault: Some("wrong-output".into()), ..health },
		&format!(r#"{health_wire},"fault":"wrong-output"}}"#),
	);
	round_trips(
		&ErrorReply {
			code: codes::WRONG_INPUT_SIZE,
			message: "wrong input size".into(),
			data: Some(json!({"expected": 192, "got": 191})),
		},
		r#"{"code":-32002,"message":"wrong input size","data":{"expected":192,"got":191}}"#,
	);
	round_trips(
		&ErrorReply { code: codes::UNKNOWN_MODEL, message: "unknown model".into(), data: None },
		r#"{"code":-32001,"message":"unknown model"}"#,
	);
}

#[test]
fn a_batch_answer_is_read_per_request_in_any_order() {
	let exec =
		|b: u8| Request::Execute(Execute { model: [1; 32], input: vec![b], deadline_ms: None });
	let prove = Request::Prove(Prove {
		model: [1; 32],
		input: vec![1],
		step_hashes: vec![],
		deadline_ms: None,
	});
	let requests = [exec(1), exec(2), prove.clone(), prove, exec(3)];
	let (h0, h4) = (h(0), h(4));
	let body = format!(
		r#"[{{"jsonrpc":"2.0","id":3,"result":{{"status":"fraud","step":2,"proof":"0x0102","verdict":"Fraud"}}}},
		{{"jsonrpc":"2.0","id":0,"result":{{"status":"done","job":"{h0}","model":"{h0}","output":"0x7f80","step_hashes":["{h4}","{h4}"],"trace_root":"{h0}","timings":{{"queue_ms":0.0,"exec_ms":1.0,"hash_ms":0.5,"batch_size":1}},"backend":"tch"}}}},
		{{"jsonrpc":"2.0","id":1,"result":{{"status":"pending","job":"{h0}"}}}},
		{{"jsonrpc":"2.0","id":2,"result":{{"status":"consistent","trace_root":"{h0}"}}}},
		{{"jsonrpc":"2.0","id":4,"error":{{"code":-32001,"message":"unknown model"}}}}]"#
	);
	let replies = batch::parse(&requests, body.as_bytes()).unwrap();
	let executed = |r: &Result<Reply, ErrorReply>| match r {
		Ok(Reply::Execute(ExecuteReply::Done(e))) => (e.output.clone(), e.step_hashes.clone()),
		other => panic!("{other:?}"),
	};
	assert_eq!(executed(&replies[0]), (vec![0x7f, 0x80], vec![[4; 32]; 2]));
	assert_eq!(replies[1], Ok(Reply::Execute(ExecuteReply::Pending { job: [0; 32] })));
	assert_eq!(replies[2], Ok(Reply::Prove(ProveReply::Consistent { trace_root: [0; 32] })));
	assert_eq!(
		replies[3],
		Ok(Reply::Prove(ProveReply::Fraud { step: 2, proof: vec![1, 2], verdict: "Fraud".into() }))
	);
	assert_eq!(
		replies[4],
		Err(ErrorReply { code: codes::UNKNOWN_MODEL, message: "unknown model".into(), data: None })
	);
}

#[test]
fn a_malformed_batch_answer_is_refused() {
	let requests =
		[Request::Execute(Execute { model: [1; 32], input: vec![1], deadline_ms: None })];
	let bad = |b: &str| batch::parse(&requests, b.as_bytes()).unwrap_err();
	assert_eq!(bad("nope"), Malformed("not JSON"));
	assert_eq!(bad(r#"{"id":0}"#), Malformed("not a batch answer"));
	assert_eq!(bad("[]"), Malformed("missing answer"));
	assert_eq!(bad(r#"[{"result":{"status":"pending"}}]"#), Malformed("answer"));
	let pending = format!(r#"{{"status":"pending","job":"{}"}}"#, h(0));
	assert_eq!(bad(&format!(r#"[{{"id":5,"result":{pending}}}]"#)), Malformed("unknown id"));
	assert_eq!(bad(r#"[{"id":0}]"#), Malformed("neither result nor error"));
	// A step hash that is not 32 bytes, odd hex, a status that `execute` never answers.
	for result in [
		r#"{"status":"pending","job":"0x00"}"#.to_string(),
		format!(r#"{{"status":"pending","job":"{}0"}}"#, h(0)),
		format!(r#"{{"status":"consistent","trace_root":"{}"}}"#, h(0)),
	] {
		assert_eq!(
			bad(&format!(r#"[{{"id":0,"result":{result}}}]"#)),
			Malformed("unexpected result")
		);
	}
}

#[test]
fn hex_is_0x_lowercase_and_decodes_with_or_without_prefix() {
	assert_eq!(hex::encode([0, 1, 0xab, 0xff]), "0x0001abff");
	assert_eq!(hex::encode([0u8; 0]), "0x");
	assert_eq!(hex::decode("0x0001abff"), Ok(vec![0, 1, 0xab, 0xff]));
	assert_eq!(hex::decode(" 0XABff\n"), Ok(vec![0xab, 0xff]));
	assert_eq!(hex::decode("abff"), Ok(vec![0xab, 0xff]));
	assert_eq!(hex::decode("0x0").unwrap_err().to_string(), "invalid hex: Odd number of digits");
	assert_eq!(
		hex::decode("0xzz").unwrap_err().to_string(),
		"invalid hex: Invalid character 'z' at position 0"
	);
	assert_eq!(hex::decode_hash(&h(7)), Ok([7; 32]));
	assert_eq!(
		hex::decode_hash("0x1234").unwrap_err().to_string(),
		"expected 32 bytes (64 hex digits), got 2 bytes"
	);
}
