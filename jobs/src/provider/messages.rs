//! How each job kind becomes chat messages.

use std::borrow::Cow;

use super::wire::ChatMessage;
use crate::job::Input;

/// The system message of an interpretation job: what "interpret" means.
const INTERPRETATION_SYSTEM: &str = "You interpret structured data for a reader. Explain what \
the data says, what stands out, and what it implies, in clear prose. Do not invent values \
that are not in the data.";

/// The messages for one job's input.
pub(crate) fn messages(input: &Input) -> Vec<ChatMessage<'_>> {
    match input {
        Input::Generation(g) => {
            let mut out = Vec::with_capacity(2);
            if let Some(system) = &g.system {
                out.push(ChatMessage {
                    role: "system",
                    content: Cow::Borrowed(system),
                });
            }
            out.push(ChatMessage {
                role: "user",
                content: Cow::Borrowed(g.prompt.as_str()),
            });
            out
        }
        Input::Interpretation(i) => {
            let subject = serde_json::to_string_pretty(&i.subject).unwrap_or_default();
            let user = match &i.instructions {
                Some(instr) => format!("{instr}\n\nData:\n{subject}"),
                None => format!("Interpret this data:\n{subject}"),
            };
            vec![
                ChatMessage {
                    role: "system",
                    content: Cow::Borrowed(INTERPRETATION_SYSTEM),
                },
                ChatMessage {
                    role: "user",
                    content: Cow::Owned(user),
                },
            ]
        }
    }
}
