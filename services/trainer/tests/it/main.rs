//! Integration tests of sqlrft-trainer: one test binary, modules by subject.
mod golden;
mod hub;
mod model;
mod pipeline;
mod reference;
mod tiny;
mod train;
