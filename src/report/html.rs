//! The HTML report.

use super::Report;

pub fn render(_report: &Report) -> String {
    todo!("helper")
}
