//! The JSON-RPC API against the real server on a loopback port: success, every typed error,
//! back-pressure, deadlines, the result cache, batching, and `prove` (corrupted trace → first
//! wrong step with a proof that `check_fraud_proof` judges Fraud; honest trace → consistent).
//! Also the model store (a flipped weight byte is refused).

use std::{net::SocketAddr, time::Duration};

use codec::Decode;
use serde_json::{json, Value};
use tokio::{
	io::{AsyncReadExt, AsyncWriteExt},
	net::TcpStream,
};
use verity_primitives::{
	check_fraud_proof,
	testing::{golden, random_case, test_limits},
	FraudProof, Verdict,
};
use verity_worker::{
	genservice::{GenConfig, GenService},
	model::LoadedModel,
	rpc::{codes, serve, Rpc, WorkerApiServer},
	service::{Service, ServiceConfig},
	store::{ModelStore, StoreError},
};

/// One JSON-RPC call over a fresh HTTP/1.1 connection; returns the whole response object.
async fn call(addr: SocketAddr, method: &str, params: Value) -> Value {
	let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
	serde_json::from_str(&post(addr, &body).await).expect("json body")
}

/// POST `body` over a fresh HTTP/1.1 connection; returns the response body.
async fn post(addr: SocketAddr, body: &str) -> String {
	let mut s = TcpStream::connect(addr).await.expect("connect");
	let req = format!(
		"POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
		body.len()
	);
	s.write_all(req.as_bytes()).await.expect("write");
	let mut resp = Vec::new();
	s.read_to_end(&mut resp).await.expect("read");
	let text = String::from_utf8(resp).expect("utf8");
	let (head, body) = text.split_once("\r\n\r\n").expect("http response");
	assert!(head.starts_with("HTTP/1.1 200"), "{head}");
	body.to_string()
}

fn error_code(v: &Value) -> i64 {
	v["error"]["code"].as_i64().unwrap_or_else(|| panic!("expected an error, got {v}"))
}

fn hx(b: &[u8]) -> String {
	verity_worker_api::hex::encode(b)
}

async fn start(
	config: ServiceConfig,
	models: Vec<LoadedModel>,
) -> (SocketAddr, Service, jsonrpsee::server::ServerHandle) {
	let service = Service::start(config, models);
	let (addr, handle) = serve(
		service.clone(),
		GenService::start(vec![], GenConfig::default()),
		"127.0.0.1:0".parse().expect("addr"),
	)
	.await
	.expect("serve");
	(addr, service, handle)
}

