//! Storage accounts: create/update with Azure's validation, read, list,
//! delete, and name availability (account names are global).

use serde_json::{json, Map, Value};

use recoverite_arm::{paging, regions, resource, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::Reader;

use crate::account::{
    self, AccountProperties, AccountSku, IpRule, NetworkRuleSet, StorageAccount, VirtualNetworkRule,
};
use crate::ACCOUNT_TYPE;

pub const KINDS: &[&str] = &[
    "Storage",
    "StorageV2",
    "BlobStorage",
    "FileStorage",
    "BlockBlobStorage",
];
pub const SKUS: &[&str] = &[
    "Standard_LRS",
    "Standard_GRS",
    "Standard_RAGRS",
    "Standard_ZRS",
    "Premium_LRS",
    "Premium_ZRS",
    "Standard_GZRS",
    "Standard_RAGZRS",
    "StandardV2_LRS",
    "StandardV2_GRS",
    "StandardV2_ZRS",
    "StandardV2_GZRS",
    "PremiumV2_LRS",
    "PremiumV2_ZRS",
];
const BYPASS: &[&str] = &["None", "Logging", "Metrics", "AzureServices"];
pub const SERVICES: &[&str] = &["blob", "queue", "table", "file", "web", "dfs"];

fn name_of(req: &ArmRequest) -> String {
    req.path
        .provider
        .as_ref()
        .and_then(|p| p.name())
        .unwrap_or_default()
        .to_string()
}

/// Azure's rule: 3–24 characters, digits and lower-case letters only.
pub fn check_account_name(name: &str) -> Result<(), ArmError> {
    let ok = (3..=24).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ArmError::bad_request("AccountNameInvalid", format!("{name} is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only.")))
    }
}

/// The account of this name anywhere (names are global across subscriptions).
pub fn find_by_name(r: &impl Reader, name: &str) -> Result<Option<StorageAccount>, ArmError> {
    Ok(account::list(r, "")?
        .into_iter()
        .find(|a| a.name.eq_ignore_ascii_case(name)))
}

fn tier(sku: &str) -> &'static str {
    if sku.starts_with("Premium") {
        "Premium"
    } else {
        "Standard"
    }
}

