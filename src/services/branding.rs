//! How a workspace presents itself to its end customers on connect-link pages: its name
//! and the logo uploaded in its settings, instead of Sluice's.

use super::require_write;
use crate::app::{App, AuditActor};
use crate::domain::TenantCtx;
use crate::error::{AppError, AppResult};
use base64::Engine;

/// Largest logo accepted, in bytes (it is sent inside every connect page).
pub const LOGO_MAX_BYTES: usize = 100 * 1024;

/// A workspace's name and logo.
pub struct Brand {
    /// The workspace's name.
    pub name: String,
    /// Its logo as a `data:` URL (pages embed it, so no image route is needed), if any.
    pub logo: Option<String>,
}

impl Brand {
    /// The name's first letter, standing in for a logo.
    pub fn initial(&self) -> String {
        self.name
            .chars()
            .find(|c| c.is_alphanumeric())
            .map(|c| c.to_uppercase().collect())
            .unwrap_or_default()
    }
}

/// The workspace's brand.
pub async fn brand(app: &App, ctx: &TenantCtx) -> AppResult<Brand> {
    let name = app.store.tenant(ctx).await?.name;
    let logo = app
        .store
        .tenant_logo(ctx)
        .await?
        .map(|(content_type, image)| {
            format!(
                "data:{content_type};base64,{}",
                base64::engine::general_purpose::STANDARD.encode(image)
            )
        });
    Ok(Brand { name, logo })
}

/// Replaces the workspace's logo with an image sent as a `data:` URL (what the settings
/// page's file picker reads). PNG, JPEG and WebP only, told by their bytes, not by the
/// name they claim: SVG could carry script.
pub async fn set_logo(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    data_url: &str,
) -> AppResult<()> {
    require_write(ctx)?;
    let image = data_url
        .split_once(";base64,")
        .filter(|(head, _)| head.starts_with("data:"))
        .and_then(|(_, data)| {
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .ok()
        })
        .ok_or_else(|| AppError::invalid("logo", "Choose an image file (PNG, JPEG or WebP)."))?;
    if image.len() > LOGO_MAX_BYTES {
        return Err(AppError::invalid(
            "logo",
            format!(
                "The image is {} KB; use one of at most {} KB.",
                image.len().div_ceil(1024),
                LOGO_MAX_BYTES / 1024
            ),
        ));
    }
    let content_type = image_type(&image)
        .ok_or_else(|| AppError::invalid("logo", "Use a PNG, JPEG or WebP image."))?;
    app.store.set_tenant_logo(ctx, content_type, image).await?;
    app.audit(ctx, actor, "workspace.logo_changed", None, None)
        .await?;
    Ok(())
}

/// Removes the workspace's logo.
pub async fn remove_logo(app: &App, ctx: &TenantCtx, actor: &AuditActor) -> AppResult<()> {
    require_write(ctx)?;
    app.store.remove_tenant_logo(ctx).await?;
    app.audit(ctx, actor, "workspace.logo_removed", None, None)
        .await?;
    Ok(())
}

/// The image type told by its first bytes.
fn image_type(image: &[u8]) -> Option<&'static str> {
    if image.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if image.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if image.len() > 12 && image.starts_with(b"RIFF") && &image[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn images_are_told_by_their_bytes() {
        assert_eq!(
            super::image_type(b"\x89PNG\r\n\x1a\nrest"),
            Some("image/png")
        );
        assert_eq!(
            super::image_type(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some("image/jpeg")
        );
        assert_eq!(
            super::image_type(b"RIFF\0\0\0\0WEBPVP8 "),
            Some("image/webp")
        );
        assert_eq!(super::image_type(b"<svg onload=alert(1)>"), None);
    }
}
