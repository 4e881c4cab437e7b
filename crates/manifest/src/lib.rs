//! A provider crate's manifest: everything it brings to the server, in one
//! place — its resource providers (their types and api-versions are each
//! provider's `info`), what it drops when a scope is deleted and at which
//! stage, its private link targets and, for the network, the endpoint host.
//!
//! Each provider crate exports one `manifest(…)` function; the server lists
//! those functions and [`assemble`]s them, so adding a cascade or a target to
//! a crate cannot be forgotten at start-up (before, providers, cascades and
//! targets were three separate lists in the server, and two cascades were
//! defined and never registered).

use std::sync::Arc;

use recoverite_arm::provider::NamespaceGroup;
use recoverite_arm::{ArmError, Provider, ScopeCascade};
use recoverite_privatelink::{EndpointHost, PrivateLinkTarget, Registry};

/// When a cascade runs in a scope delete. Azure deletes what refers to other
/// resources before what they refer to: private endpoint connections before
/// the vaults and networks they join, a vault's protected items and records
/// before the vault, NICs and endpoints (their address allocations) before
/// the networks, and the directory's role assignments and identities last,
/// so every earlier stage still runs with the scope's permissions in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Connections between private endpoints and their targets.
    PrivateLinkConnections,
    /// Recovery Services records kept under a vault's id (protected items,
    /// Backup and Site Recovery state) and the vault's own records.
    RecoveryServices,
    /// Address allocations of NICs and endpoints, then network records.
    Network,
    /// Storage account keys and held containers.
    Storage,
    /// Disk images and snapshot bytes.
    Compute,
    /// Template deployments and their operations.
    Deployments,
    /// Role assignments and identities scoped to what was deleted.
    Directory,
}

/// What one crate brings. Build it with [`Manifest::new`] and the adders.
pub struct Manifest {
    /// The crate, as its `Cargo.toml` names it (e.g. `recoverite-rp-network`).
    pub crate_name: &'static str,
    pub providers: Vec<Arc<dyn Provider>>,
    pub cascades: Vec<(Stage, Arc<dyn ScopeCascade>)>,
    pub private_link_targets: Vec<Arc<dyn PrivateLinkTarget>>,
    pub endpoint_host: Option<Arc<dyn EndpointHost>>,
}

impl Manifest {
    pub fn new(crate_name: &'static str) -> Manifest {
        Manifest {
            crate_name,
            providers: Vec::new(),
            cascades: Vec::new(),
            private_link_targets: Vec::new(),
            endpoint_host: None,
        }
    }

    pub fn provider(mut self, p: impl Provider + 'static) -> Manifest {
        self.providers.push(Arc::new(p));
        self
    }

    pub fn cascade(mut self, stage: Stage, c: impl ScopeCascade + 'static) -> Manifest {
        self.cascades.push((stage, Arc::new(c)));
        self
    }

    pub fn private_link_target(mut self, t: impl PrivateLinkTarget + 'static) -> Manifest {
        self.private_link_targets.push(Arc::new(t));
        self
    }

    pub fn endpoint_host(mut self, h: impl EndpointHost + 'static) -> Manifest {
        self.endpoint_host = Some(Arc::new(h));
        self
    }
}

/// A cascade, the stage it runs in and the crate that declared it.
pub struct Staged {
    pub stage: Stage,
    pub crate_name: &'static str,
    pub cascade: Arc<dyn ScopeCascade>,
}

/// The server's view of every manifest put together.
pub struct Assembled {
    /// One provider per namespace: providers of one namespace from several
    /// crates are grouped, the first listed serving the namespace's root.
    pub providers: Vec<Arc<dyn Provider>>,
    /// Every cascade, in stage order (crates' order within a stage).
    pub cascades: Vec<Staged>,
    /// The crates, in the order given.
    pub crates: Vec<&'static str>,
}

/// Puts the manifests together and installs their private link targets and
/// endpoint host in `registry` (which the providers were built with).
pub fn assemble(manifests: Vec<Manifest>, registry: &Registry) -> Result<Assembled, ArmError> {
    let mut crates = Vec::new();
    let mut namespaces: Vec<(&'static str, Vec<Arc<dyn Provider>>)> = Vec::new();
    let mut cascades = Vec::new();
    let mut targets = Vec::new();
    let mut host = None;
    for m in manifests {
        if crates.contains(&m.crate_name) {
            return Err(ArmError::internal(format!(
                "{} is listed twice among the manifests",
                m.crate_name
            )));
        }
        crates.push(m.crate_name);
        for p in m.providers {
            let ns = p.info().namespace;
            match namespaces
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(ns))
            {
                Some((_, members)) => members.push(p),
                None => namespaces.push((ns, vec![p])),
            }
        }
        cascades.extend(m.cascades.into_iter().map(|(stage, cascade)| Staged {
            stage,
            crate_name: m.crate_name,
            cascade,
        }));
        targets.extend(m.private_link_targets);
        if let Some(h) = m.endpoint_host {
            if host.replace(h).is_some() {
                return Err(ArmError::internal("two crates declare the endpoint host"));
            }
        }
    }
    for (i, t) in targets.iter().enumerate() {
        let ty = t.resource_type();
        if targets[..i]
            .iter()
            .any(|o| o.resource_type().eq_ignore_ascii_case(ty))
        {
            return Err(ArmError::internal(format!(
                "two private link targets declare {ty}"
            )));
        }
    }
    registry.install(targets);
    if let Some(h) = host {
        registry.set_host(h);
    }
    cascades.sort_by_key(|c| c.stage);
    Ok(Assembled {
        providers: namespaces
            .into_iter()
            .map(|(_, mut members)| {
                if members.len() == 1 {
                    members.remove(0)
                } else {
                    Arc::new(NamespaceGroup { members }) as Arc<dyn Provider>
                }
            })
            .collect(),
        cascades,
        crates,
    })
}

impl Assembled {
    /// The cascades as the platform runs them.
    pub fn cascade_list(&self) -> Vec<Arc<dyn ScopeCascade>> {
        self.cascades.iter().map(|c| c.cascade.clone()).collect()
    }
}

#[cfg(test)]
mod tests;
