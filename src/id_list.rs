//! Token-id fields of HF JSON files (`eos_token_id`): one id or a list of ids.

use serde_json::{json, Value};

/// Reads the field's value; `null` is the empty list. The error is the problem alone.
pub(crate) fn parse(value: &Value) -> Result<Vec<u32>, String> {
    let one = |v: &Value| {
        v.as_u64().and_then(|id| u32::try_from(id).ok()).ok_or_else(|| format!("must be a token id or a list of token ids, found {v}"))
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        Value::Null => Ok(Vec::new()),
        v => Ok(vec![one(v)?]),
    }
}

/// The value HF writes: nothing for no ids, a bare id for one, else a list.
pub(crate) fn to_json(ids: &[u32]) -> Option<Value> {
    match ids {
        [] => None,
        [one] => Some(json!(one)),
        many => Some(json!(many)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_id_or_a_list() {
        assert_eq!(parse(&json!(7)).unwrap(), vec![7]);
        assert_eq!(parse(&json!([7, 8])).unwrap(), vec![7, 8]);
        assert_eq!(parse(&Value::Null).unwrap(), Vec::<u32>::new());
        assert!(parse(&json!("x")).is_err());
        assert!(parse(&json!(5_000_000_000u64)).is_err());
        assert_eq!(to_json(&[7]), Some(json!(7)));
        assert_eq!(to_json(&[7, 8]), Some(json!([7, 8])));
        assert_eq!(to_json(&[]), None);
    }
}
