//! The storage account as a private link target, and its connections API.

use http::Method;
use serde_json::{json, Value};

use recoverite_arm::{paging, ArmError, ArmRequest, Ctx, Reply};
use recoverite_privatelink::{
    self as pl, ConnectionRequest, GroupInfo, Member, PrivateLinkTarget, ReaderDyn,
};

use crate::account::StorageAccount;
use crate::accounts::SERVICES;
use crate::ACCOUNT_TYPE;

pub fn zone(service: &str) -> String {
    format!("privatelink.{service}.core.windows.net")
}

pub struct StorageTarget;

impl PrivateLinkTarget for StorageTarget {
    fn resource_type(&self) -> &'static str {
        ACCOUNT_TYPE
    }

    fn groups(&self, _: &dyn ReaderDyn, _: &Value) -> Result<Vec<GroupInfo>, ArmError> {
        Ok(SERVICES
            .iter()
            .map(|s| GroupInfo {
                group_id: s.to_string(),
                required_members: vec![s.to_string()],
                required_zone_names: vec![zone(s)],
            })
            .collect())
    }

    /// Document 000: private endpoints for storage only on General Purpose v2.
    fn validate(
        &self,
        _: &dyn ReaderDyn,
        target: &Value,
        _: &ConnectionRequest,
    ) -> Result<(), ArmError> {
        let acct = StorageAccount::of(target.clone())?;
        pl::require_general_purpose_v2(&acct.kind, &acct.name)
    }

    fn members(
        &self,
        _: &dyn ReaderDyn,
        target: &Value,
        group_id: &str,
        _: &ConnectionRequest,
    ) -> Result<Vec<Member>, ArmError> {
        let name = StorageAccount::of(target.clone())?
            .name
            .to_ascii_lowercase();
        let svc = SERVICES
            .iter()
            .find(|s| s.eq_ignore_ascii_case(group_id))
            .ok_or_else(|| {
                ArmError::invalid_parameter(
                    "groupIds",
                    format!(
                        "'{group_id}' is not a storage sub-resource; use one of {}.",
                        SERVICES.join(", ")
                    ),
                )
            })?;
        Ok(vec![Member {
            member_name: svc.to_string(),
            fqdn: format!("{name}.{}", zone(svc)),
        }])
    }

    fn approval_action(&self) -> String {
        format!("{ACCOUNT_TYPE}/privateEndpointConnectionsApproval/action")
    }

    fn public_network_access(&self, target: &Value) -> bool {
        // An account that does not read back is treated as closed.
        StorageAccount::of(target.clone()).is_ok_and(|a| !a.public_access_disabled())
    }

    /// The account firewall: with `defaultAction: Deny` only sources in a
    /// subnet named by a virtual network rule get through (over the subnet's
    /// Microsoft.Storage service endpoint).
    fn admits(&self, target: &Value, source_subnet: Option<&str>) -> Result<(), String> {
        let acct = StorageAccount::of(target.clone()).map_err(|e| e.body.message.clone())?;
        let name = &acct.name;
        if acct.public_access_disabled() {
            return Err(format!("storage account {name} has public network access disabled: it accepts connections only through its approved private endpoints"));
        }
        let acls = &acct.properties.network_acls;
        if !acls.denies_by_default() {
            return Ok(());
        }
        let listed = source_subnet.is_some_and(|s| {
            acls.virtual_network_rules
                .iter()
                .any(|r| r.id.eq_ignore_ascii_case(s))
        });
        if listed {
            Ok(())
        } else {
            Err(format!("storage account {name}'s firewall denies by default and has no virtual network rule for {}", source_subnet.unwrap_or("a source outside any virtual network")))
        }
    }

    fn actions_key(&self) -> &'static str {
        "actionRequired"
    }
}

pub fn connection_json(c: &pl::Connection) -> Value {
    json!({
        "id": c.id(), "name": c.name, "type": format!("{ACCOUNT_TYPE}/privateEndpointConnections"),
        "properties": {
            "privateEndpoint": {"id": c.endpoint_id},
            "groupIds": c.group_ids,
            "privateLinkServiceConnectionState": c.state_json("actionRequired"),
            "provisioningState": "Succeeded",
        }
    })
}

fn account(ctx: &Ctx, req: &ArmRequest) -> Result<StorageAccount, ArmError> {
    let tid = req.path.prefix(8);
    ctx.store()
        .view(|r| crate::account::load(r, &tid))?
        .ok_or_else(|| {
            ArmError::resource_not_found(
                ACCOUNT_TYPE,
                tid.rsplit('/').next().unwrap_or(""),
                req.path.resource_group.as_deref(),
            )
        })
}

/// GET …/privateLinkResources (not paged).
pub fn link_resources(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let a = account(ctx, req)?;
    let aid = a.id.as_str();
    let value: Vec<Value> = SERVICES
        .iter()
        .map(|s| json!({"id": format!("{aid}/privateLinkResources/{s}"), "name": s, "type": format!("{ACCOUNT_TYPE}/privateLinkResources"),
                        "properties": {"groupId": s, "requiredMembers": [s], "requiredZoneNames": [zone(s)]}}))
        .collect();
    Ok(Reply::ok(json!({"value": value})))
}

pub fn list_connections(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let a = account(ctx, req)?;
    let tid = a.id.clone();
    let items: Vec<Value> = ctx
        .store()
        .view(|r| pl::of_target(r, &tid))?
        .iter()
        .map(connection_json)
        .collect();
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

/// GET / PUT (approve, reject; 200, not an LRO) / DELETE of one connection.
pub fn connection(ctx: &Ctx, req: &ArmRequest, m: Method) -> Result<Reply, ArmError> {
    let a = account(ctx, req)?;
    pl::connection_api(ctx, req, &a.id, m, connection_json)
}
