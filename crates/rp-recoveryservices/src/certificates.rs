//! Vault certificates (`vaults/{v}/certificates/{name}`): a machine's
//! certificate uploaded to the vault, answered with the Microsoft Entra
//! details a registering agent needs (`ResourceCertificateAndAadDetails`),
//! the way the portal's vault-credentials download and the MARS agent use
//! it; and registered identities (`vaults/{v}/registeredIdentities/{name}`),
//! whose delete unregisters a registered container.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha1::Digest;

use recoverite_arm::{id, resource, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::{Reader, Table};

use crate::vault::vault_of;

const CERTIFICATES: Table = Table("vault_certificates");
pub const CERTIFICATE_TYPE: &str = "Microsoft.RecoveryServices/vaults/certificates";
/// Azure Backup's first-party application (the Backup Management Service).
pub const BACKUP_APP_ID: &str = "262044b1-e2ce-469f-a196-69ab7ada62d3";

/// What a vault remembers of an uploaded certificate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VaultCertificate {
    pub vault_id: String,
    pub name: String,
    pub thumbprint: String,
    pub subject: String,
    pub issuer: String,
    pub valid_from: String,
    pub valid_to: String,
    /// The DER bytes, base64.
    pub certificate: String,
}

/// The facts of an X.509 certificate (DER, or PEM) a vault reports.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateFacts {
    pub thumbprint: String,
    pub subject: String,
    pub issuer: String,
    pub valid_from: ::time::OffsetDateTime,
    pub valid_to: ::time::OffsetDateTime,
    pub der: Vec<u8>,
}

fn bad_certificate(msg: impl Into<String>) -> ArmError {
    ArmError::bad_request("InvalidCertificate", msg)
}

