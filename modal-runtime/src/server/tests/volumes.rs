//! Volumes: commits applied file by file to the latest version, kept across a restart; who may
//! reach a volume; ephemeral volumes going with their app.

use super::*;
use crate::model::volume::{Change, Entry, EntryKind, VolumeMount};
use crate::server::volumes::{GetOrCreate, VolumeRef};

fn named(name: &str) -> VolumeRef {
    VolumeRef {
        name: name.into(),
        ..VolumeRef::default()
    }
}

fn create(p: &mut Plane, name: &str, ephemeral_app_id: &str) -> String {
    let (id, version, created) = p
        .state
        .volume_get_or_create(GetOrCreate {
            volume: named(name),
            create_if_missing: true,
            ephemeral_app_id: ephemeral_app_id.into(),
        })
        .unwrap();
    assert!(created);
    assert_eq!(version, 0);
    id
}

fn file(path: &str, hash: &str) -> Change {
    Change::Put(Entry {
        path: path.into(),
        kind: EntryKind::File,
        hash: hash.into(),
        size: 3,
        mode: 0o644,
        mtime_ms: 1,
        target: String::new(),
    })
}

fn paths(p: &Plane, id: &str) -> Vec<String> {
    let by_id = VolumeRef {
        volume_id: id.into(),
        ..VolumeRef::default()
    };
    let (_, _, manifest) = p.state.volume_manifest(&by_id, &Principal::Local).unwrap();
    manifest.into_keys().collect()
}

#[test]
fn commits_apply_file_by_file_and_survive_a_restart() {
    let mut p = Plane::durable();
    let id = create(&mut p, "weights", "");
    let user = Principal::Local;
    let v1 = p
        .state
        .volume_commit(
            &named("weights"),
            vec![file("a/x", "1"), file("b", "2")],
            &user,
        )
        .unwrap();
    // A second writer that saw nothing of the first: its files win, the others stay.
    let v2 = p
        .state
        .volume_commit(
            &named("weights"),
            vec![Change::Remove("a".into()), file("c", "3")],
            &user,
        )
        .unwrap();
    assert_eq!((v1, v2), (1, 2));
    assert_eq!(paths(&p, &id), ["b", "c"]);
    let again = p.restarted();
    assert_eq!(paths(&again, &id), ["b", "c"]);
    assert_eq!(again.state.volume_list("")[0].version, 2);
    // A path that climbs out of the volume is refused, and changes nothing.
    let err = p
        .state
        .volume_commit(&named("weights"), vec![file("../etc/passwd", "4")], &user)
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(p.state.volume_list("")[0].version, 2);
}

#[test]
fn a_missing_volume_is_created_only_when_asked() {
    let mut p = Plane::new();
    let err = p
        .state
        .volume_get_or_create(GetOrCreate {
            volume: named("nope"),
            create_if_missing: false,
            ephemeral_app_id: String::new(),
        })
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(err.message().contains("modal volume create nope"), "{err}");
    let id = create(&mut p, "yes", "");
    let (again, _, created) = p
        .state
        .volume_get_or_create(GetOrCreate {
            volume: named("yes"),
            create_if_missing: true,
            ephemeral_app_id: String::new(),
        })
        .unwrap();
    assert_eq!((again, created), (id, false));
}

#[test]
fn a_container_reaches_only_the_volumes_its_function_mounts() {
    let mut p = Plane::with_worker();
    let mounted = create(&mut p, "mounted", "");
    let other = create(&mut p, "other", "");
    let mut d = def("f");
    d.volumes = vec![VolumeMount {
        path: "/data".into(),
        volume_id: mounted.clone(),
        name: "mounted".into(),
    }];
    let function_id = p.function(d);
    let _caller = p.call(&function_id);
    let task_id = p.started_one();
    let container = Principal::Container {
        task_id: task_id.clone(),
        app_id: String::new(),
        restricted: true,
    };
    let by_id = |id: &str| VolumeRef {
        volume_id: id.into(),
        ..VolumeRef::default()
    };
    assert!(
        p.state
            .volume_manifest(&by_id(&mounted), &container)
            .is_ok()
    );
    let err = p
        .state
        .volume_manifest(&by_id(&other), &container)
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        p.state
            .volume_commit(&by_id(&other), vec![file("x", "1")], &container)
            .is_err()
    );
    // A mount of a volume that does not exist is refused when the app publishes.
    let mut d = def("g");
    d.volumes = vec![VolumeMount {
        path: "/data".into(),
        volume_id: "vo-gone".into(),
        name: "gone".into(),
    }];
    let app = p.app("other-app");
    let err = p.state.app_publish(&app, vec![d]).unwrap_err();
    assert!(err.message().contains("does not exist"), "{err}");
}

#[test]
fn an_ephemeral_volume_goes_with_its_app() {
    let mut p = Plane::durable();
    let app = p.app("run");
    create(&mut p, "scratch", &app);
    create(&mut p, "kept", "");
    assert_eq!(p.state.volume_list("").len(), 2);
    p.state.app_stop(&app, "done").unwrap();
    let left: Vec<String> = p
        .state
        .volume_list("")
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(left, ["kept"]);
    assert_eq!(
        p.restarted().state.volume_list("").len(),
        1,
        "the deletion is stored"
    );
}
