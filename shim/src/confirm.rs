//! Confirmations the daemon asks for (`confirm` rules of its policy), put
//! to the person through MCP elicitation in form mode: the tool, the host,
//! what it would do and the rule, with a choice of `allow` or `deny`.
//! Nothing secret is ever asked for in the form.
//!
//! A client that did not declare elicitation cannot be asked, nor can one
//! on the stateless 2026-07-28 revision (which has no server-to-client
//! requests; rmcp refuses to send one): the answer is no, and the daemon's
//! refusal says that confirmation was required and why it was not given.

use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{
    ClientResult, ElicitRequest, ElicitRequestParams, ElicitationAction, ElicitationSchema,
    EnumSchema, ServerRequest,
};
use rmcp::service::{Peer, RequestContext};
use sshmcp_proto::Confirmation;

use crate::daemon::Asked;

/// How long the person has to answer: within the daemon's own wait, so
/// its refusal names the real reason.
const ANSWER_WAIT: Duration = Duration::from_secs(110);

/// The field of the form that carries the choice.
const DECISION: &str = "decision";

/// What asks the person, for calls of the request in `context`.
pub fn asker(context: &RequestContext<RoleServer>) -> impl Fn(Confirmation) -> Asked + Send + Sync {
    let can_ask = context
        .client_capabilities()
        .is_some_and(|capabilities| capabilities.elicitation.is_some());
    let peer = context.peer.clone();
    move |confirmation| -> Asked {
        let peer = peer.clone();
        Box::pin(async move {
            if !can_ask {
                return (
                    false,
                    Some("the MCP client does not support elicitation".to_owned()),
                );
            }
            ask(&peer, &confirmation).await
        })
    }
}

/// Put `confirmation` to the person.
async fn ask(peer: &Peer<RoleServer>, confirmation: &Confirmation) -> (bool, Option<String>) {
    let Ok(schema) = ElicitationSchema::builder()
        .required_enum_schema(
            DECISION,
            EnumSchema::builder(vec!["allow".to_owned(), "deny".to_owned()]).build(),
        )
        .build()
    else {
        return (false, Some("sshmcp could not build its form".to_owned()));
    };
    let message = format!(
        "sshmcp asks: allow {} on {}?\n{}\n(rule {})",
        confirmation.tool, confirmation.host, confirmation.what, confirmation.rule
    );
    let request = ServerRequest::ElicitRequest(ElicitRequest::new(
        ElicitRequestParams::FormElicitationParams {
            meta: None,
            message,
            requested_schema: schema,
        },
    ));
    let answer = tokio::time::timeout(ANSWER_WAIT, peer.send_request(request)).await;
    match answer {
        Ok(Ok(ClientResult::ElicitResult(result))) => match result.action {
            ElicitationAction::Accept => {
                let choice = result
                    .content
                    .as_ref()
                    .and_then(|content| content.get(DECISION))
                    .and_then(|value| value.as_str());
                match choice {
                    Some("allow") => (true, None),
                    _ => (false, Some("the person chose deny".to_owned())),
                }
            }
            ElicitationAction::Decline => (false, Some("the person declined".to_owned())),
            _ => (false, Some("the person cancelled".to_owned())),
        },
        Ok(Ok(_)) => (
            false,
            Some("the MCP client answered the form with something else".to_owned()),
        ),
        Ok(Err(error)) => (
            false,
            Some(format!("the MCP client could not ask: {error}")),
        ),
        Err(_) => (
            false,
            Some(format!("no answer within {} s", ANSWER_WAIT.as_secs())),
        ),
    }
}
