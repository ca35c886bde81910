//! QSync's sync engine.
//!
//! - [`delivery`]: who gets which update when (the per-device lock, pending updates), a
//!   sans-IO state machine.
//! - [`conflict`]: what to do with an incoming update given what is on disk here.
//! - [`btf`]: the back-to-front channel, through which the engine asks its person things.

pub mod btf;
pub mod conflict;
pub mod delivery;
