//! Text and tokens of an imported language model, with Hugging Face's `tokenizers` library,
//! from the tokenizer file whose `blake2_256` the model's header commits to
//! (`tokenizer_hash`): a tokenizer that is not the model's is refused.

use verity_primitives::lm::header::LmHeader;

/// Why a tokenizer cannot be used, or text or tokens cannot be converted.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
	#[error("this tokenizer file is not the model's (its blake2_256 is not the header's tokenizer_hash)")]
	NotTheModels,
	#[error("the tokenizer file does not load: {0}")]
	Invalid(String),
	#[error("the tokenizer has {tokens} tokens, the model {vocab}")]
	WrongVocabulary { tokens: usize, vocab: u32 },
	#[error("token {0} is outside the vocabulary")]
	UnknownToken(u32),
	#[error("tokenizing: {0}")]
	Encode(String),
}

/// A model's tokenizer.
pub struct TextTokenizer {
	inner: tokenizers::Tokenizer,
	vocab: u32,
}

impl TextTokenizer {
	/// The tokenizer of the model `header`, from the file's `bytes`.
	pub fn for_model(header: &LmHeader, bytes: &[u8]) -> Result<Self, TokenizerError> {
		if sp_crypto_hashing::blake2_256(bytes) != header.tokenizer_hash {
			return Err(TokenizerError::NotTheModels);
		}
		let inner = tokenizers::Tokenizer::from_bytes(bytes)
			.map_err(|e| TokenizerError::Invalid(e.to_string()))?;
		let tokens = inner.get_vocab_size(true);
		if tokens != header.vocab as usize {
			return Err(TokenizerError::WrongVocabulary { tokens, vocab: header.vocab });
		}
		Ok(TextTokenizer { inner, vocab: header.vocab })
	}

	/// The tokens of `text` (special tokens written in it, e.g. a chat template's, become their
	/// ids; nothing is added).
	pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
		let e =
			self.inner.encode(text, false).map_err(|e| TokenizerError::Encode(e.to_string()))?;
		Ok(e.get_ids().to_vec())
	}

	/// The text of `tokens`, special tokens left out.
	pub fn decode(&self, tokens: &[u32]) -> Result<String, TokenizerError> {
		if let Some(t) = tokens.iter().find(|t| **t >= self.vocab) {
			return Err(TokenizerError::UnknownToken(*t));
		}
		self.inner.decode(tokens, true).map_err(|e| TokenizerError::Encode(e.to_string()))
	}
}