fn cnn() -> LoadedModel {
	LoadedModel::from_file(golden::cnn().file(), None).expect("cnn")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_models_health_and_typed_errors() {
	let case = golden::cnn();
	let model = cnn();
	let (addr, _service, handle) = start(ServiceConfig::default(), vec![model.clone()]).await;
	let id = hx(&model.id);

	// health, models
	let h = call(addr, "health", json!([])).await;
	assert_eq!(h["result"]["status"], "ok");
	assert_eq!(h["result"]["models"], 1);
	let m = call(addr, "models", json!([])).await;
	assert_eq!(m["result"][0]["id"], id);
	assert_eq!(m["result"][0]["input_len"], case.input.len());
	assert_eq!(m["result"][0]["input_shape"], json!([3, 8, 8]));

	// execute: the reference result
	let trace = case.trace().expect("trace");
	let hashes = trace.step_hashes(&case.header).expect("hashes");
	let r = call(addr, "execute", json!([id, hx(&case.input)])).await;
	let res = &r["result"];
	assert_eq!(res["status"], "done", "{r}");
	assert_eq!(res["output"], hx(trace.output()));
	let got: Vec<String> = serde_json::from_value(res["step_hashes"].clone()).expect("list");
	assert_eq!(got, hashes.iter().map(|h| hx(h)).collect::<Vec<_>>());
	assert_eq!(res["trace_root"], hx(&verity_primitives::trace_root(&hashes)));
	assert!(res["timings"]["exec_ms"].as_f64().expect("ms") >= 0.0);
	let job = res["job"].as_str().expect("job").to_string();
	// named parameters, cached
	let r2 =
		call(addr, "execute", json!({"model": id, "input": hx(&case.input), "deadline_ms": 0}))
			.await;
	assert_eq!(r2["result"]["status"], "done");
	assert_eq!(r2["result"]["trace_root"], res["trace_root"]);
	let j = call(addr, "job", json!([job])).await;
	assert_eq!(j["result"]["output"], res["output"]);
	let h = call(addr, "health", json!([])).await;
	assert!(h["result"]["stats"]["cache_hits"].as_u64().expect("hits") >= 1);

	// typed errors
	let unknown = hx(&[7u8; 32]);
	assert_eq!(
		error_code(&call(addr, "execute", json!([unknown, hx(&case.input)])).await),
		codes::UNKNOWN_MODEL as i64
	);
	let e = call(addr, "execute", json!([id, hx(&case.input[1..])])).await;
	assert_eq!(error_code(&e), codes::WRONG_INPUT_SIZE as i64);
	assert_eq!(e["error"]["data"]["expected"], 192);
	assert_eq!(e["error"]["data"]["got"], 191);
	assert_eq!(
		error_code(&call(addr, "execute", json!([id, "0xzz"])).await),
		codes::INVALID_PARAMS as i64
	);
	assert_eq!(
		error_code(&call(addr, "execute", json!(["0x1234", hx(&case.input)])).await),
		codes::INVALID_PARAMS as i64
	);
	assert_eq!(
		error_code(&call(addr, "job", json!([hx(&[1u8; 32])])).await),
		codes::UNKNOWN_JOB as i64
	);
	let short: Vec<String> = hashes[..3].iter().map(|h| hx(h)).collect();
	assert_eq!(
		error_code(&call(addr, "prove", json!([id, hx(&case.input), short])).await),
		codes::WRONG_HASH_COUNT as i64
	);
	// a commitment for another input: h_0 differs
	let mut other = hashes.clone();
	other[0] = [0u8; 32];
	let other: Vec<String> = other.iter().map(|h| hx(h)).collect();
	assert_eq!(
		error_code(&call(addr, "prove", json!([id, hx(&case.input), other])).await),
		codes::INPUT_MISMATCH as i64
	);
	handle.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prove_finds_the_first_wrong_step() {
	let case = golden::cnn();
	let model = cnn();
	let (addr, _service, handle) = start(ServiceConfig::default(), vec![model.clone()]).await;
	let id = hx(&model.id);
	let honest = case.step_hashes().expect("hashes");

	let r = call(
		addr,
		"prove",
		json!([id, hx(&case.input), honest.iter().map(|h| hx(h)).collect::<Vec<_>>()]),
	)
	.await;
	assert_eq!(r["result"]["status"], "consistent", "{r}");
	assert_eq!(r["result"]["trace_root"], hx(&verity_primitives::trace_root(&honest)));

	// A lying operator: every step from 5 on is wrong (a corrupted trace).
	for first_bad in [1usize, 5, honest.len() - 1] {
		let mut committed = honest.clone();
		for h in committed.iter_mut().skip(first_bad) {
			h[0] ^= 0x55;
		}
		let list: Vec<String> = committed.iter().map(|h| hx(h)).collect();
		let r = call(
			addr,
			"prove",
			json!({"model": id, "input": hx(&case.input), "step_hashes": list}),
		)
		.await;
		let res = &r["result"];
		assert_eq!(res["status"], "fraud", "{r}");
		assert_eq!(res["step"], first_bad);
		assert_eq!(res["verdict"], "Fraud");
		let bytes = hex::decode(res["proof"].as_str().expect("proof").trim_start_matches("0x"))
			.expect("hex");
		let proof = FraudProof::decode(&mut &bytes[..]).expect("SCALE FraudProof");
		assert_eq!(proof.step as usize, first_bad);
		assert_eq!(check_fraud_proof(&case.header, &committed, &proof), Ok(Verdict::Fraud));
		// The same proof against the honest commitment is judged NoFraud.
		assert_eq!(check_fraud_proof(&case.header, &honest, &proof), Ok(Verdict::NoFraud));
	}
	handle.stop().expect("stop");
}

/// The agent's side of the contract against the real server: a batch written by
/// `verity_worker_api::batch::body` is answered with results that `batch::parse` reads, typed
/// replies that serialize back to exactly the JSON the server sent; the server serves exactly
/// the API's methods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_crate_speaks_the_servers_protocol() {
	use verity_worker_api::{
		batch, method, Execute, ExecuteReply, HealthStatus, Job, Prove, ProveReply, Reply, Request,
	};
	let case = golden::cnn();
	let model = cnn();
	let (addr, service, handle) = start(ServiceConfig::default(), vec![model.clone()]).await;
	let mut served: Vec<String> =
		Rpc { service, gen: GenService::start(vec![], GenConfig::default()) }
			.into_rpc()
			.method_names()
			.map(String::from)
			.collect();
	served.sort();
	let mut api: Vec<String> = method::ALL.iter().map(|m| m.to_string()).collect();
	api.sort();
	assert_eq!(served, api);

	let honest = case.step_hashes().expect("hashes");
	let mut lying = honest.clone();
	lying[3][0] ^= 1;
	let prove = |step_hashes| {
		Request::Prove(Prove {
			model: model.id,
			input: case.input.clone(),
			step_hashes,
			deadline_ms: Some(10_000),
		})
	};
	let requests = [
		Request::Execute(Execute {
			model: model.id,
			input: case.input.clone(),
			deadline_ms: Some(10_000),
		}),
		prove(honest.clone()),
		prove(lying),
		Request::Job(Job { job: [1; 32], deadline_ms: None }),
		Request::Models,
		Request::Health,
	];
	let body = post(addr, std::str::from_utf8(&batch::body(&requests)).expect("utf8")).await;
	let replies = batch::parse(&requests, body.as_bytes()).expect("batch answer");
	let trace = case.trace().expect("trace");
	let root = verity_primitives::trace_root(&honest);
	match &replies[0] {
		Ok(Reply::Execute(ExecuteReply::Done(e))) => {
			assert_eq!(e.output, trace.output());
			assert_eq!(e.step_hashes, honest);
			assert_eq!((e.model, e.trace_root, e.backend.as_str()), (model.id, root, "tch"));
		},
		other => panic!("{other:?}"),
	}
	assert_eq!(replies[1], Ok(Reply::Prove(ProveReply::Consistent { trace_root: root })));
	assert!(
		matches!(&replies[2], Ok(Reply::Prove(ProveReply::Fraud { step: 3, verdict, .. })) if verdict == "Fraud")
	);
	assert!(matches!(&replies[3], Err(e) if e.code == codes::UNKNOWN_JOB));
	assert!(matches!(&replies[4], Ok(Reply::Models(m)) if m.len() == 1 && m[0].id == model.id));
	assert!(
		matches!(&replies[5], Ok(Reply::Health(h)) if h.status == HealthStatus::Ok && h.models == 1)
	);
	// The typed replies hold every field the server sent, and nothing else.
	let answers: Vec<Value> = serde_json::from_str(&body).expect("json");
	for answer in answers {
		let i = answer["id"].as_u64().expect("id") as usize;
		let sent = if answer["error"].is_null() { &answer["result"] } else { &answer["error"] };
		let typed = match &replies[i] {
			Ok(Reply::Execute(r)) => serde_json::to_value(r),
			Ok(Reply::Prove(r)) => serde_json::to_value(r),
			Ok(Reply::Models(r)) => serde_json::to_value(r),
			Ok(Reply::Health(r)) => serde_json::to_value(r),
			Ok(Reply::Generate(r)) => serde_json::to_value(r),
			Ok(Reply::Leaves(r)) => serde_json::to_value(r),
			Ok(Reply::ProveGeneration(r)) => serde_json::to_value(r),
			Ok(Reply::Tokenized(r)) => serde_json::to_value(r),
			Ok(Reply::Detokenized(r)) => serde_json::to_value(r),
			Err(e) => serde_json::to_value(e),
		};
		assert_eq!(&typed.expect("serialize"), sent, "answer {i}");
	}
	handle.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_pressure_and_deadlines() {
	let case = random_case(17, &test_limits());
	let model = LoadedModel::from_file(case.file(), None).expect("model");
	let capacity = 3;
	let config =
		ServiceConfig { queue_capacity: capacity, max_batch: 4, ..ServiceConfig::default() };
	let (addr, service, handle) = start(config, vec![model.clone()]).await;
	let id = hx(&model.id);
	let input = |i: u8| -> String {
		let mut x = case.input.clone();
		x[0] = i;
		hx(&x)
	};

	// Paused executor: the first job is taken and held, `capacity` wait in the queue, the next
	// is refused with QUEUE_FULL. Each call returns "pending" within its deadline.
	service.set_paused(true);
	let t0 = std::time::Instant::now();
	let mut keys = Vec::new();
	for i in 0..=capacity as u8 {
		let r = call(addr, "execute", json!([id, input(i), 50])).await;
		assert_eq!(r["result"]["status"], "pending", "job {i}: {r}");
		keys.push(r["result"]["job"].as_str().expect("key").to_string());
		// Wait for the executor to take the first job before queueing the others.
		if i == 0 {
			tokio::time::sleep(Duration::from_millis(100)).await;
		}
	}
	assert!(t0.elapsed() < Duration::from_secs(5), "pending answers came late: {:?}", t0.elapsed());
	let full = call(addr, "execute", json!([id, input(200), 50])).await;
	assert_eq!(error_code(&full), codes::QUEUE_FULL as i64);
	assert_eq!(full["error"]["data"]["capacity"], capacity);
	// A job already pending is not refused: it is the same job.
	let again = call(addr, "execute", json!([id, input(1), 0])).await;
	assert_eq!(again["result"]["status"], "pending");
	assert_eq!(again["result"]["job"], keys[1]);
	let h = call(addr, "health", json!([])).await;
	assert_eq!(h["result"]["queue_len"], capacity);
	assert_eq!(h["result"]["stats"]["rejected_queue_full"], 1);
	// The deadline bounds the wait: 300 ms, answered pending after about 300 ms.
	let t1 = std::time::Instant::now();
	let r = call(addr, "execute", json!([id, input(2), 300])).await;
	assert_eq!(r["result"]["status"], "pending");
	let waited = t1.elapsed();
	assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(3), "{waited:?}");

	// Resume: later calls with the same arguments get the results (from the cache).
	service.set_paused(false);
	for (i, key) in keys.iter().enumerate() {
		let r = call(addr, "execute", json!([id, input(i as u8), 10_000])).await;
		assert_eq!(r["result"]["status"], "done", "{r}");
		assert_eq!(&r["result"]["job"], key);
		let mut x = case.input.clone();
		x[0] = i as u8;
		let want = verity_primitives::execute(&case.header, &case.weights, &x).expect("reference");
		assert_eq!(r["result"]["output"], hx(want.output()));
		let j = call(addr, "job", json!([key, 0])).await;
		assert_eq!(j["result"]["status"], "done");
	}
	// The queued jobs ran as batches.
	let h = call(addr, "health", json!([])).await;
	let batches = h["result"]["stats"]["batches"].as_u64().expect("batches");
	let jobs = h["result"]["stats"]["jobs_executed"].as_u64().expect("jobs");
	assert_eq!(jobs, capacity as u64 + 1);
	assert!(batches < jobs, "{batches} batches for {jobs} jobs");
	// The queue has room again.
	let r = call(addr, "execute", json!([id, input(200), 10_000])).await;
	assert_eq!(r["result"]["status"], "done");
	handle.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_batched_and_exact() {
	let case = random_case(23, &test_limits());
	let model = LoadedModel::from_file(case.file(), None).expect("model");
	let (addr, service, handle) = start(ServiceConfig::default(), vec![model.clone()]).await;
	let id = hx(&model.id);
	service.set_paused(true);
	let mut tasks = Vec::new();
	for i in 0..24u8 {
		let mut x = case.input.clone();
		for b in x.iter_mut().step_by(3) {
			*b = b.wrapping_add(i.wrapping_mul(37));
		}
		let id = id.clone();
		tasks.push(tokio::spawn(async move {
			(x.clone(), call(addr, "execute", json!([id, hx(&x), 20_000])).await)
		}));
	}
	// Wait until most requests are queued behind the paused executor (bounded wait).
	for _ in 0..200 {
		if service.queue_len() >= 16 {
			break;
		}
		tokio::time::sleep(Duration::from_millis(50)).await;
	}
	service.set_paused(false);
	let mut max_batch = 0;
	for t in tasks {
		let (x, r) = t.await.expect("task");
		assert_eq!(r["result"]["status"], "done", "{r}");
		let want = verity_primitives::execute(&case.header, &case.weights, &x).expect("reference");
		let hashes = want.step_hashes(&case.header).expect("hashes");
		assert_eq!(r["result"]["trace_root"], hx(&verity_primitives::trace_root(&hashes)));
		max_batch = max_batch.max(r["result"]["timings"]["batch_size"].as_u64().expect("batch"));
	}
	assert!(max_batch > 1, "requests were not batched");
	handle.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_added_to_the_store_later_are_loaded_on_first_use() {
	let dir = std::env::temp_dir().join(format!("verity-store-later-{}", std::process::id()));
	let _ = std::fs::remove_dir_all(&dir);
	let store = ModelStore::open(&dir).expect("open");
	let config = ServiceConfig { store: Some(store.clone()), ..ServiceConfig::default() };
	let (addr, _service, handle) = start(config, vec![]).await;
	let case = golden::mlp();
	let id = hx(&case.header.id());
	let e = call(addr, "execute", json!([id, hx(&case.input)])).await;
	assert_eq!(error_code(&e), codes::UNKNOWN_MODEL as i64);
	// A tampered file under the model's name is refused (still unknown).
	let mut bad = case.file().encode();
	let last = bad.len() - 1;
	bad[last] ^= 1;
	std::fs::write(store.path_of(&case.header.id()), &bad).expect("write");
	let e = call(addr, "execute", json!([id, hx(&case.input)])).await;
	assert_eq!(error_code(&e), codes::UNKNOWN_MODEL as i64);
	// The genuine file: loaded on first use.
	std::fs::write(store.path_of(&case.header.id()), case.file().encode()).expect("write");
	let r = call(addr, "execute", json!([id, hx(&case.input)])).await;
	assert_eq!(r["result"]["status"], "done", "{r}");
	let want = case.trace().expect("trace");
	assert_eq!(r["result"]["output"], hx(want.output()));
	assert_eq!(call(addr, "models", json!([])).await["result"][0]["id"], id);
	handle.stop().expect("stop");
	let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn store_verifies_on_add_and_load_and_refuses_a_flipped_weight_byte() {
	let dir = std::env::temp_dir().join(format!("verity-store-test-{}", std::process::id()));
	let _ = std::fs::remove_dir_all(&dir);
	let store = ModelStore::open(&dir).expect("open");
	let case = golden::mlp();
	let bytes = case.file().encode();
	let src = dir.join("mlp-source.vmodel");
	std::fs::write(&src, &bytes).expect("write");
	let m = store.add_file(&src).expect("add");
	assert_eq!(m.id, case.header.id());
	assert_eq!(store.ids().expect("ids"), vec![m.id]);
	assert_eq!(store.load(&m.id).expect("load").weights, case.weights);

	// A flipped byte in the last op's weights: refused on add...
	let mut bad = bytes.clone();
	let last = bad.len() - 1;
	bad[last] ^= 0x01;
	std::fs::write(&src, &bad).expect("write");
	let e = store.add_file(&src).expect_err("flipped weight byte refused");
	assert!(e.to_string().contains("weights of op"), "{e}");
	// ...and on load, when the stored file is tampered with afterwards.
	std::fs::write(store.path_of(&m.id), &bad).expect("tamper");
	match store.load(&m.id) {
		Err(StoreError::Model { .. }) => {},
		other => panic!("tampered model loaded: {other:?}"),
	}
	let (ok, refused) = store.load_all().expect("load all");
	assert!(ok.is_empty());
	assert_eq!(refused.len(), 1);
	// A file stored under another model's id is refused (header hash differs).
	let other = random_case(5, &test_limits()).file().encode();
	std::fs::write(store.path_of(&m.id), &other).expect("write");
	assert!(store.load(&m.id).is_err());
	// Unknown id.
	assert!(matches!(store.load(&[9u8; 32]), Err(StoreError::NotFound(_))));
	let _ = std::fs::remove_dir_all(&dir);
}

/// The generation methods with the small PyPI model (skipped where the models are not
/// installed): `generate` (from the cache the second time, pending past a zero deadline, then
/// `generation`), `generationLeaves` (the step hashes of a position), `proveGeneration`
/// (consistent; a changed step: the position to challenge, then with its revealed step
/// hashes the first wrong step and a proof the primitives judge `Fraud`), and the errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_methods() {
	use codec::Decode;
	use verity_primitives::{
		fraud::Verdict,
		lm::trace::{check_step_proof, position_root, LmStepProof},
	};
	let Some(dir) = verity_worker::import::installed_models() else { return };
	let scratch = tempfile::Builder::new().prefix("verity-api-gen-").tempdir().expect("tmp");
	let out = scratch.path().join("glass");
	let tokenizer = dir.join("glassllm-en.tokenizer.json");
	let imported =
		verity_worker::import::import(&dir.join("glassllm-en.npz"), Some(&tokenizer), None, None);
	imported.expect("import").write(&out).expect("write");
	let model = verity_worker::generate::TextModel::load(&out.with_extension("vlm")).expect("load");
	let (id, header) = (model.file.id(), model.file.header.clone());
	let text = "The capital of France is";
	let local = model.tokenizer.encode(text).expect("encode");
	let honest = verity_worker::verify::honest_run(
		&model,
		&verity_primitives::lm::interp::LmJob {
			prompt: vec![185, 219, 107, 151, 111, 97],
			params: verity_primitives::lm::sample::SamplingParams::GREEDY,
			max_new_tokens: 16,
		},
		1,
	)
	.expect("honest run");
	let gen = GenService::start(vec![model], GenConfig::default());
	let service = Service::start(ServiceConfig::default(), vec![]);
	let (addr, handle) =
		serve(service, gen, "127.0.0.1:0".parse().expect("addr")).await.expect("serve");
	let job = json!({"prompt": [185, 219, 107, 151, 111, 97], "max_new_tokens": 16});
	let r = call(addr, "generate", json!([hx(&id), job, 60_000])).await;
	let done = &r["result"];
	assert_eq!(done["status"], "done", "{r}");
	assert_eq!(done["tokens"], json!(honest.tokens));
	let roots: Vec<String> = honest.position_roots.iter().map(|h| hx(h)).collect();
	assert_eq!(done["position_roots"], json!(roots));
	let key = done["job"].as_str().unwrap().to_string();
	// The same job again: the cached result, same key.
	let again = call(addr, "generate", json!({"model": hx(&id), "job": job})).await;
	assert_eq!(again["result"], r["result"]);
	// A new job with a zero deadline is pending; `generation` waits for it.
	let sampled = json!({"prompt": [3, 4, 5], "max_new_tokens": 40, "temperature_q16": 50_000, "seed": hx(&[9; 32])});
	let p = call(addr, "generate", json!([hx(&id), sampled, 0])).await;
	assert_eq!(p["result"]["status"], "pending", "{p}");
	let g = call(addr, "generation", json!([p["result"]["job"], 60_000])).await;
	assert_eq!(g["result"]["status"], "done", "{g}");
	assert_eq!(g["result"]["job"], p["result"]["job"]);
	// Leaves of a position, and one past the end.
	let leaves = call(addr, "generationLeaves", json!([key, 7])).await;
	let want: Vec<String> = honest.step_hashes[7].iter().map(|h| hx(h)).collect();
	assert_eq!(leaves["result"], json!(want));
	let past = call(addr, "generationLeaves", json!([key, honest.positions])).await;
	assert_eq!(error_code(&past), i64::from(codes::NO_SUCH_POSITION));
	// Consistent roots.
	let c = call(addr, "proveGeneration", json!([hx(&id), job, roots, null, 60_000])).await;
	assert_eq!(c["result"]["status"], "consistent", "{c}");
	// One changed step at position 9, op 40: the position to challenge, then the proof.
	let (t, i) = (9usize, 40usize);
	let mut lie = honest.step_hashes[t].clone();
	lie[i][5] ^= 0x80;
	let mut lie_roots = roots.clone();
	lie_roots[t] = hx(&position_root(&lie));
	let d = call(addr, "proveGeneration", json!([hx(&id), job, lie_roots, null, 60_000])).await;
	assert_eq!(d["result"], json!({"status": "differs", "position": t}), "{d}");
	let reveal =
		json!({"position": t, "step_hashes": lie.iter().map(|h| hx(h)).collect::<Vec<_>>()});
	let f = call(addr, "proveGeneration", json!([hx(&id), job, lie_roots, reveal, 60_000])).await;
	assert_eq!(f["result"]["status"], "fraud", "{f}");
	assert_eq!(
		(f["result"]["position"].as_u64(), f["result"]["op"].as_u64()),
		(Some(t as u64), Some(i as u64))
	);
	let bytes = verity_worker_api::hex::decode(f["result"]["proof"].as_str().unwrap()).unwrap();
	let proof = LmStepProof::decode(&mut bytes.as_slice()).expect("a step proof");
	let lm_job = verity_primitives::lm::interp::LmJob {
		prompt: vec![185, 219, 107, 151, 111, 97],
		params: verity_primitives::lm::sample::SamplingParams::GREEDY,
		max_new_tokens: 16,
	};
	let decoded: Vec<_> =
		lie_roots.iter().map(|h| verity_worker_api::hex::decode_hash(h).unwrap()).collect();
	assert_eq!(check_step_proof(&header, &lm_job, &decoded, &proof), Ok(Verdict::Fraud));
	// Errors: a reveal of another position, an unknown model, a bad job, an unknown key.
	let wrong = json!({"position": t + 1, "step_hashes": honest.step_hashes[t + 1].iter().map(|h| hx(h)).collect::<Vec<_>>()});
	let e = call(addr, "proveGeneration", json!([hx(&id), job, lie_roots, wrong, 60_000])).await;
	assert_eq!(error_code(&e), i64::from(codes::INVALID_PARAMS), "{e}");
	let e = call(addr, "generate", json!([hx(&[7; 32]), job, 1000])).await;
	assert_eq!(error_code(&e), i64::from(codes::UNKNOWN_MODEL));
	let bad = json!({"prompt": [header.vocab], "max_new_tokens": 4});
	let e = call(addr, "generate", json!([hx(&id), bad, 1000])).await;
	assert_eq!(error_code(&e), i64::from(codes::BAD_JOB));
	let empty = json!({"prompt": [], "max_new_tokens": 4});
	let e = call(addr, "generate", json!([hx(&id), empty, 1000])).await;
	assert_eq!(error_code(&e), i64::from(codes::BAD_JOB));
	let e = call(addr, "generation", json!([hx(&[1; 32]), 10])).await;
	assert_eq!(error_code(&e), i64::from(codes::UNKNOWN_JOB));

	// `tokenize` and `detokenize`: the model's own tokenizer, both ways.
	let t = call(addr, "tokenize", json!([hx(&id), {"text": text}])).await;
	assert_eq!(t["result"], json!({"tokens": local, "text": text}), "{t}");
	let d = call(addr, "detokenize", json!({"model": hx(&id), "tokens": honest.tokens})).await;
	let want = json!({"text": verity_worker::generate::TextModel::load(&out.with_extension("vlm"))
		.expect("load")
		.tokenizer
		.decode(&honest.tokens)
		.expect("decode")});
	assert_eq!(d["result"], want, "{d}");
	// Errors: an empty prompt, a token outside the vocabulary, an unknown model, no prompt kind.
	let e = call(addr, "tokenize", json!([hx(&id), {"text": ""}])).await;
	assert_eq!(error_code(&e), i64::from(codes::BAD_JOB), "{e}");
	let e = call(addr, "detokenize", json!([hx(&id), [header.vocab]])).await;
	assert_eq!(error_code(&e), i64::from(codes::BAD_JOB), "{e}");
	let e = call(addr, "tokenize", json!([hx(&[7; 32]), {"text": text}])).await;
	assert_eq!(error_code(&e), i64::from(codes::UNKNOWN_MODEL), "{e}");
	// A conversation needs the model's chat template (this model has none).
	let e =
		call(addr, "tokenize", json!([hx(&id), {"messages": [{"role": "user", "content": text}]}]))
			.await;
	assert_eq!(error_code(&e), i64::from(codes::BAD_JOB), "{e}");
	assert!(e["error"]["message"].as_str().unwrap_or("").contains("no chat template"), "{e}");
	let e = call(addr, "tokenize", json!([hx(&id), {"poem": text}])).await;
	assert_eq!(error_code(&e), i64::from(codes::INVALID_PARAMS), "{e}");
	handle.stop().expect("stop");
}
