//! Charts: running Helm, opening charts offline, and the user's values.

pub mod capabilities;
pub mod helm;
pub mod helm_error;
pub mod source;
pub mod values;
