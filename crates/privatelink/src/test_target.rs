//! A tiny built-in private link target (`Recoverite.Test/privateLinkTargets`)
//! so private endpoints, approval, DNS and the gateway can be exercised
//! without a vault or storage account. One group (`target`), one member per
//! name in `properties.members` (default `api`, `data`), FQDNs
//! `{target}.{member}.privatelink.test.recoverite.local`.

use std::sync::Arc;

use http::Method;
use serde_json::{json, Value};

use recoverite_arm::{
    paging, regions, resource, ArmError, ArmRequest, Ctx, Provider, ProviderInfo, Reply,
};

use crate::{ConnectionRequest, GroupInfo, Member, PrivateLinkTarget, ReaderDyn, Registry};

pub const NAMESPACE: &str = "Recoverite.Test";
pub const TARGET_TYPE: &str = "Recoverite.Test/privateLinkTargets";
pub const ZONE: &str = "privatelink.test.recoverite.local";
const API: &[&str] = &["2024-01-01"];

fn members_of(doc: &Value) -> Vec<String> {
    doc["properties"]["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(str::to_string))
                .collect()
        })
        .filter(|v: &Vec<String>| !v.is_empty())
        .unwrap_or_else(|| vec!["api".into(), "data".into()])
}

pub fn fqdn(target_name: &str, member: &str) -> String {
    format!(
        "{}.{}.{ZONE}",
        target_name.to_ascii_lowercase(),
        member.to_ascii_lowercase()
    )
}

pub struct TestTarget;

impl PrivateLinkTarget for TestTarget {
    fn resource_type(&self) -> &'static str {
        TARGET_TYPE
    }
    fn groups(&self, _: &dyn ReaderDyn, target: &Value) -> Result<Vec<GroupInfo>, ArmError> {
        Ok(vec![GroupInfo {
            group_id: "target".into(),
            required_members: members_of(target),
            required_zone_names: vec![ZONE.into()],
        }])
    }
    fn validate(
        &self,
        _: &dyn ReaderDyn,
        _: &Value,
        _: &ConnectionRequest,
    ) -> Result<(), ArmError> {
        Ok(())
    }
    fn members(
        &self,
        _: &dyn ReaderDyn,
        target: &Value,
        _: &str,
        _: &ConnectionRequest,
    ) -> Result<Vec<Member>, ArmError> {
        let name = target["name"].as_str().unwrap_or_default();
        Ok(members_of(target)
            .into_iter()
            .map(|m| Member {
                fqdn: fqdn(name, &m),
                member_name: m,
            })
            .collect())
    }
    fn approval_action(&self) -> String {
        format!("{TARGET_TYPE}/privateEndpointConnectionsApproval/action")
    }
    fn public_network_access(&self, target: &Value) -> bool {
        target["properties"]["publicNetworkAccess"].as_str() != Some("Disabled")
    }
}

pub struct TestTargetProvider {
    pub registry: Arc<Registry>,
}

impl Provider for TestTargetProvider {
    fn info(&self) -> ProviderInfo {
        ProviderInfo::new(
            NAMESPACE,
            &[
                "privateLinkTargets",
                "privateLinkTargets/privateEndpointConnections",
                "privateLinkTargets/privateLinkResources",
                "privateLinkTargets/addMembers",
            ],
            API,
            false,
            false,
        )
    }

    fn handle(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        let p = req.provider_part()?;
        let types: Vec<String> = p.types.iter().map(|t| t.to_ascii_lowercase()).collect();
        let t: Vec<&str> = types.iter().map(String::as_str).collect();
        match (t.as_slice(), p.is_resource(), req.method.clone()) {
            (["privatelinktargets"], true, Method::PUT) => self.put(ctx, req),
            (["privatelinktargets"], true, Method::GET) => self.get(ctx, req),
            (["privatelinktargets"], true, Method::DELETE) => self.delete(ctx, req),
            (["privatelinktargets"], false, Method::GET) => {
                let items = ctx
                    .store()
                    .view(|r| resource::list_of_type(r, &req.path.scope(), TARGET_TYPE))?;
                Ok(Reply::ok(paging::page(ctx, req, items)?))
            }
            (["privatelinktargets", "privatelinkresources"], false, Method::GET) => {
                let target = self.target(ctx, req, 8)?;
                let groups = TestTarget.groups(&NoReader, &target)?;
                let value: Vec<Value> = groups
                    .iter()
                    .map(|g| json!({"id": format!("{}/privateLinkResources/{}", target["id"].as_str().unwrap_or(""), g.group_id), "name": g.group_id, "type": format!("{TARGET_TYPE}/privateLinkResources"), "properties": {"groupId": g.group_id, "requiredMembers": g.required_members, "requiredZoneNames": g.required_zone_names}}))
                    .collect();
                Ok(Reply::ok(json!({"value": value})))
            }
            (["privatelinktargets", "privateendpointconnections"], false, Method::GET) => {
                let target = self.target(ctx, req, 8)?;
                let tid = target["id"].as_str().unwrap_or_default().to_string();
                let items: Vec<Value> = ctx
                    .store()
                    .view(|r| crate::of_target(r, &tid))?
                    .iter()
                    .map(connection_json)
                    .collect();
                Ok(Reply::ok(paging::page(ctx, req, items)?))
            }
            (["privatelinktargets", "privateendpointconnections"], true, m) => {
                self.connection(ctx, req, m)
            }
            (["privatelinktargets", "addmembers"], false, Method::POST) => {
                self.add_members(ctx, req)
            }
            (_, _, m) => Err(ArmError::method_not_allowed(m.as_str())),
        }
    }
}

