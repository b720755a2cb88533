//! Members and invitations pages, and the invitation landing page.

use super::auth::{render, signed_in_redirect};
use super::extract::{MaybeUser, Member, client_info, csrf_token, flashes};
use super::flash::{self, Flash};
use super::shell::Shell;
use crate::app::App;
use crate::domain::{FieldErrors, InvitationId, MembershipId, Role};
use crate::error::{AppError, AppResult};
use crate::services::members;
use crate::services::records;
use crate::services::records::{InvitationWithTenant, MemberRecord};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "members/index.html")]
struct MembersPage {
    shell: Shell,
    members: Vec<MemberRecord>,
    invitations: Vec<records::Invitation>,
    roles: Vec<Role>,
    my_role: Role,
    me: String,
    /// The viewer is the workspace's only owner: leaving would orphan it.
    sole_owner: bool,
    invite_email: String,
    invite_role: String,
    errors: FieldErrors,
    new_link: Option<String>,
}

#[derive(Template)]
#[template(path = "members/accept.html")]
struct AcceptPage {
    csrf: String,
    flashes: Vec<Flash>,
    token: String,
    tenant_name: String,
    email: String,
    role: String,
    signed_in_as: Option<String>,
    email_matches: bool,
    has_account: bool,
    name: String,
    errors: FieldErrors,
}

async fn members_page(
    app: &App,
    member: &Member,
    invite_email: String,
    invite_role: String,
    errors: FieldErrors,
    new_link: Option<String>,
) -> AppResult<MembersPage> {
    let my_role = member.ctx.role();
    let members = members::list(app, &member.ctx).await?;
    let owners = members.iter().filter(|m| m.role == Role::Owner).count();
    Ok(MembersPage {
        sole_owner: my_role == Role::Owner && owners <= 1,
        shell: member.shell("members"),
        members,
        invitations: members::pending_invitations(app, &member.ctx).await?,
        roles: Role::ALL
            .into_iter()
            .filter(|r| my_role.can_manage(*r))
            .collect(),
        my_role,
        me: member.who.user.id.to_string(),
        invite_email,
        invite_role,
        errors,
        new_link,
    })
}

