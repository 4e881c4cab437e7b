//! IPAM and NSG evaluation speed (run by bench/network.sh).

use std::hint::black_box;
use std::time::Instant;

use recoverite_netcore::ipam::SubnetPool;
use recoverite_netcore::nsg::{
    self, Access, CompiledNsg, Direction, Flow, PortRange, Protocol, Rule,
};
use recoverite_netcore::tags::{Endpoint, TagContext};

fn main() {
    // Allocate every address of a /16, one at a time (as NIC creations would).
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let mut p = SubnetPool::new("10.1.0.0/16".parse().unwrap());
        let mut n = 0;
        while p.allocate().is_ok() {
            n += 1;
        }
        assert_eq!(n, 65531);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("ipam_slash16_all_addresses_ms {:.2}", best * 1000.0);

    // A 200-rule NSG whose matching rule is the last one.
    let tags = [
        "Storage.EastUS",
        "AzureActiveDirectory",
        "EventHub.CentralUS",
        "AzureSiteRecovery",
        "10.9.0.0/16",
    ];
    let rules: Vec<Rule> = (0..200)
        .map(|i| Rule {
            name: format!("r{i}"),
            priority: 100 + i,
            direction: Direction::Outbound,
            access: if i == 199 {
                Access::Allow
            } else {
                Access::Deny
            },
            protocol: Protocol::Tcp,
            source_prefixes: vec!["VirtualNetwork".into()],
            source_ports: vec![PortRange::ANY],
            destination_prefixes: vec![if i == 199 {
                "Storage.WestEurope".into()
            } else {
                tags[i as usize % tags.len()].to_string()
            }],
            destination_ports: vec![PortRange::parse(&format!("{}", 1000 + i)).unwrap()],
        })
        .collect();
    let ctx = TagContext {
        virtual_network: vec!["10.0.0.0/16".parse().unwrap()],
    };
    let flow = Flow {
        direction: Direction::Outbound,
        protocol: Protocol::Tcp,
        source: Endpoint::Private {
            ip: "10.0.1.4".parse().unwrap(),
        },
        source_port: 50000,
        destination: Endpoint::Service {
            ip: "20.60.13.1".parse().unwrap(),
            service: "Storage".into(),
            region: Some("westeurope".into()),
        },
        destination_port: 1199,
    };
    let compiled = CompiledNsg::new(&rules);
    assert_eq!(compiled.evaluate(&flow, &ctx).rule, "securityRules/r199");
    let n = 200_000;
    let t = Instant::now();
    for _ in 0..n {
        black_box(compiled.evaluate(black_box(&flow), &ctx));
    }
    println!(
        "nsg_200_rules_compiled_us_per_decision {:.3}",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n / 10 {
        black_box(nsg::evaluate(black_box(&rules), &flow, &ctx));
    }
    println!(
        "nsg_200_rules_reference_us_per_decision {:.3}",
        t.elapsed().as_secs_f64() * 1e6 / (n / 10) as f64
    );
}
