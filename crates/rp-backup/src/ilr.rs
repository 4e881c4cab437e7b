//! File recovery (Azure's item-level recovery, ILR): a recovery point's
//! disks made reachable, read-only, for a limited time, so files can be
//! copied out of them without restoring whole disks.
//!
//! `provisionInstantItemRecovery` makes a session: the point's disks are
//! copied (from the snapshot tier while it holds them, from the vault tier
//! after) into images only the session uses, and a script is handed out
//! that connects to the vault's file recovery service — the vault-specific
//! private name first, the public name after, as every Backup client does
//! (document 001). Azure's service speaks iSCSI on port 3260; recoverite
//! serves each disk over NBD on that port, through the gateway, so the
//! network decides whether a machine may connect, and for a vault with
//! private endpoints only networks that contain one of them may.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::{id, resource, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_rp_recoveryservices::target as vault_target;
use recoverite_store::{Reader, Store, Table};

use crate::points::{choose_disks, load_point, point_path, store_of, write_disk};
use crate::{jobs, BackupProvider};

/// One session per recovery point, keyed by the point's id.
const SESSIONS: Table = Table("backup_ilr_sessions");

/// Where Azure's file recovery script connects (iSCSI's port).
pub const PORT: u16 = 3260;
/// How long a file recovery connection stays open (Azure: 12 hours).
pub const SESSION_HOURS: i64 = 12;
/// Azure's script name suffix holds the password at this offset after its
/// last `_`, this long; azure-cli cuts it out from there.
const PASSWORD_OFFSET: usize = 33;
const PASSWORD_LEN: usize = 15;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionDisk {
    /// `os` or `lun{n}`: the NBD export name.
    pub name: String,
    pub lun: i64,
    /// The session's own copy (a blockstore unique id).
    pub image: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub name: String,
    pub vault_id: String,
    pub item_id: String,
    pub point_id: String,
    pub vm_id: String,
    pub password: String,
    /// The provisioning operation the script is listed under.
    pub operation: String,
    pub expires: String,
    pub private_host: String,
    pub public_host: String,
    pub disks: Vec<SessionDisk>,
}

impl Session {
    pub fn expired(&self, now: ::time::OffsetDateTime) -> bool {
        time::parse(&self.expires).is_none_or(|t| t <= now)
    }
}

