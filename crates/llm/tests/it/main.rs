//! Integration tests of the chat client against the OpenAI-compatible stub over real HTTP.

mod client;
