//! The ARM template language as Azure Resource Manager evaluates it.
//!
//! A template is JSON whose strings may be *expressions* (`"[concat('a',
//! parameters('p'))]"`). This crate parses expressions ([`expr`]), gives the
//! template functions Azure's results ([`functions`]), evaluates values in a
//! scope of parameters, variables and copy indices ([`eval`]), and turns a
//! template plus parameter values into a [`plan::Plan`]: the resources to
//! deploy with their ids and dependencies, in an order that respects them.
//! Everything that needs the running platform — `reference()`, `list*()`,
//! `resourceGroup()` — goes through the [`eval::Host`] trait, so the
//! language is tested here without a server.

pub mod error;
pub mod eval;
pub mod expr;
pub mod functions;
pub mod hash;
pub mod plan;

pub use error::TemplateError;
pub use eval::{Host, Scope};
pub use plan::{Plan, PlannedResource};