/// GET /settings/members
pub async fn index(app: web::Data<App>, member: Member) -> AppResult<HttpResponse> {
    let page = members_page(
        &app,
        &member,
        String::new(),
        "viewer".into(),
        FieldErrors::new(),
        None,
    )
    .await?;
    render(&page, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct InviteForm {
    email: String,
    role: String,
}

/// POST /settings/members/invite — shows the link once, on the page itself.
pub async fn invite(
    app: web::Data<App>,
    member: Member,
    form: web::Form<InviteForm>,
) -> AppResult<HttpResponse> {
    let form = form.into_inner();
    match members::invite(&app, &member.ctx, &member.actor(), &form.email, &form.role).await {
        Ok(link) => {
            let mut page = members_page(
                &app,
                &member,
                String::new(),
                "viewer".into(),
                FieldErrors::new(),
                Some(link),
            )
            .await?;
            page.shell.flashes.push(Flash::success(format!(
                "Invitation created for {}. Send them the link below; it works once.",
                form.email.trim()
            )));
            render(&page, StatusCode::OK)
        }
        Err(AppError::Invalid(errors)) => {
            let page = members_page(&app, &member, form.email, form.role, errors, None).await?;
            render(&page, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
pub struct RoleForm {
    role: String,
}

/// POST /settings/members/{id}/role
pub async fn change_role(
    app: web::Data<App>,
    member: Member,
    id: web::Path<MembershipId>,
    form: web::Form<RoleForm>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    match members::change_role(&app, &member.ctx, &member.actor(), id, &form.role).await {
        Ok(()) => Ok(flash::redirect(
            "/settings/members",
            Flash::success("Role updated."),
        )),
        Err(AppError::Conflict(message)) => {
            Ok(flash::redirect("/settings/members", Flash::error(message)))
        }
        Err(e) => Err(e),
    }
}

/// GET /settings/members/invite: a reload of the page an invitation was made on goes
/// back to the members (the link shown once is not shown again).
pub async fn invite_reloaded() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, "/settings/members"))
        .finish()
}

/// POST /settings/members/{id}/remove
pub async fn remove(
    app: web::Data<App>,
    member: Member,
    id: web::Path<MembershipId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let leaving_self = members::is_self(&app, &member.ctx, id).await?;
    match members::remove(&app, &member.ctx, &member.actor(), id).await {
        Ok(()) if leaving_self => Ok(flash::redirect(
            "/dashboard",
            Flash::info("You left the workspace."),
        )),
        Ok(()) => Ok(flash::redirect(
            "/settings/members",
            Flash::success("Member removed."),
        )),
        Err(AppError::Conflict(message)) => {
            Ok(flash::redirect("/settings/members", Flash::error(message)))
        }
        Err(e) => Err(e),
    }
}

/// POST /settings/invitations/{id}/revoke
pub async fn revoke_invitation(
    app: web::Data<App>,
    member: Member,
    id: web::Path<InvitationId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    members::revoke_invitation(&app, &member.ctx, &member.actor(), id).await?;
    Ok(flash::redirect(
        "/settings/members",
        Flash::success("Invitation withdrawn."),
    ))
}

async fn accept_page(
    app: &App,
    req: &HttpRequest,
    token: String,
    inv: &InvitationWithTenant,
    user: &MaybeUser,
    name: String,
    errors: FieldErrors,
) -> AppResult<AcceptPage> {
    let email = inv.invitation.email.clone();
    let has_account = match crate::domain::Email::parse(&email) {
        Ok(e) => members::has_account(app, &e).await?,
        Err(_) => false,
    };
    Ok(AcceptPage {
        csrf: csrf_token(req),
        flashes: flashes(req),
        token,
        tenant_name: inv.tenant_name.clone(),
        role: inv.invitation.role.to_string(),
        signed_in_as: user.0.as_ref().map(|u| u.user.email.clone()),
        email_matches: user.0.as_ref().is_some_and(|u| u.user.email == email),
        email,
        has_account,
        name,
        errors,
    })
}

/// GET /invite/{token}
pub async fn invitation(
    req: HttpRequest,
    app: web::Data<App>,
    user: MaybeUser,
    token: web::Path<String>,
) -> AppResult<HttpResponse> {
    let token = token.into_inner();
    let inv = members::open_invitation(&app, &token).await?;
    let page = accept_page(
        &app,
        &req,
        token,
        &inv,
        &user,
        String::new(),
        FieldErrors::new(),
    )
    .await?;
    render(&page, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct AcceptForm {
    name: Option<String>,
    password: Option<String>,
    password_confirm: Option<String>,
}

/// POST /invite/{token} — joins as the signed-in user, or creates the account first.
pub async fn accept(
    req: HttpRequest,
    app: web::Data<App>,
    user: MaybeUser,
    token: web::Path<String>,
    form: web::Form<AcceptForm>,
) -> AppResult<HttpResponse> {
    let token = token.into_inner();
    if let Some(signed_in) = &user.0 {
        let inv = members::accept_as(&app, &token, &signed_in.user, &signed_in.client).await?;
        crate::services::tenants::switch(
            &app,
            signed_in.user.id,
            &signed_in.session.id,
            inv.tenant_id(),
        )
        .await?;
        return Ok(flash::redirect(
            "/dashboard",
            Flash::success(format!(
                "You joined {}",
                crate::domain::text::ending(&inv.tenant_name)
            )),
        ));
    }
    let form = form.into_inner();
    let name = form.name.unwrap_or_default();
    match members::accept_with_new_account(
        &app,
        &token,
        &name,
        &form.password.unwrap_or_default(),
        &form.password_confirm.unwrap_or_default(),
        &client_info(&req),
    )
    .await
    {
        Ok((inv, session)) => Ok(signed_in_redirect(
            &app,
            &session,
            "/dashboard",
            Some(Flash::success(format!(
                "Welcome! You joined {}.",
                inv.tenant_name
            ))),
        )),
        Err(AppError::Invalid(errors)) => {
            let inv = members::open_invitation(&app, &token).await?;
            let page = accept_page(&app, &req, token, &inv, &user, name, errors).await?;
            render(&page, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => Err(e),
    }
}
