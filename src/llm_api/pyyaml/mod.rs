//! PyYAML-compatible YAML text: the bytes `yaml.dump(data, default_flow_style=False)` writes,
//! so the extra LLM API files we write are identical to upstream's.

mod emitter;
mod float;
mod scalar;

pub use emitter::{to_pyyaml, to_pyyaml_unsorted};
pub use float::python_repr;
pub use scalar::{PlainType, plain_resolves_to_str, resolve_plain};
