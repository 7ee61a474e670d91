//! Fault injection (cargo feature `fault-injection`, test builds only): a worker that executes
//! a model with the weights of one op substituted commits to the genuine hashes up to that op
//! and to wrong ones from exactly that op on; the honest worker's `prove` finds that step and
//! its fraud proof is accepted by `check_fraud_proof`. Also the binaries: `verity-worker-faulty`
//! with `VERITY_WORKER_FAULT=substitute-weights` (run, serve) and `verity-worker`, which stays
//! honest whatever the environment says.
//!
//! `cargo test --release -p verity-worker --features fault-injection --test fault_injection`

use std::{
	io::{BufRead, BufReader, Read, Write},
	net::{SocketAddr, TcpStream},
	path::PathBuf,
	process::{Command, Stdio},
	sync::{mpsc, Arc},
	time::Duration,
};

use serde_json::{json, Value};
use tch::Device;
use verity_primitives::{check_fraud_proof, trace_root, Hash, Verdict};
use verity_worker::{
	backend::{BackendKind, Executor},
	fault,
	model::LoadedModel,
	service::{job_key, prove_against, JobResult, Outcome, ProveResult, Service, ServiceConfig},
};

fn root() -> PathBuf {
	PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The example models with their sample inputs (model file, input file).
fn examples() -> Vec<(PathBuf, PathBuf)> {
	let mut v = Vec::new();
	for name in ["digits_cnn", "digits_mlp"] {
		let d = root().join("models");
		v.push((d.join(format!("{name}.vmodel")), d.join(format!("{name}.input"))));
	}
	for name in ["cnn", "mlp"] {
		let d = root().join("../primitives/testdata");
		v.push((d.join(format!("{name}.vmodel")), d.join(format!("{name}.input"))));
	}
	v
}

/// Every golden model of `primitives/testdata` with weights (single-op models included).
fn golden_with_weights() -> Vec<(PathBuf, PathBuf)> {
	let d = root().join("../primitives/testdata");
	["op_conv", "op_dwconv", "op_fc", "op_lookup"]
		.iter()
		.map(|n| (d.join(format!("{n}.vmodel")), d.join(format!("{n}.input"))))
		.collect()
}

fn load(path: &PathBuf) -> LoadedModel {
	let bytes = std::fs::read(path).expect("model file");
	LoadedModel::from_bytes(&bytes, None).expect("verifies")
}

/// One execution with the exact backend (a fresh executor each time: an executor caches the
/// prepared model by id, and the faulty model has the genuine id).
fn execute(model: &LoadedModel, input: &[u8]) -> JobResult {
	let mut ex = Executor::new(BackendKind::Tch, Device::Cpu);
	let model = Arc::new(model.clone());
	let (mut traces, _) = ex.run(&model, &[input]).expect("runs");
	let t = traces.pop().expect("one trace");
	JobResult {
		key: job_key(&model.id, input),
		model: model.id,
		input: input.to_vec(),
		trace_root: trace_root(&t.step_hashes),
		tensors: t.tensors,
		step_hashes: t.step_hashes,
		timings: Default::default(),
		backend: BackendKind::Tch,
	}
}

fn hx(b: impl AsRef<[u8]>) -> String {
	format!("0x{}", hex::encode(b.as_ref()))
}

/// Honest and faulty runs of one model: the step the fault changed, honest and faulty hashes.
fn honest_and_faulty(model: &LoadedModel, input: &[u8]) -> (u32, JobResult, JobResult) {
	let mut faulty = model.clone();
	let step = fault::substitute_weights(&mut faulty).expect("the model has weights");
	assert_eq!(Some(step), fault::target_step(model));
	assert_eq!(faulty.id, model.id, "the reported id stays the genuine one");
	assert_ne!(faulty.weights[step as usize - 1], model.weights[step as usize - 1]);
	for (i, (a, b)) in faulty.weights.iter().zip(&model.weights).enumerate() {
		if i + 1 != step as usize {
			assert_eq!(a, b, "only the weights of op {step} are substituted");
		}
	}
	let honest = execute(model, input);
	let wrong = execute(&faulty, input);
	// The faulty run is still an exact execution, of the substituted weights.
	let reference =
		verity_primitives::execute(&faulty.header, &faulty.weights, input).expect("reference");
	assert_eq!(wrong.step_hashes, reference.step_hashes(&faulty.header).expect("hashes"));
	(step, honest, wrong)
}

#[test]
fn substituted_weights_change_exactly_the_chosen_step_and_prove_finds_it() {
	assert_eq!(fault::active(), None, "no fault is active unless a binary turns it on");
	for (model_path, input_path) in examples().into_iter().chain(golden_with_weights()) {
		let name = model_path.file_name().expect("name").to_string_lossy().to_string();
		let model = load(&model_path);
		let input = std::fs::read(&input_path).expect("input");
		let (step, honest, wrong) = honest_and_faulty(&model, &input);
		let k = step as usize;
		// The chosen step is the last op with weights.
		assert!(!model.weights[k - 1].is_empty(), "{name}");
		assert!(model.weights[k..].iter().all(|w| w.is_empty()), "{name}");
		// Identical before the step, different at the step.
		assert_eq!(honest.step_hashes[..k], wrong.step_hashes[..k], "{name}");
		assert_ne!(honest.step_hashes[k], wrong.step_hashes[k], "{name}: step {step}");
		assert_ne!(honest.trace_root, wrong.trace_root, "{name}");

		// The honest worker's proof logic finds exactly that step; the chain's check accepts it.
		match prove_against(&model, &honest, &wrong.step_hashes).expect("prove") {
			ProveResult::Fraud { step: s, proof, verdict } => {
				assert_eq!(s, step, "{name}");
				assert_eq!(proof.step, step, "{name}");
				assert_eq!(verdict, Verdict::Fraud, "{name}");
				assert_eq!(
					check_fraud_proof(&model.header, &wrong.step_hashes, &proof),
					Ok(Verdict::Fraud),
					"{name}"
				);
				// The proof carries the genuine weights, not the substituted ones.
				assert_eq!(proof.weights, model.weights[k - 1], "{name}");
			},
			other => panic!("{name}: expected fraud at step {step}, got {other:?}"),
		}
		// And the honest commitment is consistent.
		assert!(matches!(
			prove_against(&model, &honest, &honest.step_hashes),
			Ok(ProveResult::Consistent { .. })
		));
	}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_prove_rejects_the_faulty_commitment_at_the_chosen_step() {
	let cases: Vec<(LoadedModel, Vec<u8>)> =
		examples().iter().map(|(m, i)| (load(m), std::fs::read(i).expect("input"))).collect();
	let service =
		Service::start(ServiceConfig::default(), cases.iter().map(|(m, _)| m.clone()).collect());
	for (model, input) in &cases {
		let (step, _, wrong) = honest_and_faulty(model, input);
		let got = service
			.prove(&model.id, input.clone(), wrong.step_hashes.clone(), None)
			.await
			.expect("prove");
		match got {
			Outcome::Done(ProveResult::Fraud { step: s, proof, verdict }) => {
				assert_eq!((s, verdict), (step, Verdict::Fraud));
				assert_eq!(
					check_fraud_proof(&model.header, &wrong.step_hashes, &proof),
					Ok(Verdict::Fraud)
				);
			},
			other => panic!("expected fraud at step {step}, got {other:?}"),
		}
	}
}

fn run_json(bin: &str, model: &PathBuf, input: &PathBuf, fault: Option<&str>) -> (Value, String) {
	let mut cmd = Command::new(bin);
	cmd.args(["run", "--json", "--model"]).arg(model).arg("--input").arg(input);
	cmd.env_remove(fault::ENV);
	if let Some(f) = fault {
		cmd.env(fault::ENV, f);
	}
	let out = cmd.output().expect("runs");
	let stderr = String::from_utf8_lossy(&out.stderr).to_string();
	assert!(out.status.success(), "{bin}: {stderr}");
	(serde_json::from_slice(&out.stdout).expect("json"), stderr)
}

fn hashes(v: &Value) -> Vec<String> {
	serde_json::from_value(v["step_hashes"].clone()).expect("step_hashes")
}

const HONEST: &str = env!("CARGO_BIN_EXE_verity-worker");
const FAULTY: &str = env!("CARGO_BIN_EXE_verity-worker-faulty");

#[test]
fn faulty_binary_run_is_wrong_from_the_chosen_step_and_verify_proves_it() {
	let tmp = std::env::temp_dir().join(format!("verity-fault-test-{}", std::process::id()));
	std::fs::create_dir_all(&tmp).expect("tmp");
	for (model_path, input_path) in examples() {
		let name = model_path.file_name().expect("name").to_string_lossy().to_string();
		let model = load(&model_path);
		let input = std::fs::read(&input_path).expect("input");
		let (step, honest, wrong) = honest_and_faulty(&model, &input);
		let k = step as usize;

		// verity-worker ignores the variable: honest even when it is set.
		let (h, _) = run_json(HONEST, &model_path, &input_path, Some("substitute-weights"));
		assert_eq!(hashes(&h), honest.step_hashes.iter().map(hx).collect::<Vec<_>>(), "{name}");
		// verity-worker-faulty without the variable: honest, with a warning.
		let (h2, err) = run_json(FAULTY, &model_path, &input_path, None);
		assert_eq!(hashes(&h2), hashes(&h), "{name}");
		assert!(err.contains("no fault injected"), "{err}");
		// verity-worker-faulty with it: genuine id, genuine hashes before the step, wrong after.
		let (f, err) = run_json(FAULTY, &model_path, &input_path, Some("substitute-weights"));
		assert!(err.contains("FAULT INJECTION ACTIVE"), "{err}");
		assert!(err.contains(&format!("substituted weights of op {step}")), "{err}");
		assert_eq!(f["model"], hx(model.id), "{name}");
		assert_eq!(hashes(&f), wrong.step_hashes.iter().map(hx).collect::<Vec<_>>(), "{name}");
		assert_eq!(hashes(&f)[..k], hashes(&h)[..k], "{name}");
		assert_ne!(hashes(&f)[k], hashes(&h)[k], "{name}");

		// The honest binary's verify finds step k and a proof the chain accepts.
		let commitment = tmp.join(format!("{name}.commitment.json"));
		std::fs::write(&commitment, serde_json::to_vec(&f).expect("json")).expect("write");
		let out = Command::new(HONEST)
			.args(["verify", "--json", "--model"])
			.arg(&model_path)
			.arg("--input")
			.arg(&input_path)
			.arg("--commitment")
			.arg(&commitment)
			.env_remove(fault::ENV)
			.output()
			.expect("verify");
		assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
		let v: Value = serde_json::from_slice(&out.stdout).expect("json");
		assert_eq!(v["status"], "fraud");
		assert_eq!(v["step"], step);
		assert_eq!(v["verdict"], "Fraud");
	}

	// An unknown fault is refused.
	let (m, i) = &examples()[0];
	let out = Command::new(FAULTY)
		.args(["run", "--model"])
		.arg(m)
		.arg("--input")
		.arg(i)
		.env(fault::ENV, "flip-everything")
		.output()
		.expect("runs");
	assert_eq!(out.status.code(), Some(2));
	assert!(String::from_utf8_lossy(&out.stderr).contains("unknown fault"));
	let _ = std::fs::remove_dir_all(&tmp);
}

/// One JSON-RPC call over HTTP/1.1 (blocking).
fn call(addr: SocketAddr, method: &str, params: Value) -> Value {
	let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
	let mut s = TcpStream::connect(addr).expect("connect");
	s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
	write!(
		s,
		"POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
		body.len()
	)
	.expect("write");
	let mut text = String::new();
	s.read_to_string(&mut text).expect("read");
	let (head, body) = text.split_once("\r\n\r\n").expect("http response");
	assert!(head.starts_with("HTTP/1.1 200"), "{head}");
	serde_json::from_str(body).expect("json body")
}

/// Kills the child on drop (a failing assertion leaves no server behind).
struct Child(std::process::Child);

impl Drop for Child {
	fn drop(&mut self) {
		let _ = self.0.kill();
		let _ = self.0.wait();
	}
}

#[test]
fn faulty_binary_serve_commits_to_the_faulty_hashes() {
	let store = std::env::temp_dir().join(format!("verity-fault-store-{}", std::process::id()));
	let _ = std::fs::remove_dir_all(&store);
	let cases: Vec<_> = examples()
		.iter()
		.map(|(m, i)| (m.clone(), load(m), std::fs::read(i).expect("input")))
		.collect();
	let add = Command::new(HONEST)
		.args(["model", "add", "--models"])
		.arg(&store)
		.args(cases.iter().map(|c| &c.0))
		.output()
		.expect("model add");
	assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));

	let mut child = Child(
		Command::new(FAULTY)
			.args(["serve", "--listen", "127.0.0.1:0", "--models"])
			.arg(&store)
			.env(fault::ENV, "substitute-weights")
			.stdout(Stdio::null())
			.stderr(Stdio::piped())
			.spawn()
			.expect("serve"),
	);
	let stderr = child.0.stderr.take().expect("stderr");
	let (tx, rx) = mpsc::channel();
	std::thread::spawn(move || {
		for line in BufReader::new(stderr).lines().map_while(Result::ok) {
			let _ = tx.send(line);
		}
	});
	let mut log = Vec::new();
	let addr: SocketAddr = loop {
		let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
			panic!("no listen address from verity-worker-faulty serve: {log:?}")
		});
		if let Some(a) = line.split("http://").nth(1) {
			break a.trim().parse().expect("address");
		}
		log.push(line);
	};
	assert!(log.iter().any(|l| l.contains("FAULT INJECTION ACTIVE")), "{log:?}");

	let h = call(addr, "health", json!([]));
	assert_eq!(h["result"]["status"], "ok", "{h}");
	assert_eq!(h["result"]["fault"], "substitute-weights", "{h}");
	assert_eq!(h["result"]["models"], cases.len());
	for (path, model, input) in &cases {
		let (step, honest, wrong) = honest_and_faulty(model, input);
		let r = call(addr, "execute", json!([hx(model.id), hx(input)]));
		assert_eq!(r["result"]["status"], "done", "{r}");
		let got = hashes(&r["result"]);
		assert_eq!(got, wrong.step_hashes.iter().map(hx).collect::<Vec<_>>(), "{path:?}");
		let honest: Vec<Hash> = honest.step_hashes;
		assert_eq!(
			got[..step as usize],
			honest[..step as usize].iter().map(hx).collect::<Vec<_>>()
		);
	}
	drop(child);
	let _ = std::fs::remove_dir_all(&store);
}

