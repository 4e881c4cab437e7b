use super::*;
use recoverite_arm::{ArmRequest, Ctx, ProviderInfo, Reply};

struct P(&'static str, &'static str);

impl Provider for P {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            namespace: self.0,
            resource_types: vec![],
            requires_registration: false,
        }
    }
    fn handle(&self, _: &Ctx, _: &ArmRequest) -> Result<Reply, ArmError> {
        Err(ArmError::internal(self.1))
    }
}

struct C;

impl ScopeCascade for C {
    fn scope_deleted(&self, _: &mut recoverite_store::WriteTx, _: &str) -> Result<(), ArmError> {
        Ok(())
    }
}

#[test]
fn cascades_run_in_stage_order_whatever_the_crate_order() {
    let registry = Registry::default();
    let a = assemble(
        vec![
            Manifest::new("directory").cascade(Stage::Directory, C),
            Manifest::new("network").cascade(Stage::Network, C),
            Manifest::new("vaults")
                .cascade(Stage::RecoveryServices, C)
                .cascade(Stage::PrivateLinkConnections, C),
        ],
        &registry,
    )
    .unwrap();
    let order: Vec<_> = a.cascades.iter().map(|c| (c.stage, c.crate_name)).collect();
    assert_eq!(
        order,
        vec![
            (Stage::PrivateLinkConnections, "vaults"),
            (Stage::RecoveryServices, "vaults"),
            (Stage::Network, "network"),
            (Stage::Directory, "directory"),
        ]
    );
    assert_eq!(a.cascade_list().len(), 4);
    assert_eq!(a.crates, vec!["directory", "network", "vaults"]);
}

#[test]
fn providers_of_one_namespace_are_grouped_first_listed_first() {
    let registry = Registry::default();
    let a = assemble(
        vec![
            Manifest::new("net").provider(P("Microsoft.Network", "net")),
            Manifest::new("msi").provider(P("Microsoft.ManagedIdentity", "msi")),
            Manifest::new("dns").provider(P("Microsoft.Network", "dns")),
        ],
        &registry,
    )
    .unwrap();
    let namespaces: Vec<_> = a.providers.iter().map(|p| p.info().namespace).collect();
    assert_eq!(
        namespaces,
        vec!["Microsoft.Network", "Microsoft.ManagedIdentity"]
    );
}

#[test]
fn a_crate_listed_twice_is_refused() {
    let registry = Registry::default();
    let err = assemble(vec![Manifest::new("x"), Manifest::new("x")], &registry)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("listed twice"), "{err}");
}

#[test]
fn targets_are_installed_and_a_type_declared_twice_is_refused() {
    use recoverite_privatelink::test_target::TestTarget;
    let registry = Registry::default();
    assemble(
        vec![Manifest::new("t").private_link_target(TestTarget)],
        &registry,
    )
    .unwrap();
    assert_eq!(registry.resource_types().len(), 1);
    let again = Registry::default();
    assert!(assemble(
        vec![
            Manifest::new("a").private_link_target(TestTarget),
            Manifest::new("b").private_link_target(TestTarget),
        ],
        &again,
    )
    .is_err());
}
