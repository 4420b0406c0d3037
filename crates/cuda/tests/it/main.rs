//! Integration tests of sqlrft-cuda. Tests that need NVRTC or a GPU print why they skipped;
//! under CI (`CI` set) a missing NVRTC fails instead, since CI installs it.

mod compile;
mod emulator;
mod gpu;
mod model;
mod train;
