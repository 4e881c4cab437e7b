//! Name resolution as Azure's resolver (168.63.129.16) answers a client in a
//! given network: private zones linked to the network win; otherwise the
//! emulated public DNS answers, in which Azure service names CNAME to their
//! `privatelink.` names and end at a public address of the service.

use std::net::{Ipv4Addr, Ipv6Addr};

use recoverite_arm::regions;
use recoverite_rp_network::addressbook;

use crate::snapshot::{RType, Snapshot};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Txt(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub name: String,
    pub ttl: u32,
    pub value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    NxDomain,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub rcode: Rcode,
    pub answers: Vec<Answer>,
    /// Each step, for people: which zone or public rule answered.
    pub trace: Vec<String>,
}

/// Host part of the one public address a shared service (Site Recovery,
/// Backup) has per region.
pub const SHARED_HOST: u8 = 1;

/// TTL of the emulated public DNS.
pub const PUBLIC_TTL: u32 = 60;

fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x01000193)
    })
}

fn host_of(name: &str) -> u8 {
    (fnv(name) % 250) as u8 + 2
}

/// The public (model) address of the built-in test target `name`.
pub fn test_target_public_ip(name: &str) -> Ipv4Addr {
    let t = addressbook::TEST_TARGET_PUBLIC;
    Ipv4Addr::new(t[0], t[1], t[2], host_of(&name.to_ascii_lowercase()))
}

enum Step {
    Cname(String, String),
    A(Ipv4Addr, String),
    NxDomain(String),
}

fn region_of_geo(geo: &str) -> Option<&'static str> {
    regions::by_geo_code(geo).map(|r| r.name)
}