// ---- language models ------------------------------------------------------------------------

mod lm {
	use verity_primitives::lm::{
		graph::{op_index, LmOp, Shape},
		header::WeightChunk,
		interp::LmJob,
		sample::SamplingParams,
	};
	use verity_worker::{
		generate::TextModel,
		lm_fast::{FastLm, FastOptions, LmFault},
		verify::{verify, Commitment, Outcome},
	};

	/// The small PyPI model, imported (None if not installed).
	fn small_model() -> Option<TextModel> {
		let dir = verity_worker::import::installed_models()?;
		// Loaded into memory: the files are removed with the directory when this returns.
		let out = tempfile::Builder::new().prefix("verity-fault-lm-").tempdir().unwrap();
		let tokenizer = dir.join("glassllm-en.tokenizer.json");
		let imported = verity_worker::import::import(
			&dir.join("glassllm-en.npz"),
			Some(&tokenizer),
			None,
			None,
		);
		imported.unwrap().write(&out.path().join("small")).unwrap();
		Some(TextModel::load(&out.path().join("small.vlm")).unwrap())
	}

	fn job() -> LmJob {
		LmJob {
			prompt: vec![185, 219, 107, 151, 111, 97],
			params: SamplingParams::GREEDY,
			max_new_tokens: 24,
		}
	}

