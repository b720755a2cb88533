//! Closed sets of names stored as text (states, kinds, roles). Each is a column type of
//! its own, so a stored name nobody knows is a read error, never quietly another state.

use std::fmt;

/// A stored or submitted name that is not one of its set's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownName {
    set: &'static str,
    name: String,
}

impl UnknownName {
    /// `name` is not one of `set`'s names.
    pub fn new(set: &'static str, name: &str) -> Self {
        // Names are short; cap what a hostile form could echo back.
        let name = name.chars().take(64).collect();
        Self { set, name }
    }
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} '{}'", self.set, self.name)
    }
}

impl std::error::Error for UnknownName {}

/// A closed set of names stored as text, with labels and badge colours for pages.
macro_rules! named_states {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = ($text:literal, $label:literal, $badge:literal)),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema, sea_orm::DeriveValueType)]
        #[sea_orm(value_type = "String")]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in display order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Stored and API name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            /// Human label.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }
            /// Badge colour class suffix.
            pub fn badge(self) -> &'static str {
                match self { $($name::$variant => $badge),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::named::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::domain::named::UnknownName::new(stringify!($name), other)),
                }
            }
        }
    };
}