/// One step of the emulated public DNS.
fn public_step(snap: &Snapshot, name: &str) -> Step {
    let labels: Vec<&str> = name.split('.').collect();
    let ends = |s: &str| name.ends_with(s);
    // The built-in test target.
    if let Some(prefix) = name.strip_suffix(".privatelink.test.recoverite.local") {
        let target = prefix.split('.').next().unwrap_or_default();
        return if snap.test_targets.contains(target) {
            Step::A(
                test_target_public_ip(target),
                format!("public DNS: test target {target}"),
            )
        } else {
            Step::NxDomain(format!("public DNS: no test target named {target}"))
        };
    }
    if let Some(prefix) = name.strip_suffix(".test.recoverite.local") {
        return Step::Cname(
            format!("{prefix}.privatelink.test.recoverite.local"),
            "public DNS: test target name".into(),
        );
    }
    // Site Recovery: {vaultId}-asr-pod01-{type}.{geo}.siterecovery.windowsazure.com
    if let Some(prefix) = name.strip_suffix(".privatelink.siterecovery.windowsazure.com") {
        let geo = prefix.rsplit('.').next().unwrap_or_default();
        return match region_of_geo(geo)
            .and_then(|r| addressbook::service_ip("AzureSiteRecovery", Some(r), SHARED_HOST))
        {
            Some(ip) => Step::A(ip, format!("public DNS: Site Recovery in {geo}")),
            None => Step::NxDomain(format!(
                "public DNS: unknown Site Recovery region code '{geo}'"
            )),
        };
    }
    if let Some(prefix) = name.strip_suffix(".siterecovery.windowsazure.com") {
        return Step::Cname(
            format!("{prefix}.privatelink.siterecovery.windowsazure.com"),
            "public DNS: Site Recovery name".into(),
        );
    }
    // Backup: {vault}.{svc}.{geo}.backup.windowsazure.com → {vault}.{svc}.privatelink.{geo}.backup…;
    // the public URL {svc}.{geo}.backup.windowsazure.com answers directly.
    if ends(".backup.windowsazure.com") {
        let before: Vec<&str> = labels[..labels.len().saturating_sub(3)].to_vec();
        if let Some(pos) = before.iter().position(|l| *l == "privatelink") {
            let geo = before.get(pos + 1).copied().unwrap_or_default();
            return match region_of_geo(geo)
                .and_then(|r| addressbook::service_ip("AzureBackup", Some(r), SHARED_HOST))
            {
                Some(ip) => Step::A(ip, format!("public DNS: Azure Backup in {geo}")),
                None => Step::NxDomain(format!("public DNS: unknown Backup region code '{geo}'")),
            };
        }
        return match before.len() {
            3 => Step::Cname(
                format!(
                    "{}.{}.privatelink.{}.backup.windowsazure.com",
                    before[0], before[1], before[2]
                ),
                "public DNS: Backup name of a vault".into(),
            ),
            2 => match region_of_geo(before[1])
                .and_then(|r| addressbook::service_ip("AzureBackup", Some(r), SHARED_HOST))
            {
                Some(ip) => Step::A(
                    ip,
                    format!("public DNS: Azure Backup public URL in {}", before[1]),
                ),
                None => Step::NxDomain(format!(
                    "public DNS: unknown Backup region code '{}'",
                    before[1]
                )),
            },
            _ => Step::NxDomain("public DNS: not an Azure Backup name".into()),
        };
    }
    // Storage: {account}.{svc}.core.windows.net → {account}.privatelink.{svc}.core.windows.net.
    for svc in ["blob", "queue", "table", "file", "dfs", "web"] {
        if let Some(prefix) = name.strip_suffix(&format!(".privatelink.{svc}.core.windows.net")) {
            return match snap
                .storage_accounts
                .get(prefix)
                .and_then(|r| addressbook::service_ip("Storage", Some(r), host_of(prefix)))
            {
                Some(ip) => Step::A(ip, format!("public DNS: storage account {prefix}")),
                None => Step::NxDomain(format!("public DNS: no storage account named {prefix}")),
            };
        }
        if let Some(prefix) = name.strip_suffix(&format!(".{svc}.core.windows.net")) {
            if !prefix.contains('.') {
                return Step::Cname(
                    format!("{prefix}.privatelink.{svc}.core.windows.net"),
                    "public DNS: storage name".into(),
                );
            }
        }
    }
    // Site Recovery monitoring: asrmon{geo}.servicebus.windows.net, an event
    // hub namespace in the region (document 002's EventHub.{region} tag).
    if let Some(geo) = name
        .strip_suffix(".servicebus.windows.net")
        .and_then(|p| p.strip_prefix("asrmon"))
    {
        return match region_of_geo(geo)
            .and_then(|r| addressbook::service_ip("EventHub", Some(r), SHARED_HOST))
        {
            Some(ip) => Step::A(ip, format!("public DNS: Site Recovery monitoring in {geo}")),
            None => Step::NxDomain(format!("public DNS: unknown region code '{geo}'")),
        };
    }
    if name == "login.microsoftonline.com"
        || ends(".login.microsoft.com")
        || name == "login.microsoft.com"
    {
        if let Some(ip) = addressbook::service_ip("AzureActiveDirectory", None, host_of(name)) {
            return Step::A(ip, "public DNS: Microsoft Entra ID".into());
        }
    }
    Step::NxDomain("public DNS: no such name".into())
}

