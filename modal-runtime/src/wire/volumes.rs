//! Conversions of volume entries, changes, mounts and listings.

use super::pb;
use crate::model::volume::{Change, Entry, EntryKind, VolumeMount, VolumeSummary};

fn kind_to_pb(k: EntryKind) -> pb::VolumeEntryKind {
    match k {
        EntryKind::File => pb::VolumeEntryKind::File,
        EntryKind::Directory => pb::VolumeEntryKind::Directory,
        EntryKind::Symlink => pb::VolumeEntryKind::Symlink,
    }
}

impl From<Entry> for pb::VolumeEntry {
    fn from(e: Entry) -> Self {
        pb::VolumeEntry {
            path: e.path,
            kind: kind_to_pb(e.kind).into(),
            hash: e.hash,
            size: e.size,
            mode: e.mode,
            mtime_ms: e.mtime_ms,
            target: e.target,
        }
    }
}

impl TryFrom<pb::VolumeEntry> for Entry {
    type Error = String;

    fn try_from(e: pb::VolumeEntry) -> Result<Self, String> {
        let kind = match pb::VolumeEntryKind::try_from(e.kind) {
            Ok(pb::VolumeEntryKind::File) => EntryKind::File,
            Ok(pb::VolumeEntryKind::Directory) => EntryKind::Directory,
            Ok(pb::VolumeEntryKind::Symlink) => EntryKind::Symlink,
            _ => return Err(format!("entry `{}` has no kind", e.path)),
        };
        Ok(Entry {
            path: e.path,
            kind,
            hash: e.hash,
            size: e.size,
            mode: e.mode & 0o7777,
            mtime_ms: e.mtime_ms,
            target: e.target,
        })
    }
}

impl From<Change> for pb::VolumeChange {
    fn from(c: Change) -> Self {
        pb::VolumeChange {
            change: Some(match c {
                Change::Put(e) => pb::volume_change::Change::Put(e.into()),
                Change::Remove(p) => pb::volume_change::Change::Remove(p),
            }),
        }
    }
}

impl TryFrom<pb::VolumeChange> for Change {
    type Error = String;

    fn try_from(c: pb::VolumeChange) -> Result<Self, String> {
        match c.change {
            Some(pb::volume_change::Change::Put(e)) => Ok(Change::Put(e.try_into()?)),
            Some(pb::volume_change::Change::Remove(p)) => Ok(Change::Remove(p)),
            None => Err("an empty change".into()),
        }
    }
}

impl From<&VolumeMount> for pb::VolumeMount {
    fn from(m: &VolumeMount) -> Self {
        pb::VolumeMount {
            path: m.path.clone(),
            volume_id: m.volume_id.clone(),
            name: m.name.clone(),
        }
    }
}

impl From<pb::VolumeMount> for VolumeMount {
    fn from(m: pb::VolumeMount) -> Self {
        VolumeMount {
            path: m.path,
            volume_id: m.volume_id,
            name: m.name,
        }
    }
}

impl From<VolumeSummary> for pb::VolumeSummary {
    fn from(s: VolumeSummary) -> Self {
        pb::VolumeSummary {
            volume_id: s.volume_id,
            name: s.name,
            environment_name: s.environment,
            created_at_ms: s.created_at_ms,
            version: s.version,
            committed_at_ms: s.committed_at_ms,
            files: s.files,
            bytes: s.bytes,
            app_id: s.app_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_changes_round_trip() {
        let e = Entry {
            path: "a/b".into(),
            kind: EntryKind::Symlink,
            hash: String::new(),
            size: 0,
            mode: 0o777,
            mtime_ms: 12,
            target: "../c".into(),
        };
        let c: Change = pb::VolumeChange::from(Change::Put(e.clone()))
            .try_into()
            .unwrap();
        assert_eq!(c, Change::Put(e));
        let r: Change = pb::VolumeChange::from(Change::Remove("x".into()))
            .try_into()
            .unwrap();
        assert_eq!(r, Change::Remove("x".into()));
        assert!(Change::try_from(pb::VolumeChange { change: None }).is_err());
    }
}
