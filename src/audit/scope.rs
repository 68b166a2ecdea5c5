//! Which resources a scan judges: `secrets`, `--resources`, and every
//! resource a supplied config names, wildcards included.

use crate::encryption::EncryptionConfig;
use crate::k8s::{GroupResource, CORE_RESOURCES};

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

    pub fn contains(&self, gr: &GroupResource) -> bool {
        self.patterns.iter().any(|p| match p {
            Pattern::All => true,
            Pattern::Group(g) if g.is_empty() => {
                gr.group.is_empty() && CORE_RESOURCES.contains(&gr.resource.as_str())
            }
            Pattern::Group(g) => &gr.group == g,
            Pattern::Exact(e) => e == gr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let s = Scope::new(["*.", "*.apps", "pandas.bears.example"], &[]);
        assert!(s.contains(&GroupResource::new("", "configmaps")));
        assert!(s.contains(&GroupResource::new("apps", "deployments")));
        assert!(s.contains(&GroupResource::new("bears.example", "pandas")));
        assert!(!s.contains(&GroupResource::new("batch", "jobs")));
        assert!(!s.contains(&GroupResource::new("", "widgets")));
        assert!(Scope::new(["*.*"], &[]).contains(&GroupResource::new("batch", "jobs")));
        assert!(!Scope::new([], &[]).contains(&GroupResource::new("", "configmaps")));
    }
}
