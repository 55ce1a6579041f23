//! `--output json`: a response message in the canonical protobuf JSON mapping (the
//! pbjson code generated for the admin API), as scripts and `jq` read it.

use serde::Serialize;
use serde_json::{Number, Value};

/// The message as canonical protobuf JSON; `pretty` for one command's answer,
/// compact for one line of a stream.
pub fn render<T: Serialize>(message: &T, pretty: bool) -> serde_json::Result<String> {
    let mut value = serde_json::to_value(message)?;
    integral_numbers(&mut value);
    if pretty {
        serde_json::to_string_pretty(&value)
    } else {
        serde_json::to_string(&value)
    }
}

/// Largest integer a double holds exactly (2^53).
const EXACT: f64 = 9_007_199_254_740_992.0;

/// `google.protobuf.Value` holds every number as a double, so an audit detail's
/// `"count": 3` would print as `3.0`. The JSON mapping accepts either form for a
/// double; print whole numbers as integers, as they were recorded.
fn integral_numbers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                if f.fract() == 0.0 && f.abs() <= EXACT {
                    *n = Number::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(fields) => fields.values_mut().for_each(integral_numbers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_doubles_print_as_integers_and_fractions_stay() {
        let v = serde_json::json!({"a": 3.0, "b": [2.5, -7.0], "c": "3.0", "d": 1e300});
        let text = render(&v, false).unwrap();
        assert_eq!(text, r#"{"a":3,"b":[2.5,-7],"c":"3.0","d":1e+300}"#);
    }
}
