//! What `receipt fetch` and `receipt verify` print.

use std::path::Path;

use super::{
	file::{claims_of, generation_claims},
	verify::TrustRoot,
	ReceiptFile, Verified,
};

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
	let generation = v.generation.as_ref().map(|g| generation_claims(&v.receipt, g));
	let mut lines = vec![
		format!("receipt verified against chain {chain_id:?} (genesis {:?})", root.genesis_hash),
		format!("  job:         {}", file.job),
		format!("  outcome:     {}", c.outcome),
		format!("  model:       {}", c.model),
		format!("  requester:   {}", c.requester),
		format!("  operator:    {}", c.operator),
	];
	match &generation {
		None => lines.extend([
			format!("  output:      {}", c.output),
			format!("  trace root:  {}", c.trace_root.as_deref().unwrap_or("-")),
		]),
		Some(g) => lines.extend([
			format!("  prompt:      {} tokens {:?}", g.prompt.len(), g.prompt),
			format!(
				"  sampling:    max {} new tokens, temperature {}/65536, top-k {}, top-p {}/65536, seed {}",
				g.max_new_tokens, g.temperature_q16, g.top_k, g.top_p_q16, g.seed
			),
			format!("  tokens:      {} {:?}", g.tokens.len(), g.tokens),
			format!("  job root:    {}", c.trace_root.as_deref().unwrap_or("-")),
		]),
	}
	lines.extend([
		format!("  fee:         {}", c.fee),
		format!("  closed at:   #{}", c.closed_at),
		format!(
			"  finalized:   #{} {:?} (GRANDPA justification, set 0, {} voters)",
			v.finalized.0, v.finalized.1, v.voters
		),
	]);
	lines.extend(rerun.map(|r| format!("  {r}")));
	lines.join("\n")
}
