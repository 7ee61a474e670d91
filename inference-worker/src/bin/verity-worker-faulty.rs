//! `verity-worker-faulty`: `verity-worker` with fault injection, for tests only (cargo feature
//! `fault-injection`, never in a default build). The same program as `verity-worker`
//! (`src/main.rs`, included as a module, not duplicated); with
//! `VERITY_WORKER_FAULT=substitute-weights` every model is executed with the weights of one op
//! substituted after its file was verified (see `verity_worker::fault`), so its commitments are
//! wrong from that step on. Used by the end-to-end tests as a dishonest operator.

use std::process::ExitCode;

use verity_worker::fault;

#[path = "../main.rs"]
mod worker;

fn main() -> ExitCode {
	verity_worker::thp::reexec_with_huge_pages(); // before the banner (printed once)
	match fault::enable_from_env() {
		Ok(Some(f)) => {
			let line = "!".repeat(78);
			eprintln!("{line}");
			eprintln!("verity-worker-faulty: FAULT INJECTION ACTIVE ({}={})", fault::ENV, f.name());
			eprintln!(
				"verity-worker-faulty: every model is executed with the weights of its last op that"
			);
			eprintln!(
				"verity-worker-faulty: has weights substituted: its results are WRONG. Tests only."
			);
			eprintln!("{line}");
		},
		Ok(None) => eprintln!(
			"verity-worker-faulty: warning: {} is not set; no fault injected (honest execution)",
			fault::ENV
		),
		Err(e) => {
			eprintln!("verity-worker-faulty: error: {e}");
			return ExitCode::from(2);
		},
	}
	worker::main()
}