fn random_password() -> String {
    // Letters and digits only: the script quotes it, azure-cli cuts it out.
    let alphabet = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::new();
    while out.len() < PASSWORD_LEN {
        for b in uuid::Uuid::new_v4().as_bytes() {
            if out.len() < PASSWORD_LEN {
                out.push(alphabet[*b as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

/// The script's name suffix, with the password where azure-cli looks for
/// it: `{vm}_{geo}_`, 32 characters, the password (which azure-cli reads
/// from 33 characters after the last `_`).
pub fn script_name_suffix(vm: &str, geo: &str, session: &str, password: &str) -> String {
    let vm: String = vm.chars().filter(|c| *c != '_').collect();
    let filler: String = format!("ILR-{session}")
        .chars()
        .chain(std::iter::repeat('0'))
        .take(PASSWORD_OFFSET - 1)
        .collect();
    format!("{vm}_{geo}_{filler}{password}")
}

/// The Linux script the provision hands out: it runs `recoverite
/// file-recovery connect` from a VM's network position, which serves each
/// disk of the point on a local NBD socket for `qemu-nbd -r`/`guestmount`.
pub fn client_script(s: &Session) -> String {
    let disks: Vec<&str> = s.disks.iter().map(|d| d.name.as_str()).collect();
    let short: String = s.name.chars().take(8).collect();
    format!(
        r#"#!/bin/bash
# Azure Backup file recovery, served by recoverite.
# Recovery point {point}
# of {vm}, vault {vault}.
# Valid until {expires} (UTC), or until the connection is revoked.
#
# The point's disks are served read-only over NBD on port {port} of the
# vault's Backup service (Azure serves iSCSI there), through the emulated
# network: run this as a process of a VM that may reach the vault. By
# default that is the backed-up VM; set SOURCE_VM to another VM's id to act
# from its network. A vault with private endpoints serves file recovery only
# to networks that contain one of its endpoints.
set -e
VAULT_ID='{vault}'
SESSION='{session}'
PRIVATE_NAME='{private}'
PUBLIC_NAME='{public}'
DISKS='{disks}'
TargetPassword="{password}"
if [ "$TargetPassword" = "UserInput012345" ]; then
  if [ -z "$ILR_PASSWORD" ]; then
    read -r -s -p "Password for this recovery point: " ILR_PASSWORD
    echo
  fi
  TargetPassword="$ILR_PASSWORD"
fi
ILR_PASSWORD="$TargetPassword" exec "${{RECOVERITE:-recoverite}}" file-recovery connect \
  --vm "${{SOURCE_VM:-{vm}}}" --vault "$VAULT_ID" --session "$SESSION" \
  --host "$PRIVATE_NAME" --fallback-host "$PUBLIC_NAME" --port {port} \
  --disks "$DISKS" --dir "${{ILR_DIR:-./recoverite-ilr-{short}}}" "$@"
"#,
        point = s.point_id,
        vm = s.vm_id,
        vault = s.vault_id,
        expires = s.expires,
        port = PORT,
        session = s.name,
        private = s.private_host,
        public = s.public_host,
        disks = disks.join(" "),
        password = s.password,
    )
}

/// `InstantItemRecoveryTarget`: the script, base64, as azure-cli decodes it.
pub fn recovery_target(s: &Session, geo: &str) -> Value {
    let vm = s.vm_id.rsplit('/').next().unwrap_or("vm");
    json!({"clientScripts": [{
        "scriptContent": base64(client_script(s).as_bytes()),
        "scriptExtension": ".sh",
        "osType": "Linux",
        "scriptNameSuffix": script_name_suffix(vm, geo, &s.name, &s.password),
    }]})
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn session_of(r: &impl Reader, point_id: &str) -> Result<Option<Session>, ArmError> {
    Ok(r.get_json(SESSIONS, &id::key(point_id))?)
}

fn free_images(bp: &BackupProvider, s: &Session) {
    for d in &s.disks {
        let _ = bp.blocks.delete(&d.image);
    }
}

fn mark_point(
    tx: &mut recoverite_store::WriteTx,
    point_id: &str,
    active: bool,
) -> Result<(), ArmError> {
    if let Some(mut p) = crate::recovery_point::load(tx, point_id)? {
        p.set_ilr_active(active);
        p.save(tx)?;
    }
    Ok(())
}

/// `POST …/recoveryPoints/{rp}/provisionInstantItemRecovery`
/// (`IaasVMILRRegistrationRequest`): 202, then `backupOperations/{id}`.
pub fn provision(
    ctx: &Ctx,
    req: &ArmRequest,
    bp: &BackupProvider,
    container: &str,
    item: &str,
    point: &str,
) -> Result<Reply, ArmError> {
    let body = req.body.clone().unwrap_or(json!({}));
    let props = &body["properties"];
    if props["objectType"].as_str() != Some("IaasVMILRRegistrationRequest") {
        return Err(ArmError::invalid_parameter(
            "properties.objectType",
            "File recovery of an Azure VM's point takes an 'IaasVMILRRegistrationRequest'.",
        ));
    }
    if let Some(rp) = props["recoveryPointId"].as_str() {
        if !rp.eq_ignore_ascii_case(point) {
            return Err(ArmError::invalid_parameter(
                "properties.recoveryPointId",
                format!("'{rp}' is not the point in the path ('{point}')."),
            ));
        }
    }
    let (vid, pid) = point_path(ctx, req, container, item, point)?;
    let (it, data, old, geo, num) = ctx.store().view(|r| {
        let (it, data) = load_point(r, &vid, container, item, point)?;
        let vault = crate::vault_record(r, &vid)?;
        let meta = recoverite_rs_core::vault::get(r, &vid)?
            .ok_or_else(|| ArmError::internal("the vault has no record"))?;
        let geo = vault_target::geo(&vault.location);
        Ok::<_, ArmError>((it, data, session_of(r, &pid)?, geo, meta.numeric_id))
    })?;
    let now = time::now();
    let expires = time::format(now + ::time::Duration::hours(SESSION_HOURS));
    // A live session is renewed (same disks, same password); an expired one
    // is replaced.
    let (mut session, fresh, stale) = match old {
        Some(mut s) if !s.expired(now) => {
            s.expires = expires;
            (s, false, None)
        }
        stale => {
            let name = uuid::Uuid::new_v4().simple().to_string();
            let (disks, from_snapshot) = choose_disks(bp, &data, None);
            let store = store_of(bp, data.vault_numeric_id)?;
            let mut made: Vec<SessionDisk> = Vec::new();
            for d in disks {
                match write_disk(bp, &store, d, from_snapshot) {
                    Ok(image) => made.push(SessionDisk {
                        name: if d.lun < 0 {
                            "os".into()
                        } else {
                            format!("lun{}", d.lun)
                        },
                        lun: d.lun,
                        image,
                        size_bytes: d.size_bytes,
                    }),
                    Err(e) => {
                        for m in &made {
                            let _ = bp.blocks.delete(&m.image);
                        }
                        return Err(e);
                    }
                }
            }
            let s = Session {
                name,
                vault_id: vid.clone(),
                item_id: it.id.clone(),
                point_id: pid.clone(),
                vm_id: it.vm_id().to_string(),
                password: random_password(),
                operation: String::new(),
                expires,
                private_host: vault_target::backup_fqdn(num, "rec2", &geo),
                public_host: format!("rec2.{geo}.backup.windowsazure.com"),
                disks: made,
            };
            (s, true, stale)
        }
    };
    let res = ctx.store().write(|tx| {
        let op = jobs::finished_operation_with(
            tx,
            &vid,
            None,
            Some(json!({
                "objectType": "OperationStatusProvisionILRExtendedInfo",
                "recoveryTarget": recovery_target(&session, &geo),
            })),
        )?;
        session.operation = op.clone();
        tx.put_json(SESSIONS, &id::key(&pid), &session)?;
        mark_point(tx, &pid, true)?;
        Ok(op)
    });
    match res {
        Ok(op) => {
            if let Some(s) = stale {
                free_images(bp, &s);
            }
            Ok(jobs::accepted_operation(ctx, req, &vid, &op))
        }
        Err(e) => {
            if fresh {
                free_images(bp, &session);
            }
            Err(e)
        }
    }
}

/// `POST …/recoveryPoints/{rp}/listInstantItemRecoveryOperationResult`
/// (`provisionInstantItemRecoveryOperationId`): the script again.
pub fn operation_result(
    ctx: &Ctx,
    req: &ArmRequest,
    container: &str,
    item: &str,
    point: &str,
) -> Result<Reply, ArmError> {
    let (vid, pid) = point_path(ctx, req, container, item, point)?;
    let asked = req
        .body
        .as_ref()
        .and_then(|b| b["provisionInstantItemRecoveryOperationId"].as_str())
        .map(str::to_string);
    let (s, vault) = ctx.store().view(|r| {
        load_point(r, &vid, container, item, point)?;
        Ok::<_, ArmError>((session_of(r, &pid)?, crate::vault_record(r, &vid)?))
    })?;
    let live = s.filter(|s| !s.expired(time::now()));
    match live {
        Some(s) if asked.as_ref().is_none_or(|a| a.eq_ignore_ascii_case(&s.operation)) => {
            let geo = vault_target::geo(&vault.location);
            Ok(Reply::ok(recovery_target(&s, &geo)))
        }
        _ => Err(ArmError::new(
            404,
            "BMSUserErrorOperationNotFound",
            "No file recovery connection of this recovery point was made by that operation; provision one with provisionInstantItemRecovery.",
        )),
    }
}

/// `POST …/recoveryPoints/{rp}/revokeInstantItemRecovery`: the session ends
/// and its disk copies go.
pub fn revoke(
    ctx: &Ctx,
    req: &ArmRequest,
    bp: &BackupProvider,
    container: &str,
    item: &str,
    point: &str,
) -> Result<Reply, ArmError> {
    let (vid, pid) = point_path(ctx, req, container, item, point)?;
    ctx.store()
        .view(|r| load_point(r, &vid, container, item, point).map(|_| ()))?;
    let (op, gone) = ctx.store().write(|tx| {
        let gone = session_of(tx, &pid)?;
        tx.delete(SESSIONS, &id::key(&pid))?;
        mark_point(tx, &pid, false)?;
        Ok::<_, ArmError>((jobs::finished_operation(tx, &vid, None)?, gone))
    })?;
    if let Some(s) = gone {
        free_images(bp, &s);
    }
    Ok(jobs::accepted_operation(ctx, req, &vid, &op))
}

/// Ends sessions whose time is up (on the emulator clock) or whose point
/// is gone (pruned, or its item deleted).
pub fn expire(store: &Store, bp: &BackupProvider) -> Result<(), ArmError> {
    let now = time::now();
    let ended: Vec<Session> = store.view(|r| {
        let mut out = Vec::new();
        for (_, s) in r.scan_json::<Session>(SESSIONS, "")? {
            if s.expired(now) || resource::get(r, &s.point_id)?.is_none() {
                out.push(s);
            }
        }
        Ok::<_, ArmError>(out)
    })?;
    for s in ended {
        store.write(|tx| {
            tx.delete(SESSIONS, &id::key(&s.point_id))?;
            mark_point(tx, &s.point_id, false)
        })?;
        free_images(bp, &s);
    }
    Ok(())
}

/// Why a file recovery connection is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// Document 001: "file recovery from a vault that contains private
/// endpoints would be restricted to virtual networks that contain a private
/// endpoint for the vault." `endpoint_vnets`: the networks of the vault's
/// approved Backup endpoints (none: the vault has no private endpoint);
/// `source_vnet`: the connecting machine's network (none: outside Azure);
/// `via_endpoint`: whether the connection came through one of them (not
/// the public name, which such a vault does not serve file recovery on).
pub fn reachable_from(
    endpoint_vnets: &[String],
    source_vnet: Option<&str>,
    via_endpoint: bool,
) -> Result<(), Refused> {
    if endpoint_vnets.is_empty() {
        return Ok(());
    }
    let listed = endpoint_vnets.join(", ");
    match source_vnet {
        Some(v) if endpoint_vnets.iter().any(|e| id::key(e) == id::key(v)) => {
            if via_endpoint {
                Ok(())
            } else {
                Err(Refused(format!(
                    "the vault has private endpoints, so file recovery goes through them, not its public name; {v} holds one, but the vault's private name did not resolve to it: link the privatelink.<geo>.backup.windowsazure.com zone to {v} (or add the record to its DNS)"
                )))
            }
        }
        Some(v) => Err(Refused(format!(
            "the vault has private endpoints, so file recovery is served only to networks that contain one of them ({listed}); {v} contains none. Create a private endpoint for the vault (AzureBackup) in that network, or connect from one of those networks."
        ))),
        None => Err(Refused(format!(
            "the vault has private endpoints, so file recovery is served only to virtual networks that contain one of them ({listed}), not to machines outside Azure."
        ))),
    }
}

/// The disk a connection asks for, if the session and its password are
/// right and its time is not up.
pub fn admit(
    r: &impl Reader,
    vault_id: &str,
    session: &str,
    password: &str,
    disk: &str,
) -> Result<SessionDisk, Refused> {
    let s = r
        .scan_json::<Session>(SESSIONS, "")
        .map_err(|e| Refused(e.to_string()))?
        .into_iter()
        .map(|(_, s)| s)
        .find(|s| s.name == session && id::key(&s.vault_id) == id::key(vault_id))
        .ok_or_else(|| Refused(format!("no file recovery connection '{session}' is open at this vault (revoked, or never provisioned)")))?;
    if s.expired(time::now()) {
        return Err(Refused(format!(
            "the file recovery connection ended at {}; provision it again",
            s.expires
        )));
    }
    if s.password != password {
        return Err(Refused(
            "wrong password for this file recovery connection".into(),
        ));
    }
    s.disks
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(disk))
        .cloned()
        .ok_or_else(|| {
            Refused(format!(
                "the recovery point has no disk '{disk}' (it has {})",
                s.disks
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vault_with_private_endpoints_serves_file_recovery_only_to_their_networks() {
        let a = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/a"
            .to_string();
        let b = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/b";
        // No private endpoint: any network, or none, over the public name.
        assert!(reachable_from(&[], Some(b), false).is_ok());
        assert!(reachable_from(&[], None, false).is_ok());
        let ours = std::slice::from_ref(&a);
        assert!(reachable_from(ours, Some(&a.to_uppercase()), true).is_ok());
        let e = reachable_from(ours, Some(b), true).unwrap_err();
        assert!(e.0.contains("contains none"), "{}", e.0);
        let e = reachable_from(ours, Some(&a), false).unwrap_err();
        assert!(e.0.contains("link the privatelink"), "{}", e.0);
        assert!(reachable_from(ours, None, false).is_err());
    }

    #[test]
    fn azure_cli_finds_the_password_in_the_suffix() {
        let pw = "Abcdefghijk2345";
        let s = script_name_suffix("my_vm", "eus", "0123456789abcdef0123456789abcdef", pw);
        // azure-cli: the password starts 33 characters after the last '_'.
        let i = s.rfind('_').unwrap();
        assert_eq!(
            &s[i + PASSWORD_OFFSET..i + PASSWORD_OFFSET + PASSWORD_LEN],
            pw
        );
        assert_eq!(random_password().len(), PASSWORD_LEN);
    }
}