struct NoReader;

impl ReaderDyn for NoReader {
    fn get_value(&self, _: &str) -> Result<Option<Value>, ArmError> {
        Ok(None)
    }
    fn connections(&self, _: &str) -> Result<Vec<crate::Connection>, ArmError> {
        Ok(Vec::new())
    }
    fn record(&self, _: recoverite_store::Table, _: &str) -> Result<Option<Value>, ArmError> {
        Ok(None)
    }
    fn registration(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<recoverite_arm::registration::Registration>, ArmError> {
        Ok(None)
    }
}

pub fn connection_json(c: &crate::Connection) -> Value {
    json!({
        "id": c.id(),
        "name": c.name,
        "type": format!("{TARGET_TYPE}/privateEndpointConnections"),
        "properties": {
            "privateEndpoint": {"id": c.endpoint_id},
            "groupIds": c.group_ids,
            "privateLinkServiceConnectionState": c.state_json("actionsRequired"),
            "provisioningState": "Succeeded",
        }
    })
}

impl TestTargetProvider {
    fn target(&self, ctx: &Ctx, req: &ArmRequest, len: usize) -> Result<Value, ArmError> {
        let tid = req.path.prefix(len);
        ctx.store()
            .view(|r| resource::get(r, &tid))?
            .ok_or_else(|| {
                ArmError::resource_not_found(
                    TARGET_TYPE,
                    tid.rsplit('/').next().unwrap_or(""),
                    req.path.resource_group.as_deref(),
                )
            })
    }

    fn put(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        let n = req.resource_name().to_string();
        recoverite_arm::names::check_generic("private link target", &n)?;
        let body = req.body.clone().unwrap_or(json!({}));
        let location = regions::require(body["location"].as_str().unwrap_or(""), TARGET_TYPE)?.name;
        let props = body.get("properties").cloned().unwrap_or(json!({}));
        let pna = props["publicNetworkAccess"].as_str().unwrap_or("Enabled");
        if !["Enabled", "Disabled"].contains(&pna) {
            return Err(ArmError::invalid_parameter(
                "publicNetworkAccess",
                "publicNetworkAccess must be Enabled or Disabled.",
            ));
        }
        let rid = req.path.id();
        let doc = json!({
            "id": rid, "name": n, "type": TARGET_TYPE, "location": location,
            "properties": {"publicNetworkAccess": pna, "members": props.get("members").cloned().unwrap_or(json!(["api", "data"])), "provisioningState": "Succeeded"}
        });
        let existed = ctx.store().write(|tx| {
            let e = resource::get(tx, &rid)?.is_some();
            resource::put(tx, &rid, &doc)?;
            Ok::<_, ArmError>(e)
        })?;
        Ok(if existed {
            Reply::ok(doc)
        } else {
            Reply::created(doc)
        })
    }

    fn get(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        let t = self.target(ctx, req, req.path.segments.len())?;
        let tid = t["id"].as_str().unwrap_or_default().to_string();
        let conns: Vec<Value> = ctx
            .store()
            .view(|r| crate::of_target(r, &tid))?
            .iter()
            .map(connection_json)
            .collect();
        let mut t = t;
        t["properties"]["privateEndpointConnections"] = Value::Array(conns);
        Ok(Reply::ok(t))
    }

    fn delete(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        let rid = req.path.id();
        ctx.store().write(|tx| {
            if !resource::delete_tree(tx, &rid)? {
                return Ok(Reply::empty(204));
            }
            ctx.cascade_delete(tx, &rid)?;
            Ok(Reply::empty(200))
        })
    }

    /// GET / PUT (approve, reject) / DELETE of one connection, as targets do.
    fn connection(&self, ctx: &Ctx, req: &ArmRequest, m: Method) -> Result<Reply, ArmError> {
        let target = self.target(ctx, req, 8)?;
        let tid = target["id"].as_str().unwrap_or_default().to_string();
        crate::connection_api(ctx, req, &tid, m, connection_json)
    }

    /// POST {target}/addMembers {"groupId","members":["x"]}: adds FQDNs to existing endpoints.
    fn add_members(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        let target = self.target(ctx, req, 8)?;
        let tid = target["id"].as_str().unwrap_or_default().to_string();
        let tname = target["name"].as_str().unwrap_or_default().to_string();
        let body = req.body.clone().unwrap_or(json!({}));
        let group = body["groupId"].as_str().unwrap_or("target").to_string();
        let names: Vec<String> = body["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let members: Vec<Member> = names
            .iter()
            .map(|m| Member {
                member_name: m.clone(),
                fqdn: fqdn(&tname, m),
            })
            .collect();
        let host = self.registry.host()?.clone();
        ctx.store().write(|tx| {
            host.add_members(tx, &tid, &group, &members)?;
            let mut t = resource::get(tx, &tid)?.unwrap_or(target.clone());
            let mut all = members_of(&t);
            for n in &names {
                if !all.iter().any(|x| x.eq_ignore_ascii_case(n)) {
                    all.push(n.clone());
                }
            }
            t["properties"]["members"] = json!(all);
            resource::put(tx, &tid, &t)?;
            Ok(Reply::ok(t))
        })
    }
}
