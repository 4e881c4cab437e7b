//! Microsoft.Authorization: role definitions, role assignments, permissions.

use serde::Deserialize;
use serde_json::Value;

use recoverite_arm::provider::default_operation;
use recoverite_arm::{
    id, paging, resource, time, ArmError, ArmRequest, Ctx, Operation, Provider, ProviderInfo,
    Reply, Routed,
};
use recoverite_store::Reader;

use crate::principals;
use crate::rbac::{self, Assignment, AssignmentProperties, RoleAssignment};
use crate::roles::{self, Permission, RoleDefinition};

pub const NAMESPACE: &str = "Microsoft.Authorization";

pub struct AuthorizationProvider;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignmentProps {
    role_definition_id: String,
    principal_id: String,
    principal_type: Option<String>,
    description: Option<String>,
    condition: Option<String>,
    condition_version: Option<String>,
    delegated_managed_identity_resource_id: Option<String>,
}

#[derive(Deserialize)]
struct AssignmentBody {
    properties: AssignmentProps,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DefinitionProps {
    role_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    permissions: Vec<Permission>,
    #[serde(default)]
    assignable_scopes: Vec<String>,
}

#[derive(Deserialize)]
struct DefinitionBody {
    properties: DefinitionProps,
}

recoverite_arm::api_versions!(
    "../api-versions.txt",
    ["roleAssignments", "roleDefinitions", "permissions"]
);

fn is_guid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

/// The value inside `name eq 'value'` or `name('value')` in an OData filter.
fn filter_value(filter: &str, name: &str) -> Option<String> {
    let lower = filter.to_ascii_lowercase();
    let at = lower.find(&name.to_ascii_lowercase())?;
    let rest = &filter[at + name.len()..];
    let start = rest.find('\'')? + 1;
    let end = rest[start..].find('\'')? + start;
    Some(rest[start..end].to_string())
}

impl Provider for AuthorizationProvider {
    fn info(&self) -> ProviderInfo {
        ProviderInfo::from_table(
            NAMESPACE,
            &["roleAssignments", "roleDefinitions", "permissions"],
            &API,
            true,
            false,
        )
    }

    fn operation(&self, req: &ArmRequest) -> Result<Operation, ArmError> {
        let mut op = default_operation(&self.info(), req)?;
        let p = req.provider_part()?;
        // Anyone signed in may ask what they themselves are allowed to do, and
        // read role definitions (built-in ones live at tenant scope).
        op.public = p.types[0].eq_ignore_ascii_case("permissions")
            || (p.types[0].eq_ignore_ascii_case("roleDefinitions")
                && req.method == http::Method::GET);
        Ok(op)
    }

    fn route(&self, req: &ArmRequest) -> Result<Routed<'_>, ArmError> {
        let op = self.operation(req)?;
        // Parsed once; a method a path does not take is answered after
        // ARM's api-version and authorization checks, as Azure does.
        Ok(match route(req) {
            Ok(r) => Routed::new(op, move |ctx, req| serve(ctx, req, r)),
            Err(e) => Routed::new(op, move |_, _| Err(e)),
        })
    }

    fn handle(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        serve(ctx, req, route(req)?)
    }
}

/// What a Microsoft.Authorization request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    GetAssignment,
    PutAssignment,
    DeleteAssignment,
    ListAssignments,
    GetDefinition,
    PutDefinition,
    DeleteDefinition,
    ListDefinitions,
    Permissions,
}

fn route(req: &ArmRequest) -> Result<Route, ArmError> {
    let p = req.provider_part()?;
    let kind = p.types[0].to_ascii_lowercase();
    let m = req.method.as_str();
    Ok(match (kind.as_str(), p.is_resource(), m) {
        ("roleassignments", true, "GET") => Route::GetAssignment,
        ("roleassignments", true, "PUT") => Route::PutAssignment,
        ("roleassignments", true, "DELETE") => Route::DeleteAssignment,
        ("roleassignments", false, "GET") => Route::ListAssignments,
        ("roledefinitions", true, "GET") => Route::GetDefinition,
        ("roledefinitions", true, "PUT") => Route::PutDefinition,
        ("roledefinitions", true, "DELETE") => Route::DeleteDefinition,
        ("roledefinitions", false, "GET") => Route::ListDefinitions,
        ("permissions", false, "GET") => Route::Permissions,
        _ => return Err(ArmError::method_not_allowed(m)),
    })
}

