//! The DNS server's query handling: any packet, from a VM position or from
//! the machine.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = recoverite_fuzz::server();
    let Some((&who, packet)) = data.split_first() else {
        return;
    };
    let source = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 100, 0, who));
    let _ = s.running.resolver.answer(packet, source);
});
