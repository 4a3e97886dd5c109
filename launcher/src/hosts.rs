//! Hosts of a job and where its ranks go: `--host h1,h2:2` lists,
//! hostfiles in MPICH's (`host:N`) and Open MPI's (`host slots=N`) forms,
//! and the placement of ranks on them.
//!
//! Placement is by slot, then round-robin: the first host's slots are filled
//! in rank order, then the next host's, and so on; ranks beyond the total of
//! slots (allowed only with `--oversubscribe`) go one per host in turn. A
//! host named twice counts once, with its slots added up. Hosts that are this
//! machine (`localhost`, a loopback address, this host's name) run their
//! ranks as children of the launcher; the others through the launch agent.

use std::collections::HashMap;

/// One host and how many ranks it takes before oversubscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Its name or address, as given.
    pub name: String,
    /// Ranks it takes (at least 1).
    pub slots: usize,
}

impl Host {
    /// A host with `slots` slots.
    pub fn new(name: impl Into<String>, slots: usize) -> Host {
        Host {
            name: name.into(),
            slots,
        }
    }

    /// Whether the host is this machine.
    pub fn is_local(&self) -> bool {
        is_local_name(&self.name)
    }
}

/// Whether `name` means this machine: `localhost`, a loopback address, or
/// this host's name (in full or up to its first dot).
pub fn is_local_name(name: &str) -> bool {
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let me = mpirt::processor_name();
    let short = |n: &str| n.split('.').next().unwrap_or("").to_ascii_lowercase();
    name.eq_ignore_ascii_case(&me) || (!name.contains('.') && short(name) == short(&me))
}

/// Parses one `host` or `host:N` entry.
fn parse_entry(entry: &str, slots_default: usize) -> Result<Host, String> {
    let (name, slots) = match entry.rsplit_once(':') {
        // An IPv6 address has colons of its own; take `[addr]:N` or a bare address.
        Some((name, n)) if !name.contains(':') || name.ends_with(']') => {
            let slots =
                n.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                    format!("{entry:?}: the slot count must be a positive number")
                })?;
            (name.trim_start_matches('[').trim_end_matches(']'), slots)
        }
        _ => (entry, slots_default),
    };
    check_name(name, entry)?;
    Ok(Host::new(name, slots))
}

fn check_name(name: &str, context: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{context:?}: empty host name"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._:%".contains(c))
    {
        return Err(format!(
            "{context:?}: a host name holds letters, digits, '-', '.', '_' (or an IP address)"
        ));
    }
    Ok(())
}

/// Parses `--host h1,h2:2` (MPICH's `-hosts` and Open MPI's `--host`).
pub fn parse_host_list(list: &str) -> Result<Vec<Host>, String> {
    let hosts = list
        .split(',')
        .map(str::trim)
        .map(|entry| parse_entry(entry, 1))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(merge(hosts))
}

/// Parses a hostfile: one host a line, as `host`, `host:N` (MPICH) or
/// `host slots=N [max_slots=M]` (Open MPI); `#` starts a comment. Errors
/// name the line.
pub fn parse_hostfile(text: &str) -> Result<Vec<Host>, String> {
    let mut hosts = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = |e: String| format!("line {}: {e}", index + 1);
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        let mut host = parse_entry(first, 1).map_err(at)?;
        for word in words {
            match word.split_once('=') {
                Some(("slots" | "cpu" | "cpus", n)) => {
                    host.slots =
                        n.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                            at(format!("{word:?}: slots must be a positive number"))
                        })?;
                }
                // Open MPI's hard limit; placement here never exceeds slots
                // without --oversubscribe anyway.
                Some(("max_slots" | "max-slots", _)) => {}
                _ => return Err(at(format!("{word:?}: expected slots=N"))),
            }
        }
        hosts.push(host);
    }
    if hosts.is_empty() {
        return Err("the hostfile names no host".into());
    }
    Ok(merge(hosts))
}

/// Joins entries that name the same host, adding their slots, keeping the
/// order of first appearance.
fn merge(hosts: Vec<Host>) -> Vec<Host> {
    let mut out: Vec<Host> = Vec::new();
    for host in hosts {
        match out.iter_mut().find(|h| h.name == host.name) {
            Some(seen) => seen.slots += host.slots,
            None => out.push(host),
        }
    }
    out
}

