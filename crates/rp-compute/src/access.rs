//! Disk and snapshot access (`beginGetAccess` / `endGetAccess`): a
//! time-limited URL from which the disk's bytes download (with `Range`),
//! as Azure's access SAS does. The URL names a random token kept with the
//! grant; the server's download endpoint serves the disk's bytes for a
//! token until it expires or access is revoked.

use serde::{Deserialize, Serialize};
use serde_json::json;

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::{time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::{Reader, Table};

use crate::disks::{Disk, DiskState, DISK_TYPE, SNAPSHOT_TYPE};
use crate::power::{self, PowerState};

pub const GRANTS: Table = Table("disk_access_grants");

/// The longest access Azure grants: "durationInSeconds … up to 5 days".
pub const MAX_SECONDS: u64 = 5 * 24 * 3600;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub token: String,
    pub disk_id: String,
    pub unique_id: String,
    pub size_bytes: u64,
    /// Unix seconds, wall clock (clients check the URL against their own).
    pub expires: i64,
    /// The disk state to return to when access ends.
    pub previous_state: DiskState,
}

/// `access` Read (download) for `durationInSeconds` 1 s – 5 days. Write
/// access is for disks created with `createOption: Upload`, which
/// recoverite does not serve.
pub fn check_request(access: &str, seconds: Option<u64>) -> Result<u64, ArmError> {
    if access.eq_ignore_ascii_case("Write") {
        return Err(ArmError::bad_request(
            "OperationNotAllowed",
            "Write access is for disks created with createOption Upload, which recoverite does not serve; grant Read access to download the disk.",
        ));
    }
    if !access.eq_ignore_ascii_case("Read") {
        return Err(ArmError::invalid_parameter(
            "access",
            format!("access '{access}' is not valid; use Read."),
        ));
    }
    match seconds {
        Some(s) if (1..=MAX_SECONDS).contains(&s) => Ok(s),
        _ => Err(ArmError::invalid_parameter(
            "durationInSeconds",
            format!("durationInSeconds must be from 1 to {MAX_SECONDS} (5 days)."),
        )),
    }
}

/// "A SAS cannot be generated for a disk attached to a running VM":
/// the VM must be stopped (deallocated) first.
pub fn check_attachment(vm: Option<(&str, PowerState)>) -> Result<(), ArmError> {
    match vm {
        Some((id, PowerState::Running)) | Some((id, PowerState::Stopped)) => Err(ArmError::conflict(
            "OperationNotAllowed",
            format!("The disk is attached to VM '{id}', which is not deallocated; deallocate the VM (az vm deallocate) before granting access to its disk."),
        )),
        _ => Ok(()),
    }
}

pub fn by_token(r: &impl Reader, token: &str) -> Result<Option<Grant>, ArmError> {
    Ok(r.get_json(GRANTS, token)?)
}

fn grants_of(r: &impl Reader, disk_id: &str) -> Result<Vec<Grant>, ArmError> {
    Ok(r.scan_json::<Grant>(GRANTS, "")?
        .into_iter()
        .map(|(_, g)| g)
        .filter(|g| g.disk_id.eq_ignore_ascii_case(disk_id))
        .collect())
}

/// The disk or snapshot an access request names.
fn load_disk(r: &impl Reader, did: &str, req: &ArmRequest) -> Result<Disk, ArmError> {
    crate::managed_disk::load_of(r, did, &[DISK_TYPE, SNAPSHOT_TYPE])?.ok_or_else(|| {
        ArmError::resource_not_found(
            DISK_TYPE,
            did.rsplit('/').next().unwrap_or(""),
            req.path.resource_group.as_deref(),
        )
    })
}

fn accepted(ctx: &Ctx, req: &ArmRequest, op: &OperationRecord, location: &str) -> Reply {
    let sub = req.path.subscription.clone().unwrap_or_default();
    let url = lro::result_url(ctx, &sub, location, op, &req.api_version);
    lro::with_retry_after(ctx, Reply::empty(202).header("Location", url))
}

