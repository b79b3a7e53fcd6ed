//! Every test that runs real servers, in one test binary: one shared
//! environment instead of one per file, one link instead of six, and one
//! lock ([`common::serial`]) that keeps heavy tests from running at once on
//! a two-core machine.

mod adapters;
mod agent;
mod common;
mod docker;
mod drill;
mod env;
mod lifecycle;
mod report_html;
