//! The gateway's flow log: every connection's decision, newest last,
//! bounded, kept across restarts in `DATA/flowlog.jsonl`, filterable, and
//! logged at info level only when a flow's verdict changes (not once per
//! retry of an agent that keeps being refused).

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::FlowRecord;

pub struct FlowLog {
    capacity: usize,
    records: VecDeque<FlowRecord>,
    file: Option<(PathBuf, File, usize)>,
    /// The last verdict of each (source, destination, port).
    verdicts: HashMap<(Ipv4Addr, Ipv4Addr, u16), bool>,
}

/// Which records a reader wants.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub allowed: Option<bool>,
    /// A VM's id or name (the source's VM).
    pub vm: Option<String>,
    /// Part of the destination: its alias, address or name.
    pub dest: Option<String>,
}

impl Filter {
    pub fn matches(&self, f: &FlowRecord) -> bool {
        let lower = |s: &str| s.to_ascii_lowercase();
        self.allowed.is_none_or(|a| f.allowed == a)
            && self.vm.as_ref().is_none_or(|vm| {
                let vm = lower(vm);
                f.source_vm.as_deref().map(lower).is_some_and(|s| {
                    s == vm || s.rsplit('/').next() == Some(vm.trim_start_matches('/'))
                })
            })
            && self.dest.as_ref().is_none_or(|d| {
                let d = lower(d);
                let ip = match &f.destination {
                    Some(crate::Destination::PrivateEndpoint { ip, .. })
                    | Some(crate::Destination::Nic { ip, .. })
                    | Some(crate::Destination::Public { ip, .. }) => ip.to_string(),
                    None => String::new(),
                };
                f.destination_alias.to_string() == d
                    || ip == d
                    || f.destination_name
                        .as_deref()
                        .map(lower)
                        .is_some_and(|n| n.contains(&d))
            })
    }
}

impl FlowLog {
    pub fn new(capacity: usize) -> FlowLog {
        FlowLog {
            capacity,
            records: VecDeque::new(),
            file: None,
            verdicts: HashMap::new(),
        }
    }

    /// Keeps the log in `path` from now on, after reading what it held.
    pub fn keep_in(&mut self, path: &Path) -> std::io::Result<()> {
        if let Ok(f) = File::open(path) {
            for line in BufReader::new(f).lines().map_while(Result::ok) {
                // A torn last line (power loss) is skipped.
                if let Ok(r) = serde_json::from_str::<FlowRecord>(&line) {
                    if self.records.len() == self.capacity {
                        self.records.pop_front();
                    }
                    self.records.push_back(r);
                }
            }
        }
        let lines = self.records.len();
        self.rewrite(path)?;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        self.file = Some((path.to_path_buf(), file, lines));
        Ok(())
    }

    /// Rewrites the file with what the log holds now (bounded).
    fn rewrite(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("jsonl.new");
        {
            let mut out = std::io::BufWriter::new(File::create(&tmp)?);
            for r in &self.records {
                serde_json::to_writer(&mut out, r)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        std::fs::rename(&tmp, path)
    }

    /// Whether this record changes its flow's verdict (or is its first).
    pub fn changes_verdict(&mut self, f: &FlowRecord) -> bool {
        let key = (f.source_alias, f.destination_alias, f.port);
        self.verdicts.insert(key, f.allowed) != Some(f.allowed)
    }

    pub fn push(&mut self, f: FlowRecord) {
        if let Some((_, file, lines)) = &mut self.file {
            if let Ok(mut line) = serde_json::to_vec(&f) {
                line.push(b'\n');
                if file.write_all(&line).is_ok() {
                    *lines += 1;
                }
            }
        }
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        self.records.push_back(f);
        // Compact the file once it holds twice what is kept.
        let full = self
            .file
            .as_ref()
            .is_some_and(|(_, _, lines)| *lines >= 2 * self.capacity);
        if full {
            let path = self
                .file
                .as_ref()
                .map(|(p, _, _)| p.clone())
                .unwrap_or_default();
            if self.rewrite(&path).is_ok() {
                if let Ok(file) = OpenOptions::new().append(true).open(&path) {
                    self.file = Some((path, file, self.records.len()));
                }
            }
        }
    }

    pub fn records(&self, filter: &Filter) -> Vec<FlowRecord> {
        self.records
            .iter()
            .filter(|r| filter.matches(r))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(src: u8, allowed: bool, vm: &str) -> FlowRecord {
        FlowRecord {
            time: "2026-12-01T00:00:00Z".into(),
            source_alias: Ipv4Addr::new(127, 1, 0, src),
            destination_alias: Ipv4Addr::new(127, 200, 0, 1),
            port: 443,
            allowed,
            reason: String::new(),
            source: None,
            destination: None,
            source_vm: Some(format!("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/{vm}")),
            source_nic: None,
            destination_name: Some("vault v (private endpoint pe)".into()),
        }
    }

    #[test]
    fn bounded_kept_across_restarts_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowlog.jsonl");
        let mut log = FlowLog::new(3);
        log.keep_in(&path).unwrap();
        for i in 0..8 {
            log.push(rec(i, i % 2 == 0, if i < 4 { "web" } else { "db" }));
        }
        assert_eq!(log.records(&Filter::default()).len(), 3);
        // A restart reads the last three back.
        let mut again = FlowLog::new(3);
        again.keep_in(&path).unwrap();
        let all = again.records(&Filter::default());
        assert_eq!(
            all.iter()
                .map(|r| r.source_alias.octets()[3])
                .collect::<Vec<_>>(),
            vec![5, 6, 7]
        );
        let refused = Filter {
            allowed: Some(false),
            ..Filter::default()
        };
        assert_eq!(again.records(&refused).len(), 2);
        let db = Filter {
            vm: Some("DB".into()),
            dest: Some("private endpoint".into()),
            ..Filter::default()
        };
        assert_eq!(again.records(&db).len(), 3);
        let none = Filter {
            dest: Some("storage".into()),
            ..Filter::default()
        };
        assert!(again.records(&none).is_empty());
    }

    #[test]
    fn a_verdict_is_news_once() {
        let mut log = FlowLog::new(10);
        assert!(log.changes_verdict(&rec(1, false, "a")));
        assert!(!log.changes_verdict(&rec(1, false, "a")));
        assert!(log.changes_verdict(&rec(1, true, "a")));
        assert!(log.changes_verdict(&rec(2, true, "a")));
    }
}
