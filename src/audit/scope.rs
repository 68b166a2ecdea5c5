//! Which resources a scan judges: `secrets`, `--resources`, and every
//! resource a supplied config names, wildcards included.

use crate::encryption::EncryptionConfig;
use crate::k8s::{GroupResource, ResourceRef, CORE_RESOURCES};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    Exact(GroupResource),
    /// `*.group`; `*.` is the core group, i.e. the built-in core table.
    Group(String),
    /// `*.*`
    All,
}

#[derive(Clone, Debug)]
pub struct Scope {
    patterns: Vec<Pattern>,
}

impl Scope {
    pub fn new<'a>(extra: impl IntoIterator<Item = &'a str>, configs: &'a [EncryptionConfig]) -> Self {
        let from_configs = configs.iter().flat_map(|c| c.resource_patterns());
        let patterns = std::iter::once("secrets")
            .chain(extra)
            .chain(from_configs)
            .map(|p| match GroupResource::parse(p) {
                gr if gr.resource == "*" && gr.group == "*" => Pattern::All,
                gr if gr.resource == "*" => Pattern::Group(gr.group),
                gr => Pattern::Exact(gr),
            })
            .collect();
        Scope { patterns }
    }

    pub fn contains(&self, gr: ResourceRef) -> bool {
        self.patterns.iter().any(|p| match p {
            Pattern::All => true,
            Pattern::Group(g) if g.is_empty() => gr.group.is_empty() && CORE_RESOURCES.contains(&gr.resource),
            Pattern::Group(g) => gr.group == g,
            Pattern::Exact(e) => gr == *e,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gr<'a>(group: &'a str, resource: &'a str) -> ResourceRef<'a> {
        ResourceRef { group, resource }
    }

    #[test]
    fn wildcards() {
        let s = Scope::new(["*.", "*.apps", "pandas.bears.example"], &[]);
        assert!(s.contains(gr("", "configmaps")));
        assert!(s.contains(gr("apps", "deployments")));
        assert!(s.contains(gr("bears.example", "pandas")));
        assert!(!s.contains(gr("batch", "jobs")));
        assert!(!s.contains(gr("", "widgets")));
        assert!(Scope::new(["*.*"], &[]).contains(gr("batch", "jobs")));
        assert!(!Scope::new([], &[]).contains(gr("", "configmaps")));
    }
}
