//! One layer of settings where every key is optional ([`Partial`]), and how layers stack.

use std::collections::BTreeMap;

pub(crate) use super::keys::Partial;
use super::Origin;

/// A [`Partial`] plus where its values came from.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) values: Partial,
    origins: BTreeMap<&'static str, Origin>,
    fallback: Origin,
}

impl Layer {
    /// An empty layer whose values come from `fallback` unless recorded otherwise.
    pub(crate) fn new(fallback: Origin) -> Self {
        Self {
            values: Partial::default(),
            origins: BTreeMap::new(),
            fallback,
        }
    }

    /// Records that `key` came from `origin`.
    pub(crate) fn record(&mut self, key: &'static str, origin: Origin) {
        self.origins.insert(key, origin);
    }

    /// Where `key` came from.
    pub(crate) fn origin_of(&self, key: &str) -> Origin {
        self.origins
            .get(key)
            .cloned()
            .unwrap_or_else(|| self.fallback.clone())
    }
}

/// Where each key of a merged [`Partial`] came from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins(pub(crate) BTreeMap<&'static str, Origin>);

impl Origins {
    pub(crate) fn get(&self, key: &str) -> Origin {
        self.0.get(key).cloned().unwrap_or(Origin::Default)
    }
}
