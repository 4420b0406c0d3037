//! The durability promises of `sqlrft-files` under the failures they are for: a journal cut at
//! every byte, a process killed with SIGKILL while it appends.

mod journal;
