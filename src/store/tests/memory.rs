//! MemStore: an injected failure persists nothing and is reported once.

use super::*;
use crate::store::MemStore;

#[test]
fn an_injected_failure_persists_nothing_and_happens_once() {
    let store = MemStore::new();
    let handle = store.clone();
    let mut boxed: Box<dyn Store> = Box::new(store);
    let mut state = State::new();
    populate(boxed.as_mut(), &mut state);
    assert_eq!(handle.generation(), POPULATE_COMMITS);

    handle.fail_next_commit();
    let mut next = state.clone();
    let changes = plan(&mut next, &create(key(1, "new"), ""));
    assert!(matches!(
        boxed.commit(&changes, next.counters()),
        Err(StoreError::Io(_))
    ));
    assert_eq!(handle.snapshot(), state);
    assert_eq!(handle.generation(), POPULATE_COMMITS);

    boxed.commit(&changes, next.counters()).expect("second try");
    assert_eq!(boxed.load().expect("load"), next);
    assert_eq!(handle.generation(), POPULATE_COMMITS + 1);
}

#[test]
fn with_state_starts_from_a_state() {
    let mut state = State::new();
    populate(&mut MemStore::new(), &mut state);
    let mut store = MemStore::with_state(&state);
    assert_eq!(store.load().expect("load"), state);
    assert_eq!(store.generation(), 0);
}
