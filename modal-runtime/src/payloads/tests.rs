//! Tests of the payload store: files, handles, outboxes, spares.

use super::*;

fn temp_store() -> (Store, PathBuf) {
    let dir = std::env::temp_dir().join(format!("payloads-test-{}", random_name()));
    (Store::open(&dir).unwrap(), dir)
}

#[test]
fn a_payload_comes_back_and_goes() {
    let (store, dir) = temp_store();
    let stored = store.put(b"hello").unwrap();
    assert_eq!(store.read(&stored).unwrap(), Bytes::from_static(b"hello"));
    let mounted = Mounted {
        store_id: store.id().into(),
        objects: store.objects(),
        outbox: dir.join("nowhere"),
    };
    let (bytes, watch) = mounted.map(&stored).unwrap();
    assert_eq!(bytes, Bytes::from_static(b"hello"));
    let kept = bytes.slice(1..);
    drop(bytes);
    assert!(watch.upgrade().is_some(), "a slice still maps the file");
    drop(kept);
    assert!(watch.upgrade().is_none());
    store.remove(std::slice::from_ref(&stored.handle));
    assert!(store.read(&stored).is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_restarted_control_plane_keeps_only_what_its_state_names() {
    let (store, dir) = temp_store();
    let kept = store.put(b"kept").unwrap();
    let orphan = store.put(b"orphan").unwrap();
    let outbox = store.make_outbox("ta-1", None).unwrap();
    std::fs::write(outbox.join("half-written"), b"x").unwrap();
    let live = std::collections::HashSet::from([kept.handle.clone()]);
    assert_eq!(store.keep_only(&live), 1);
    assert!(store.read(&kept).is_ok());
    assert!(store.read(&orphan).is_err());
    assert!(!outbox.exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn handles_name_nothing_outside_the_store() {
    let (store, dir) = temp_store();
    for bad in [
        "../id",
        "id",
        "/etc/passwd",
        "",
        "../objects/0123456789abcdef0123456789abcdef",
    ] {
        let stored = Stored {
            handle: bad.into(),
            size: 0,
        };
        assert!(store.read(&stored).is_err(), "{bad}");
    }
    assert!(store.outbox("../x").is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_outbox_file_is_adopted_only_when_it_is_what_was_announced() {
    let (store, dir) = temp_store();
    let outbox = store.make_outbox("ta-1", None).unwrap();
    let mounted = Mounted {
        store_id: store.id().into(),
        objects: store.objects(),
        outbox,
    };
    let put = |bytes: &[u8]| {
        let name = random_name();
        write_new(&mounted.outbox.join(&name), bytes, 0o600).unwrap();
        name
    };
    let name = put(b"result");
    assert!(store.adopt("ta-1", &name, 5).is_err());
    let name = put(b"result");
    let stored = store.adopt("ta-1", &name, 6).unwrap();
    assert_eq!(store.read(&stored).unwrap(), Bytes::from_static(b"result"));
    assert!(store.adopt("ta-1", "../../id", 32).is_err());
    store.remove_outbox("ta-1");
    assert!(!store.outbox("ta-1").unwrap().exists());
    let _ = std::fs::remove_dir_all(dir);
}
