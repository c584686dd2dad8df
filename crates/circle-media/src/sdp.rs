//! The little SDP text handling the SFU does itself: mDNS candidates (`….local`), which browsers use
//! to hide local addresses, are dropped from what clients send. The relay is ICE-lite and learns a
//! client's address from its connectivity checks; resolving such a name would make the ICE stack
//! query the local network for something it can never use.

/// Whether an ICE candidate line (`candidate:…`, with or without `a=`) names an mDNS host.
pub(crate) fn is_mdns_candidate(line: &str) -> bool {
    // candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...
    line.split_whitespace()
        .nth(4)
        .is_some_and(|addr| addr.ends_with(".local"))
}

/// An SDP without its mDNS candidate lines.
pub(crate) fn without_mdns_candidates(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let is_mdns = line
            .trim_end()
            .strip_prefix("a=")
            .is_some_and(is_mdns_candidate);
        if !is_mdns {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdns_candidates_are_left_out() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2122 9c1f.local 5000 typ host\r\n\
                   a=candidate:2 1 udp 2122 127.0.0.1 5001 typ host\r\na=end\r\n";
        let kept = without_mdns_candidates(sdp);
        assert!(!kept.contains(".local"));
        assert!(kept.contains("127.0.0.1 5001") && kept.ends_with("a=end\r\n"));
        assert!(is_mdns_candidate(
            "candidate:1 1 udp 2122 x.local 5000 typ host"
        ));
        assert!(!is_mdns_candidate(
            "candidate:1 1 udp 2122 10.0.0.1 5000 typ host"
        ));
    }
}
