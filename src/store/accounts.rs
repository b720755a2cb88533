//! Users: the people who sign in. Users are global; their access to tenants is memberships.

use super::entities::{setup_tokens, users};
use super::{Store, is_unique_violation, now};
use crate::domain::{Email, PlatformRole, UserId};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, Set,
};

/// A user as the application sees it (never with the password hash).
#[derive(Clone, Debug)]
pub struct UserRecord {
    /// Id.
    pub id: UserId,
    /// Normalised e-mail address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Whether the platform support role is granted.
    pub is_support: bool,
    /// When the password last changed: sessions older than this are void.
    pub password_changed_at: DateTime<Utc>,
}

impl From<users::Model> for UserRecord {
    fn from(m: users::Model) -> Self {
        Self {
            id: m.id,
            email: m.email,
            name: m.name,
            is_support: m.platform_role == Some(PlatformRole::Support),
            password_changed_at: m.password_changed_at,
        }
    }
}

impl Store {
    /// Creates a user; `Ok(None)` when the e-mail is taken.
    pub async fn create_user(
        &self,
        email: &Email,
        name: &str,
        password_hash: &str,
    ) -> Result<Option<UserRecord>, DbErr> {
        let row = users::ActiveModel {
            email: Set(email.as_str().to_owned()),
            name: Set(name.to_owned()),
            password_hash: Set(password_hash.to_owned()),
            platform_role: Set(None),
            ..users::ActiveModel::fresh()
        };
        match row.insert(&self.db).await {
            Ok(m) => Ok(Some(m.into())),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A user and their password hash, for sign-in.
    pub async fn user_credentials(
        &self,
        email: &Email,
    ) -> Result<Option<(UserRecord, String)>, DbErr> {
        Ok(users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .one(&self.db)
            .await?
            .map(|m| {
                let hash = m.password_hash.clone();
                (m.into(), hash)
            }))
    }

    /// The stored password hash of a user, for re-authentication.
    pub async fn password_hash(&self, id: UserId) -> Result<Option<String>, DbErr> {
        Ok(users::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(|m| m.password_hash))
    }

    /// A user by id.
    pub async fn user(&self, id: UserId) -> Result<Option<UserRecord>, DbErr> {
        Ok(users::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(Into::into))
    }

    /// A user by e-mail.
    pub async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, DbErr> {
        Ok(self.user_credentials(email).await?.map(|(u, _)| u))
    }

    /// Replaces a password hash and stamps the change time.
    pub async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<(), DbErr> {
        let row = users::ActiveModel {
            id: Set(id),
            password_hash: Set(hash.to_owned()),
            password_changed_at: Set(now()),
            ..Default::default()
        };
        row.update(&self.db).await.map(|_| ())
    }

    /// Grants (`Some`) or revokes (`None`) a platform role; false when no such user.
    pub async fn set_platform_role(
        &self,
        email: &Email,
        role: Option<&str>,
    ) -> Result<bool, DbErr> {
        let result = users::Entity::update_many()
            .col_expr(
                users::Column::PlatformRole,
                sea_orm::sea_query::Expr::value(role.map(str::to_owned)),
            )
            .filter(users::Column::Email.eq(email.as_str()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Number of users; zero means first-run setup is open.
    pub async fn count_users(&self) -> Result<u64, DbErr> {
        users::Entity::find().count(&self.db).await
    }

    /// Replaces any setup link with a new one (only the digest is kept).
    pub async fn replace_setup_token(
        &self,
        digest: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        setup_tokens::Entity::delete_many().exec(&self.db).await?;
        setup_tokens::ActiveModel {
            token_digest: Set(digest.to_owned()),
            created_at: Set(now()),
            expires_at: Set(expires_at),
        }
        .insert(&self.db)
        .await
        .map(|_| ())
    }

    /// Whether a setup link is valid right now (without using it up).
    pub async fn setup_token_valid(&self, digest: &str) -> Result<bool, DbErr> {
        Ok(setup_tokens::Entity::find()
            .filter(setup_tokens::Column::TokenDigest.eq(digest))
            .filter(setup_tokens::Column::ExpiresAt.gt(now()))
            .count(&self.db)
            .await?
            == 1)
    }

    /// Uses up a setup link; true exactly once for a valid link, even under races.
    pub async fn consume_setup_token(&self, digest: &str) -> Result<bool, DbErr> {
        let result = setup_tokens::Entity::delete_many()
            .filter(setup_tokens::Column::TokenDigest.eq(digest))
            .filter(setup_tokens::Column::ExpiresAt.gt(now()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }
}