fn serve(ctx: &Ctx, req: &ArmRequest, r: Route) -> Result<Reply, ArmError> {
    let scope = req.path.scope();
    match r {
        Route::GetAssignment => get_assignment(ctx, req),
        Route::PutAssignment => create_assignment(ctx, req, &scope),
        Route::DeleteAssignment => delete_assignment(ctx, req),
        Route::ListAssignments => list_assignments(ctx, req, &scope),
        Route::GetDefinition => get_definition(ctx, req),
        Route::PutDefinition => put_definition(ctx, req, &scope),
        Route::DeleteDefinition => delete_definition(ctx, req),
        Route::ListDefinitions => list_definitions(ctx, req, &scope),
        Route::Permissions => permissions(ctx, req, &scope),
    }
}

fn assignment_not_found(name: &str) -> ArmError {
    ArmError::new(
        404,
        "RoleAssignmentNotFound",
        format!("The role assignment '{name}' is not found."),
    )
}

fn get_assignment(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    match ctx.store().view(|r| rbac::load(r, &req.path.id()))? {
        Some(a) => Ok(Reply::ok(a.to_value()?)),
        None => Err(assignment_not_found(req.resource_name())),
    }
}

fn create_assignment(ctx: &Ctx, req: &ArmRequest, scope: &str) -> Result<Reply, ArmError> {
    let name = req.resource_name().to_string();
    if !is_guid(&name) {
        return Err(ArmError::bad_request(
            "InvalidRoleAssignmentId",
            format!("The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."),
        ));
    }
    let body: AssignmentBody = req.body_as()?;
    let props = body.properties;
    let role_guid = roles::guid_of(&props.role_definition_id).to_string();
    let assignment_id = req.path.id();
    let caller = ctx.caller.object_id.clone();
    ctx.store().write(|tx| {
        // The scope itself must exist (resource groups are checked by the
        // router; subscriptions by the router too).
        let missing = match recoverite_arm::tenancy::group_of_scope(scope) {
            Some(g) => {
                !g.eq_ignore_ascii_case(&ctx.env().tenant_id)
                    && recoverite_arm::tenancy::group(tx, &g)?.is_none()
            }
            None => {
                id::parse_id(scope).and_then(|p| p.provider).is_some_and(|p| p.is_resource())
                    && resource::get(tx, scope)?.is_none()
            }
        };
        if missing {
            return Err(ArmError::new(
                404,
                "ResourceNotFound",
                format!("The scope '{scope}' does not exist; create the resource before assigning roles on it."),
            ));
        }
        let def = roles::find(tx, &role_guid)?.ok_or_else(|| {
            ArmError::bad_request(
                "RoleDefinitionDoesNotExist",
                format!("The specified role definition with ID '{role_guid}' does not exist."),
            )
        })?;
        if !def.assignable_scopes.iter().any(|s| id::scope_contains(s, scope)) {
            return Err(ArmError::bad_request(
                "InvalidRoleAssignmentScope",
                format!("The role '{}' cannot be assigned at scope '{scope}'; it is assignable only at {:?}.", def.role_name, def.assignable_scopes),
            ));
        }
        let principal = principals::get(tx, &props.principal_id)?.ok_or_else(|| {
            ArmError::bad_request(
                "PrincipalNotFound",
                format!(
                    "Principal {} does not exist in the directory {}. Check that you have the correct principal ID.",
                    props.principal_id.replace('-', ""),
                    ctx.env().tenant_id
                ),
            )
        })?;
        let existing = rbac::load(tx, &assignment_id)?;
        if let Some(e) = &existing {
            if !e.principal_id.eq_ignore_ascii_case(&principal.object_id) || !e.role_guid.eq_ignore_ascii_case(&role_guid) {
                return Err(ArmError::bad_request(
                    "RoleAssignmentUpdateNotPermitted",
                    "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                ));
            }
            return Ok(Reply::ok(e.to_value()?));
        }
        let duplicate = rbac::for_principal(tx, &principal.object_id)?.into_iter().any(|a| {
            a.role_guid.eq_ignore_ascii_case(&role_guid) && id::key(&a.scope) == id::key(scope)
        });
        if duplicate {
            return Err(ArmError::conflict("RoleAssignmentExists", "The role assignment already exists."));
        }
        let now = time::now_string();
        let a = Assignment::of(RoleAssignment {
            id: assignment_id.clone(),
            name: name.to_string(),
            kind: rbac::ASSIGNMENT_TYPE.into(),
            properties: AssignmentProperties {
                role_definition_id: def.id_at(req.path.subscription.as_deref()),
                principal_id: principal.object_id.clone(),
                principal_type: props
                    .principal_type
                    .unwrap_or_else(|| principal.principal_type().to_string()),
                scope: scope.to_string(),
                condition: props.condition,
                condition_version: props.condition_version,
                created_on: now.clone(),
                updated_on: now,
                created_by: Some(caller.clone()),
                updated_by: Some(caller.clone()),
                delegated_managed_identity_resource_id: props.delegated_managed_identity_resource_id,
                description: props.description,
            },
        });
        rbac::save(tx, &a)?;
        Ok(Reply::created(a.to_value()?))
    })
}

fn delete_assignment(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let aid = req.path.id();
    ctx.store().write(|tx| match rbac::load(tx, &aid)? {
        Some(a) => {
            rbac::delete(tx, &a)?;
            Ok(Reply::ok(a.to_value()?))
        }
        None => Ok(Reply::empty(204)),
    })
}

fn list_assignments(ctx: &Ctx, req: &ArmRequest, scope: &str) -> Result<Reply, ArmError> {
    let filter = req.query_get("$filter").unwrap_or("");
    let at_scope = filter.to_ascii_lowercase().contains("atscope()");
    let principal =
        filter_value(filter, "principalId eq").or_else(|| filter_value(filter, "assignedTo("));
    let all = ctx.store().read(|r| Ok(rbac::all(r)))??;
    let mut items = Vec::new();
    for a in all {
        let above = id::scope_contains(&a.scope, scope);
        let below = id::scope_contains(scope, &a.scope);
        if !(above || (!at_scope && below)) {
            continue;
        }
        if principal
            .as_ref()
            .is_some_and(|p| !p.eq_ignore_ascii_case(&a.principal_id))
        {
            continue;
        }
        if ctx.can_see(&a.scope)? {
            items.push(a.to_value()?);
        }
    }
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

const DEFINITION_WRITE: &str = "Microsoft.Authorization/roleDefinitions/write";
const DEFINITION_DELETE: &str = "Microsoft.Authorization/roleDefinitions/delete";

/// A role may not lose an assignable scope under which it is still assigned
/// (Azure: `RoleScopeBeingRemovedContainsAssignments`). Returns the removed
/// scope and an assignment under it.
pub fn scope_removed_under_assignments(
    old_scopes: &[String],
    new_scopes: &[String],
    assignment_scopes: &[String],
) -> Option<(String, String)> {
    assignment_scopes.iter().find_map(|at| {
        let still = new_scopes.iter().any(|s| id::scope_contains(s, at));
        if still {
            return None;
        }
        old_scopes
            .iter()
            .find(|s| id::scope_contains(s, at))
            .map(|s| (s.clone(), at.clone()))
    })
}

fn definition_not_found(guid: &str) -> ArmError {
    ArmError::new(
        404,
        "RoleDefinitionDoesNotExist",
        format!("The role definition '{guid}' could not be found."),
    )
}

fn get_definition(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let guid = req.resource_name().to_string();
    let def = ctx.store().read(|r| Ok(roles::find(r, &guid)))??;
    let def = def.ok_or_else(|| definition_not_found(&guid))?;
    Ok(Reply::ok(def.to_json(req.path.subscription.as_deref())))
}

fn put_definition(ctx: &Ctx, req: &ArmRequest, scope: &str) -> Result<Reply, ArmError> {
    let guid = req.resource_name().to_string();
    if !is_guid(&guid) {
        return Err(ArmError::bad_request(
            "InvalidRoleDefinitionId",
            format!("The role definition ID '{guid}' is not valid; it must be a GUID."),
        ));
    }
    let body: DefinitionBody = req.body_as()?;
    let props = body.properties;
    if props.role_name.trim().is_empty() {
        return Err(ArmError::invalid_parameter(
            "properties.roleName",
            "A custom role needs a 'roleName'.",
        ));
    }
    if props.permissions.is_empty() {
        return Err(ArmError::invalid_parameter(
            "properties.permissions",
            "A custom role needs at least one permission block.",
        ));
    }
    let assignable = if props.assignable_scopes.is_empty() {
        vec![scope.to_string()]
    } else {
        props.assignable_scopes
    };
    ctx.store().write(|tx| {
        if roles::builtins()
            .iter()
            .any(|b| b.name.eq_ignore_ascii_case(&guid))
        {
            return Err(ArmError::bad_request(
                "RoleDefinitionUpdateNotPermitted",
                "Built-in roles cannot be changed.",
            ));
        }
        let existing = roles::find(tx, &guid)?;
        let old_scopes = existing
            .as_ref()
            .map(|d| d.assignable_scopes.clone())
            .unwrap_or_default();
        for s in old_scopes.iter().chain(assignable.iter()) {
            // "Users that are granted this operation on all the AssignableScopes of
            // the custom role can update custom roles in those scopes": the
            // URL's scope alone is not enough.
            ctx.require(DEFINITION_WRITE, s)?;
        }
        let assigned: Vec<String> = rbac::all(tx)?
            .into_iter()
            .filter(|a| a.role_guid.eq_ignore_ascii_case(&guid))
            .map(|a| a.scope)
            .collect();
        if let Some((removed, at)) = scope_removed_under_assignments(&old_scopes, &assignable, &assigned) {
            return Err(ArmError::bad_request(
                "RoleScopeBeingRemovedContainsAssignments",
                format!("Role assignments found under scope '{removed}' (one at '{at}') which is being removed. Removing this scope from the role would orphan these assignments; delete them before removing the scope."),
            ));
        }
        let clash = roles::all(tx)?.into_iter().any(|r| {
            r.role_name.eq_ignore_ascii_case(&props.role_name)
                && !r.name.eq_ignore_ascii_case(&guid)
        });
        if clash {
            return Err(ArmError::conflict(
                "RoleDefinitionWithSameNameExists",
                format!(
                    "A role definition named '{}' already exists; choose another roleName.",
                    props.role_name
                ),
            ));
        }
        let def = RoleDefinition {
            name: guid.clone(),
            role_name: props.role_name,
            description: props.description,
            permissions: props.permissions,
            assignable_scopes: assignable,
            custom: true,
            created_on: Some(time::now_string()),
        };
        roles::save_custom(tx, &def)?;
        Ok(Reply::created(
            def.to_json(req.path.subscription.as_deref()),
        ))
    })
}

fn delete_definition(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let guid = req.resource_name().to_string();
    ctx.store().write(|tx| {
        let Some(def) = roles::find(tx, &guid)? else {
            return Ok(Reply::empty(204));
        };
        if !def.custom {
            return Err(ArmError::bad_request(
                "RoleDefinitionUpdateNotPermitted",
                "Built-in roles cannot be deleted.",
            ));
        }
        for s in &def.assignable_scopes {
            ctx.require(DEFINITION_DELETE, s)?;
        }
        if rbac::all(tx)?
            .iter()
            .any(|a| a.role_guid.eq_ignore_ascii_case(&guid))
        {
            return Err(ArmError::conflict(
                "RoleDefinitionHasAssignments",
                "There are existing role assignments referencing this role; delete them first.",
            ));
        }
        roles::delete_custom(tx, &guid)?;
        Ok(Reply::ok(def.to_json(req.path.subscription.as_deref())))
    })
}

fn list_definitions(ctx: &Ctx, req: &ArmRequest, scope: &str) -> Result<Reply, ArmError> {
    let filter = req.query_get("$filter").unwrap_or("");
    let role_name = filter_value(filter, "roleName eq");
    let role_type = filter_value(filter, "type eq");
    let defs = ctx.store().read(|r| Ok(roles::all(r)))??;
    let items: Vec<Value> = defs
        .into_iter()
        .filter(|d| {
            role_name
                .as_ref()
                .is_none_or(|n| d.role_name.eq_ignore_ascii_case(n))
        })
        .filter(|d| {
            role_type.as_ref().is_none_or(|t| {
                t.eq_ignore_ascii_case(if d.custom {
                    "CustomRole"
                } else {
                    "BuiltInRole"
                })
            })
        })
        .filter(|d| {
            !d.custom
                || d.assignable_scopes
                    .iter()
                    .any(|s| id::scope_contains(s, scope) || id::scope_contains(scope, s))
        })
        .map(|d| d.to_json(req.path.subscription.as_deref()))
        .collect();
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

fn permissions(ctx: &Ctx, req: &ArmRequest, scope: &str) -> Result<Reply, ArmError> {
    let perms = ctx
        .store()
        .read(|r| Ok(rbac::effective_permissions(r, &ctx.caller.object_id, scope)))??;
    let items: Vec<Value> = perms
        .into_iter()
        .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
        .collect();
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

/// Assigns `role_name` to `principal_id` at `scope` (bootstrap and CLI use).
pub fn assign(
    tx: &mut recoverite_store::WriteTx,
    role_name: &str,
    principal_id: &str,
    scope: &str,
    created_by: &str,
) -> Result<Value, ArmError> {
    let def = roles::builtin_by_name(role_name)
        .cloned()
        .or_else(|| {
            roles::all(tx)
                .ok()?
                .into_iter()
                .find(|r| r.role_name.eq_ignore_ascii_case(role_name))
        })
        .ok_or_else(|| {
            ArmError::bad_request(
                "RoleDefinitionDoesNotExist",
                format!("There is no role named '{role_name}'."),
            )
        })?;
    let name = uuid::Uuid::new_v4().to_string();
    let assignment_id = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/{name}",
        scope.trim_end_matches('/')
    );
    let subscription = id::parse_id(scope).and_then(|p| p.subscription);
    let now = time::now_string();
    let a = Assignment::of(RoleAssignment {
        id: assignment_id,
        name,
        kind: rbac::ASSIGNMENT_TYPE.into(),
        properties: AssignmentProperties {
            role_definition_id: def.id_at(subscription.as_deref()),
            principal_id: principal_id.to_string(),
            principal_type: "ServicePrincipal".into(),
            scope: scope.to_string(),
            condition: None,
            condition_version: None,
            created_on: now.clone(),
            updated_on: now,
            created_by: Some(created_by.to_string()),
            updated_by: Some(created_by.to_string()),
            delegated_managed_identity_resource_id: None,
            description: None,
        },
    });
    rbac::save(tx, &a)?;
    a.to_value()
}

/// Whether a principal exists (used by callers outside this crate).
pub fn principal_exists(r: &impl Reader, object_id: &str) -> Result<bool, ArmError> {
    Ok(principals::get(r, object_id)?.is_some())
}

#[cfg(test)]
mod tests {
    use super::scope_removed_under_assignments;

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_scope_with_assignments_beneath_cannot_be_removed() {
        let old = v(&["/subscriptions/a", "/subscriptions/b"]);
        let at = v(&["/subscriptions/b/resourceGroups/rg"]);
        assert_eq!(
            scope_removed_under_assignments(&old, &v(&["/subscriptions/a"]), &at),
            Some((
                "/subscriptions/b".into(),
                "/subscriptions/b/resourceGroups/rg".into()
            ))
        );
        // Widening keeps the assignment covered.
        assert_eq!(
            scope_removed_under_assignments(
                &old,
                &v(&[
                    "/providers/Microsoft.Management/managementGroups/root",
                    "/subscriptions/b"
                ]),
                &at
            ),
            None
        );
        // Narrowing to the assignment's own group is still fine.
        assert_eq!(
            scope_removed_under_assignments(&old, &v(&["/subscriptions/b/resourceGroups/RG"]), &at),
            None
        );
        assert_eq!(
            scope_removed_under_assignments(&old, &v(&["/subscriptions/a"]), &[]),
            None
        );
    }
}
