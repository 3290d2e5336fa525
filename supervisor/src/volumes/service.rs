//! The volume service: create, get, list, remove, prune; the references containers hold;
//! mounting the local driver's `type=` volumes while they are used.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::record::{self, Volume};
use super::store::{Store, StoreError};
use super::{local, names, ANONYMOUS_LABEL};

/// Errors of the volume service, each with docker's status code and words.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("get {0}: no such volume")]
    NotFound(String),
    #[error("remove {name}: volume is in use - [{}]", users.join(", "))]
    InUse { name: String, users: Vec<String> },
    #[error("create {name}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("create {name}: error looking up volume plugin {driver}: plugin {driver:?} not found")]
    NoDriver { name: String, driver: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Mount(String),
}

impl Error {
    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound(_) | Error::NoDriver { .. } => 404,
            Error::InUse { .. } => 409,
            Error::Invalid { .. } => 400,
            Error::Store(_) | Error::Io { .. } | Error::Mount(_) => 500,
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `volume create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Empty for an anonymous volume (a random name and docker's anonymous label).
    pub name: String,
    /// Empty means `local`.
    pub driver: String,
    pub labels: Option<BTreeMap<String, String>>,
    pub options: Option<BTreeMap<String, String>>,
    /// Made for one container (`-v /path`, an image `VOLUME`): docker's anonymous label.
    pub anonymous: bool,
}

/// Which unused volumes `prune` removes.
#[derive(Debug, Clone, Default)]
pub struct PruneFilter {
    /// Named volumes too (API < 1.42 always; 1.42+ with `all=true`).
    pub all: bool,
    /// `label=k` / `label=k=v`: every one must match.
    pub labels: Vec<String>,
    /// `label!=k` / `label!=k=v`: none may match.
    pub not_labels: Vec<String>,
}

/// Whether `v` carries `filter` (`key` or `key=value`).
pub fn has_label(v: &Volume, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, value)) => v.label(k) == Some(value),
        None => v.label(filter).is_some(),
    }
}

/// A test's probe, run where a reference is about to be recorded.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Probe(pub Mutex<Option<ProbeFn>>);

#[cfg(test)]
pub(crate) type ProbeFn = Box<dyn Fn(&VolumeService) + Send>;

#[cfg(test)]
impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Probe")
    }
}

#[derive(Debug)]
pub struct VolumeService {
    root: PathBuf,
    store: Store,
    /// Held across every change of records and directories.
    lock: Mutex<()>,
    /// Volume → the containers whose records mount it.
    refs: Mutex<HashMap<String, BTreeSet<String>>>,
    /// Volume → the containers running with it mounted (for `type=` volumes).
    active: Mutex<HashMap<String, BTreeSet<String>>>,
    #[cfg(test)]
    pub(crate) before_ref: Probe,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl VolumeService {
    /// Opens `<data_root>/volumes` and deletes what an interrupted create or remove left.
    pub fn open(data_root: &Path) -> Result<VolumeService, Error> {
        let root = data_root.join("volumes");
        std::fs::create_dir_all(&root).map_err(io_at(&root))?;
        let store = super::store::open(&root)?;
        let service = VolumeService {
            root,
            store,
            lock: Mutex::new(()),
            refs: Mutex::default(),
            active: Mutex::default(),
            #[cfg(test)]
            before_ref: Probe::default(),
        };
        service.sweep()?;
        Ok(service)
    }

    /// Deletes the directories that have no record.
    fn sweep(&self) -> Result<(), Error> {
        let known: BTreeSet<String> = self.store.list()?.into_iter().map(|v| v.name).collect();
        for entry in std::fs::read_dir(&self.root).map_err(io_at(&self.root))? {
            let entry = entry.map_err(io_at(&self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && !known.contains(&name) {
                tracing::warn!(
                    volume = name,
                    "removing the directory of an unfinished volume"
                );
                self.delete_dir(&entry.path())?;
            }
        }
        Ok(())
    }

    fn delete_dir(&self, dir: &Path) -> Result<(), Error> {
        local::unmount(&dir.join("_data")).map_err(Error::Mount)?;
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_at(dir)(e)),
            _ => Ok(()),
        }
    }

    /// `<root>/NAME/_data`.
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    /// `POST /volumes/create`: the volume (an existing one of that name is returned as is).
    pub fn create(&self, opts: CreateOptions) -> Result<Volume, Error> {
        let _lock = locked(&self.lock);
        self.create_locked(opts)
    }

    /// The volume `opts` names (made if missing), with `container` recorded as its user in
    /// the same step, so that no prune or remove can come between.
    pub fn acquire(&self, opts: CreateOptions, container: &str) -> Result<Volume, Error> {
        let _lock = locked(&self.lock);
        let volume = self.create_locked(opts)?;
        self.insert_ref(&volume.name, container);
        Ok(volume)
    }

    /// `container` becomes a user of the existing volume `name` (`--volumes-from`).
    pub fn acquire_existing(&self, name: &str, container: &str) -> Result<Volume, Error> {
        let _lock = locked(&self.lock);
        let volume = self.get(name)?;
        self.insert_ref(name, container);
        Ok(volume)
    }

    fn create_locked(&self, opts: CreateOptions) -> Result<Volume, Error> {
        let anonymous = opts.name.is_empty() || opts.anonymous;
        let name = if opts.name.is_empty() {
            names::anonymous()
        } else {
            opts.name.clone()
        };
        let invalid = |reason: String| Error::Invalid {
            name: name.clone(),
            reason,
        };
        let driver = if opts.driver.is_empty() {
            local::DRIVER.to_string()
        } else {
            opts.driver.clone()
        };
        if driver != local::DRIVER {
            return Err(Error::NoDriver { name, driver });
        }
        if !names::valid(&name) {
            return Err(invalid(names::invalid_message(&name)));
        }
        let options = opts.options.filter(|o| !o.is_empty());
        local::check_options(options.as_ref().unwrap_or(&BTreeMap::new())).map_err(invalid)?;
        if let Some(existing) = self.find(&name)? {
            return Ok(existing);
        }
        let mut labels = opts.labels;
        if anonymous {
            labels
                .get_or_insert_with(BTreeMap::new)
                .insert(ANONYMOUS_LABEL.into(), String::new());
        }
        let volume = Volume {
            name: name.clone(),
            driver,
            labels,
            options,
            created_at: record::now(),
        };
        let data = self.mountpoint(&name);
        std::fs::create_dir_all(&data).map_err(io_at(&data))?;
        if let Err(e) = self.store.put(&volume) {
            let _ = std::fs::remove_dir_all(self.root.join(&name));
            return Err(e.into());
        }
        tracing::info!(volume = name, "volume created");
        Ok(volume)
    }

    fn find(&self, name: &str) -> Result<Option<Volume>, Error> {
        Ok(self.store.get(name)?)
    }

    pub fn get(&self, name: &str) -> Result<Volume, Error> {
        self.find(name)?
            .ok_or_else(|| Error::NotFound(name.to_string()))
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>, Error> {
        let mut all = self.store.list()?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// The containers whose records use `name`.
    pub fn users(&self, name: &str) -> Vec<String> {
        locked(&self.refs)
            .get(name)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `container` (a record read back at daemon start) uses `name`.
    pub fn add_ref(&self, name: &str, container: &str) {
        let _lock = locked(&self.lock);
        self.insert_ref(name, container);
    }

    /// Records a user; the caller holds `self.lock`.
    fn insert_ref(&self, name: &str, container: &str) {
        #[cfg(test)]
        if let Some(probe) = locked(&self.before_ref.0).as_ref() {
            probe(self);
        }
        locked(&self.refs)
            .entry(name.to_string())
            .or_default()
            .insert(container.to_string());
    }

    pub fn release(&self, name: &str, container: &str) {
        let mut refs = locked(&self.refs);
        if let Some(set) = refs.get_mut(name) {
            set.remove(container);
            if set.is_empty() {
                refs.remove(name);
            }
        }
    }

    /// `DELETE /volumes/NAME[?force=1]`: refused while a container uses it; with `force`, a
    /// missing volume is no error.
    pub fn remove(&self, name: &str, force: bool) -> Result<(), Error> {
        let _lock = locked(&self.lock);
        if self.find(name)?.is_none() {
            return if force {
                Ok(())
            } else {
                Err(Error::NotFound(name.to_string()))
            };
        }
        self.remove_locked(name)
    }

    fn remove_locked(&self, name: &str) -> Result<(), Error> {
        let users = self.users(name);
        if !users.is_empty() {
            return Err(Error::InUse {
                name: name.to_string(),
                users,
            });
        }
        self.store.remove(name)?;
        self.delete_dir(&self.root.join(name))?;
        tracing::info!(volume = name, "volume removed");
        Ok(())
    }

    /// `POST /volumes/prune`: removes the unused volumes `filter` selects; their names and
    /// the bytes they held.
    pub fn prune(&self, filter: &PruneFilter) -> Result<(Vec<String>, u64), Error> {
        let _lock = locked(&self.lock);
        let mut removed = Vec::new();
        let mut bytes = 0;
        for v in self.store.list()? {
            let selected = (filter.all || v.is_anonymous())
                && filter.labels.iter().all(|l| has_label(&v, l))
                && !filter.not_labels.iter().any(|l| has_label(&v, l));
            if !selected || !self.users(&v.name).is_empty() {
                continue;
            }
            let size = self.size(&v);
            self.remove_locked(&v.name)?;
            bytes += size;
            removed.push(v.name);
        }
        Ok((removed, bytes))
    }

    /// A prune of every unused volume, if no other change is under way (a test's probe).
    #[cfg(test)]
    pub(crate) fn prune_if_idle(&self) -> Option<Vec<String>> {
        let _lock = self.lock.try_lock().ok()?;
        let mut removed = Vec::new();
        for v in self.store.list().unwrap() {
            if self.users(&v.name).is_empty() {
                self.remove_locked(&v.name).unwrap();
                removed.push(v.name);
            }
        }
        Some(removed)
    }

    /// Bytes in the volume, as docker counts them (file sizes, each inode once); 0 for a
    /// `type=` volume, whose content is not ours.
    pub fn size(&self, v: &Volume) -> u64 {
        if v.is_mounted_kind() {
            return 0;
        }
        dir_size(&self.mountpoint(&v.name))
    }

    /// Makes `name`'s data available to `container` (mounts a `type=` volume): its mountpoint.
    pub fn mount(&self, name: &str, container: &str) -> Result<PathBuf, Error> {
        let v = self.get(name)?;
        let target = self.mountpoint(name);
        if v.is_mounted_kind() {
            let mut active = locked(&self.active);
            local::mount(v.options.as_ref().unwrap_or(&BTreeMap::new()), &target)
                .map_err(Error::Mount)?;
            active
                .entry(name.to_string())
                .or_default()
                .insert(container.to_string());
        }
        Ok(target)
    }

    /// `container` no longer runs with `name`: a `type=` volume is unmounted after its last user.
    pub fn unmount(&self, name: &str, container: &str) -> Result<(), Error> {
        let mut active = locked(&self.active);
        let Some(set) = active.get_mut(name) else {
            return Ok(());
        };
        set.remove(container);
        if set.is_empty() {
            active.remove(name);
            local::unmount(&self.mountpoint(name)).map_err(Error::Mount)?;
        }
        Ok(())
    }
}

/// docker's `directory.Size`: the sizes of everything but directories, each inode once.
pub fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = BTreeSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.len() > 0 && seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> CreateOptions {
        CreateOptions {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn create_list_remove_in_dockers_layout() {
        let dir = tempfile::tempdir().unwrap();
        let s = VolumeService::open(dir.path()).unwrap();
        let v = s.create(named("data")).unwrap();
        assert_eq!(v.driver, "local");
        assert!(dir.path().join("volumes/data/_data").is_dir());
        assert_eq!(s.create(named("data")).unwrap(), v, "create is idempotent");
        let anon = s.create(CreateOptions::default()).unwrap();
        assert!(anon.is_anonymous() && anon.name.len() == 64);
        assert_eq!(s.list().unwrap().len(), 2);
        s.add_ref("data", "c1");
        let e = s.remove("data", false).unwrap_err();
        assert_eq!(e.to_string(), "remove data: volume is in use - [c1]");
        assert_eq!(e.status(), 409);
        s.release("data", "c1");
        s.remove("data", false).unwrap();
        assert!(!dir.path().join("volumes/data").exists());
        assert_eq!(
            s.remove("data", false).unwrap_err().to_string(),
            "get data: no such volume"
        );
        s.remove("data", true).unwrap();
    }

    #[test]
    fn bad_names_drivers_options_make_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = VolumeService::open(dir.path()).unwrap();
        let e = s.create(named("bad/name")).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(
            e.to_string().starts_with(
                "create bad/name: \"bad/name\" includes invalid characters for a local volume name"
            ),
            "{e}"
        );
        let e = s
            .create(CreateOptions {
                name: "x1".into(),
                driver: "foo".into(),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "create x1: error looking up volume plugin foo: plugin \"foo\" not found"
        );
        let e = s
            .create(CreateOptions {
                name: "x2".into(),
                options: Some([("bogus".to_string(), "1".to_string())].into()),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(e.to_string(), "create x2: invalid option: \"bogus\"");
        assert!(s.list().unwrap().is_empty());
        let left: Vec<_> = std::fs::read_dir(dir.path().join("volumes"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn prune_follows_the_anonymous_rule_and_keeps_used_ones() {
        let dir = tempfile::tempdir().unwrap();
        let s = VolumeService::open(dir.path()).unwrap();
        s.create(named("keep")).unwrap();
        let anon = s.create(CreateOptions::default()).unwrap();
        let used = s.create(CreateOptions::default()).unwrap();
        std::fs::write(s.mountpoint(&anon.name).join("f"), b"12345").unwrap();
        s.add_ref(&used.name, "c1");
        let (removed, bytes) = s.prune(&PruneFilter::default()).unwrap();
        assert_eq!((removed, bytes), (vec![anon.name.clone()], 5));
        let all = PruneFilter {
            all: true,
            ..Default::default()
        };
        let (removed, _) = s.prune(&all).unwrap();
        assert_eq!(removed, vec!["keep".to_string()]);
        assert_eq!(s.list().unwrap().len(), 1);
    }

    #[test]
    fn a_directory_without_record_is_swept_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = VolumeService::open(dir.path()).unwrap();
            s.create(named("whole")).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("volumes/half/_data")).unwrap();
        let s = VolumeService::open(dir.path()).unwrap();
        assert!(!dir.path().join("volumes/half").exists());
        assert!(dir.path().join("volumes/whole/_data").is_dir());
        assert_eq!(s.list().unwrap().len(), 1);
    }
}
