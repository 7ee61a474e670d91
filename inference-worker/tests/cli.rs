//! The `verity-worker` binary: run, verify, model add/list/inspect, error lines and exit codes.

use std::{path::PathBuf, process::Command};

use serde_json::Value;
use verity_primitives::testing::golden;

fn bin() -> Command {
	Command::new(env!("CARGO_BIN_EXE_verity-worker"))
}

fn testdata(name: &str) -> PathBuf {
	PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../primitives/testdata").join(name)
}

fn tmp(name: &str) -> PathBuf {
	let d = std::env::temp_dir().join(format!("verity-cli-test-{}", std::process::id()));
	std::fs::create_dir_all(&d).expect("tmp dir");
	d.join(name)
}

#[test]
fn run_verify_and_store_commands() {
	let store = tmp("store");
	let model = testdata("cnn.vmodel");
	let input = testdata("cnn.input");
	let case = golden::cnn();
	let hashes = case.step_hashes().expect("hashes");

	// run --json, both backends: same commitment as the reference.
	let mut outputs = Vec::new();
	for backend in ["tch", "reference"] {
		let out = bin()
			.args(["run", "--model"])
			.arg(&model)
			.arg("--input")
			.arg(&input)
			.args(["--backend", backend, "--json"])
			.output()
			.expect("run");
		assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
		let v: Value = serde_json::from_slice(&out.stdout).expect("json");
		let got: Vec<String> = serde_json::from_value(v["step_hashes"].clone()).expect("hashes");
		assert_eq!(got, hashes.iter().map(|h| format!("0x{}", hex::encode(h))).collect::<Vec<_>>());
		outputs.push(v);
	}
	assert_eq!(outputs[0]["trace_root"], outputs[1]["trace_root"]);

	// model add / list / inspect, then run by id.
	let out =
		bin().args(["model", "add"]).arg(&model).arg("--models").arg(&store).output().expect("add");
	assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
	let id = format!("0x{}", hex::encode(case.header.id()));
	assert!(String::from_utf8_lossy(&out.stdout).starts_with(&id));
	let out =
		bin().args(["model", "list", "--json", "--models"]).arg(&store).output().expect("list");
	let v: Value = serde_json::from_slice(&out.stdout).expect("json");
	assert_eq!(v[0]["id"], id);
	let out =
		bin().args(["model", "inspect", &id, "--models"]).arg(&store).output().expect("inspect");
	assert!(out.status.success());
	assert!(String::from_utf8_lossy(&out.stdout).contains("Conv2d"));
	let out = bin()
		.args(["run", "--model", &id, "--input"])
		.arg(&input)
		.arg("--models")
		.arg(&store)
		.output()
		.expect("run");
	assert!(out.status.success());
	assert!(String::from_utf8_lossy(&out.stdout)
		.contains(outputs[0]["trace_root"].as_str().expect("root")));

	// verify: honest commitment → exit 0; one wrong step → exit 1 with the step and a proof.
	let commitment = tmp("commitment.json");
	std::fs::write(&commitment, serde_json::to_vec(&outputs[0]).expect("json")).expect("write");
	let out = bin()
		.args(["verify", "--model"])
		.arg(&model)
		.arg("--input")
		.arg(&input)
		.arg("--commitment")
		.arg(&commitment)
		.output()
		.expect("verify");
	assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
	assert!(String::from_utf8_lossy(&out.stdout).starts_with("consistent"));
	let mut bad = outputs[0].clone();
	bad["step_hashes"][4] = Value::String(format!("0x{}", "11".repeat(32)));
	bad.as_object_mut().expect("object").remove("trace_root");
	std::fs::write(&commitment, serde_json::to_vec(&bad).expect("json")).expect("write");
	let proof = tmp("proof.hex");
	let out = bin()
		.args(["verify", "--json", "--model"])
		.arg(&model)
		.arg("--input")
		.arg(&input)
		.arg("--commitment")
		.arg(&commitment)
		.arg("--proof-out")
		.arg(&proof)
		.output()
		.expect("verify");
	assert_eq!(out.status.code(), Some(1));
	let v: Value = serde_json::from_slice(&out.stdout).expect("json");
	assert_eq!(v["step"], 4);
	assert_eq!(v["verdict"], "Fraud");
	assert!(std::fs::read_to_string(&proof).expect("proof").starts_with("0x"));

	// Errors: one readable line, non-zero exit.
	let out = bin()
		.args(["run", "--model"])
		.arg(&model)
		.arg("--input")
		.arg(testdata("mlp.input"))
		.output()
		.expect("run");
	assert_eq!(out.status.code(), Some(2));
	let err = String::from_utf8_lossy(&out.stderr);
	assert_eq!(err.lines().count(), 1, "{err}");
	assert!(err.contains("wrong input size"), "{err}");
	let out =
		bin().args(["run", "--model", "nope.vmodel", "--input"]).arg(&input).output().expect("run");
	assert_eq!(out.status.code(), Some(2));
	assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
	// A flipped weight byte is refused by `run` and by `model add`.
	let mut bytes = std::fs::read(&model).expect("model");
	let n = bytes.len();
	bytes[n - 10] ^= 0x80;
	let flipped = tmp("flipped.vmodel");
	std::fs::write(&flipped, &bytes).expect("write");
	for args in
		[vec!["model", "add"], vec!["run", "--input", input.to_str().expect("utf8"), "--model"]]
	{
		let out =
			bin().args(&args).arg(&flipped).arg("--models").arg(&store).output().expect("cmd");
		assert_eq!(out.status.code(), Some(2), "{args:?}");
		let err = String::from_utf8_lossy(&out.stderr);
		assert!(err.contains("do not match the hash"), "{err}");
		assert_eq!(err.lines().count(), 1);
	}
	let _ = std::fs::remove_dir_all(store.parent().expect("parent"));
}

