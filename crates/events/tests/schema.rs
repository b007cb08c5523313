//! The JSON Schema in `docs/transaction.schema.json` agrees with the code: every
//! generated event validates against it, and the examples the decoder rejects for
//! schema reasons the schema rejects too.

use serde_json::{json, Value};
use veritas_events::{
    decode_event, decode_labelled, encode_labelled_into, Generator, GeneratorConfig, RecordContext,
};

const SCHEMA: &str = include_str!("../../../docs/transaction.schema.json");

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap_or_else(|e| panic!("schema: {e}"));
    assert!(jsonschema::draft202012::meta::is_valid(&schema));
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("schema does not compile: {e}"))
}

#[test]
fn every_generated_event_validates_against_the_schema() {
    let v = validator();
    let cfg = GeneratorConfig {
        seed: 2024,
        customers: 300,
        days: Some(20),
        fraud_rate: 0.1,
        ..GeneratorConfig::default()
    };
    let mut line = Vec::new();
    let mut n = 0;
    let mut scenarios = std::collections::BTreeSet::new();
    for event in Generator::new(cfg).unwrap_or_else(|e| panic!("{e}")) {
        line.clear();
        encode_labelled_into(&event, &mut line);
        let value: Value = serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{e}"));
        if let Err(e) = v.validate(&value) {
            panic!("generated event violates the schema: {e}\n{value}");
        }
        if let Some(s) = &event.label.scenario {
            scenarios.insert(s.clone());
        }
        n += 1;
    }
    assert!(n > 5_000, "{n}");
    assert_eq!(scenarios.len(), 6, "{scenarios:?}");
}

fn base() -> Value {
    json!({
        "transaction_id": "t1",
        "timestamp": "2025-03-01T12:00:00Z",
        "card_number": "4111111111111111",
        "amount": 12.5
    })
}

fn with(field: &str, value: Value) -> Value {
    let mut v = base();
    if let Some(o) = v.as_object_mut() {
        o.insert(field.to_owned(), value);
    }
    v
}

fn without(field: &str) -> Value {
    let mut v = base();
    if let Some(o) = v.as_object_mut() {
        o.remove(field);
    }
    v
}

#[test]
fn schema_and_decoder_agree_on_examples() {
    let v = validator();
    let ctx = RecordContext::new("transactions", 0, 0, 0);
    let decodes = |value: &Value| decode_event(value.to_string().as_bytes(), &ctx).is_ok();
    let accepted = [
        base(),
        with("currency", json!("EUR")),
        with("currency", Value::Null),
        with("channel", json!("atm")),
        with("unknown_future_field", json!({"nested": [1, 2, 3]})),
        with("amount", json!(0)),
        with("timestamp", json!("2025-03-01T12:00:00.123+05:30")),
        with("merchant", Value::Null),
    ];
    for example in &accepted {
        assert!(v.is_valid(example), "schema rejects {example}");
        assert!(decodes(example), "decoder rejects {example}");
    }
    let rejected = [
        without("amount"),
        without("card_number"),
        without("timestamp"),
        without("transaction_id"),
        with("amount", json!(-1)),
        with("amount", json!("12.5")),
        with("card_number", json!("4111 1111 1111 1111")),
        with("card_number", json!("41111")),
        with("card_number", json!(4111111111111111u64)),
        with("transaction_id", json!("")),
        with("timestamp", json!("yesterday")),
        with("timestamp", json!("2025-03-01 12:00:00")),
        with("channel", json!("mail")),
        with("currency", json!("usd")),
        with("country", json!("USA")),
        with("lat", json!(91)),
        with("lon", json!(12)),
    ];
    for example in &rejected {
        assert!(!v.is_valid(example), "schema accepts {example}");
        assert!(!decodes(example), "decoder accepts {example}");
    }
}

#[test]
fn labels_in_the_schema() {
    let v = validator();
    for flag in [json!(true), json!(false), json!(0), json!(1)] {
        let example = with("is_fraud", flag);
        assert!(v.is_valid(&example), "{example}");
        assert!(decode_labelled(example.to_string().as_bytes()).is_ok());
    }
    for flag in [json!(2), json!("maybe")] {
        let example = with("is_fraud", flag);
        assert!(!v.is_valid(&example), "{example}");
        assert!(decode_labelled(example.to_string().as_bytes()).is_err());
    }
}

#[test]
fn tutorial_format_matches_its_schema_definition() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap_or_else(|e| panic!("{e}"));
    let mut def = schema["$defs"]["bank_account"].clone();
    if let Some(o) = def.as_object_mut() {
        o.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
    }
    let v = jsonschema::draft202012::new(&def).unwrap_or_else(|e| panic!("{e}"));
    let example = json!({"FirstName":"Jimmie","LastName":"Swaniawski","CreditCardNumber":"3558018114425614","Amount":644.78});
    assert!(v.is_valid(&example));
    let ctx = RecordContext::new("bankaccount", 0, 7, 1_700_000_000_000);
    let tx = decode_event(example.to_string().as_bytes(), &ctx).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tx.transaction_id, "bankaccount/0/7");
    assert!(!v.is_valid(&json!({"FirstName":"J","Amount":1})));
}