/// `POST …/disks/{d}/beginGetAccess {"access": "Read", "durationInSeconds": 3600}`.
pub fn grant(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let body = req.body.clone().unwrap_or(json!({}));
    let seconds = check_request(
        body["access"].as_str().unwrap_or(""),
        body["durationInSeconds"].as_u64(),
    )?;
    let did = req.path.parent_id();
    let (op, location) = ctx.store().write(|tx| {
        let mut disk = load_disk(tx, &did, req)?;
        if let Some(vm) = &disk.managed_by {
            check_attachment(Some((vm, power::get(tx, vm)?)))?;
        }
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let previous = disk.properties.disk_state.unwrap_or(DiskState::Unattached);
        let grant = Grant {
            token: token.clone(),
            disk_id: disk.id.clone(),
            unique_id: disk.properties.unique_id.clone(),
            size_bytes: disk.properties.disk_size_bytes,
            expires: time::real_now().unix_timestamp() + seconds as i64,
            previous_state: if previous == DiskState::ActiveSas {
                grants_of(tx, &did)?
                    .first()
                    .map(|g| g.previous_state)
                    .unwrap_or(previous)
            } else {
                previous
            },
        };
        tx.put_json(GRANTS, &token, &grant)?;
        if !disk.is_snapshot() {
            disk.properties.disk_state = Some(DiskState::ActiveSas);
            disk.save(tx)?;
        }
        let url = format!("{}/recoverite/disks/{token}", ctx.base_url);
        let op = OperationRecord::new(ctx, "Microsoft.Compute", &did)
            .succeed(Some(json!({"accessSAS": url})));
        op.save(tx)?;
        Ok::<_, ArmError>((op, disk.location))
    })?;
    Ok(accepted(ctx, req, &op, &location))
}

/// `POST …/disks/{d}/endGetAccess`: every URL granted for the disk stops working.
pub fn revoke(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let did = req.path.parent_id();
    let (op, location) = ctx.store().write(|tx| {
        let mut disk = load_disk(tx, &did, req)?;
        let grants = grants_of(tx, &did)?;
        for g in &grants {
            tx.delete(GRANTS, &g.token)?;
        }
        if let (Some(g), false) = (grants.first(), disk.is_snapshot()) {
            disk.properties.disk_state = Some(g.previous_state);
            disk.save(tx)?;
        }
        let op = OperationRecord::new(ctx, "Microsoft.Compute", &did).succeed(None);
        op.save(tx)?;
        Ok::<_, ArmError>((op, disk.location))
    })?;
    Ok(accepted(ctx, req, &op, &location))
}

/// Whether a disk has a grant that has not expired.
pub fn has_live_grant(r: &impl Reader, disk_id: &str) -> Result<bool, ArmError> {
    let now = time::real_now().unix_timestamp();
    Ok(grants_of(r, disk_id)?.iter().any(|g| g.expires > now))
}

/// Deleting a disk ends its (expired) grants.
pub fn forget(tx: &mut recoverite_store::WriteTx, disk_id: &str) -> Result<(), ArmError> {
    for g in grants_of(tx, disk_id)? {
        tx.delete(GRANTS, &g.token)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_access_for_up_to_five_days() {
        assert_eq!(check_request("read", Some(3600)).unwrap(), 3600);
        assert!(check_request("Read", Some(0)).is_err());
        assert!(check_request("Read", Some(MAX_SECONDS + 1)).is_err());
        assert!(check_request("Read", None).is_err());
        assert_eq!(
            check_request("Write", Some(60)).unwrap_err().code(),
            "OperationNotAllowed"
        );
        assert_eq!(
            check_request("None", Some(60)).unwrap_err().code(),
            "InvalidParameter"
        );
    }

    #[test]
    fn attached_disks_need_a_deallocated_vm() {
        assert!(check_attachment(None).is_ok());
        assert!(check_attachment(Some(("/vm", PowerState::Deallocated))).is_ok());
        assert_eq!(
            check_attachment(Some(("/vm", PowerState::Running)))
                .unwrap_err()
                .code(),
            "OperationNotAllowed"
        );
        assert!(check_attachment(Some(("/vm", PowerState::Stopped))).is_err());
    }
}
