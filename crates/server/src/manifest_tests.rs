//! The server assembles every crate that declares a manifest, and the
//! assembled cascades run in Azure's dependency order.

use super::*;

/// Crates of the workspace whose library declares `pub fn manifest(`.
fn crates_with_a_manifest() -> Vec<String> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(lib) = std::fs::read_to_string(dir.join("src/lib.rs")) else {
            continue;
        };
        if lib.contains("\npub fn manifest(") {
            found.push(format!(
                "recoverite-{}",
                dir.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn every_crate_with_a_manifest_is_assembled_in_dependency_order() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(Registry::default());
    let blocks = recoverite_blockstore::BlockStore::open(dir.path()).unwrap();
    let engine = recoverite_replication::Engine::open(dir.path(), blocks.clone()).unwrap();
    let rt = Arc::new(recoverite_rp_siterecovery::runtime::Runtime::default());
    let as_caller = recoverite_arm::first_party::AsCaller::default();
    let objects = replication::object_store(dir.path()).unwrap();
    let connectivity = recoverite_rp_network::watcher::LateConnectivity::default();
    let manifests = manifests(&Wiring {
        registry: &registry,
        blocks: &blocks,
        engine: &engine,
        rt: &rt,
        data_dir: dir.path(),
        as_caller: &as_caller,
        objects: &objects,
        connectivity: &connectivity,
    })
    .unwrap();
    let assembled = recoverite_manifest::assemble(manifests, &registry).unwrap();

    // The privatelink crate's part is declared by the server (it sits
    // beneath the manifest crate); every other crate declares its own.
    let mut listed: Vec<String> = assembled
        .crates
        .iter()
        .filter(|c| **c != "recoverite-privatelink")
        .map(|c| c.to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, crates_with_a_manifest());

    // Connections go before the vaults and networks they join; the
    // directory (role assignments) last.
    let order: Vec<_> = assembled.cascades.iter().map(|c| c.crate_name).collect();
    assert_eq!(
        order,
        vec![
            "recoverite-privatelink",
            "recoverite-rp-recoveryservices",
            "recoverite-rp-network",
            "recoverite-rp-storage",
            "recoverite-rp-compute",
            "recoverite-rp-deployments",
            "recoverite-identity",
        ]
    );

    // Every private link target the vault, storage and test crates declare,
    // and the network as endpoint host.
    let mut types = registry.resource_types();
    types.sort();
    assert_eq!(
        types,
        vec![
            "Microsoft.DataProtection/backupVaults",
            "Microsoft.KeyVault/vaults",
            "Microsoft.RecoveryServices/vaults",
            "Microsoft.Storage/storageAccounts",
            "Recoverite.Test/privateLinkTargets",
        ]
    );
    assert!(registry.host().is_ok());

    // One provider per namespace.
    let mut namespaces: Vec<_> = assembled
        .providers
        .iter()
        .map(|p| p.info().namespace.to_ascii_lowercase())
        .collect();
    let n = namespaces.len();
    namespaces.sort();
    namespaces.dedup();
    assert_eq!(namespaces.len(), n);
}
