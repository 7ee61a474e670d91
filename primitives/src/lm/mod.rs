//! Language models (Llama family) as exact integer programs.
//!
//! A decoder-only transformer (RMSNorm, grouped-query attention with rotary positions,
//! SiLU-gated FFN, tied embeddings) is defined here with integer semantics only, separately
//! from the classifier format of [`crate::model`] (whose ids and golden vectors are
//! untouched). `docs/MODEL_FORMAT.md` section 12 is the byte-level specification.
//!
//! * [`fixed`]: exact fp16 decoding, rounding, `isqrt`, `exp(-x)`, `cos`/`sin` in fixed point.
//! * [`quant`]: GGUF block layouts (Q8_0, Q4_0, Q4_1) and the exact block matmul.
//! * [`ops`]: RMSNorm, RoPE, attention, SiLU-gated product (activations are Q16 `i32`).
//! * [`sample`]: greedy and seeded sampling.
//! * [`header`]: the transformer header and its weight chunks.
//! * [`graph`]: the ops of a position, what each reads and which weights it uses.
//! * [`validate`]: structural rules, accumulator bounds, per-step costs and limits.
//! * [`interp`]: the reference interpreter (`generate`, one step from its inputs).
//! * [`job`]: what a chain checks of a generation request, its output and a reveal.
//! * [`file`](mod@file): the transformer model file (header and weight chunks).
//! * [`trace`]: step hashes, position and job roots, step proofs and their check.

pub mod file;
pub mod fixed;
pub mod graph;
pub mod header;
pub mod interp;
pub mod job;
pub mod ops;
pub mod quant;
pub mod sample;
pub mod trace;
pub mod validate;