	/// A dishonest run's commitment and revealed step hashes, checked by `verify`.
	fn check(model: &TextModel, fault: LmFault<'_>) -> Outcome {
		let fast = model.fast().unwrap();
		let run = fast.generate_faulty(&job(), FastOptions::default(), fault).unwrap();
		let c = Commitment::new(model.file.id(), &job(), &run);
		assert!(matches!(verify(model, &c, None, 1).unwrap(), Outcome::Differs { .. }));
		verify(model, &c, Some(&run.step_hashes), 1).unwrap()
	}

	/// A weight of layer 2 changed after the first token: the first wrong step is the first
	/// query head of layer 2 at the position after the prompt, proven (the primitives' check
	/// judges the proof `Fraud` inside `verify`); the honest generation is consistent.
	#[test]
	fn a_weight_changed_after_the_first_token_is_caught_at_that_step() {
		let Some(model) = small_model() else { return };
		let h = &model.file.header;
		let honest = model.fast().unwrap().generate(&job(), FastOptions::default()).unwrap();
		let c = Commitment::new(model.file.id(), &job(), &honest);
		assert_eq!(verify(&model, &c, Some(&honest.step_hashes), 1), Ok(Outcome::Consistent));
		assert_eq!(verify(&model, &c, None, 1), Ok(Outcome::Consistent));

		let mut chunks = model.file.chunks.clone();
		let i = h.chunk_index(WeightChunk::Wq(2, 0)).unwrap() as usize;
		for b in (2..chunks[i].len()).step_by(34) {
			chunks[i][b] ^= 0x40; // the first weight of every block of query head 0
		}
		let bad = FastLm::new(h, &chunks).unwrap();
		let from = job().prompt.len() as u32; // the first token was selected at from - 1
		match check(&model, LmFault::WeightsFrom { from_position: from, model: &bad }) {
			Outcome::Fraud { position, op, kind, .. } => {
				assert_eq!((position, kind), (from, LmOp::Q(2, 0)));
				assert_eq!(Some(op), op_index(h, Shape::at(h, from, from), LmOp::Q(2, 0)));
			},
			other => panic!("expected fraud, got {other:?}"),
		}
	}

