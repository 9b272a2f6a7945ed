//! [`uuid_newtype!`](crate::uuid_newtype): one definition of an entity's
//! identifier for every domain crate, so that a department id can never be
//! passed where an official id is expected.

/// Defines a public identifier type: a UUID newtype with a public field,
/// serialised as the bare UUID, printable, comparable and hashable. The
/// calling crate must depend on `serde` and `uuid`.
///
/// ```
/// ventanilla_kernel::uuid_newtype!(
///     /// A department of the tenant.
///     DepartmentId
/// );
/// let id = DepartmentId(uuid::Uuid::nil());
/// assert_eq!(id.to_string(), "00000000-0000-0000-0000-000000000000");
/// ```
#[macro_export]
macro_rules! uuid_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub ::uuid::Uuid);

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl ::std::convert::From<::uuid::Uuid> for $name {
            fn from(id: ::uuid::Uuid) -> Self {
                Self(id)
            }
        }
    };
}