/// Resolves `qname` (any case, with or without the final dot) for a client
/// in `vnet` (case-folded network id), or for a client outside any network.
pub fn resolve(snap: &Snapshot, vnet: Option<&str>, qname: &str, qtype: RType) -> Resolution {
    let mut name = qname.trim_end_matches('.').to_ascii_lowercase();
    let mut answers = Vec::new();
    let mut trace = Vec::new();
    let zones = vnet.and_then(|v| snap.vnet_zones.get(v));
    for _ in 0..10 {
        // Private zones linked to the network win; the longest matching zone decides.
        let best = zones.and_then(|zs| {
            zs.iter()
                .filter(|z| name == z.zone.name || name.ends_with(&format!(".{}", z.zone.name)))
                .max_by_key(|z| z.zone.name.len())
        });
        if let Some(lz) = best {
            let z = &lz.zone;
            let rel = if name == z.name {
                "@".to_string()
            } else {
                name[..name.len() - z.name.len() - 1].to_string()
            };
            if let Some(rec) = z.records.get(&(rel.clone(), qtype)) {
                trace.push(format!("{name}: private zone {} ({})", z.name, z.id));
                for v in values(rec, qtype) {
                    answers.push(Answer {
                        name: name.clone(),
                        ttl: rec.ttl,
                        value: v,
                    });
                }
                return Resolution {
                    rcode: Rcode::NoError,
                    answers,
                    trace,
                };
            }
            if let Some(rec) = z.records.get(&(rel.clone(), RType::Cname)) {
                let target = rec.cname.clone().unwrap_or_default();
                trace.push(format!(
                    "{name}: CNAME {target} from private zone {}",
                    z.name
                ));
                answers.push(Answer {
                    name: name.clone(),
                    ttl: rec.ttl,
                    value: Value::Cname(target.clone()),
                });
                name = target;
                continue;
            }
            let has_name = z.records.keys().any(|(r, _)| *r == rel);
            if !lz.nx_redirect {
                trace.push(format!(
                    "{name}: not in private zone {} ({}), which is authoritative for it",
                    z.name, z.id
                ));
                let rcode = if has_name {
                    Rcode::NoError
                } else {
                    Rcode::NxDomain
                };
                return Resolution {
                    rcode,
                    answers,
                    trace,
                };
            }
            trace.push(format!(
                "{name}: not in private zone {}; NxDomainRedirect falls through to public DNS",
                z.name
            ));
        }
        match public_step(snap, &name) {
            Step::Cname(target, why) => {
                trace.push(format!("{name}: CNAME {target} ({why})"));
                answers.push(Answer {
                    name: name.clone(),
                    ttl: PUBLIC_TTL,
                    value: Value::Cname(target.clone()),
                });
                name = target;
            }
            Step::A(ip, why) => {
                trace.push(format!("{name}: {ip} ({why})"));
                if qtype == RType::A {
                    answers.push(Answer {
                        name: name.clone(),
                        ttl: PUBLIC_TTL,
                        value: Value::A(ip),
                    });
                }
                return Resolution {
                    rcode: Rcode::NoError,
                    answers,
                    trace,
                };
            }
            Step::NxDomain(why) => {
                trace.push(format!("{name}: NXDOMAIN ({why})"));
                return Resolution {
                    rcode: Rcode::NxDomain,
                    answers,
                    trace,
                };
            }
        }
    }
    trace.push("CNAME chain too long".into());
    Resolution {
        rcode: Rcode::NxDomain,
        answers,
        trace,
    }
}

fn values(rec: &crate::snapshot::Rec, t: RType) -> Vec<Value> {
    match t {
        RType::A => rec.a.iter().map(|ip| Value::A(*ip)).collect(),
        RType::Aaaa => rec.aaaa.iter().map(|ip| Value::Aaaa(*ip)).collect(),
        RType::Cname => rec.cname.iter().map(|c| Value::Cname(c.clone())).collect(),
        RType::Txt => rec.txt.iter().map(|t| Value::Txt(t.clone())).collect(),
    }
}

/// The effective A records of a network, as a hosts file (one of the
/// documented alternatives to private DNS zones).
pub fn hosts_file(snap: &Snapshot, vnet: &str) -> String {
    let mut lines = Vec::new();
    for lz in snap
        .vnet_zones
        .get(vnet)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        for ((rel, t), rec) in &lz.zone.records {
            if *t != RType::A {
                continue;
            }
            let fqdn = if rel == "@" {
                lz.zone.name.clone()
            } else {
                format!("{rel}.{}", lz.zone.name)
            };
            for ip in &rec.a {
                lines.push(format!("{ip}\t{fqdn}"));
            }
        }
    }
    lines.sort();
    let mut out = format!(
        "# effective private DNS records of {}\n",
        snap.vnets
            .get(vnet)
            .cloned()
            .unwrap_or_else(|| vnet.to_string())
    );
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out
}
