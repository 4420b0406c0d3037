//! An OpenAI-compatible chat-completions client for teacher models (OpenAI, vLLM, Groq,
//! Hugging Face, Fireworks): bounded concurrency, retries with backoff that honour
//! `Retry-After`, JSON-schema structured output, and token/cost accounting.
//!
//! With the `simulated` feature, [`simulated`] serves a scriptable OpenAI-compatible endpoint
//! on 127.0.0.1: what the shipped benchmarks (`sqlrft bench build|eval`) measure against, and
//! what tests of this and other crates talk to.

#![warn(missing_docs)]

#[cfg(feature = "clap")]
mod args;
mod chat;
mod client;
mod config;
#[cfg(feature = "simulated")]
pub mod simulated;
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