/// Validates `networkAcls` against the networks it names.
fn network_acls(r: &impl Reader, acls: Option<&Value>) -> Result<NetworkRuleSet, ArmError> {
    let Some(a) = acls.filter(|v| !v.is_null()) else {
        return Ok(NetworkRuleSet::open());
    };
    let default_action = a["defaultAction"].as_str().unwrap_or("Allow");
    if !["Allow", "Deny"].contains(&default_action) {
        return Err(ArmError::invalid_parameter(
            "networkAcls.defaultAction",
            "defaultAction must be Allow or Deny.",
        ));
    }
    let bypass = a["bypass"].as_str().unwrap_or("AzureServices");
    for flag in bypass.split(',').map(str::trim) {
        if !BYPASS.iter().any(|b| b.eq_ignore_ascii_case(flag)) {
            return Err(ArmError::invalid_parameter("networkAcls.bypass", format!("'{flag}' is not a bypass value; combine None, Logging, Metrics and AzureServices with commas.")));
        }
    }
    let mut vnet_rules = Vec::new();
    for rule in a["virtualNetworkRules"].as_array().into_iter().flatten() {
        let sid = rule["id"].as_str().unwrap_or_default();
        let subnet = recoverite_rp_network::view::subnet(r, sid)?.ok_or_else(|| {
            ArmError::bad_request(
                "NetworkAclsValidationFailure",
                format!("Validation of network acls failure: subnet {sid} was not found."),
            )
        })?;
        if !subnet.has_storage_endpoint() {
            return Err(ArmError::bad_request("NetworkAclsValidationFailure", format!("Validation of network acls failure: SubnetsHaveNoServiceEndpointsConfigured:Subnets {} do not have ServiceEndpoints for Microsoft.Storage resources configured. Add Microsoft.Storage to subnet's ServiceEndpoints collection before trying to ACL Microsoft.Storage resources to these subnets.", subnet.name)));
        }
        vnet_rules.push(VirtualNetworkRule {
            id: subnet.id,
            action: "Allow".into(),
            state: "Succeeded".into(),
        });
    }
    let mut ip_rules = Vec::new();
    for rule in a["ipRules"].as_array().into_iter().flatten() {
        let v = rule["value"].as_str().unwrap_or_default();
        if v.parse::<std::net::Ipv4Addr>().is_err() && v.parse::<ipnet::Ipv4Net>().is_err() {
            return Err(ArmError::invalid_parameter(
                "networkAcls.ipRules",
                format!("'{v}' is not an IPv4 address or range."),
            ));
        }
        ip_rules.push(IpRule {
            value: v.to_string(),
            action: "Allow".into(),
        });
    }
    Ok(NetworkRuleSet {
        bypass: bypass.to_string(),
        default_action: default_action.to_string(),
        virtual_network_rules: vnet_rules,
        ip_rules,
        resource_access_rules: a["resourceAccessRules"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    })
}

fn endpoints(name: &str) -> Map<String, Value> {
    let mut m = Map::new();
    for s in SERVICES {
        m.insert(
            s.to_string(),
            json!(format!("https://{name}.{s}.core.windows.net/")),
        );
    }
    m
}

/// PUT: create, or update an account of this resource group.
pub fn put(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let name = name_of(req);
    check_account_name(&name)?;
    let body = req.body.clone().unwrap_or(json!({}));
    let rid = req.path.id();
    let kind = body["kind"].as_str().ok_or_else(|| {
        ArmError::invalid_parameter(
            "kind",
            "kind is required: StorageV2 (General Purpose v2) unless you need another.",
        )
    })?;
    let kind = KINDS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(kind))
        .ok_or_else(|| {
            ArmError::invalid_parameter(
                "kind",
                format!(
                    "'{kind}' is not a storage account kind; use one of {}.",
                    KINDS.join(", ")
                ),
            )
        })?;
    let sku = body["sku"]["name"].as_str().ok_or_else(|| {
        ArmError::invalid_parameter("sku.name", "sku.name is required, e.g. Standard_LRS.")
    })?;
    let sku = SKUS
        .iter()
        .find(|s| s.eq_ignore_ascii_case(sku))
        .ok_or_else(|| {
            ArmError::invalid_parameter(
                "sku.name",
                format!(
                    "'{sku}' is not a storage SKU; use one of {}.",
                    SKUS.join(", ")
                ),
            )
        })?;
    if (*kind == "BlockBlobStorage" || *kind == "FileStorage") && tier(sku) != "Premium" {
        return Err(ArmError::bad_request(
            "InvalidSkuForKind",
            format!("Kind {kind} needs a Premium SKU (Premium_LRS or Premium_ZRS)."),
        ));
    }
    let location =
        regions::require(body["location"].as_str().unwrap_or_default(), ACCOUNT_TYPE)?.name;
    let tags = resource::validate_tags(body.get("tags"))?;
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    let pna = props["publicNetworkAccess"].as_str().unwrap_or("Enabled");
    if !["Enabled", "Disabled", "SecuredByPerimeter"].contains(&pna) {
        return Err(ArmError::invalid_parameter(
            "properties.publicNetworkAccess",
            "publicNetworkAccess must be Enabled, Disabled or SecuredByPerimeter.",
        ));
    }
    let tls = props["minimumTlsVersion"].as_str().unwrap_or("TLS1_2");
    if !["TLS1_0", "TLS1_1", "TLS1_2", "TLS1_3"].contains(&tls) {
        return Err(ArmError::invalid_parameter(
            "properties.minimumTlsVersion",
            "minimumTlsVersion must be TLS1_0, TLS1_1, TLS1_2 or TLS1_3.",
        ));
    }
    ctx.store().write(|tx| {
        let acls = network_acls(tx, props.get("networkAcls"))?;
        let existing = account::load(tx, &rid)?;
        if existing.is_none() {
            if let Some(other) = find_by_name(tx, &name)? {
                return Err(ArmError::conflict("StorageAccountAlreadyTaken", format!("The storage account named {name} is already taken ({}).", other.id)));
            }
        }
        if let Some(e) = &existing {
            if !e.location.eq_ignore_ascii_case(location) {
                return Err(ArmError::conflict("InvalidResourceLocation", format!("Storage account {name} exists in {}; an account cannot move to {location}.", e.location)));
            }
        }
        let flag = |k: &str, d: bool| props[k].as_bool().unwrap_or(d);
        let acct = StorageAccount {
            id: rid.clone(),
            name: name.clone(),
            kind_of_resource: ACCOUNT_TYPE.into(),
            location: location.to_string(),
            tags: tags.clone(),
            kind: kind.to_string(),
            sku: AccountSku { name: sku.to_string(), tier: tier(sku).into() },
            properties: AccountProperties {
                provisioning_state: "Succeeded".into(),
                creation_time: existing.as_ref().map(|e| e.properties.creation_time.clone()).unwrap_or_else(time::now_string),
                primary_endpoints: endpoints(&name),
                primary_location: location.to_string(),
                status_of_primary: "available".into(),
                network_acls: acls,
                public_network_access: pna.to_string(),
                minimum_tls_version: tls.to_string(),
                allow_blob_public_access: flag("allowBlobPublicAccess", false),
                allow_shared_key_access: flag("allowSharedKeyAccess", true),
                supports_https_traffic_only: flag("supportsHttpsTrafficOnly", true),
                is_hns_enabled: flag("isHnsEnabled", false),
                encryption: json!({"keySource": "Microsoft.Storage", "services": {"blob": {"enabled": true, "keyType": "Account"}, "file": {"enabled": true, "keyType": "Account"}}}),
                access_tier: ["StorageV2", "BlobStorage"].contains(kind).then(|| props.get("accessTier").cloned().unwrap_or(json!("Hot"))),
            },
        };
        acct.save(tx)?;
        Ok(Reply::ok(decorate(tx, &acct)?))
    })
}

