//! The plain f32 CPU reference: layers with their gradients, and the decoder built from them.
pub mod layers;
pub mod model;