/// Where each rank runs: `hosts[placement[rank]]`.
pub fn place_ranks(
    hosts: &[Host],
    ranks: usize,
    oversubscribe: bool,
) -> Result<Vec<usize>, String> {
    if hosts.is_empty() {
        return Err("no hosts given".into());
    }
    let slots: usize = hosts.iter().map(|h| h.slots).sum();
    if ranks > slots && !oversubscribe {
        return Err(format!(
            "{ranks} ranks asked for, but the hosts have {slots} slot{} ({}); add --oversubscribe to place more ranks than slots",
            if slots == 1 { "" } else { "s" },
            hosts
                .iter()
                .map(|h| format!("{}:{}", h.name, h.slots))
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    let mut placement: Vec<usize> = hosts
        .iter()
        .enumerate()
        .flat_map(|(i, h)| std::iter::repeat_n(i, h.slots))
        .take(ranks)
        .collect();
    let mut next = 0;
    while placement.len() < ranks {
        placement.push(next);
        next = (next + 1) % hosts.len();
    }
    Ok(placement)
}

/// The node index of each rank for `PMI_process_mapping`: hosts numbered in
/// order of first use, every local host being one node.
pub fn node_indices(hosts: &[Host], placement: &[usize]) -> Vec<u32> {
    let mut numbers: HashMap<String, u32> = HashMap::new();
    placement
        .iter()
        .map(|&h| {
            let key = if hosts[h].is_local() {
                String::new()
            } else {
                hosts[h].name.clone()
            };
            let next = numbers.len() as u32;
            *numbers.entry(key).or_insert(next)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_lists_parse_and_merge() {
        assert_eq!(
            parse_host_list("a,b:2,a").unwrap(),
            [Host::new("a", 2), Host::new("b", 2)]
        );
        assert_eq!(
            parse_host_list("[fe80::1]:3,::1").unwrap(),
            [Host::new("fe80::1", 3), Host::new("::1", 1)]
        );
        assert!(parse_host_list("a:0").is_err());
        assert!(parse_host_list("a:x").is_err());
        assert!(parse_host_list("a,,b").is_err());
        assert!(parse_host_list("a b").is_err());
        assert!(parse_host_list("a;rm").is_err());
    }

    #[test]
    fn hostfiles_of_both_kinds_parse() {
        let text = "# cluster\nnode1:2\nnode2 slots=3 max_slots=4  # big one\n\n  node3\nnode1\n";
        assert_eq!(
            parse_hostfile(text).unwrap(),
            [
                Host::new("node1", 3),
                Host::new("node2", 3),
                Host::new("node3", 1)
            ]
        );
        let e = parse_hostfile("a\nb slots=zero\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        assert!(parse_hostfile("a foo=1").is_err());
        assert!(parse_hostfile("# nothing\n").is_err());
    }

    #[test]
    fn ranks_fill_slots_then_go_round_robin() {
        let hosts = [Host::new("a", 2), Host::new("b", 1)];
        assert_eq!(place_ranks(&hosts, 3, false).unwrap(), [0, 0, 1]);
        assert_eq!(place_ranks(&hosts, 2, false).unwrap(), [0, 0]);
        assert_eq!(place_ranks(&hosts, 6, true).unwrap(), [0, 0, 1, 0, 1, 0]);
        let e = place_ranks(&hosts, 4, false).unwrap_err();
        assert!(
            e.contains("4 ranks") && e.contains("3 slots") && e.contains("--oversubscribe"),
            "{e}"
        );
    }

    #[test]
    fn local_hosts_are_one_node() {
        let hosts = [
            Host::new("localhost", 1),
            Host::new("far", 1),
            Host::new("127.0.0.1", 1),
        ];
        assert_eq!(node_indices(&hosts, &[0, 1, 2, 1]), [0, 1, 0, 1]);
        assert!(is_local_name(&mpirt::processor_name()));
        assert!(!is_local_name("10.1.2.3"));
    }
}
