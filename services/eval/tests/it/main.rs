mod bench;
mod endpoints;
mod local;
mod resume;
mod support;