	/// `verity-worker-faulty generate` with `VERITY_WORKER_FAULT=lm-weights` (what the end-to-end
	/// fraud test's operator runs): the same tokens and step hashes as the honest binary up to
	/// the position after the prompt, a wrong commitment from there on, and `verify --reveal`
	/// (the honest binary) finds the first wrong step at exactly `Q(middle layer, 0)` of that
	/// position. Without the variable the faulty binary is honest.
	#[test]
	fn faulty_binary_generates_wrong_from_the_position_after_the_prompt() {
		use std::process::Command;
		let Some(models) = verity_worker::import::installed_models() else { return };
		// Its own copy of the model (the other tests of this module rewrite theirs).
		let dir = std::env::temp_dir().join(format!("verity-fault-gen-{}", std::process::id()));
		std::fs::create_dir_all(&dir).unwrap();
		let tokenizer = models.join("glassllm-en.tokenizer.json");
		let imported = verity_worker::import::import(
			&models.join("glassllm-en.npz"),
			Some(&tokenizer),
			None,
			None,
		);
		imported.unwrap().write(&dir.join("small")).unwrap();
		let vlm = dir.join("small.vlm");
		let model = TextModel::load(&vlm).unwrap();
		let h = &model.file.header;
		let generate = |bin: &str, fault: Option<&str>, name: &str| {
			let mut cmd = Command::new(bin);
			cmd.args(["generate", "--json", "--max-tokens", "12", "--prompt", "Once upon a time"])
				.arg("--model")
				.arg(&vlm)
				.arg("--commitment")
				.arg(dir.join(format!("{name}.json")))
				.arg("--reveal")
				.arg(dir.join(format!("{name}.reveal")));
			cmd.env_remove(verity_worker::fault::ENV);
			if let Some(f) = fault {
				cmd.env(verity_worker::fault::ENV, f);
			}
			let out = cmd.output().expect("runs");
			assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
			serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
		};
		let honest = generate(super::HONEST, None, "honest");
		let unset = generate(super::FAULTY, None, "unset");
		assert_eq!(unset["job_root"], honest["job_root"], "no fault: honest");
		let faulty = generate(super::FAULTY, Some("lm-weights"), "faulty");
		assert_ne!(faulty["job_root"], honest["job_root"]);
		let prompt_len = honest["prompt_tokens"].as_array().unwrap().len() as u32;
		assert_eq!(faulty["tokens"][0], honest["tokens"][0], "the first token is honest");
		let verify = |name: &str| {
			let out = Command::new(super::HONEST)
				.args(["verify", "--json", "--model"])
				.arg(&vlm)
				.arg("--commitment")
				.arg(dir.join(format!("{name}.json")))
				.arg("--reveal")
				.arg(dir.join(format!("{name}.reveal")))
				.output()
				.expect("runs");
			(out.status.code(), serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap())
		};
		assert_eq!(verify("honest"), (Some(0), serde_json::json!({"outcome": "consistent"})));
		let (code, v) = verify("faulty");
		assert_eq!(code, Some(1), "{v}");
		let layer = verity_worker::fault::lm_fault_layer(h);
		let op = op_index(h, Shape::at(h, prompt_len, prompt_len), LmOp::Q(layer, 0)).unwrap();
		assert_eq!(
			v,
			serde_json::json!({"outcome": "fraud", "position": prompt_len, "op": op,
				"kind": format!("{:?}", LmOp::Q(layer, 0))})
		);
		let _ = std::fs::remove_dir_all(&dir);
	}

	/// A cached key changed (by 1.0) after it was committed: the first wrong step is the first
	/// attention part that reads it, at the next position. (A change of one unit, 2^-16, is
	/// usually lost in the rounding of the score and shows only later or never.)
	#[test]
	fn a_changed_kv_entry_is_caught_at_the_first_attention_that_reads_it() {
		let Some(model) = small_model() else { return };
		let h = model.file.header.clone();
		let fault =
			LmFault::KeyEntry { layer: 3, kv_head: 1, position: 4, index: 5, delta: 1 << 16 };
		let head = h.group_size(); // the first query head of kv head 1
		let part = 4 / h.attn_block;
		match check(&model, fault) {
			Outcome::Fraud { position, kind, .. } => {
				assert_eq!((position, kind), (5, LmOp::AttnPart(3, head, part)));
			},
			other => panic!("expected fraud, got {other:?}"),
		}
	}
}
