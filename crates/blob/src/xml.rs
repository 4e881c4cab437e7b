//! The Blob service's XML bodies.

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn error(code: &str, message: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>", esc(code), esc(message))
}

pub fn list(account: &str, container: &str, prefix: &str, items: &[(String, u64)]) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ServiceEndpoint=\"https://{}.blob.core.windows.net/\" ContainerName=\"{}\"><Prefix>{}</Prefix><Blobs>",
        esc(account),
        esc(container),
        esc(prefix)
    );
    for (name, size) in items {
        out.push_str(&format!(
            "<Blob><Name>{}</Name><Properties><Content-Length>{size}</Content-Length><BlobType>BlockBlob</BlobType></Properties></Blob>",
            esc(name)
        ));
    }
    out.push_str("</Blobs><NextMarker /></EnumerationResults>");
    out
}
