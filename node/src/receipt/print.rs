//! What `receipt fetch` and `receipt verify` print.

use std::path::Path;

use super::{file::claims_of, verify::TrustRoot, ReceiptFile, Verified};

/// `fetch`'s one line.
pub fn fetched(receipt: &ReceiptFile, path: &Path) -> String {
	format!(
		"receipt of job {} ({}) written to {}: {} headers, finalized at #{}",
		receipt.job,
		receipt.claimed.outcome,
		path.display(),
		receipt.headers.len(),
		receipt.finalized.number
	)
}

/// `verify`'s report: what was proven, and the re-run's line if there was one.
pub fn verified(
	chain_id: &str,
	root: &TrustRoot,
	file: &ReceiptFile,
	v: &Verified,
	rerun: Option<&str>,
) -> String {
	let c = claims_of(&v.receipt);
	let mut lines = vec![
		format!("receipt verified against chain {chain_id:?} (genesis {:?})", root.genesis_hash),
		format!("  job:         {}", file.job),
		format!("  outcome:     {}", c.outcome),
		format!("  model:       {}", c.model),
		format!("  requester:   {}", c.requester),
		format!("  operator:    {}", c.operator),
		format!("  output:      {}", c.output),
		format!("  trace root:  {}", c.trace_root.as_deref().unwrap_or("-")),
		format!("  fee:         {}", c.fee),
		format!("  closed at:   #{}", c.closed_at),
		format!(
			"  finalized:   #{} {:?} (GRANDPA justification, set 0, {} voters)",
			v.finalized.0, v.finalized.1, v.voters
		),
	];
	lines.extend(rerun.map(|r| format!("  {r}")));
	lines.join("\n")
}
