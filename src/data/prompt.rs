//! Prompt formats: a question → chat messages → prompt text through the model's chat template.
//!
//! `r1` asks for reasoning in `<think>` and the answer in `<answer>` (what the format reward
//! trains for); `boxed` is the instruction of the published math evaluations.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::chat::{ChatError, ChatTemplate, Message};

pub const R1_SYSTEM_PROMPT: &str = "A conversation between User and Assistant. The User asks a question and the \
Assistant solves it. The Assistant first thinks through the reasoning and then gives the answer. The reasoning \
goes inside <think> </think> tags and the final answer inside <answer> </answer> tags, like this: \
<think> reasoning here </think> <answer> answer here </answer>.";

pub const BOXED_INSTRUCTION: &str = "Please reason step by step, and put your final answer within \\boxed{}.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptFormat {
    R1,
    Boxed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown prompt format '{0}' (known: r1, boxed)")]
pub struct UnknownPromptFormat(pub String);

impl PromptFormat {
    pub fn name(self) -> &'static str {
        match self {
            PromptFormat::R1 => "r1",
            PromptFormat::Boxed => "boxed",
        }
    }

    /// The conversation asking `question`: a system message with the instruction, then the question.
    pub fn messages(self, question: &str) -> Vec<Message> {
        let system = match self {
            PromptFormat::R1 => R1_SYSTEM_PROMPT,
            PromptFormat::Boxed => BOXED_INSTRUCTION,
        };
        vec![Message::new("system", system), Message::new("user", question)]
    }

    /// The prompt text, ending where the assistant's reply begins.
    pub fn render(self, template: &ChatTemplate, question: &str) -> Result<String, ChatError> {
        template.render(&self.messages(question), true)
    }
}

impl fmt::Display for PromptFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PromptFormat {
    type Err = UnknownPromptFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "r1" => Ok(PromptFormat::R1),
            "boxed" => Ok(PromptFormat::Boxed),
            _ => Err(UnknownPromptFormat(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ChatML template of Qwen2.5 (shortened to the part these messages use).
    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    #[test]
    fn formats_render_through_the_chat_template() {
        let t = ChatTemplate::new(CHATML, None, None).unwrap();
        let boxed = PromptFormat::Boxed.render(&t, "What is 2+2?").unwrap();
        assert_eq!(
            boxed,
            "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n\
             <|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
        );
        let r1 = PromptFormat::R1.render(&t, "Q").unwrap();
        assert!(r1.starts_with("<|im_start|>system\nA conversation between User and Assistant."));
        assert!(r1.contains("<think> </think>") && r1.contains("<answer> </answer>"));
        assert!(r1.ends_with("<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"));
    }

    #[test]
    fn names_parse() {
        assert_eq!("r1".parse(), Ok(PromptFormat::R1));
        assert_eq!("Boxed".parse(), Ok(PromptFormat::Boxed));
        assert_eq!("chatml".parse::<PromptFormat>(), Err(UnknownPromptFormat("chatml".into())));
        assert_eq!(serde_json::to_string(&PromptFormat::R1).unwrap(), "\"r1\"");
    }
}