/// PATCH: tags, networkAcls, publicNetworkAccess and other properties.
pub fn patch(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    let current = ctx.store().view(|r| load(r, &rid, req))?.to_value()?;
    let patch = req.body.clone().unwrap_or(json!({}));
    let mut merged = current.clone();
    for k in ["tags", "sku", "kind"] {
        if let Some(v) = patch.get(k) {
            merged[k] = v.clone();
        }
    }
    if let Some(p) = patch["properties"].as_object() {
        for (k, v) in p {
            merged["properties"][k] = v.clone();
        }
    }
    let mut r2 = req.clone();
    r2.body = Some(merged);
    put(ctx, &r2)
}

fn load(r: &impl Reader, rid: &str, req: &ArmRequest) -> Result<StorageAccount, ArmError> {
    account::load(r, rid)?.ok_or_else(|| {
        ArmError::resource_not_found(
            ACCOUNT_TYPE,
            &name_of(req),
            req.path.resource_group.as_deref(),
        )
    })
}

/// The account with its private endpoint connections.
fn decorate(r: &impl Reader, acct: &StorageAccount) -> Result<Value, ArmError> {
    let mut doc = acct.to_value()?;
    let conns: Vec<Value> = recoverite_privatelink::of_target(r, &acct.id)?
        .iter()
        .map(crate::target::connection_json)
        .collect();
    doc["properties"]["privateEndpointConnections"] = Value::Array(conns);
    Ok(doc)
}

pub fn get(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    ctx.store()
        .view(|r| Ok(Reply::ok(decorate(r, &load(r, &rid, req)?)?)))
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let items = ctx.store().view(|r| {
        account::list(r, &req.path.scope())?
            .iter()
            .map(|a| decorate(r, a))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

pub fn delete(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    ctx.store().write(|tx| {
        if !resource::delete_tree(tx, &rid)? {
            return Ok(Reply::empty(204));
        }
        ctx.cascade_delete(tx, &rid)?;
        Ok(Reply::empty(200))
    })
}

/// POST …/checkNameAvailability `{name, type}`.
pub fn check_name(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let body = req.body.clone().unwrap_or(json!({}));
    let name = body["name"].as_str().unwrap_or_default();
    if let Err(e) = check_name_only(name) {
        return Ok(Reply::ok(
            json!({"nameAvailable": false, "reason": "AccountNameInvalid", "message": e}),
        ));
    }
    let taken = ctx.store().view(|r| find_by_name(r, name))?;
    Ok(Reply::ok(match taken {
        Some(_) => {
            json!({"nameAvailable": false, "reason": "AlreadyExists", "message": format!("The storage account named {name} is already taken.")})
        }
        None => json!({"nameAvailable": true}),
    }))
}

fn check_name_only(name: &str) -> Result<(), String> {
    check_account_name(name).map_err(|e| e.body.message.clone())
}

/// The account id for an account name, or None.
pub fn id_of_name(r: &impl Reader, name: &str) -> Result<Option<String>, ArmError> {
    Ok(find_by_name(r, name)?.map(|a| a.id))
}