/// Reads an uploaded certificate: base64 of DER (the SDKs send bytes) or
/// of PEM text; refused when it is not one, or not valid now.
pub fn certificate_facts(
    encoded: &str,
    now: ::time::OffsetDateTime,
) -> Result<CertificateFacts, ArmError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad_certificate("properties.certificate must be the certificate's bytes in base64 (DER, or PEM text)."))?;
    let der = match std::str::from_utf8(&raw) {
        Ok(text) if text.contains("-----BEGIN CERTIFICATE-----") => {
            let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
            base64::engine::general_purpose::STANDARD
                .decode(body.trim())
                .map_err(|_| bad_certificate("The PEM certificate's body is not base64."))?
        }
        _ => raw,
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| {
        bad_certificate(format!(
            "properties.certificate is not an X.509 certificate: {e}"
        ))
    })?;
    let valid_from = cert.validity().not_before.to_datetime();
    let valid_to = cert.validity().not_after.to_datetime();
    if valid_to <= now || valid_from > now {
        return Err(bad_certificate(format!(
            "The certificate is valid from {} to {}, not now; upload a current one.",
            time::format(valid_from),
            time::format(valid_to)
        )));
    }
    Ok(CertificateFacts {
        thumbprint: hex::encode_upper(sha1::Sha1::digest(&der)),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        valid_from,
        valid_to,
        der,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CertProps {
    auth_type: Option<String>,
    certificate: Option<String>,
}

#[derive(Deserialize)]
struct CertBody {
    properties: Option<CertProps>,
}

/// `PUT vaults/{v}/certificates/{name}`.
pub fn put(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let body: CertBody = req.body_as()?;
    let props = body.properties.ok_or_else(|| {
        ArmError::invalid_parameter(
            "properties",
            "Give properties.certificate (base64) and properties.authType.",
        )
    })?;
    match props.auth_type.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("aad") | Some("azureactivedirectory") => {}
        Some(other) => {
            return Err(ArmError::invalid_parameter(
                "properties.authType",
                format!("authType '{other}' is not served: vault certificates use Microsoft Entra ID (AAD); Access Control Service was retired."),
            ))
        }
    }
    let encoded = props.certificate.ok_or_else(|| {
        ArmError::invalid_parameter(
            "properties.certificate",
            "Give the certificate's bytes in base64.",
        )
    })?;
    let facts = certificate_facts(&encoded, time::now())?;
    let name = req
        .path
        .provider
        .as_ref()
        .and_then(|p| p.names.get(1).cloned())
        .unwrap_or_default();
    let (vault, num) = ctx.store().write(|tx| {
        let vault = vault_of(tx, req)?;
        let vid = vault.id.clone();
        let num = crate::meta::get(tx, &vid)?
            .map(|m| m.numeric_id)
            .unwrap_or_default();
        let rec = VaultCertificate {
            vault_id: vid.clone(),
            name: name.clone(),
            thumbprint: facts.thumbprint.clone(),
            subject: facts.subject.clone(),
            issuer: facts.issuer.clone(),
            valid_from: time::format(facts.valid_from),
            valid_to: time::format(facts.valid_to),
            certificate: base64::engine::general_purpose::STANDARD.encode(&facts.der),
        };
        tx.put_json(CERTIFICATES, &key(&vid, &name), &rec)?;
        Ok::<_, ArmError>((vault, num))
    })?;
    let vid = &vault.id;
    Ok(Reply::ok(json!({
        "id": format!("{vid}/certificates/{name}"),
        "name": name,
        "type": CERTIFICATE_TYPE,
        "properties": {
            "authType": "AzureActiveDirectory",
            "certificate": base64::engine::general_purpose::STANDARD.encode(&facts.der),
            "friendlyName": "",
            "issuer": facts.issuer,
            "subject": facts.subject,
            "thumbprint": facts.thumbprint,
            "validFrom": time::format(facts.valid_from),
            "validTo": time::format(facts.valid_to),
            "resourceId": num,
            "aadAuthority": ctx.base_url,
            "aadTenantId": ctx.env().tenant_id,
            "servicePrincipalClientId": BACKUP_APP_ID,
            "servicePrincipalObjectId": BACKUP_APP_ID,
            "azureManagementEndpointAudience": aad_audience(&vault, num),
            "serviceResourceId": vid,
            "aadAudience": aad_audience(&vault, num),
        }
    })))
}

/// The audience a vault's registered agents get Entra tokens for.
pub fn aad_audience(vault: &recoverite_rs_core::vault_record::Vault, numeric_id: u64) -> String {
    format!(
        "https://RecoveryServiceVault/{}/{}/{numeric_id}",
        &vault.location, &vault.name
    )
}

fn key(vault_id: &str, name: &str) -> String {
    format!("{}|{}", id::key(vault_id), name.to_ascii_lowercase())
}

/// The certificate a vault holds under `name`, for registering agents.
pub fn get_certificate(
    r: &impl Reader,
    vault_id: &str,
    name: &str,
) -> Result<Option<VaultCertificate>, ArmError> {
    Ok(r.get_json(CERTIFICATES, &key(vault_id, name))?)
}

/// `DELETE vaults/{v}/registeredIdentities/{name}`: unregisters the
/// container of that name (a MARS machine, a DPM or Backup server, a
/// workload VM). 204 either way, as Azure answers.
pub fn delete_registered_identity(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let name = req
        .path
        .provider
        .as_ref()
        .and_then(|p| p.names.get(1).cloned())
        .unwrap_or_default();
    ctx.store().write(|tx| {
        let vault = vault_of(tx, req)?;
        let vid = vault.id.clone();
        let want = name.to_ascii_lowercase();
        let mut removed = 0;
        for c in crate::containers::all(tx, &vid)? {
            let cname = c.name.to_ascii_lowercase();
            let friendly = c.properties.friendly_name.to_ascii_lowercase();
            // Containers are named `{type};{name}`; the identity is either.
            if cname == want || cname.rsplit(';').next() == Some(want.as_str()) || friendly == want
            {
                let items = recoverite_rs_core::backup_item::in_container(tx, &c.id)?.len();
                recoverite_rs_core::containers::check_unregister(items, &cname)?;
                removed += usize::from(resource::delete_tree(tx, &c.id)?);
            }
        }
        tracing::debug!(identity = %name, removed, "registered identity deleted");
        Ok(Reply::empty(204))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(days_from: i64, days_to: i64) -> String {
        let mut p = rcgen::CertificateParams::new(vec!["machine1".into()]).unwrap();
        let now = ::time::OffsetDateTime::now_utc();
        p.not_before = now + ::time::Duration::days(days_from);
        p.not_after = now + ::time::Duration::days(days_to);
        let key = rcgen::KeyPair::generate().unwrap();
        let c = p.self_signed(&key).unwrap();
        base64::engine::general_purpose::STANDARD.encode(c.der())
    }

    #[test]
    fn certificates_are_read_and_must_be_valid_now() {
        let now = ::time::OffsetDateTime::now_utc();
        let f = certificate_facts(&cert(-1, 10), now).unwrap();
        assert_eq!(f.thumbprint.len(), 40);
        assert!(f.subject.contains("rcgen") || !f.subject.is_empty());
        assert!(certificate_facts(&cert(-20, -10), now).is_err());
        assert!(certificate_facts(&cert(5, 10), now).is_err());
        assert_eq!(
            certificate_facts("not base64!", now).unwrap_err().body.code,
            "InvalidCertificate"
        );
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            cert(-1, 10)
        );
        let pem64 = base64::engine::general_purpose::STANDARD.encode(pem);
        assert!(certificate_facts(&pem64, now).is_ok());
    }
}
