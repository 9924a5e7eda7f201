//! The kernel's filter maps, written from the configuration at start-up.

use aya::{
    Ebpf,
    maps::{Array, HashMap as BpfHashMap, MapData},
};
use sensor_common::settings::{Settings, extension_key};

use super::{error::LoadError, settings::FilterSettings};

pub(super) fn configure_maps(ebpf: &mut Ebpf, settings: &FilterSettings) -> Result<(), LoadError> {
    let mut value = Settings {
        size_threshold: settings.size_threshold,
        self_tgid: std::process::id(),
        listen_marked_any_port: u32::from(settings.listen_marked_any_port),
        dedup_window_ns: settings.dedup_window_ns,
        ..Settings::DEFAULT
    };
    let mut extensions = Vec::with_capacity(settings.extensions.len());
    for ext in &settings.extensions {
        let key = extension_key(ext).ok_or_else(|| {
            LoadError::Setting(format!("extension {ext:?} must be 1 to 15 characters without dots"))
        })?;
        value.watch_extension(&key);
        extensions.push((key, 1u8));
    }
    let map = ebpf.map_mut("SETTINGS").ok_or_else(|| missing_map("SETTINGS"))?;
    let mut array: Array<&mut MapData, Settings> = Array::try_from(map).map_err(map_error("SETTINGS"))?;
    array.set(0, &value, 0).map_err(map_error("SETTINGS"))?;
    fill(ebpf, "EXTENSIONS", extensions)?;
    fill(ebpf, "PORTS", settings.ports.iter().map(|port| (*port, 1u8)))?;
    let minors = |first, last| sensor_common::settings::AcceleratorMinors { first, last };
    fill(
        ebpf,
        "ACCEL_MAJORS",
        settings.accelerators.iter().map(|(major, first, last)| (*major, minors(*first, *last))),
    )?;
    // The kernel keeps the first 15 bytes of an executable's name as its `comm`.
    let comms = settings.runtime_executables.iter().map(|name| {
        let mut comm = [0u8; 16];
        for (dst, src) in comm.iter_mut().take(15).zip(name.bytes()) {
            *dst = src;
        }
        (comm, sensor_common::settings::mark::RUNTIME)
    });
    fill(ebpf, "RUNTIME_COMMS", comms)
}

/// Inserts `entries` into the hash map `name`.
fn fill<K: aya::Pod, V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    entries: impl IntoIterator<Item = (K, V)>,
) -> Result<(), LoadError> {
    let map = ebpf.map_mut(name).ok_or_else(|| missing_map(name))?;
    let mut map: BpfHashMap<&mut MapData, K, V> = BpfHashMap::try_from(map).map_err(map_error(name))?;
    for (key, value) in entries {
        map.insert(&key, &value, 0).map_err(map_error(name))?;
    }
    Ok(())
}

fn map_error(map: &'static str) -> impl Fn(aya::maps::MapError) -> LoadError {
    move |source| LoadError::Map { map, source }
}

pub(super) fn missing_map(name: &str) -> LoadError {
    LoadError::Setting(format!("map {name} is missing from the eBPF object (a build mismatch)"))
}
