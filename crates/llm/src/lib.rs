//! An OpenAI-compatible chat-completions client for teacher models (OpenAI, vLLM, Groq,
//! Hugging Face, Fireworks): bounded concurrency, retries with backoff that honour
//! `Retry-After`, JSON-schema structured output, and token/cost accounting.
//!
//! With the `stub` feature, [`stub`] serves a scriptable OpenAI-compatible endpoint on
//! 127.0.0.1 for tests of this and other crates.

#![warn(missing_docs)]

#[cfg(feature = "clap")]
mod args;
mod chat;
mod client;
mod config;
#[cfg(feature = "stub")]
pub mod stub;
mod usage;

#[cfg(feature = "clap")]
pub use args::LlmArgs;
pub use chat::{
    ChatRequest, ChatResponse, Choice, ChoiceMessage, JsonSchemaFormat, Message, ResponseFormat,
    Role, TokenUsage,
};
pub use client::{LlmClient, LlmError, Structured};
pub use config::{LlmConfig, Provider, TokenLimitField};
pub use usage::{Pricing, Usage, UsageMeter};
