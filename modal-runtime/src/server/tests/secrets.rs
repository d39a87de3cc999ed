//! Secret values a client sends with a definition or with `with_options`: sealed on arrival,
//! stored sealed, opened only into a container's environment, never returned.

use std::collections::BTreeMap;

use super::{Plane, def};
use crate::model::{FunctionOptions, SealedValues};
use crate::server::auth::Principal;
use crate::server::store::Op;

const VALUE: &str = "hunter2-table";

fn with_secret() -> BTreeMap<String, String> {
    BTreeMap::from([("API_KEY".to_owned(), VALUE.to_owned())])
}

fn contains_value(bytes: &[u8]) -> bool {
    bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes())
}

/// Sealed values a client made up (the control plane never opens them).
fn forged() -> SealedValues {
    SealedValues {
        digest: vec![1],
        nonce: vec![0; 12],
        ciphertext: vec![2; 32],
    }
}

#[test]
fn secret_values_are_sealed_on_arrival_and_opened_only_for_containers() {
    let mut p = Plane::durable();
    p.worker(8000, 16_384, Vec::new());
    let mut d = def("f");
    d.secret_env = with_secret().into();
    // Sealed values from a client are never trusted.
    d.sealed_secret_env = Some(forged());
    let app = p.app("app");
    let f = p.publish(&app, d);
    let kept = &p.state.functions[&f].def;
    assert!(kept.secret_env.is_empty(), "no value in clear");
    assert!(
        kept.sealed_secret_env
            .as_ref()
            .is_some_and(|s| s.digest != [1]),
        "sealed by the control plane, not as sent"
    );
    let stored: Vec<&[u8]> = p
        .state
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::UpsertFunction(row) if row.id == f => Some(row.definition.as_slice()),
            _ => None,
        })
        .collect();
    assert!(!stored.is_empty(), "the definition is stored");
    assert!(!stored.iter().any(|b| contains_value(b)), "stored sealed");
    // A caller looking the function up gets no values, sealed or not.
    let (_, _, got) = p
        .state
        .function_get("app", "f", "", &Principal::Local)
        .unwrap();
    assert!(got.secret_env.is_empty() && got.sealed_secret_env.is_none());
    // The container gets the value in its environment; its worker sees no sealed values.
    let _caller = p.call(&f);
    let task = p.started_one();
    let spec = &p.specs[&task];
    assert_eq!(
        spec.secret_env.get("API_KEY").map(String::as_str),
        Some(VALUE)
    );
    assert!(spec.definition.sealed_secret_env.is_none());
    assert!(spec.definition.secret_env.is_empty());
    let shown = format!("{spec:?}");
    assert!(
        shown.contains("API_KEY") && !shown.contains(VALUE) && !shown.contains(&spec.token_secret),
        "Debug shows names, never values: {shown}"
    );
}

#[test]
fn sealed_values_sent_by_a_client_are_dropped() {
    let mut p = Plane::durable();
    let mut d = def("f");
    // No values of its own: only a forged sealed set, which the control plane never opens.
    d.sealed_secret_env = Some(forged());
    let app = p.app("app");
    let f = p.publish(&app, d);
    assert!(p.state.functions[&f].def.sealed_secret_env.is_none());
}

#[test]
fn options_with_the_same_secret_values_share_a_variant() {
    let mut p = Plane::with_worker();
    let base = p.function(def("f"));
    let options = || FunctionOptions {
        secret_env: with_secret().into(),
        ..Default::default()
    };
    let bind = |p: &mut Plane, o: FunctionOptions| {
        p.state
            .function_bind(&base, None, Some(o), &Principal::Local)
            .unwrap()
    };
    let a = bind(&mut p, options());
    let b = bind(&mut p, options());
    assert_eq!(a, b, "sealing twice gives the same variant");
    let mut other = options();
    other.secret_env.insert("API_KEY".into(), "another".into());
    assert_ne!(a, bind(&mut p, other));
    let variant = &p.state.functions[&a].def;
    assert!(variant.secret_env.is_empty() && variant.sealed_secret_env.is_some());
    let _caller = p.call(&a);
    let task = p.started_one();
    assert_eq!(
        p.specs[&task].secret_env.get("API_KEY").map(String::as_str),
        Some(VALUE)
    );
}
