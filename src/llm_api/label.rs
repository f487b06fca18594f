//! The few facts the rules read straight from a canonical label, read the way upstream reads
//! them (substring tests and `str.split`), not through the full test-name grammar.

/// The inference backend a label selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Pytorch,
    AutoDeploy,
    /// No backend field: the TensorRT engine flow.
    TensorRt,
}

impl Backend {
    /// The backend named by one of the label's `-`-separated fields.
    pub fn from_label(label: &str) -> Backend {
        let mut fields = label.split('-');
        if fields.clone().any(|f| f == "_autodeploy") {
            Backend::AutoDeploy
        } else if fields.any(|f| f == "pytorch") {
            Backend::Pytorch
        } else {
            Backend::TensorRt
        }
    }
}

/// Upstream's `label.split('<field>:')[1].split('-')[0]`: the text after the first
/// `<field>:`, up to the next `-` (or a second `<field>:`). `None` where upstream would raise
/// IndexError (the field name appears, but never followed by ':').
pub fn field_value<'a>(label: &'a str, field: &str) -> Option<&'a str> {
    let needle = format!("{field}:");
    let after = label.split(needle.as_str()).nth(1)?;
    after.split('-').next()
}

/// The count of a `<field>:N` label segment as upstream reads it: the first `-`-separated part
/// starting with `<field>:`, `int()` of the rest, at least 1; 1 when there is no such part.
/// `Err` carries the text upstream's `int()` would have rejected.
pub fn segment_count(label: &str, field: &str) -> Result<i64, String> {
    let prefix = format!("{field}:");
    match label
        .split('-')
        .find_map(|part| part.strip_prefix(prefix.as_str()))
    {
        None => Ok(1),
        Some(text) => python_int(text)
            .map(|n| n.max(1))
            .ok_or_else(|| text.to_string()),
    }
}

/// Python's `int(text)` for base 10: surrounding whitespace, a sign, and single underscores
/// between digits are allowed. `None` also where the value does not fit in i64.
fn python_int(text: &str) -> Option<i64> {
    let trimmed = text.trim();
    let (negative, digits) = match trimmed.as_bytes().first()? {
        b'-' => (true, &trimmed[1..]),
        b'+' => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let valid = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_');
    if !valid {
        return None;
    }
    let magnitude: i64 = digits.replace('_', "").parse().ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_fields() {
        assert_eq!(
            Backend::from_label("m-bench-pytorch-float16-maxbs:1"),
            Backend::Pytorch
        );
        assert_eq!(
            Backend::from_label("m-bench-_autodeploy-float16"),
            Backend::AutoDeploy
        );
        assert_eq!(
            Backend::from_label("m-bench-float16-input_output_len:1,1"),
            Backend::TensorRt
        );
        assert_eq!(
            Backend::from_label("pytorchish-bench-float16"),
            Backend::TensorRt
        );
    }

    #[test]
    fn field_value_like_python_split() {
        assert_eq!(
            field_value("m-x-kv_cache_dtype:fp8-gpus:2", "kv_cache_dtype"),
            Some("fp8")
        );
        assert_eq!(
            field_value("m-kv_cache_dtype:fp8", "kv_cache_dtype"),
            Some("fp8")
        );
        assert_eq!(
            field_value("m-kv_cache_dtype:-x", "kv_cache_dtype"),
            Some("")
        );
        assert_eq!(field_value("m-kv_cache_dtype", "kv_cache_dtype"), None);
        assert_eq!(
            field_value("m-kv_cache_dtype:akv_cache_dtype:b-c", "kv_cache_dtype"),
            Some("a")
        );
    }

    #[test]
    fn lora_count_like_python_int() {
        assert_eq!(segment_count("m-loras:8-gpus:2", "loras"), Ok(8));
        assert_eq!(segment_count("m-loras:0", "loras"), Ok(1));
        // The label is split on '-' first, so upstream sees "loras:" and int('') raises.
        assert_eq!(segment_count("m-loras:-3", "loras"), Err(String::new()));
        assert_eq!(segment_count("m-loras: +3 ", "loras"), Ok(3));
        assert_eq!(segment_count("m-loras:1_0", "loras"), Ok(10));
        assert_eq!(segment_count("m-xloras", "loras"), Ok(1));
        assert_eq!(segment_count("m-loras:x", "loras"), Err("x".to_string()));
        assert_eq!(
            segment_count("m-loras:1__0", "loras"),
            Err("1__0".to_string())
        );
    }
}
