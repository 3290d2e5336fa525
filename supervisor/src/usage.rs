//! Disk usage as `system df` reports it: each image's size and the part it shares with
//! other images, the bytes of every layer in use (docker's `LayersSize`), each container's
//! writable layer, each volume's data and users, and the build cache. Sizes are counted as
//! docker's `directory.Size` does: file sizes, each inode once, directories not counted.
use std::collections::HashMap;

use crate::images::service::{Error, Image, ImageService};
use crate::images::snapshot::chain_ids;

/// One image's figures.
#[derive(Debug, Clone)]
pub struct ImageUsage {
    pub image: Image,
    /// All its layers.
    pub size: u64,
    /// Its layers that other listed images use too.
    pub shared: u64,
    /// Containers made from it.
    pub containers: usize,
}

/// The images users named (build-cache entries are reported on their own), and the bytes
/// of all their layers, each layer once. `containers` counts containers by image ID.
pub fn images(
    images: &ImageService,
    containers: &HashMap<String, usize>,
) -> Result<(Vec<ImageUsage>, u64), Error> {
    let listed: Vec<Image> = images
        .images()?
        .into_iter()
        .filter(|i| !i.is_build_cache())
        .collect();
    let chains: Vec<Vec<String>> = listed.iter().map(|i| chain_ids(&i.diff_ids())).collect();
    let mut users: HashMap<&str, usize> = HashMap::new();
    for chain in &chains {
        for key in chain {
            *users.entry(key.as_str()).or_default() += 1;
        }
    }
    let mut sizes: HashMap<&str, u64> = HashMap::new();
    for key in users.keys() {
        let size = images.metadata.snapshot(key)?.map_or(0, |s| s.size);
        sizes.insert(key, size);
    }
    let layers_size = sizes.values().sum();
    let out = listed
        .into_iter()
        .zip(&chains)
        .map(|(image, chain)| {
            let size = chain.iter().map(|k| sizes[k.as_str()]).sum();
            let shared = chain
                .iter()
                .filter(|k| users[k.as_str()] > 1)
                .map(|k| sizes[k.as_str()])
                .sum();
            let containers = containers.get(&image.id).copied().unwrap_or(0);
            ImageUsage {
                image,
                size,
                shared,
                containers,
            }
        })
        .collect();
    Ok((out, layers_size))
}

/// Bytes in a container's writable layer (0 when it has none).
pub fn writable_layer(images: &ImageService, snapshot_key: &str) -> u64 {
    match images.snapshots.stat(snapshot_key) {
        Ok(record) => crate::volumes::service::dir_size(&images.snapshots.fs_dir(&record)),
        Err(_) => 0,
    }
}
