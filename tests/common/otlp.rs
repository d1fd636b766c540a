//! Reading OTLP attributes decoded by `opentelemetry-proto` (the e2e export tests and the
//! schema test).
#![allow(dead_code)]

use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};

pub fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

pub fn string(v: Option<&Value>) -> Option<&str> {
    match v {
        Some(Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

pub fn int(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