/// The environment of a running `verity-worker serve` as `/proc` shows it (the raw bytes, NULs
/// as newlines: glibc rewrites `GLIBC_TUNABLES` in place as it parses it, ending the first
/// tunable with a NUL), then the server killed.
fn served_environment(tunables: Option<&str>) -> String {
	let store = tmp(&format!("thp-store-{}", tunables.unwrap_or("none")));
	let mut command = bin();
	command
		.args(["serve", "--listen", "127.0.0.1:0", "--models"])
		.arg(&store)
		.stdout(std::process::Stdio::null())
		.stderr(std::process::Stdio::null());
	command.env_remove("GLIBC_TUNABLES").env_remove(verity_worker::thp::REEXECUTED);
	if let Some(t) = tunables {
		command.env("GLIBC_TUNABLES", t);
	}
	let mut child = command.spawn().expect("serve");
	// The re-executed program (same pid) has its environment once it runs: poll for it (an
	// explicit `glibc.malloc.hugetlb` is there from the start, and stays).
	let path = format!("/proc/{}/environ", child.id());
	let mut env = String::new();
	for _ in 0..100 {
		std::thread::sleep(std::time::Duration::from_millis(50));
		env =
			String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).replace('\0', "\n");
		if env.contains("glibc.malloc.hugetlb") {
			break;
		}
	}
	std::thread::sleep(std::time::Duration::from_millis(300));
	let still =
		String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).replace('\0', "\n");
	let _ = child.kill();
	let _ = child.wait();
	assert_eq!(still, env, "the environment changed again: re-executed more than once");
	env
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn the_worker_runs_with_huge_pages_unless_told_otherwise() {
	let marker = format!("{}=1", verity_worker::thp::REEXECUTED);
	let has = |env: &str, line: &str| env.lines().any(|l| l == line);
	// Nothing set: the worker re-executed itself (once) with glibc's huge-page heap.
	let env = served_environment(None);
	assert!(has(&env, "GLIBC_TUNABLES=glibc.malloc.hugetlb=1") && has(&env, &marker), "{env}");
	// Other tunables are kept, the huge-page one appended (after the NUL glibc writes).
	let env = served_environment(Some("glibc.malloc.arena_max=2"));
	assert!(has(&env, "GLIBC_TUNABLES=glibc.malloc.arena_max=2"), "{env}");
	assert!(has(&env, "glibc.malloc.hugetlb=1") && has(&env, &marker), "{env}");
	// An explicit choice (here: off) is left alone: no re-execution.
	let env = served_environment(Some("glibc.malloc.hugetlb=0"));
	assert!(has(&env, "GLIBC_TUNABLES=glibc.malloc.hugetlb=0"), "{env}");
	assert!(!env.contains("hugetlb=1") && !has(&env, &marker), "{env}");
}
